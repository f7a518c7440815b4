"""The width of the spots in a frame, measured on the frame itself (``psf_sigma="auto"``).

A detector tuned to the wrong spot width fails in two ways that no linker can repair: smoothing with
too wide a Gaussian merges spots closer than about twice its sigma into one, and the fit of a spot
narrower than the model leaves a residual that is taken for extra spots. Renderers, objectives and
cameras differ (the 2nd AnDi challenge's videos have spots of sigma ~1 px, edgetrack's simulator 1.5),
so a user who does not know the number can let the frame tell it:

1. detect with a first guess (1.5 px unless given);
2. keep the bright spots that stand alone (no other spot within 4 guesses, whole window inside the frame);
3. fit each one's sigma: its centre fixed at the detected position, a Gaussian plus a flat background over
   a window of 3.5 guesses, the sigma that leaves the least squared residual on a log grid, refined by a
   parabola through the three best;
4. the median over the spots is the new guess; repeat from 1 until it moves by less than 5% (3 rounds).

A stream (``psf_sigma="auto"``) then detects with the measured sigma only where it differs from the first
guess by more than :data:`KEEP_WITHIN` (:func:`settled_sigma`): in crowded fields the isolated spots still
carry faint neighbours and unresolved pairs, which bias the measure upwards (+3-15 % at 2,000 spots of
1.5 px in 512 x 512, measured), while the detector's default is the width it was tuned at.

The sigma is that of a point-sampled Gaussian, as the detector's own model: a spot rendered as a Gaussian
of sigma s integrated over square pixels measures about ``sqrt(s^2 + 1/12)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.errors import InputError

__all__ = ["AUTO", "KEEP_WITHIN", "PSF_TRIES", "PsfEstimate", "estimate_psf_sigma", "is_auto", "settled_sigma",
           "split_auto"]

AUTO = "auto"
"""The value of ``psf_sigma`` that asks for it to be measured on the first frames (see :mod:`psf`)."""

#: Frames on which a stream tries ``psf_sigma="auto"`` (their isolated spots pooled) before the detector's
#: default sigma is kept.
PSF_TRIES = 10

#: Relative difference from the first guess under which a stream keeps the guess (see :func:`settled_sigma`).
KEEP_WITHIN = 0.2

_GRID = np.exp(np.linspace(math.log(0.3), math.log(12.0), 61))  # candidate sigmas, px (6% apart)
_MAX_SPOTS = 150  # brightest isolated spots fitted per round (the median is then within ~0.02 px)
_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class PsfEstimate:
    """A measured spot width. sigma: px (the median over the spots); n_spots: spots it was measured on;
    spread: the interquartile range of the spots' own sigmas, px."""

    sigma: float
    n_spots: int
    spread: float


def is_auto(value: object) -> bool:
    """True for ``psf_sigma="auto"`` (any case)."""
    return isinstance(value, str) and value.strip().lower() == AUTO


def _isolated(spots: np.ndarray, radius: float, half: int, shape: tuple[int, int]) -> np.ndarray:
    """Indices of the spots with no other spot within ``radius`` px and a (2 half + 1)^2 window inside the
    frame, brightest (by signal) first."""
    from scipy.spatial import cKDTree

    if len(spots) == 0:
        return np.zeros(0, np.int64)
    yx = spots[:, :2]
    if len(spots) > 1:
        nearest = cKDTree(yx).query(yx, k=2)[0][:, 1]
    else:
        nearest = np.full(1, np.inf)
    cy, cx = np.rint(yx[:, 0]), np.rint(yx[:, 1])
    inside = (cy >= half) & (cy < shape[0] - half) & (cx >= half) & (cx < shape[1] - half)
    keep = np.flatnonzero((nearest > radius) & inside)
    return keep[np.argsort(-spots[keep, 4], kind="stable")][:_MAX_SPOTS]


def _fit_sigmas(image: np.ndarray, yx: np.ndarray, half: int) -> np.ndarray:
    """Each spot's best sigma (px; NaN where the fit has no interior minimum or a non-positive amplitude)
    for a Gaussian of free amplitude on a free flat background, centred at ``yx`` (n, 2)."""
    n = len(yx)
    cy = np.rint(yx[:, 0]).astype(np.int64)
    cx = np.rint(yx[:, 1]).astype(np.int64)
    t = np.arange(-half, half + 1)
    patches = image[(cy[:, None, None] + t[None, :, None]), (cx[:, None, None] + t[None, None, :])]
    patches = patches.reshape(n, -1).astype(np.float64)  # (n, P)
    dy = (cy - yx[:, 0])[:, None] + np.repeat(t, t.size)[None, :]  # (n, P) offsets from the centre
    dx = (cx - yx[:, 1])[:, None] + np.tile(t, t.size)[None, :]
    r2 = dy * dy + dx * dx
    # Least squares of patch ~ a g + b for every sigma: closed form in the sums of g, g^2, g p.
    g = np.exp(-0.5 * r2[:, None, :] / (_GRID[None, :, None] ** 2))  # (n, S, P)
    p_count = patches.shape[1]
    sg, sgg = g.sum(2), (g * g).sum(2)
    sp, spp = patches.sum(1), (patches * patches).sum(1)
    sgp = np.einsum("nsp,np->ns", g, patches)
    det = p_count * sgg - sg * sg
    amp = (p_count * sgp - sg * sp[:, None]) / np.where(det > 0, det, np.inf)
    bg = (sp[:, None] - amp * sg) / p_count
    sse = spp[:, None] - 2 * amp * sgp - 2 * bg * sp[:, None] + amp * amp * sgg + 2 * amp * bg * sg + p_count * bg * bg
    best = np.argmin(sse, axis=1)
    out = np.full(n, np.nan)
    ok = (best > 0) & (best < _GRID.size - 1) & (amp[np.arange(n), best] > 0)
    for i in np.flatnonzero(ok):
        k = best[i]
        y0, y1, y2 = sse[i, k - 1], sse[i, k], sse[i, k + 1]
        curve = y0 - 2 * y1 + y2
        step = 0.5 * (y0 - y2) / curve if curve > 0 else 0.0
        out[i] = math.exp(math.log(_GRID[k]) + float(np.clip(step, -1, 1)) * (math.log(_GRID[1]) - math.log(_GRID[0])))
    return out


def estimate_psf_sigma(image: np.ndarray | Sequence[np.ndarray], config: DetectConfig | None = None, *,
                       min_spots: int = 8) -> PsfEstimate:
    """Measure the spot sigma (px) of one frame (H, W), or of several frames together (a (T, H, W) stack or a
    sequence of frames: their isolated spots are pooled, for sparse movies): see the module docstring.

    config: the detector's other options (its ``psf_sigma`` is the first guess). min_spots: the fewest
    isolated spots to trust. Raises :class:`InputError` when there are fewer (the caller keeps its guess and
    may try again with more frames).
    """
    from edgetrack.runtime.detect.spots import check_frame, detect_spots_array

    many = isinstance(image, (list, tuple)) or np.asarray(image).ndim == 3
    frames = [check_frame(f) for f in (image if many else [image])]
    if not frames:
        raise InputError("psf_sigma='auto': no frame to measure the spot width on")
    cfg = config or DetectConfig()
    guess = float(cfg.psf_sigma)
    estimate = None
    for _ in range(_ROUNDS):
        trial = cfg.replace(psf_sigma=guess)
        half = max(3, int(math.ceil(3.5 * guess)))
        found = []
        for img in frames:
            spots = detect_spots_array(img, trial)
            chosen = _isolated(spots, 4.0 * guess, half, img.shape)
            if len(chosen):
                found.append(_fit_sigmas(img, spots[chosen, :2], half))
        sigmas = np.concatenate(found) if found else np.zeros(0)
        sigmas = sigmas[np.isfinite(sigmas)]
        if len(sigmas) < min_spots:
            if estimate is not None:
                break  # the previous round's estimate stands
            where = (f"this {frames[0].shape[0]}x{frames[0].shape[1]} frame" if len(frames) == 1
                     else f"these {len(frames)} frames")
            raise InputError(f"psf_sigma='auto': only {len(sigmas)} isolated spots could be measured in {where} "
                             f"(at least {min_spots} needed); give psf_sigma in px")
        q1, median, q3 = np.percentile(sigmas, [25, 50, 75])
        estimate = PsfEstimate(float(np.clip(median, 0.3, 50.0)), int(len(sigmas)), float(q3 - q1))
        moved = abs(estimate.sigma - guess) / guess
        guess = estimate.sigma
        if moved < 0.05:
            break
    assert estimate is not None
    return estimate


def settled_sigma(measured: float, guess: float) -> float:
    """The sigma a stream detects with after measuring ``measured`` px from a first guess of ``guess`` px:
    the guess where the two differ by at most :data:`KEEP_WITHIN` (relative), else the measure (rounded to
    1e-4 px)."""
    if abs(measured - guess) <= KEEP_WITHIN * guess:
        return float(guess)
    return round(float(measured), 4)


def split_auto(options: object) -> tuple[object, bool]:
    """``(options, False)`` unchanged, or, for a mapping whose ``psf_sigma`` is ``"auto"``, a copy without
    it and True (the detector's default then stands until the sigma is measured)."""
    if isinstance(options, dict) and is_auto(options.get("psf_sigma")):
        rest = dict(options)
        del rest["psf_sigma"]
        return rest, True
    return options, False
