"""Simulated 3-D movies with known truth: diffusing spots in z-stacks, and ellipsoidal cells that divide.

Conventions (as in :mod:`~edgetrack.runtime.simulate.spots`, one axis more): positions are voxels,
``z`` = plane, ``y`` = row, ``x`` = column; voxel ``(k, r, c)`` covers ``[k - 0.5, k + 0.5] x
[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]``, so voxel centres sit at integer coordinates and the
volume is ``[-0.5, Z - 0.5) x [-0.5, Y - 0.5) x [-0.5, X - 0.5)``. ``frame`` is a 0-based integer.
Physical quantities (voxel size, diffusion coefficient, PSF width, cell sizes) are given in
micrometres and seconds and converted to voxels per axis, so anisotropic voxels (for example
``voxel_size = (0.3, 0.1, 0.1)``, z three times coarser) come out right.

Spots (:func:`simulate_movie_3d`): Brownian particles in a box that extends the volume by a margin
of a few steps on every side, with reflecting walls, so they wander out of the volume and back in
(one ``track_id`` per particle throughout). The movie is the voxel-integrated Gaussian PSF (erf per
axis) on a constant background with Poisson shot noise and Gaussian read noise (gain 1).

SNR, as for 2-D movies: the peak amplitude of a spot (photons per voxel at the centre of the
continuous PSF, above background) is ``snr * sqrt(background + read_noise**2)``, i.e. ``snr``
times the noise standard deviation of a background voxel. A spot of amplitude ``A`` holds ``A *
(2 pi)^(3/2) * sz * sy * sx`` photons, ``sz, sy, sx`` the PSF sigmas in voxels.

Cells (:func:`simulate_cells_3d`): solid ellipsoids (random size, elongation and orientation) that
take random-walk steps, push each other apart softly, grow and divide. A voxel inside several
ellipsoids belongs to the one in whose scaled metric it lies deepest (smallest ``d^T M d``), so
touching cells share their boundary instead of one hiding the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd
from edgetrack.runtime.config import is_int, is_real, require
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.simulate.spots import seeded_generator
from scipy.special import erf

__all__ = ["CELL_TRUTH3D_COLUMNS", "TRUTH3D_COLUMNS", "CellMovie3D", "simulate_cells_3d", "simulate_movie_3d"]

TRUTH3D_COLUMNS: tuple[str, ...] = ("frame", "z", "y", "x", "track_id", "particle", "amplitude")
"""Columns of the spot truth table of :func:`simulate_movie_3d`."""

CELL_TRUTH3D_COLUMNS: tuple[str, ...] = ("frame", "label", "z", "y", "x", "volume", "axis_major", "axis_mid",
                                         "axis_minor")
"""Columns of the per-frame cell truth of :func:`simulate_cells_3d` (the continuous ellipsoids)."""

# Random streams derived from the one seed (SeedSequence spawn keys), distinct from the 2-D simulator's.
_STREAM_SPOTS3D = 10
_STREAM_RENDER3D = 11
_STREAM_CELLS3D = 20
_STREAM_CELL_IMAGES3D = 21


def _triple(value: Any, name: str, positive: bool = True) -> tuple[float, float, float]:
    """Three finite numbers (z, y, x); > 0 when ``positive``, else >= 0. ConfigError otherwise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ConfigError(f"{name} must be three numbers (z, y, x), got {value!r}")
    values = tuple(value)
    ok = len(values) == 3 and all(is_real(v) and math.isfinite(float(v)) and (v > 0 if positive else v >= 0)
                                  for v in values)
    require(ok, f"{name} must be three finite numbers {'> 0' if positive else '>= 0'} (z, y, x), got {value!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _shape3(shape: Any) -> tuple[int, int, int]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        raise ConfigError(f"shape must be three integers (Z, Y, X), got {shape!r}")
    values = tuple(shape)
    require(len(values) == 3 and all(is_int(v) and v >= 1 for v in values),
            f"shape must be three integers >= 1 (Z, Y, X), got {shape!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _number(value: Any, name: str, low: float = 0.0, strict: bool = False, unit: str = "") -> float:
    ok = is_real(value) and math.isfinite(float(value)) and (value > low if strict else value >= low)
    require(ok, f"{name} must be a finite number {'>' if strict else '>='} {low:g}{unit}, got {value!r}")
    return float(value)


def _range(value: Any, name: str) -> tuple[float, float]:
    """(min, max) with 0 < min <= max, finite; ConfigError otherwise."""
    values = tuple(value) if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)) else ()
    ok = len(values) == 2 and all(is_real(v) and 0 < v < math.inf for v in values) and values[0] <= values[1]
    require(ok, f"{name} must be (min, max) um with 0 < min <= max, got {value!r}")
    return float(values[0]), float(values[1])


def _count(value: Any, name: str, low: int = 1) -> int:
    require(is_int(value) and value >= low, f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _reflect(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Positions folded into [lo, hi] per axis by mirror reflection at the walls (any number of bounces)."""
    span = hi - lo
    u = np.mod(pos - lo, 2.0 * span)
    return lo + span - np.abs(u - span)


def axis_weights(centres: np.ndarray, start: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """The fraction of a 1-D Gaussian (std ``sigma`` voxels) centred at each of ``centres`` that
    falls in voxels ``start .. start + size - 1``: float64 (n, size), exact (difference of erf)."""
    edges = start[:, None] + np.arange(size + 1) - 0.5
    return 0.5 * np.diff(erf((edges - centres[:, None]) / (math.sqrt(2.0) * sigma)), axis=1)


def render_spots_3d(points: np.ndarray, amplitude: np.ndarray, shape: tuple[int, int, int],
                    sigma: tuple[float, float, float]) -> np.ndarray:
    """Expected photons per voxel of Gaussian spots, without background or noise: float64 (Z, Y, X).

    points: float64 (n, 3) centres (z, y, x) in voxels; amplitude: (n,) peak photons per voxel of
    the continuous PSF; sigma: PSF std per axis in voxels. Each spot is integrated exactly over the
    voxels within ``ceil(4 sigma) + 1`` of its centre along each axis.
    """
    out = np.zeros(int(np.prod(shape)), np.float64)
    if len(points) == 0:
        return out.reshape(shape)
    halves = [math.ceil(4.0 * s) + 1 for s in sigma]
    total = amplitude * (2.0 * math.pi) ** 1.5 * sigma[0] * sigma[1] * sigma[2]
    index = np.zeros((len(points), 1, 1, 1), np.int64)
    weight = total[:, None, None, None]
    inside = np.ones((len(points), 1, 1, 1), bool)
    strides = (shape[1] * shape[2], shape[2], 1)
    for axis in range(3):
        half = halves[axis]
        start = np.rint(points[:, axis]).astype(np.int64) - half
        w = axis_weights(points[:, axis], start, 2 * half + 1, sigma[axis])
        pos = start[:, None] + np.arange(2 * half + 1)
        view = [len(points), 1, 1, 1]
        view[axis + 1] = 2 * half + 1
        weight = weight * w.reshape(view)
        index = index + (pos * strides[axis]).reshape(view)
        inside = inside & ((pos >= 0) & (pos < shape[axis])).reshape(view)
    inside = np.broadcast_to(inside, weight.shape)
    index = np.broadcast_to(index, weight.shape)
    out += np.bincount(index[inside], weights=weight[inside], minlength=out.size)
    return out.reshape(shape)


def add_camera_noise(expected: np.ndarray, read_noise: float, rng: np.random.Generator, dtype: str) -> np.ndarray:
    """Poisson shot noise on ``expected`` photons plus Gaussian read noise (std ``read_noise``).

    ``dtype`` ``"uint16"``: rounded and clipped to [0, 65535]; ``"float32"``: neither rounded nor clipped.
    """
    image = rng.poisson(expected).astype(np.float64)
    if read_noise > 0:
        image += rng.normal(0.0, read_noise, image.shape)
    if dtype == "float32":
        return image.astype(np.float32)
    np.rint(image, out=image)
    np.clip(image, 0, 65535, out=image)
    return image.astype(np.uint16)


def _check_dtype(dtype: Any) -> str:
    require(dtype in ("uint16", "float32"), f"dtype must be 'uint16' or 'float32', got {dtype!r}")
    return str(dtype)


def simulate_movie_3d(
    n_frames: int = 10,
    shape: Sequence[int] = (16, 64, 64),
    n_spots: float = 20.0,
    voxel_size: Sequence[float] = (0.3, 0.1, 0.1),
    D: float = 0.05,
    frame_interval: float = 0.1,
    psf_sigma_um: Sequence[float] = (0.4, 0.15, 0.15),
    snr: float = 8.0,
    background: float = 100.0,
    read_noise: float = 2.0,
    amplitude_spread: float = 0.0,
    dtype: str = "uint16",
    seed: int = 0,
    truth_margin: float = 0.0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulate a movie of z-stacks of Brownian spots with its ground truth.

    - ``n_frames``: number of stacks T; ``shape``: (Z, Y, X) voxels of one stack.
    - ``n_spots``: mean number of particles inside the volume (Poisson).
    - ``voxel_size``: (z, y, x) um per voxel (anisotropic allowed).
    - ``D``: diffusion coefficient, um^2/s (MSD = 6 D t in 3-D); ``frame_interval``: s per stack.
      A step is Gaussian with std ``sqrt(2 D frame_interval) / voxel_size[axis]`` voxels per axis.
    - ``psf_sigma_um``: (z, y, x) std of the Gaussian PSF, um.
    - ``snr``: peak amplitude over the background noise std (module docstring);
      ``amplitude_spread``: relative std of the per-particle amplitude (log-normal, mean kept).
    - ``background``: photons per voxel; ``read_noise``: electrons rms per voxel (gain 1).
    - ``dtype``: ``"uint16"`` (rounded, clipped) or ``"float32"`` (the raw noisy values).
    - ``seed``: every random draw follows from it (same seed, same movie and truth).
    - ``truth_margin``: the truth also lists the particles up to this many voxels outside the
      volume (their light reaches it; scores can treat them as "don't care"); 0: only those inside.

    Returns ``(movie, truth)``: the movie (T, Z, Y, X) and the particles inside the volume, one
    row per particle and frame, columns :data:`TRUTH3D_COLUMNS`: ``frame`` (int64), ``z, y, x``
    (float64, voxels), ``track_id`` (int64, one per particle, kept when it leaves the volume and
    comes back), ``particle`` (the same id under trackpy's name), ``amplitude`` (peak photons per
    voxel), sorted by (frame, track_id).
    """
    n_frames = _count(n_frames, "n_frames")
    shape3 = _shape3(shape)
    n_spots = _number(n_spots, "n_spots")
    voxel = np.array(_triple(voxel_size, "voxel_size"))
    D = _number(D, "D", unit=" um^2/s")
    dt = _number(frame_interval, "frame_interval", strict=True, unit=" s")
    sigma = tuple(np.array(_triple(psf_sigma_um, "psf_sigma_um")) / voxel)
    require(all(0.3 <= s <= 50 for s in sigma), f"psf_sigma_um / voxel_size must be in [0.3, 50] voxels per axis, got {sigma!r}")
    snr = _number(snr, "snr")
    background = _number(background, "background", unit=" photons")
    read_noise = _number(read_noise, "read_noise", unit=" electrons")
    require(background + read_noise**2 > 0, "background and read_noise cannot both be 0 (the SNR is relative to the background noise)")
    spread = _number(amplitude_spread, "amplitude_spread")
    dtype = _check_dtype(dtype)
    seed = _count(seed, "seed", low=0)
    truth_margin = _number(truth_margin, "truth_margin", unit=" voxels")

    rng = seeded_generator(seed, _STREAM_SPOTS3D)
    step = math.sqrt(2.0 * D * dt) / voxel  # voxels per axis
    margin = np.maximum(4.0 * step, 2.0)
    lo = -0.5 - margin
    hi = np.array(shape3, np.float64) - 0.5 + margin
    n_box = n_spots * float(np.prod(hi - lo)) / float(np.prod(shape3))
    n = int(rng.poisson(n_box))
    pos = lo + rng.random((n, 3)) * (hi - lo)
    peak = snr * math.sqrt(background + read_noise**2)
    if spread > 0:
        s2 = math.log1p(spread**2)
        amp = peak * np.exp(rng.normal(-0.5 * s2, math.sqrt(s2), n))
    else:
        amp = np.full(n, peak)
    track = np.arange(n, dtype=np.int64)
    try:
        movie = np.empty((n_frames, *shape3), dtype=np.uint16 if dtype == "uint16" else np.float32)
    except MemoryError:
        raise ConfigError(f"a movie of {n_frames} x {shape3} voxels does not fit in memory") from None
    parts = []
    upper = np.array(shape3, np.float64) - 0.5
    for t in range(n_frames):
        if t:
            pos = _reflect(pos + rng.normal(size=(n, 3)) * step, lo, hi)
        inside = np.all((pos >= -0.5 - truth_margin) & (pos < upper + truth_margin), axis=1)
        parts.append(pd.DataFrame({"frame": np.full(int(inside.sum()), t, np.int64), "z": pos[inside, 0],
                                   "y": pos[inside, 1], "x": pos[inside, 2], "track_id": track[inside],
                                   "particle": track[inside], "amplitude": amp[inside]}))
        near = np.all((pos > -0.5 - 4 * np.array(sigma) - 1) & (pos < upper + 4 * np.array(sigma) + 1), axis=1)
        expected = render_spots_3d(pos[near], amp[near], shape3, sigma) + background
        movie[t] = add_camera_noise(expected, read_noise, seeded_generator(seed, _STREAM_RENDER3D, t), dtype)
    truth = pd.concat(parts, ignore_index=True)[list(TRUTH3D_COLUMNS)]
    return movie, truth


# ---------------------------------------------------------------------------------------------- cells


@dataclasses.dataclass(frozen=True)
class CellMovie3D:
    """A simulated 3-D cell movie with its ground truth.

    - ``labels``: uint16 (T, Z, Y, X) label masks; labels are track labels (1..), 0 = background.
    - ``image``: uint16 or float32 (T, Z, Y, X) fluorescence (per-cell brightness on a background,
      Poisson and read noise).
    - ``lineage``: DataFrame ``label, start, end, parent`` (int64), the Cell Tracking Challenge
      convention: the label is present on every frame ``start..end`` and on no other; ``parent`` is
      the mother's label of a daughter (the mother ends at ``start - 1``), else 0.
    - ``truth``: DataFrame :data:`CELL_TRUTH3D_COLUMNS`, one row per cell and frame: the continuous
      ellipsoid's centre ``z, y, x`` (voxels), ``volume`` (um^3) and full axis lengths (um,
      ``2 *`` the semi-axes, largest first).
    """

    labels: np.ndarray
    image: np.ndarray
    lineage: pd.DataFrame
    truth: pd.DataFrame


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random 3-D rotation matrices (from unit quaternions), float64 (n, 3, 3)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, a, b, c = q.T
    return np.stack([
        np.stack([1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)], axis=-1),
        np.stack([2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)], axis=-1),
        np.stack([2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)], axis=-1),
    ], axis=1)


@numba.njit(cache=True, nogil=True)
def paint_ellipsoids(centre: np.ndarray, metric: np.ndarray, extent: np.ndarray, label: np.ndarray,
                     voxel: np.ndarray, out: np.ndarray, depth: np.ndarray) -> None:
    """Paint solid ellipsoids into ``out`` (Z, Y, X) integer labels, 0 where none.

    centre: float64 (n, 3) voxels; metric: float64 (n, 3, 3), the matrix M of ``d^T M d <= 1``
    with ``d`` in um; extent: int64 (n, 3) half-size in voxels of each bounding box; label: int64
    (n,); voxel: float64 (3,) um per voxel. depth: float32 (Z, Y, X) scratch set to >= 1; a voxel
    inside several ellipsoids goes to the smallest ``d^T M d``.
    """
    nz, ny, nx = out.shape
    for o in range(centre.shape[0]):
        cz, cy, cx = centre[o, 0], centre[o, 1], centre[o, 2]
        m = metric[o]
        k0 = max(0, int(np.floor(cz)) - extent[o, 0])
        k1 = min(nz - 1, int(np.ceil(cz)) + extent[o, 0])
        i0 = max(0, int(np.floor(cy)) - extent[o, 1])
        i1 = min(ny - 1, int(np.ceil(cy)) + extent[o, 1])
        j0 = max(0, int(np.floor(cx)) - extent[o, 2])
        j1 = min(nx - 1, int(np.ceil(cx)) + extent[o, 2])
        for k in range(k0, k1 + 1):
            dz = (k - cz) * voxel[0]
            for i in range(i0, i1 + 1):
                dy = (i - cy) * voxel[1]
                # q(dx) = a dx^2 + b dx + c for this row
                c = m[0, 0] * dz * dz + 2.0 * m[0, 1] * dz * dy + m[1, 1] * dy * dy
                b = 2.0 * (m[0, 2] * dz + m[1, 2] * dy)
                a = m[2, 2]
                for j in range(j0, j1 + 1):
                    dx = (j - cx) * voxel[2]
                    q = (a * dx + b) * dx + c
                    if q <= 1.0 and q < depth[k, i, j]:
                        depth[k, i, j] = q
                        out[k, i, j] = label[o]


def _cell_state(rng: np.random.Generator, n: int, extent_um: np.ndarray, radius_range: tuple[float, float],
                elongation: float) -> dict[str, np.ndarray]:
    radius = rng.uniform(radius_range[0], radius_range[1], n)
    stretch = np.exp(rng.uniform(-1.0, 1.0, (n, 3)) * math.log1p(elongation))
    stretch /= np.cbrt(np.prod(stretch, axis=1, keepdims=True))  # volume of a sphere of `radius`
    return {"centre": rng.random((n, 3)) * extent_um, "axes": radius[:, None] * stretch,
            "rotation": _random_rotations(rng, n), "brightness": rng.uniform(0.7, 1.3, n)}


def _repel(centre: np.ndarray, size: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Push apart every pair of cells closer than the sum of their mean radii (um), by ``strength`` of the overlap."""
    diff = centre[:, None, :] - centre[None, :, :]
    dist = np.sqrt((diff**2).sum(-1)) + np.eye(len(centre))
    overlap = np.maximum(size[:, None] + size[None, :] - dist, 0.0)
    np.fill_diagonal(overlap, 0.0)
    return centre + strength * 0.5 * ((overlap / dist)[:, :, None] * diff).sum(axis=1)


def simulate_cells_3d(
    n_frames: int = 10,
    shape: Sequence[int] = (16, 64, 64),
    n_cells: int = 6,
    voxel_size: Sequence[float] = (1.0, 0.5, 0.5),
    radius_range: Sequence[float] = (3.0, 4.5),
    elongation: float = 0.3,
    step_um: float = 0.5,
    growth_rate: float = 0.03,
    division_rate: float = 0.05,
    min_age: int = 3,
    background: float = 100.0,
    brightness: float = 200.0,
    read_noise: float = 2.0,
    dtype: str = "uint16",
    seed: int = 0,
) -> CellMovie3D:
    """Simulate a movie of 3-D label masks of ellipsoidal cells that move, grow and divide.

    - ``n_frames``, ``shape`` (Z, Y, X) voxels, ``voxel_size`` (z, y, x) um per voxel.
    - ``n_cells``: cells at frame 0, centres uniform in the volume (they stay in it: centres
      reflect at the walls, so no cell leaves and none enters).
    - ``radius_range``: (min, max) um, the radius of the sphere of equal volume, uniform per cell;
      ``elongation``: each semi-axis is that radius times a factor in [1/(1+e), 1+e] (volume kept);
      orientation uniformly random.
    - ``step_um``: std of the random step of a centre per axis and frame, um; cells closer than the
      sum of their radii are pushed apart.
    - ``growth_rate``: fractional volume growth per frame.
    - ``division_rate``: per-frame probability that a cell at least ``min_age`` frames old divides:
      its track ends at frame t, two daughters (half its volume each, its shape and orientation)
      start at t + 1 on either side of its centre along its longest axis.
    - ``background``, ``brightness`` (photons per voxel, times a per-cell factor in [0.7, 1.3]),
      ``read_noise``: the intensity image, Poisson and Gaussian noise; ``dtype`` ``"uint16"`` or
      ``"float32"``.
    - ``seed``: every random draw follows from it.

    A cell that loses every voxel to its neighbours in a frame ends its track the frame before
    (so the lineage stays exact: no gaps). Returns a :class:`CellMovie3D`.
    """
    n_frames = _count(n_frames, "n_frames")
    shape3 = _shape3(shape)
    require(min(shape3) >= 2, f"shape must be at least 2 voxels along every axis for cells, got {shape3!r}")
    n_cells = _count(n_cells, "n_cells", low=0)
    voxel = np.array(_triple(voxel_size, "voxel_size"))
    r_lo, r_hi = _range(radius_range, "radius_range")
    elongation = _number(elongation, "elongation")
    step_um = _number(step_um, "step_um", unit=" um")
    growth_rate = _number(growth_rate, "growth_rate")
    division_rate = _number(division_rate, "division_rate")
    require(division_rate <= 1, f"division_rate must be in [0, 1] per frame, got {division_rate!r}")
    min_age = _count(min_age, "min_age", low=0)
    background = _number(background, "background", unit=" photons")
    brightness = _number(brightness, "brightness", unit=" photons")
    read_noise = _number(read_noise, "read_noise", unit=" electrons")
    dtype = _check_dtype(dtype)
    seed = _count(seed, "seed", low=0)

    rng = seeded_generator(seed, _STREAM_CELLS3D)
    extent_um = (np.array(shape3, np.float64) - 1.0) * voxel
    state = _cell_state(rng, n_cells, extent_um, (r_lo, r_hi), elongation)
    state["label"] = np.arange(1, n_cells + 1, dtype=np.int64)
    state["age"] = np.zeros(n_cells, np.int64)
    next_label = n_cells + 1
    start = {int(lab): 0 for lab in state["label"]}
    end: dict[int, int] = {}
    parent = {int(lab): 0 for lab in state["label"]}
    labels = np.zeros((n_frames, *shape3), np.uint16)
    expected = np.empty(shape3, np.float64)
    image = np.empty((n_frames, *shape3), np.uint16 if dtype == "uint16" else np.float32)
    rows = []
    for t in range(n_frames):
        if t:
            state = _step_cells(rng, state, extent_um, step_um, growth_rate)
            divide = (rng.random(len(state["label"])) < division_rate) & (state["age"] >= min_age)
            if divide.any():
                for lab in state["label"][divide]:
                    end[int(lab)] = t - 1
                daughters = _daughters({k: v[divide] for k, v in state.items()}, extent_um)
                m = int(divide.sum())
                daughters["label"] = np.arange(next_label, next_label + 2 * m, dtype=np.int64)
                for lab, mother in zip(daughters["label"], np.repeat(state["label"][divide], 2)):
                    start[int(lab)] = t
                    parent[int(lab)] = int(mother)
                next_label += 2 * m
                state = {k: np.concatenate([v[~divide], daughters[k]]) for k, v in state.items()}
        frame = labels[t]
        _paint_state(state, voxel, frame)
        present = np.bincount(frame.ravel(), minlength=next_label)[state["label"]] > 0
        if not present.all():  # covered by neighbours: the track ends before this frame
            for lab in state["label"][~present]:
                if start[int(lab)] == t:
                    del start[int(lab)]
                else:
                    end[int(lab)] = t - 1
            state = {k: v[present] for k, v in state.items()}
        rows.append(_truth_rows(t, state, voxel))
        gain = np.zeros(next_label, np.float64)
        gain[state["label"]] = brightness * state["brightness"]
        np.add(gain[frame], background, out=expected)
        image[t] = add_camera_noise(expected, read_noise, seeded_generator(seed, _STREAM_CELL_IMAGES3D, t), dtype)
    for lab in state["label"]:
        end[int(lab)] = n_frames - 1
    lineage = pd.DataFrame(
        [(lab, start[lab], end[lab], parent[lab] if parent[lab] in start else 0) for lab in sorted(start)],
        columns=["label", "start", "end", "parent"], dtype=np.int64).reset_index(drop=True)
    truth = pd.concat(rows, ignore_index=True)
    return CellMovie3D(labels=labels, image=image, lineage=lineage, truth=truth)


def _step_cells(rng: np.random.Generator, state: dict[str, np.ndarray], extent_um: np.ndarray, step_um: float,
                growth_rate: float) -> dict[str, np.ndarray]:
    state = dict(state)
    n = len(state["label"])
    state["axes"] = state["axes"] * (1.0 + growth_rate) ** (1.0 / 3.0)
    centre = state["centre"] + rng.normal(size=(n, 3)) * step_um
    if n > 1:
        centre = _repel(centre, np.cbrt(np.prod(state["axes"], axis=1)))
    state["centre"] = _reflect(centre, np.zeros(3), extent_um)
    state["age"] = state["age"] + 1
    return state


def _daughters(mothers: dict[str, np.ndarray], extent_um: np.ndarray) -> dict[str, np.ndarray]:
    """Two daughters per mother: half the volume, same shape and orientation, placed along the longest axis."""
    axes = mothers["axes"] * 2.0 ** (-1.0 / 3.0)
    longest = np.argmax(mothers["axes"], axis=1)
    direction = mothers["rotation"][np.arange(len(longest)), :, longest]  # column = axis direction
    offset = 0.8 * axes[np.arange(len(longest)), longest][:, None] * direction
    out = {k: np.repeat(v, 2, axis=0) for k, v in mothers.items()}
    out["axes"] = np.repeat(axes, 2, axis=0)
    sign = np.tile([1.0, -1.0], len(longest))[:, None]
    out["centre"] = _reflect(out["centre"] + sign * np.repeat(offset, 2, axis=0), np.zeros(3), extent_um)
    out["age"] = np.zeros(2 * len(longest), np.int64)
    return out


def _paint_state(state: dict[str, np.ndarray], voxel: np.ndarray, out: np.ndarray) -> None:
    rot, axes = state["rotation"], state["axes"]
    metric = np.einsum("nij,nj,nkj->nik", rot, 1.0 / axes**2, rot)
    half = np.sqrt(np.einsum("nij,nj,nij->ni", rot, axes**2, rot))  # um, per axis
    extent = (np.ceil(half / voxel) + 1).astype(np.int64)
    depth = np.full(out.shape, 2.0, np.float32)
    paint_ellipsoids(np.ascontiguousarray(state["centre"] / voxel), np.ascontiguousarray(metric), extent,
                     state["label"], voxel, out, depth)


def _truth_rows(t: int, state: dict[str, np.ndarray], voxel: np.ndarray) -> pd.DataFrame:
    centre = state["centre"] / voxel
    axes = -np.sort(-2.0 * state["axes"], axis=1)
    return pd.DataFrame({"frame": np.full(len(centre), t, np.int64), "label": state["label"].astype(np.int64),
                         "z": centre[:, 0], "y": centre[:, 1], "x": centre[:, 2],
                         "volume": 4.0 / 3.0 * math.pi * np.prod(state["axes"], axis=1),
                         "axis_major": axes[:, 0], "axis_mid": axes[:, 1], "axis_minor": axes[:, 2]})
