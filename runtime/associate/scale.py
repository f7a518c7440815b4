"""The length scale a graph model sees: coordinates shrunk so that a movie's steps fall in the model's training range.

MAGIK's node regression (``magik_diffusion``) was trained on videos whose particles step a fraction of a
pixel per frame (D log-uniform in [0.005, 0.7] px^2/frame; the median displacement from a detection to the
nearest detection of the next frame is about 0.4 px). On a movie of faster particles (D of 0.5-2 px^2/frame,
as in edgetrack's own simulations) its predictions saturate near the top of that range: the median ratio of
predicted to true D was 0.57. The model only sees positions relative to each other, so shrinking the
coordinates by a factor ``s`` turns a fast movie into one it knows, and its sqrt(2D) comes back divided by
``s`` (D by ``s^2``). :func:`step_scale` picks ``s`` from the data: 1 where the movie's median
next-frame displacement is at most :data:`REFERENCE_STEP`, ``REFERENCE_STEP / median`` above it.
Measured in ``benchmarks/bench_magik.py diffusion-map``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["REFERENCE_STEP", "median_next_step", "step_scale"]

REFERENCE_STEP = 0.7
"""px: the largest median next-frame displacement a movie is given to ``magik_diffusion`` at (the upper part of
its training videos' range)."""


def median_next_step(frame: np.ndarray, y: np.ndarray, x: np.ndarray, max_pairs: int = 20) -> float:
    """Median distance, px, from a detection to the nearest detection of the next frame, over at most
    ``max_pairs`` pairs of consecutive frames spread over the movie; NaN when no two consecutive frames both
    hold detections. ``frame``: int (n,); ``y``, ``x``: float (n,) px."""
    frame = np.asarray(frame, np.int64)
    if frame.size == 0:
        return math.nan
    frames = np.unique(frame)
    pairs = frames[np.isin(frames + 1, frames)]
    if pairs.size == 0:
        return math.nan
    if pairs.size > max_pairs:
        pairs = pairs[np.linspace(0, pairs.size - 1, max_pairs).round().astype(np.int64)]
    yx = np.column_stack([np.asarray(y, np.float64), np.asarray(x, np.float64)])
    distances = []
    for f in pairs:
        here, there = yx[frame == f], yx[frame == f + 1]
        d, _ = cKDTree(there).query(here)
        distances.append(d)
    return float(np.median(np.concatenate(distances)))


def step_scale(frame: np.ndarray, y: np.ndarray, x: np.ndarray, reference: float = REFERENCE_STEP) -> float:
    """The factor in (0, 1] the coordinates are multiplied by before a graph model sees them: 1 where
    :func:`median_next_step` is at most ``reference`` px (or undefined), ``reference / median`` above it."""
    m = median_next_step(frame, y, x)
    if not math.isfinite(m) or m <= reference:
        return 1.0
    return float(reference / m)
