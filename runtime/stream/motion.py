"""Each track's own motion, learnt while it is tracked: the step size and the drift its next link is scored with.

The distance scorer gives every candidate link the same Gaussian step model (``step_sigma`` px per axis
and frame). Real movies mix slow and fast particles, and particles that change speed or start to drift:
with one step size a fast particle's long step loses to a slow neighbour's short one and its track breaks,
while a slow particle's search is needlessly wide in a crowd. With the adaptive model every committed
detection carries the motion of the track it ends, as a small state row, and a link out of it is scored
with that track's own step size and drift.

State of a detection (float64 row of ``2 + d`` values, ``d`` the number of coordinates, 2 or 3):

- ``w``: the weight of the track's past steps, ``w <- decay * w + 1`` per step (0 for a track start; at
  most ``1 / (1 - decay)``, the memory in steps);
- ``q``: the weighted mean squared step innovation per axis and frame, px^2/frame: each step's
  displacement minus the drift predicted for it, squared, divided by ``d * dt``;
- ``v``: the weighted mean velocity, px/frame per coordinate (the (z,) y, x order of :func:`positions`).

A link of ``dt`` frames from a detection with state ``(w, q, v)`` is scored

    score = (s_min^2 / s^2)^(d/2) * exp(-|delta - f v dt|^2 / (2 s^2 dt)) * gap_penalty ** (dt - 1)

with ``delta`` the displacement, ``s^2 = (k sigma0^2 + w q) / (k + w)`` the track's step variance
(``sigma0`` the scorer's ``step_sigma``, ``k = prior_steps`` its weight: a young track is scored like the
plain scorer and a track's own steps take over as they accumulate) and ``f = |v|^2 / (|v|^2 + d s^2 / w)``
the drift's shrinkage: a velocity no larger than the noise of its own estimate (a free random walk)
predicts almost nothing, a steady drift predicts its full step. The first factor is the Gaussian's
normalisation relative to the narrowest model a track can reach (``s_min^2 = k sigma0^2 / (k + 1 / (1 -
decay))``, a track of still steps): a fast track's broad model does not make every detection around it an
equally good link, and a slow track's sharp model wins the detections close to it. Scores stay in [0, 1].
An unlinked detection (a new track) has ``s = sigma0`` and no drift.

Measured in ``benchmarks/bench_motion_link.py``: on its own the model changes little at the default
``max_distance``; what it buys is a wider search (fast particles) without the losses a wider plain
Gaussian brings in crowds.

The state travels with the detections (it is part of the tracker's window and checkpoint), so nothing
grows with the number of tracks, and the stream stays causal: a link's score uses only committed steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DECAY", "PRIOR_STEPS", "empty_state", "link_scores", "positions", "propagate", "state_width"]

DECAY = 0.9
"""Weight of the past per step: the state remembers about ``1 / (1 - DECAY)`` = 10 steps."""

PRIOR_STEPS = 0.5
"""Weight, in steps, of the scorer's ``step_sigma`` in a track's step variance."""


def state_width(ndim: int) -> int:
    """Columns of a motion state row for ``ndim`` (2 or 3) coordinates: w, q and the velocity."""
    return 2 + int(ndim)


def empty_state(n: int, ndim: int) -> np.ndarray:
    """The state of ``n`` track starts: float64 (n, 2 + ndim) zeros (no steps, no drift)."""
    return np.zeros((int(n), state_width(ndim)), np.float64)


def positions(values: np.ndarray, ndim: int, z_column: int | None = None, z_scale: float = 1.0) -> np.ndarray:
    """Coordinates of detections as the model sees them: float64 (n, ndim), (y, x) in px, or in 3-D
    (z * z_scale, y, x), z taken from column ``z_column`` of ``values`` (float64 (n, F), y, x first)."""
    if ndim == 2:
        return values[:, :2]
    if z_column is None:
        raise ValueError("3-D positions need the z column")
    return np.column_stack([values[:, z_column] * z_scale, values[:, 0], values[:, 1]])


def _variance(state: np.ndarray, sigma0: float) -> np.ndarray:
    """The step variance per axis and frame of each state row, px^2/frame (n,)."""
    w, q = state[:, 0], state[:, 1]
    return (PRIOR_STEPS * sigma0 * sigma0 + w * q) / (PRIOR_STEPS + w)


def _narrowest(sigma0: float) -> float:
    """The smallest step variance any state can give (a track of still steps at full weight), px^2/frame."""
    return PRIOR_STEPS * sigma0 * sigma0 / (PRIOR_STEPS + 1.0 / (1.0 - DECAY))


def _drift(state: np.ndarray, sigma0: float) -> np.ndarray:
    """The shrunk velocity of each state row, px/frame (n, d): the part of ``v`` its noise cannot explain."""
    w, v = state[:, 0], state[:, 2:]
    d = v.shape[1]
    v2 = np.einsum("ij,ij->i", v, v)
    noise = d * _variance(state, sigma0) / np.maximum(w, 1e-12)
    f = np.where(w > 0, v2 / np.maximum(v2 + noise, 1e-300), 0.0)
    return v * f[:, None]


def propagate(parent: np.ndarray, step: np.ndarray, dt: np.ndarray, sigma0: float) -> np.ndarray:
    """The states of detections linked to parents with states ``parent`` (float64 (n, 2 + d)) by
    displacements ``step`` (px, (n, d)) over ``dt`` frames ((n,), >= 1): float64 (n, 2 + d)."""
    dtf = np.asarray(dt, np.float64)
    d = step.shape[1]
    innovation = step - _drift(parent, sigma0) * dtf[:, None]
    q_new = np.einsum("ij,ij->i", innovation, innovation) / (d * dtf)
    w_old = DECAY * parent[:, 0]
    w = w_old + 1.0
    out = np.empty_like(parent)
    out[:, 0] = w
    out[:, 1] = (w_old * parent[:, 1] + q_new) / w
    out[:, 2:] = (w_old[:, None] * parent[:, 2:] + step / dtf[:, None]) / w[:, None]
    return out


def link_scores(state: np.ndarray, delta: np.ndarray, dt: np.ndarray, sigma0: float,
                gap_penalty: float) -> np.ndarray:
    """Scores in [0, 1] of links out of detections with states ``state`` (float64 (m, 2 + d), one row per
    link) by displacements ``delta`` (px, (m, d)) over ``dt`` frames ((m,) integers >= 1); float64 (m,)."""
    dtf = np.asarray(dt, np.float64)
    if dtf.size == 0:
        return np.zeros(0, np.float64)
    miss = delta - _drift(state, sigma0) * dtf[:, None]
    r2 = np.einsum("ij,ij->i", miss, miss)
    var = _variance(state, sigma0)
    out = np.exp(-r2 / (2.0 * var * dtf))
    # the Gaussian's normalisation relative to the narrowest step model a track can reach, so that a
    # broad model is not a free pass to every detection around it
    out *= np.minimum(_narrowest(sigma0) / var, 1.0) ** (delta.shape[1] / 2.0)
    if dtf.max() > 1:
        out *= np.power(float(gap_penalty), dtf - 1.0)
    return out
