"""Spot detection: sub-pixel positions and features of diffraction-limited spots in one frame.

Pipeline per frame (Numba kernels in :mod:`~edgetrack.runtime.detect.filters`, :mod:`~edgetrack.runtime.detect.fitting`, :mod:`~edgetrack.runtime.detect.deblend`):

1. band-pass: Gaussian smoothing at ``psf_sigma`` (the matched filter of a Gaussian spot) minus
   the mean of a ``(2b+1)^2`` box (local background), edges replicated;
2. threshold: ``snr_threshold`` times a robust noise std of the band-passed image (1.4826 times
   the median absolute deviation of a pixel subsample) above its median, raised near the frame
   edges where the filters average fewer pixels; or an absolute ``threshold``;
3. local maxima over a disc of radius ``min_separation`` (ties go to the first pixel in raster
   order, so a plateau gives one maximum);
4. fit, brightest spot first: the least-squares centre, amplitude and local background of a
   Gaussian of width ``psf_sigma`` in a small window of the raw image, with the spots already
   fitted subtracted (a model image); Newton steps on the Gaussian-weighted centroid that
   re-centre the window as the estimate moves;
5. deblending (``deblend_sweeps`` > 0): crowded spots are refitted against all the others
   (Gauss-Seidel); maxima of the band-passed residual (image minus model; the band-passed image
   minus the band-passed spots, :mod:`~edgetrack.runtime.detect.residual`, unless the spots are so
   dense that filtering the residual image is cheaper) add the spots that were hidden next to
   brighter ones or merged into one blob; faint leftovers are dropped;
6. features: mass, size (radius of gyration), signal and eccentricity.

Coordinates are pixels, ``y`` = row, ``x`` = column, pixel centres at integer values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time

import numpy as np
import pandas as pd

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.inputs import checked_image
from edgetrack.runtime.detect.deblend import (
    add_residual_spots,
    deblend,
    drop_faint,
    seed_spots,
    select_spots,
    spot_table,
)
from edgetrack.runtime.detect.filters import bandpass, local_maxima, robust_noise
from edgetrack.runtime.detect.layout import COL_MASS, COL_X, COL_Y, ST_COLS
from edgetrack.runtime.detect.residual import subtract_spots
from edgetrack.runtime.errors import InputError

SPOT_FEATURES: tuple[str, ...] = ("y", "x", "mass", "size", "signal", "eccentricity")
"""Columns of the array returned by :func:`detect_spots_array`, in order."""

_SAMPLES_FOR_NOISE = 4_096  # pixels sampled for the noise estimate (MAD to ~2%)
# The band-passed residual comes from the spots (residual.py) while their band-passed windows add up
# to less than this many frames: per pixel of a window that costs about a third of filtering a pixel
# of the frame again (measured on 512x512 frames).
_SPOT_RESIDUAL_FRAMES = 2.5


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Derived, per-configuration constants (kernel taps, window offsets)."""

    kernel: np.ndarray  # float32 (2R+1,), normalised Gaussian taps
    box_half: int
    dy: np.ndarray  # int64 offsets of the maximum-finding disc, (0, 0) excluded
    dx: np.ndarray
    mass_radius: float
    fit_r: int  # half-width of the fit window, px
    render_r: int  # half-width of the window a fitted spot is drawn in (model image), px
    residual_area: int  # px of a spot's band-passed window, (2 render_r + 1 + 2 max(R, b))^2
    gain: float  # band-passed peak of a unit-amplitude spot (filter response at the centre)


@functools.lru_cache(maxsize=32)
def _plan(config: DetectConfig) -> _Plan:
    s = float(config.psf_sigma)
    r = max(1, int(math.ceil(3.0 * s)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / s) ** 2)
    kernel = np.ascontiguousarray(g / g.sum(), dtype=np.float32)
    box_half = int(math.ceil(config.background_radius if config.background_radius is not None else 4.0 * s))
    sep = float(config.min_separation) if config.min_separation is not None else max(1.0, 2.0 * s)
    rs = int(math.floor(sep))
    oy, ox = np.mgrid[-rs:rs + 1, -rs:rs + 1]
    keep = (oy * oy + ox * ox <= sep * sep) & ~((oy == 0) & (ox == 0))
    # Nearest neighbours first: most non-maxima are rejected after a few comparisons.
    order = np.argsort((oy * oy + ox * ox)[keep], kind="stable")
    dy = np.ascontiguousarray(oy[keep][order], dtype=np.int64)
    dx = np.ascontiguousarray(ox[keep][order], dtype=np.int64)
    mass_radius = float(config.mass_radius) if config.mass_radius is not None else 3.0 * s
    # Response of the band-pass at the centre of a unit-peak Gaussian spot of width psf_sigma.
    smooth = float(np.dot(kernel.astype(np.float64), np.exp(-0.5 * (t / s) ** 2))) ** 2
    tb = np.arange(-box_half, box_half + 1, dtype=np.float64)
    box = float(np.exp(-0.5 * (tb / s) ** 2).sum()) ** 2 / float(len(tb)) ** 2
    fit_r = int(math.ceil(config.fit_radius if config.fit_radius is not None else 2.0 * s))
    render_r = max(fit_r + 2, int(math.ceil(4.0 * s)))
    residual_area = (2 * render_r + 1 + 2 * max(r, box_half)) ** 2
    return _Plan(kernel, box_half, dy, dx, mass_radius, fit_r, render_r, residual_area, smooth - box)


@functools.lru_cache(maxsize=64)
def _noise_profile(config: DetectConfig, n: int) -> np.ndarray:
    """Per-axis noise terms of the band-pass along a line of ``n`` px, float64 (3, n).

    Along one axis, output pixel p mixes the input pixels q with Gaussian weights G[p, q] and
    box weights B[p, q] (edges replicated). Rows: a = sum_q G^2, c = sum_q G B, e = sum_q B^2,
    each divided by sqrt(a0^2 - 2 c0^2 + e0^2) of the interior, so that for white pixel noise
    the band-passed variance at (y, x) over the interior one is
    ``a_y a_x - 2 c_y c_x + e_y e_x`` (1 inside, up to ~2.4 in a corner).
    """
    plan = _plan(config)
    kernel = plan.kernel.astype(np.float64)
    r = kernel.shape[0] // 2
    b = plan.box_half
    width = 2 * b + 1
    taps = np.arange(-r, r + 1)
    box_taps = np.arange(-b, b + 1)
    # Interior values, those of an unbounded line.
    a0 = float(kernel @ kernel)
    c0 = float(kernel[np.abs(taps) <= b].sum()) / width
    e0 = 1.0 / width
    out = np.empty((3, n))
    out[0], out[1], out[2] = a0, c0, e0
    edge = max(r, b)
    for p in sorted(set(range(min(edge, n))) | set(range(max(n - edge, 0), n))):
        g = np.bincount(np.clip(p + taps, 0, n - 1), weights=kernel, minlength=n)
        bx = np.bincount(np.clip(p + box_taps, 0, n - 1), minlength=n) / width
        out[:, p] = (g @ g, g @ bx, bx @ bx)
    return out / math.sqrt(a0 * a0 - 2.0 * c0 * c0 + e0 * e0)


def _validated(frame: object) -> np.ndarray:
    """The frame as a 2-D, non-empty, finite integer or float ndarray (not converted)."""
    return checked_image(frame, "yx", "frame", "pixel", "rows, columns")


def validate_frame(frame: object) -> np.ndarray:
    """Validate one frame as :func:`check_frame` does, but return it unconverted (no copy): a 2-D,
    non-empty, finite integer or float ndarray. :func:`detect_spots_array` converts it into a
    reused float32 buffer, so a stream of integer frames allocates nothing per frame."""
    return _validated(frame)


def check_frame(frame: object) -> np.ndarray:
    """Validate one frame and return it as a float32, C-contiguous (H, W) array.

    The input must be a 2-D, non-empty array of integers or floats with only finite values.
    A float32 C-contiguous input is returned unchanged (no copy). Raises :class:`InputError`
    naming the problem (dimensions, dtype, count and first position of NaN/inf values).
    """
    arr = _validated(frame)
    if arr.dtype == np.float32 and arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr, dtype=np.float32)


class _Workspace(threading.local):
    """Frame-sized float32 buffers reused from one frame to the next, one set per thread.

    Fresh frame-sized arrays on every frame cost more in page faults than the filtering
    itself; these are reallocated only when the frame shape changes.
    """

    shape: tuple[int, int] = (0, 0)
    image: np.ndarray
    filtered: np.ndarray
    model: np.ndarray
    residual: np.ndarray

    def get(self, shape: tuple[int, int]) -> "_Workspace":
        if self.shape != shape:
            self.image, self.filtered, self.model, self.residual = (
                np.empty(shape, np.float32) for _ in range(4)
            )
            self.shape = shape
        return self


_WORKSPACE = _Workspace()


def _tick(timings: dict[str, float] | None, key: str, start: float) -> float:
    """Add the seconds since ``start`` to ``timings[key]`` (when timings are kept); returns now."""
    if timings is None:
        return start
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + (now - start)
    return now


def _fit_frame(img: np.ndarray, filt: np.ndarray, base: float, excess: float, prof_y: np.ndarray,
               prof_x: np.ndarray, min_amp: float, cfg: DetectConfig, plan: _Plan, ws: _Workspace,
               timings: dict[str, float] | None) -> np.ndarray:
    """Maxima, fits, residual search and deblending of one frame (see the module docstring);
    float64 (n, 6) spot rows in no particular order. ``filt`` (the band-passed ``img``) may be turned
    into the band-passed residual in place. ``timings``: seconds per pass are added to it."""
    sigma, fit_r, render_r = float(cfg.psf_sigma), plan.fit_r, plan.render_r
    iters, sweeps = int(cfg.refine_iterations), int(cfg.deblend_sweeps)
    t = time.perf_counter() if timings is not None else 0.0
    ys, xs = local_maxima(filt, base, excess, prof_y, prof_x, plan.dy, plan.dx)
    t = _tick(timings, "maxima", t)
    st = np.empty((len(ys), ST_COLS))
    alive = np.ones(len(ys), dtype=np.bool_)
    seed = np.ones(len(ys), dtype=np.bool_)
    partner = np.full(len(ys), -1, dtype=np.int64)
    fit = (sigma, fit_r, iters, render_r)
    n = seed_spots(img, ws.model, filt, ys, xs, st, *fit)
    t = _tick(timings, "seed_fits", t)
    if sweeps > 0 and n > 0:
        # One sweep settles crowded spots before the residual search (more changed nothing
        # measurable on the benchmark movies); the full sweeps come after it.
        deblend(img, ws.model, st, alive, partner, seed, *fit, 1)
        t = _tick(timings, "deblend", t)
        # bandpass(img - model): from filt and the spots where they are sparse enough (the same up to
        # float rounding; filt is not needed after this), else by filtering the frame again.
        if n * plan.residual_area <= _SPOT_RESIDUAL_FRAMES * img.size:
            subtract_spots(filt, st, alive, sigma, render_r, plan.kernel, plan.box_half)
            rfilt = filt
        else:
            rfilt = ws.residual
            bandpass(img, ws.model, True, plan.kernel, plan.box_half, rfilt)
        t = _tick(timings, "residual_bandpass", t)
        ys1, xs1 = local_maxima(rfilt, base, excess, prof_y, prof_x, plan.dy, plan.dx)
        t = _tick(timings, "residual_maxima", t)
        if len(ys1):
            more = len(ys1)
            st = np.concatenate([st, np.empty((more, ST_COLS))])
            alive = np.concatenate([alive, np.ones(more, dtype=np.bool_)])
            partner = np.concatenate([partner, np.full(more, -1, dtype=np.int64)])
            seed = np.zeros(n + more, dtype=np.bool_)
            n = add_residual_spots(img, ws.model, rfilt, ys1, xs1, st, n, alive, partner, seed, *fit)
            st, alive, partner, seed = st[:n], alive[:n], partner[:n], seed[:n]
            t = _tick(timings, "residual_fits", t)
            deblend(img, ws.model, st, alive, partner, seed, *fit, sweeps)
            t = _tick(timings, "deblend", t)
    if drop_faint(ws.model, st, alive, seed, min_amp, sigma, render_r) and sweeps > 0:
        deblend(img, ws.model, st, alive, partner, seed, *fit, sweeps)
    t = _tick(timings, "deblend", t)
    spots = spot_table(img, ws.model, st, alive, sigma, render_r, plan.mass_radius)
    _tick(timings, "spot_table", t)
    return spots


def _threshold(img: np.ndarray, filt: np.ndarray, cfg: DetectConfig) -> tuple[float, float]:
    """(base, excess) of the band-pass threshold ``base + excess * noise_factor(y, x)`` (counts)."""
    if cfg.threshold is not None:
        return float(cfg.threshold), 0.0
    h, w = img.shape
    # Columns 4 px apart (the band-passed noise is nearly uncorrelated at that lag), rows
    # spaced to give about _SAMPLES_FOR_NOISE pixels.
    step_x = min(4, w)
    step_y = max(1, int(h * ((w + step_x - 1) // step_x) / _SAMPLES_FOR_NOISE))
    med, noise, scale = robust_noise(img, filt, step_y, step_x)
    # A floor keeps flat frames (noise 0) from turning float rounding into maxima.
    return med, max(cfg.snr_threshold * noise, 1e-5 * max(scale, 1.0))


def detect_spots_array(frame: np.ndarray, config: DetectConfig | None = None,
                       timings: dict[str, float] | None = None) -> np.ndarray:
    """Detect spots in one frame; the per-frame hot path (no pandas).

    ``frame``: (H, W) integer or float array of counts. Returns float64 (n, 6), C-contiguous,
    columns :data:`SPOT_FEATURES`: ``y``, ``x`` (px), ``mass`` (counts in a disc of
    ``mass_radius`` px minus the local background and the other spots' fitted light),
    ``size`` (radius of gyration of the spot, px; sqrt(2) * sigma for a round Gaussian),
    ``signal`` (band-passed image at the pixel where the spot was found, counts),
    ``eccentricity`` (in [0, 1), 0 = round). Rows sorted by (y, x).
    ``timings``: when a dict is given, the seconds spent in each pass (``bandpass``, ``noise``,
    ``maxima``, ``seed_fits``, ``deblend``, ``residual_bandpass``, ``residual_maxima``,
    ``residual_fits``, ``spot_table``, ``select``) are added to it (a profile; results do not change).
    """
    cfg = config if config is not None else DetectConfig()
    t = time.perf_counter() if timings is not None else 0.0
    arr = _validated(frame)
    plan = _plan(cfg)
    ws = _WORKSPACE.get(arr.shape)
    if arr.dtype == np.float32 and arr.flags.c_contiguous:
        img = arr
    else:
        img = ws.image
        np.copyto(img, arr, casting="unsafe")
    filt = ws.filtered
    bandpass(img, img, False, plan.kernel, plan.box_half, filt)
    t = _tick(timings, "bandpass", t)
    h, w = img.shape
    base, excess = _threshold(img, filt, cfg)
    t = _tick(timings, "noise", t)
    # Spots whose fitted amplitude would reach less than min_amplitude_fraction of the
    # (interior) threshold in the band-passed image are dropped: ghosts left between split
    # neighbours, failed fits.
    min_amp = cfg.min_amplitude_fraction * max(excess if cfg.threshold is None else base, 0.0) / plan.gain
    spots = _fit_frame(img, filt, base, excess, _noise_profile(cfg, h), _noise_profile(cfg, w), min_amp, cfg,
                       plan, ws, timings)
    t = time.perf_counter() if timings is not None else 0.0
    if cfg.max_spots is None:
        spots = select_spots(spots, float(cfg.min_mass))
    else:
        spots = spots[spots[:, COL_MASS] >= cfg.min_mass]
        if spots.shape[0] > cfg.max_spots:
            # Brightest first; ties keep the current order (stable sort), so the choice is deterministic.
            order = np.argsort(-spots[:, COL_MASS], kind="stable")[: cfg.max_spots]
            spots = spots[order]
        order = np.lexsort((spots[:, COL_X], spots[:, COL_Y]))
        spots = np.ascontiguousarray(spots[order])
    _tick(timings, "select", t)
    return spots


def _table(spots: np.ndarray, frames: np.ndarray) -> pd.DataFrame:
    data: dict[str, np.ndarray] = {"frame": frames.astype(np.int64, copy=False)}
    for k, name in enumerate(SPOT_FEATURES):
        data[name] = spots[:, k]
    return pd.DataFrame(data)


def detect_spots(frame: np.ndarray, config: DetectConfig | None = None, frame_index: int = 0) -> pd.DataFrame:
    """Detect spots in one frame; a DataFrame with columns ``frame`` + :data:`SPOT_FEATURES`.

    See :func:`detect_spots_array` for units. ``frame_index`` (int) fills the ``frame`` column.
    """
    spots = detect_spots_array(frame, config)
    return _table(spots, np.full(spots.shape[0], int(frame_index), dtype=np.int64))


def detect_movie(movie: np.ndarray, config: DetectConfig | None = None) -> pd.DataFrame:
    """Detect spots in every frame of a (T, H, W) movie; rows ordered by frame, then (y, x)."""
    arr = movie if isinstance(movie, np.ndarray) else np.asarray(movie)
    if arr.ndim != 3:
        raise InputError(f"movie must be 3-D (frames, rows, columns), got {arr.ndim}-D array of shape {arr.shape}")
    cfg = config if config is not None else DetectConfig()
    parts: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    for t in range(arr.shape[0]):
        try:
            spots = detect_spots_array(arr[t], cfg)
        except InputError as exc:
            raise InputError(f"frame {t}: {exc}") from None
        parts.append(spots)
        frames.append(np.full(spots.shape[0], t, dtype=np.int64))
    if not parts:
        return _table(np.empty((0, len(SPOT_FEATURES))), np.empty(0, np.int64))
    return _table(np.concatenate(parts), np.concatenate(frames))
