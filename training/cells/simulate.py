"""Simulated fluorescence cell movies with label masks and known lineage (numpy/scipy only, no torch).

Cells are star-convex blobs: the boundary radius at angle ``theta`` is
``R * (1 + sum_k a_k cos(k theta) + b_k sin(k theta))`` for the Fourier modes k = 2, 3, 4, whose
coefficients follow slow AR(1) processes (the cells deform smoothly; k = 2 sets the elongation).
Each cell moves by a persistent random walk (an AR(1) velocity with its own mean speed), with a
soft pairwise repulsion that keeps cells from overlapping much. Cells grow; a grown cell may
divide: the mother's track ends at frame t and two daughters, each about half of her area, start
at t + 1 on either side of her along a random axis (Cell Tracking Challenge convention). Cells
enter across the borders of the field of view, leave across them, and occasionally vanish.

Outputs (see :class:`CellMovie`): the true label masks (labels = track labels, CTC lineage),
the fluorescence images (per-cell brightness, texture, blur, background, Poisson and Gaussian
noise) and a segmentation with errors (missed, merged, split and false objects), as a segmenter
would give it, with its objects matched to the true tracks.

Conventions: ``y`` = row, ``x`` = column, in px; pixel ``(r, c)`` is centred at ``(r, c)``;
``frame`` is a 0-based integer. Where two cells overlap, the pixel belongs to the smaller one (the
larger gives way), so a small cell is never hidden by a large one. A cell whose label has no pixel
in a frame (it left the field of view, or is fully covered) ends its track there and is removed,
so a true track never has a gap.

Statistics of the target data (measured from ``../shared/data/ctc``, ``01`` sequences, ``01_GT``:
centroids of the TRA markers, equivalent diameters ``sqrt(4 area / pi)`` of the SEG masks), and of
this simulator with its defaults (8 seeds; equivalent diameters and eccentricities of the cells
not touching the border; D = the median equivalent diameter of each dataset):

====================================  ===================  ===================  ===================
quantity                              Fluo-N2DH-GOWT1/01   Fluo-N2DH-SIM+/01    simulate_cells()
====================================  ===================  ===================  ===================
frames, frame size (px)               92, 1024 x 1024      65, 690 x 628        30, 256 x 256
cells per frame (min / median / max)  20 / 23 / 25         30 / 43 / 47         mean 24
equivalent diameter D (p5/median/p95) 52 / 60 / 77 px      30 / 49 / 57 px      17 / 21.5 / 27 px
eccentricity (median / p90)           0.56 / 0.72          0.59 / 0.80          0.59 / 0.74
displacement per frame (median)       2.0 px = 0.033 D     3.5 px = 0.072 D     0.046 D
displacement per frame (p90 / p99)    0.10 D / 0.19 D      0.11 D / 0.17 D      0.11 D / 0.19 D
nearest-neighbour distance (p5 / med) 1.05 D / 1.76 D      0.98 D / 1.30 D      0.89 D / 1.37 D
area fraction covered by cells        ~0.06                ~0.19                0.125
divisions per cell and frame          0.0010 (2 in 92 fr.) 0.012 (31 in 65 fr.) 0.0073
tracks entering after frame 0         0                    6 (0.09 per frame)   0.13 per frame
background / cell signal (counts)     2 / 65, noise 4.5    93 / 155, noise 6.6  100 / 200, noise 10
====================================  ===================  ===================  ===================

The defaults thus sit between the two datasets once lengths are expressed in cell diameters
(the model trained on this normalises lengths by the typical diameter); each cell draws its own
size, speed (log-uniform), brightness and shape around them. Change ``radius_range`` and
``speed_range`` together to keep the relative motion, or widen them to randomise it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from edgetrack.runtime.config import StageConfig, is_int, is_real, require
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.simulate.spots import seeded_generator

__all__ = ["CellSimConfig", "CellMovie", "simulate_cells"]

# Independent random streams derived from the one seed (SeedSequence spawn keys), so that the
# segmentation-error rates do not change the true movie and the imaging settings do not change either.
_STREAM_CELLS = 0
_STREAM_IMAGES = 1
_STREAM_ERRORS = 2

_MODES = np.array([2.0, 3.0, 4.0])  # Fourier modes of the boundary radius
_S_MAX = 1.4  # area multiplier (of a cell's base area pi r0^2) that cells grow toward
_S_DIVIDE = 1.0  # area multiplier from which a cell may divide
_MIN_RADIUS = 0.3  # the boundary radius never goes below this fraction of R
_SPACING = 1.15  # the repulsion acts while two centres are closer than this times the sum of the radii
_MERGE_REACH = 1.3  # two objects may merge when their centroids are closer than this times R_i + R_j
_MERGE_NEIGHBOURS = 8  # nearest neighbours considered for a merge
_TEXTURE_SIGMA = 2.0  # correlation length of the intensity texture, px
_MAX_LABEL = 65535
_POISSON_EXACT_BELOW = 30.0  # expected counts below which shot noise is drawn exactly (Gaussian above)


def _pair(config: StageConfig, name: str) -> tuple:
    value = getattr(config, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise ConfigError(f"CellSimConfig.{name} must be a pair of numbers, got {value!r}")
    value = tuple(value)
    object.__setattr__(config, name, value)
    return value


@dataclasses.dataclass(frozen=True)
class CellSimConfig(StageConfig):
    """Parameters of the cell-movie simulator (units: px, frames, counts).

    Geometry and motion:

    - ``shape``: (rows H, cols W) of the field of view, px.
    - ``n_frames``: number of frames T.
    - ``n_cells``: number of cells in the first frame (centres uniform in the field of view, placed
      apart where there is room); sets the density, from sparse to crowded.
    - ``radius_range``: (min, max) base radius r0 of a cell, px, uniform per cell. A cell's area is
      ``s * pi * r0^2`` where the growth factor ``s`` starts in [0.7, 1.3], relaxes toward 1.4 at
      ``growth_rate`` per frame and halves at a division.
    - ``speed_range``: (min, max) mean speed of a cell, px/frame, log-uniform per cell.
    - ``persistence``: AR(1) coefficient of the velocity from one frame to the next, in [0, 1)
      (0: uncorrelated steps; near 1: long straight runs).
    - ``repulsion``: fraction of the overlap of two cells' equivalent discs removed per frame
      (two passes), in [0, 1]; 0 lets cells pass through each other.
    - ``deformation``: standard deviation of the k = 2 Fourier coefficient of the boundary radius
      (relative to R; k = 3, 4 get 1/2 and 1/3 of it), in [0, 0.3].
    - ``shape_persistence``: AR(1) coefficient of the Fourier coefficients per frame, in [0, 1].
    - ``growth_rate``: per-frame relaxation rate of the growth factor toward 1.4, in [0, 1].
    - ``division_rate``: per-frame probability that a grown cell (growth factor >= 1, centre at
      least one radius inside the field of view) divides, in [0, 1]. No cell divides while there
      are more cells than discs of the smallest base radius fit in the field of view.
    - ``enter_rate``: mean number of cells entering across the borders per frame (Poisson); an
      entering cell starts partly visible at a random point of the border, heading inward.
    - ``death_rate``: per-frame probability that a visible cell vanishes (its track ends), in [0, 1].

    Imaging (counts = photons, gain 1):

    - ``background``: mean background per pixel; ``brightness``: mean cell signal above the
      background per pixel; ``brightness_spread``: relative standard deviation of the per-cell
      brightness (log-normal); ``texture``: relative standard deviation of a smooth intensity
      texture inside the cells, in [0, 1]; ``blur``: Gaussian blur of the image, px (0: none);
      ``read_noise``: Gaussian read noise, counts rms. Poisson shot noise is always on (drawn in
      its Gaussian form where the expected count is 30 or more).

    Segmentation errors (``masks`` is made from ``true_masks`` with these, each 0 to switch off):

    - ``miss_rate``: probability that a true object is missing from the segmentation.
    - ``merge_rate``: probability that an object with a neighbour within reach (centroids closer
      than 1.3 times the sum of their equivalent radii) is merged with its nearest one.
    - ``split_rate``: probability that an object is split in two along a random line.
    - ``false_rate``: mean number of small false objects per true object (Poisson per frame).
    """

    shape: tuple[int, int] = (256, 256)
    n_frames: int = 30
    n_cells: int = 20
    radius_range: tuple[float, float] = (8.0, 12.0)
    speed_range: tuple[float, float] = (0.5, 2.5)
    persistence: float = 0.7
    repulsion: float = 0.8
    deformation: float = 0.10
    shape_persistence: float = 0.9
    growth_rate: float = 0.08
    division_rate: float = 0.01
    enter_rate: float = 0.15
    death_rate: float = 0.002
    background: float = 100.0
    brightness: float = 100.0
    brightness_spread: float = 0.25
    texture: float = 0.2
    blur: float = 1.0
    read_noise: float = 4.0
    miss_rate: float = 0.02
    merge_rate: float = 0.02
    split_rate: float = 0.02
    false_rate: float = 0.02

    def validate(self) -> None:
        shape = _pair(self, "shape")
        require(all(is_int(v) and 16 <= v <= 16384 for v in shape),
                f"CellSimConfig.shape must be two integers in [16, 16384] px, got {shape!r}")
        object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))
        require(is_int(self.n_frames) and 1 <= self.n_frames <= 100000,
                f"CellSimConfig.n_frames must be an integer in [1, 100000], got {self.n_frames!r}")
        require(is_int(self.n_cells) and 0 <= self.n_cells <= 10000,
                f"CellSimConfig.n_cells must be an integer in [0, 10000], got {self.n_cells!r}")
        r_lo, r_hi = _pair(self, "radius_range")
        require(is_real(r_lo) and is_real(r_hi) and 2.0 <= r_lo <= r_hi <= min(self.shape) / 4.0,
                f"CellSimConfig.radius_range must be (min, max) px with 2 <= min <= max <= "
                f"min(shape) / 4 = {min(self.shape) / 4.0:g}, got {self.radius_range!r}")
        s_lo, s_hi = _pair(self, "speed_range")
        require(is_real(s_lo) and is_real(s_hi) and 0.0 <= s_lo <= s_hi < math.inf,
                f"CellSimConfig.speed_range must be (min, max) px/frame with 0 <= min <= max, finite, "
                f"got {self.speed_range!r}")
        require(s_lo > 0.0 or s_hi == 0.0,
                f"CellSimConfig.speed_range is log-uniform: min must be > 0 unless max is 0, got {self.speed_range!r}")
        self._unit("persistence", upper_open=True)
        for name in ("repulsion", "shape_persistence", "growth_rate", "division_rate", "death_rate", "texture",
                     "miss_rate", "merge_rate", "split_rate"):
            self._unit(name)
        require(is_real(self.deformation) and 0.0 <= self.deformation <= 0.3,
                f"CellSimConfig.deformation must be in [0, 0.3], got {self.deformation!r}")
        for name, upper in (("enter_rate", 100.0), ("false_rate", 10.0), ("blur", 20.0), ("read_noise", 10000.0),
                            ("background", 60000.0), ("brightness_spread", 2.0)):
            value = getattr(self, name)
            require(is_real(value) and 0.0 <= value <= upper,
                    f"CellSimConfig.{name} must be a number in [0, {upper:g}], got {value!r}")
        require(is_real(self.brightness) and 0.0 < self.brightness <= 60000.0,
                f"CellSimConfig.brightness must be in (0, 60000] counts, got {self.brightness!r}")

    def _unit(self, name: str, upper_open: bool = False) -> None:
        value = getattr(self, name)
        ok = is_real(value) and 0.0 <= value and (value < 1.0 if upper_open else value <= 1.0)
        require(ok, f"CellSimConfig.{name} must be in [0, 1{')' if upper_open else ']'}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class CellMovie:
    """A simulated cell movie with its ground truth.

    - ``masks``: uint16 (T, H, W), the segmentation WITH errors (labels 1..n per frame in a random
      order, as a segmenter gives them; 0 = background).
    - ``true_masks``: uint16 (T, H, W), the error-free masks; labels are the true track labels.
    - ``images``: uint16 (T, H, W), the fluorescence movie.
    - ``lineage``: DataFrame ``label, start, end, parent`` (int64), one row per true track in CTC
      form: the label is present in ``true_masks`` on every frame ``start..end`` and on no other;
      ``parent`` is the mother's label for a daughter (the mother ends at ``start - 1`` and has
      exactly two daughters), else 0.
    - ``objects``: DataFrame ``frame, label, y, x, track_id, parent_track_id``, one row per object of
      ``masks`` sorted by (frame, label): ``y, x`` its centroid, px; ``track_id`` the true track
      label it overlaps most (0 for a false object); ``parent_track_id`` the lineage parent on the
      first object of a daughter track (the earliest frame in which that track has an object in
      ``masks``), else 0.
    - ``errors``: DataFrame ``frame, kind, label, other``: one row per segmentation error applied;
      ``kind`` is ``"missed"``, ``"merged"`` (``label`` absorbed ``other``), ``"split"`` or
      ``"false"`` (``label`` 0); labels are true track labels.
    - ``config``, ``seed``: what made it.
    """

    masks: np.ndarray
    true_masks: np.ndarray
    images: np.ndarray
    lineage: pd.DataFrame
    objects: pd.DataFrame
    errors: pd.DataFrame
    config: CellSimConfig
    seed: int


# --------------------------------------------------------------------------------------------
# cell state: a dict of arrays, one row per living cell


def _new_cells(rng: np.random.Generator, config: CellSimConfig, pos: np.ndarray, r0: np.ndarray,
               s: np.ndarray) -> dict[str, np.ndarray]:
    """Cells at ``pos`` (n, 2) px with base radius ``r0`` and growth factor ``s``: fresh speed, shape, brightness."""
    n = pos.shape[0]
    s_lo, s_hi = config.speed_range
    speed = np.exp(rng.uniform(math.log(s_lo), math.log(s_hi), n)) if s_hi > 0 else np.zeros(n)
    sigma = speed / math.sqrt(math.pi / 2.0)  # E|v| = sigma sqrt(pi/2) for an isotropic 2-D Gaussian
    spread = config.brightness_spread
    bright = config.brightness * np.exp(spread * rng.standard_normal(n) - 0.5 * spread**2)
    return {
        "pos": np.asarray(pos, dtype=np.float64).reshape(n, 2),
        "vel": rng.standard_normal((n, 2)) * sigma[:, None],
        "speed": speed,
        "r0": np.asarray(r0, dtype=np.float64),
        "s": np.asarray(s, dtype=np.float64),
        "modes": rng.standard_normal((n, _MODES.size, 2)) * (config.deformation / (_MODES - 1.0))[None, :, None],
        "bright": bright,
        "label": np.zeros(n, dtype=np.int64),
        "mother": np.zeros(n, dtype=np.int64),
    }


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _select(state: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in state.items()}


def _initial_cells(rng: np.random.Generator, config: CellSimConfig) -> dict[str, np.ndarray]:
    """``n_cells`` cells with centres in the field of view, each placed where it overlaps least (few tries)."""
    n = config.n_cells
    height, width = config.shape
    r0 = rng.uniform(*config.radius_range, n)
    s = rng.uniform(0.7, 1.3, n)
    radius = r0 * np.sqrt(s)
    tries = 16
    candidates = rng.random((n, tries, 2)) * np.array([height - 1.0, width - 1.0])
    pos = np.zeros((n, 2))
    for i in range(n):
        if i == 0:
            pos[0] = candidates[0, 0]
            continue
        d = np.linalg.norm(candidates[i][:, None, :] - pos[None, :i, :], axis=2)  # (tries, i)
        clearance = (d - radius[None, :i] - radius[i]).min(axis=1)
        ok = np.flatnonzero(clearance >= 0.0)
        pos[i] = candidates[i, ok[0] if ok.size else int(np.argmax(clearance))]
    return _new_cells(rng, config, pos, r0, s)


def _entering_cells(rng: np.random.Generator, config: CellSimConfig, n: int) -> dict[str, np.ndarray]:
    """``n`` cells just outside a random border point (centre 0.1-0.6 radius outside), heading inward."""
    height, width = config.shape
    r0 = rng.uniform(*config.radius_range, n)
    s = rng.uniform(0.7, 1.3, n)
    radius = r0 * np.sqrt(s)
    side = rng.integers(0, 4, n)  # 0 top, 1 bottom, 2 left, 3 right
    along = rng.random(n)
    out = rng.uniform(0.1, 0.6, n) * radius
    y = np.where(side == 0, -0.5 - out, np.where(side == 1, height - 0.5 + out, along * (height - 1.0)))
    x = np.where(side == 2, -0.5 - out, np.where(side == 3, width - 0.5 + out, along * (width - 1.0)))
    cells = _new_cells(rng, config, np.column_stack([y, x]), r0, s)
    inward = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])[side]
    cells["vel"] = np.abs(cells["vel"]) * inward + cells["vel"] * (1.0 - np.abs(inward))
    return cells


def _boundary(state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean boundary radius R (n,) px, such that the star-shaped area is ``s pi r0^2``, and the mode amplitude sum."""
    modes = state["modes"]
    power = 0.5 * (modes**2).sum(axis=(1, 2))  # area of R (1 + f) is pi R^2 (1 + sum (a^2 + b^2) / 2)
    radius = state["r0"] * np.sqrt(state["s"] / (1.0 + power))
    amplitude = np.sqrt((modes**2).sum(axis=2)).sum(axis=1)
    return radius, amplitude


def _paint(state: dict[str, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the cells: int32 (H, W) with value i + 1 for cell i (0 background) and pixel counts (n,).

    Cells are drawn from the largest to the smallest area (ties: lower index first), so the
    smaller of two overlapping cells keeps the shared pixels.
    """
    height, width = shape
    codes = np.zeros(shape, dtype=np.int32)
    n = state["pos"].shape[0]
    if n == 0:
        return codes, np.zeros(0, dtype=np.int64)
    radius, amplitude = _boundary(state)
    order = np.argsort(-(state["r0"] ** 2 * state["s"]), kind="stable")
    reach = radius * (1.0 + amplitude) + 1.0
    for i in order:
        cy, cx = state["pos"][i]
        y0, y1 = max(int(math.floor(cy - reach[i])), 0), min(int(math.ceil(cy + reach[i])) + 1, height)
        x0, x1 = max(int(math.floor(cx - reach[i])), 0), min(int(math.ceil(cx + reach[i])) + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float64)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float64)[None, :] - cx
        theta = np.arctan2(dy, dx)
        wobble = np.zeros_like(theta)
        for k, (a, b) in zip(_MODES, state["modes"][i]):
            wobble += a * np.cos(k * theta) + b * np.sin(k * theta)
        inside = np.hypot(dy, dx) <= radius[i] * np.maximum(1.0 + wobble, _MIN_RADIUS)
        codes[y0:y1, x0:x1][inside] = i + 1
    counts = np.bincount(codes.ravel(), minlength=n + 1)[1:].astype(np.int64)
    return codes, counts


def _divide(rng: np.random.Generator, config: CellSimConfig, state: dict[str, np.ndarray],
            dividing: np.ndarray) -> dict[str, np.ndarray]:
    """Two daughters per dividing cell, touching on either side of the mother's centre along a random axis."""
    k = int(dividing.sum())
    mothers = _select(state, dividing)
    area = mothers["r0"] ** 2 * mothers["s"]  # / pi
    fraction = 0.5 + rng.uniform(-0.05, 0.05, k)
    fraction = np.column_stack([fraction, 1.0 - fraction]).ravel()  # (2k,)
    r0 = np.repeat(mothers["r0"], 2) * np.exp(0.05 * rng.standard_normal(2 * k))
    s = np.repeat(area, 2) * fraction / r0**2
    angle = rng.uniform(0.0, 2.0 * math.pi, k)
    axis = np.repeat(np.column_stack([np.sin(angle), np.cos(angle)]), 2, axis=0) * np.tile([1.0, -1.0], k)[:, None]
    pos = np.repeat(mothers["pos"], 2, axis=0) + axis * (r0 * np.sqrt(s))[:, None]
    daughters = _new_cells(rng, config, pos, r0, s)
    daughters["modes"] *= 0.5  # daughters start rounder
    daughters["vel"] = 0.5 * np.repeat(mothers["vel"], 2, axis=0) + 0.5 * daughters["vel"]
    daughters["speed"] = np.repeat(mothers["speed"], 2) * np.exp(0.2 * rng.standard_normal(2 * k))
    daughters["bright"] = np.repeat(mothers["bright"], 2) * np.exp(0.05 * rng.standard_normal(2 * k))
    daughters["mother"] = np.repeat(mothers["label"], 2)
    return daughters


def _repulsion(pos: np.ndarray, radius: np.ndarray, strength: float) -> np.ndarray:
    """Displacements (n, 2) px pushing apart every pair closer than ``_SPACING`` times the sum of their radii.

    Each cell of a pair moves by ``strength`` times the overlap along the line joining the
    centres (cell lists through a k-d tree: no n x n arrays).
    """
    n = pos.shape[0]
    pairs = cKDTree(pos).query_pairs(2.0 * _SPACING * float(radius.max()), output_type="ndarray")
    if pairs.size == 0:
        return np.zeros_like(pos)
    i, j = pairs[:, 0], pairs[:, 1]
    diff = pos[i] - pos[j]
    dist = np.hypot(diff[:, 0], diff[:, 1])
    overlap = np.maximum(_SPACING * (radius[i] + radius[j]) - dist, 0.0)
    unit = diff / np.where(dist > 1e-9, dist, 1.0)[:, None]
    unit[dist <= 1e-9] = (1.0, 0.0)
    push = strength * overlap[:, None] * unit
    return np.column_stack([np.bincount(i, push[:, k], n) - np.bincount(j, push[:, k], n) for k in range(2)])


def _move(rng: np.random.Generator, config: CellSimConfig, state: dict[str, np.ndarray]) -> None:
    """One frame of motion, repulsion, deformation and growth, in place."""
    n = state["pos"].shape[0]
    rho = config.persistence
    sigma = state["speed"] / math.sqrt(math.pi / 2.0)
    state["vel"] = rho * state["vel"] + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, 2)) * sigma[:, None]
    pos = state["pos"] + state["vel"]
    if config.repulsion > 0 and n > 1:
        radius = state["r0"] * np.sqrt(state["s"])
        for _ in range(2):
            pos = pos + _repulsion(pos, radius, 0.5 * config.repulsion)
    state["pos"] = pos
    c = config.shape_persistence
    sd = (config.deformation / (_MODES - 1.0))[None, :, None]
    state["modes"] = c * state["modes"] + math.sqrt(max(1.0 - c * c, 0.0)) * sd * rng.standard_normal(state["modes"].shape)
    state["s"] = state["s"] + config.growth_rate * (_S_MAX - state["s"])


def _simulate_truth(config: CellSimConfig, seed: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Run the cells: true masks uint16 (T, H, W), lineage, and brightness per label (float64, index = label)."""
    rng = seeded_generator(seed, _STREAM_CELLS)
    height, width = config.shape
    n_frames = config.n_frames
    true_masks = np.zeros((n_frames, height, width), dtype=np.uint16)
    state = _initial_cells(rng, config)
    crowd_limit = height * width / (math.pi * config.radius_range[0] ** 2)
    starts: list[int] = []
    ends: list[int] = []
    parents: list[int] = []
    brightness: list[float] = [0.0]
    for t in range(n_frames):
        codes, counts = _paint(state, config.shape)
        visible = counts > 0
        new = np.flatnonzero(visible & (state["label"] == 0))
        if len(starts) + new.size > _MAX_LABEL:
            raise ConfigError(f"the simulation makes more than {_MAX_LABEL} tracks, too many for uint16 labels; "
                              f"use fewer cells or frames")
        state["label"][new] = np.arange(len(starts) + 1, len(starts) + 1 + new.size)
        starts.extend([t] * new.size)
        ends.extend([t] * new.size)
        parents.extend(state["mother"][new].tolist())
        brightness.extend(state["bright"][new].tolist())
        for label in state["label"][visible]:
            ends[label - 1] = t
        lut = np.zeros(state["label"].size + 1, dtype=np.uint16)
        lut[1:] = np.where(visible, state["label"], 0)
        true_masks[t] = lut[codes]
        state = _select(state, visible)  # a cell without pixels has left (or never entered): gone for good
        if t == n_frames - 1:
            break
        n = state["pos"].shape[0]
        alive = rng.random(n) >= config.death_rate
        radius, _ = _boundary(state)
        y, x = state["pos"][:, 0], state["pos"][:, 1]
        inner = (y >= radius) & (y <= height - 1 - radius) & (x >= radius) & (x <= width - 1 - radius)
        dividing = alive & inner & (state["s"] >= _S_DIVIDE) & (rng.random(n) < config.division_rate)
        if n >= crowd_limit:  # contact inhibition: no divisions once the view is packed
            dividing[:] = False
        daughters = _divide(rng, config, state, dividing) if dividing.any() else None
        state = _select(state, alive & ~dividing)
        if daughters is not None:
            state = _concat(state, daughters)
        n_enter = int(rng.poisson(config.enter_rate)) if config.enter_rate > 0 else 0
        if n_enter:
            state = _concat(state, _entering_cells(rng, config, n_enter))
        _move(rng, config, state)
    lineage = pd.DataFrame({
        "label": np.arange(1, len(starts) + 1, dtype=np.int64),
        "start": np.asarray(starts, dtype=np.int64),
        "end": np.asarray(ends, dtype=np.int64),
        "parent": np.asarray(parents, dtype=np.int64),
    })
    return true_masks, _two_daughters(lineage), np.asarray(brightness)


def _two_daughters(lineage: pd.DataFrame) -> pd.DataFrame:
    """Keep a division only where both daughters appear the frame after the mother's end; else parent 0."""
    parent = lineage["parent"].to_numpy().copy()
    if not (parent > 0).any():
        return lineage
    end_of = np.zeros(len(lineage) + 1, dtype=np.int64)
    end_of[lineage["label"].to_numpy()] = lineage["end"].to_numpy()
    ok = (parent > 0) & (lineage["start"].to_numpy() == end_of[parent] + 1)
    children = np.bincount(parent[ok], minlength=len(lineage) + 1)
    parent[~ok | (children[parent] != 2)] = 0
    return lineage.assign(parent=parent)


# --------------------------------------------------------------------------------------------
# images


def _render_images(true_masks: np.ndarray, brightness: np.ndarray, config: CellSimConfig, seed: int) -> np.ndarray:
    """Fluorescence movie uint16 (T, H, W) from the true masks (see :class:`CellSimConfig`, imaging)."""
    rng = seeded_generator(seed, _STREAM_IMAGES)
    signal = brightness.astype(np.float32)[true_masks]
    if config.texture > 0:
        noise = rng.standard_normal(true_masks.shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma=(0.0, _TEXTURE_SIGMA, _TEXTURE_SIGMA))
        noise *= np.float32(config.texture * math.sqrt(4.0 * math.pi) * _TEXTURE_SIGMA)  # unit std for white noise
        signal *= np.maximum(np.float32(1.0) + noise, np.float32(0.0))
    expected = signal + np.float32(config.background)
    if config.blur > 0:
        expected = ndimage.gaussian_filter(expected, sigma=(0.0, config.blur, config.blur))
    # Shot noise (Poisson) plus read noise (Gaussian) in one draw where the expected count is high
    # enough for the Gaussian form of the Poisson law; exact Poisson draws below that.
    variance = expected + np.float32(config.read_noise**2)
    image = expected + np.sqrt(variance) * rng.standard_normal(expected.shape, dtype=np.float32)
    low = expected < _POISSON_EXACT_BELOW
    if low.any():
        shot = rng.poisson(expected[low]).astype(np.float32)
        image[low] = shot + rng.standard_normal(shot.shape, dtype=np.float32) * np.float32(config.read_noise)
    np.rint(image, out=image)
    np.clip(image, 0, 65535, out=image)
    return image.astype(np.uint16)


# --------------------------------------------------------------------------------------------
# segmentation errors


def _object_stats(frame: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label 0..n_labels-1 of an integer (H, W) image: area (px^2), centroid y, x (px; NaN if empty)."""
    flat = frame.ravel()
    rows, cols = np.indices(frame.shape, dtype=np.float64)
    area = np.bincount(flat, minlength=n_labels).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(flat, weights=rows.ravel(), minlength=n_labels) / area
        cx = np.bincount(flat, weights=cols.ravel(), minlength=n_labels) / area
    return area, cy, cx


def _bridge(seg: np.ndarray, p: np.ndarray, q: np.ndarray, width: float, value: int) -> None:
    """Paint background pixels of ``seg`` within ``width`` px of the segment p-q (centroids, px) with ``value``."""
    height, w = seg.shape
    y0 = max(int(math.floor(min(p[0], q[0]) - width)), 0)
    y1 = min(int(math.ceil(max(p[0], q[0]) + width)) + 1, height)
    x0 = max(int(math.floor(min(p[1], q[1]) - width)), 0)
    x1 = min(int(math.ceil(max(p[1], q[1]) + width)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    xx = np.arange(x0, x1, dtype=np.float64)[None, :]
    d = q - p
    length2 = float(d @ d)
    u = ((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / length2 if length2 > 0 else np.zeros((y1 - y0, x1 - x0))
    u = np.clip(u, 0.0, 1.0)
    near = np.hypot(yy - (p[0] + u * d[0]), xx - (p[1] + u * d[1])) <= width
    view = seg[y0:y1, x0:x1]
    view[near & (view == 0)] = value


def _segment_frame(rng: np.random.Generator, config: CellSimConfig, true: np.ndarray, frame: int,
                   errors: list[tuple[int, str, int, int]]) -> np.ndarray:
    """One frame of ``masks`` from one frame of ``true_masks`` (uint16 (H, W)), recording the errors made."""
    height, width = true.shape
    seg = true.astype(np.int32)
    n_labels = int(seg.max()) + 1
    area, cy, cx = _object_stats(seg, n_labels)
    present = np.flatnonzero(area[1:] > 0) + 1
    n_true = present.size
    lut = np.arange(n_labels, dtype=np.int32)
    # missed objects
    missed = present[rng.random(n_true) < config.miss_rate]
    lut[missed] = 0
    errors.extend((frame, "missed", int(label), 0) for label in missed)
    kept = present[lut[present] > 0]
    radius = np.sqrt(area / math.pi)
    # merges: an object and its nearest kept neighbour within reach
    merged = np.zeros(n_labels, dtype=bool)
    bridges = []
    if config.merge_rate > 0 and kept.size > 1:
        pts = np.column_stack([cy[kept], cx[kept]])
        tree = cKDTree(pts)
        n_near = min(_MERGE_NEIGHBOURS + 1, kept.size)
        draws = rng.random(kept.size) < config.merge_rate
        for i in rng.permutation(kept.size):
            a = kept[i]
            if merged[a] or not draws[i]:
                continue
            dist, near = tree.query(pts[i], k=n_near)
            ok = (near != i) & ~merged[kept[near]] & (dist < _MERGE_REACH * (radius[a] + radius[kept[near]]))
            if not ok.any():
                continue
            j = int(near[np.argmax(ok)])  # the nearest one that is within reach and not merged yet
            b = kept[j]
            merged[a] = merged[b] = True
            lut[b] = a
            bridges.append((a, b))
            errors.append((frame, "merged", int(a), int(b)))
    seg = lut[seg]
    for a, b in bridges:
        width_px = 0.5 * min(radius[a], radius[b])
        _bridge(seg, np.array([cy[a], cx[a]]), np.array([cy[b], cx[b]]), width_px, int(a))
    # splits along a random line near the centroid
    next_label = n_labels
    if config.split_rate > 0:
        for label in kept[~merged[kept] & (rng.random(kept.size) < config.split_rate)]:
            if area[label] < 16:
                continue
            rows, cols = np.nonzero(seg == label)
            angle = rng.uniform(0.0, math.pi)
            offset = rng.uniform(-0.25, 0.25) * radius[label]
            side = (rows - cy[label]) * math.sin(angle) + (cols - cx[label]) * math.cos(angle) > offset
            if side.all() or not side.any():
                continue
            seg[rows[side], cols[side]] = next_label
            next_label += 1
            errors.append((frame, "split", int(label), 0))
    # small false objects on the background
    n_false = int(rng.poisson(config.false_rate * n_true)) if config.false_rate > 0 and n_true else 0
    if n_false:
        typical = float(np.median(radius[present]))
        for _ in range(n_false):
            for _attempt in range(10):
                r = max(rng.uniform(0.25, 0.5) * typical, 1.5)
                c = rng.random(2) * np.array([height - 1.0, width - 1.0])
                y0, y1 = max(int(c[0] - r), 0), min(int(c[0] + r) + 2, height)
                x0, x1 = max(int(c[1] - r), 0), min(int(c[1] + r) + 2, width)
                yy = np.arange(y0, y1)[:, None] - c[0]
                xx = np.arange(x0, x1)[None, :] - c[1]
                disc = yy**2 + xx**2 <= r * r
                free = disc & (seg[y0:y1, x0:x1] == 0) & (true[y0:y1, x0:x1] == 0)
                if free.sum() >= max(4, 0.8 * disc.sum()):
                    seg[y0:y1, x0:x1][free] = next_label
                    next_label += 1
                    errors.append((frame, "false", 0, 0))
                    break
    # relabel 1..n in a random order
    labels = np.unique(seg)
    labels = labels[labels > 0]
    if labels.size > _MAX_LABEL:
        raise ConfigError(f"frame {frame} has {labels.size} segmented objects, more than uint16 labels allow")
    relabel = np.zeros(next_label, dtype=np.uint16)
    relabel[labels] = rng.permutation(labels.size) + 1
    return relabel[seg]


def _objects(masks: np.ndarray, true_masks: np.ndarray, lineage: pd.DataFrame) -> pd.DataFrame:
    """The ``objects`` table of :class:`CellMovie` (majority-overlap true track per segmented object)."""
    n_frames = masks.shape[0]
    seg_max = int(masks.max()) + 1
    true_max = int(true_masks.max()) + 1
    frame_idx, rows, cols = np.nonzero(masks)
    seg = masks[frame_idx, rows, cols].astype(np.int64)
    true = true_masks[frame_idx, rows, cols].astype(np.int64)
    key = frame_idx.astype(np.int64) * seg_max + seg  # one key per (frame, object)
    keys, inverse, area = np.unique(key, return_inverse=True, return_counts=True)
    cy = np.bincount(inverse, weights=rows.astype(np.float64)) / area
    cx = np.bincount(inverse, weights=cols.astype(np.float64)) / area
    track = np.zeros(keys.size, dtype=np.int64)
    on_cell = true > 0
    if on_cell.any():
        pair, votes = np.unique(inverse[on_cell].astype(np.int64) * true_max + true[on_cell], return_counts=True)
        obj, lab = pair // true_max, pair % true_max
        order = np.lexsort((-lab, votes, obj))  # per object: most votes last (ties: smallest label last)
        last = np.r_[obj[order][1:] != obj[order][:-1], True]
        track[obj[order][last]] = lab[order][last]
    frame = keys // seg_max
    parent_track = np.zeros(keys.size, dtype=np.int64)
    parent_of = np.zeros(true_max, dtype=np.int64)
    daughters = lineage[lineage["parent"] > 0]
    parent_of[daughters["label"].to_numpy()] = daughters["parent"].to_numpy()
    has_parent = parent_of[track] > 0
    if has_parent.any():
        first = np.full(true_max, n_frames, dtype=np.int64)
        np.minimum.at(first, track[has_parent], frame[has_parent])
        head = has_parent & (frame == first[track])
        parent_track[head] = parent_of[track[head]]
    return pd.DataFrame({
        "frame": frame.astype(np.int64),
        "label": (keys % seg_max).astype(np.int64),
        "y": cy,
        "x": cx,
        "track_id": track,
        "parent_track_id": parent_track,
    })


def _segment(true_masks: np.ndarray, config: CellSimConfig, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    rng = seeded_generator(seed, _STREAM_ERRORS)
    errors: list[tuple[int, str, int, int]] = []
    masks = np.stack([_segment_frame(rng, config, true_masks[t], t, errors) for t in range(true_masks.shape[0])])
    table = pd.DataFrame(errors, columns=["frame", "kind", "label", "other"])
    table = table.astype({"frame": np.int64, "label": np.int64, "other": np.int64})
    return masks.astype(np.uint16, copy=False), table


def simulate_cells(config: CellSimConfig | None = None, seed: int = 0, **overrides: Any) -> CellMovie:
    """Simulate a cell movie with label masks, lineage and segmentation errors.

    ``overrides`` are :class:`CellSimConfig` fields (unknown names raise ConfigError), applied on
    top of ``config`` (or of the defaults). ``seed`` (int >= 0) makes the result deterministic;
    the true movie, the images and the segmentation errors use independent random streams, so
    changing an error rate changes only ``masks``, ``objects`` and ``errors``. Returns a
    :class:`CellMovie`.
    """
    if config is None:
        config = CellSimConfig.from_dict(overrides)
    elif not isinstance(config, CellSimConfig):
        raise ConfigError(f"config must be a CellSimConfig, got {type(config).__name__}")
    elif overrides:
        config = config.replace(**overrides)
    if not (is_int(seed) and seed >= 0):
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    height, width = config.shape
    gib = config.n_frames * height * width * 2 * 3 / 2**30
    if gib > 16:
        raise ConfigError(f"{config.n_frames} frames of {height} x {width} px need {gib:.1f} GiB for masks, "
                          f"true masks and images; simulate fewer or smaller frames")
    true_masks, lineage, brightness = _simulate_truth(config, seed)
    images = _render_images(true_masks, brightness, config, seed)
    masks, errors = _segment(true_masks, config, seed)
    objects = _objects(masks, true_masks, lineage)
    return CellMovie(masks=masks, true_masks=true_masks, images=images, lineage=lineage, objects=objects,
                     errors=errors, config=config, seed=seed)
