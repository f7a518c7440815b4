"""Per-frame motion model (ONNX Runtime, no torch): anomalous exponent, K, diffusive state and
change-point probability for every point of variable-length tracks.

The network (trained in :mod:`edgetrack.training.andi_model`, exported as ``andi_motion``) sees
each track through :func:`motion_features`, the same function that builds its training inputs:

* ``features`` (B, C, L) float32, ``C = len(INPUT_CHANNELS)``, ``L`` a multiple of
  :data:`LENGTH_MULTIPLE`; channel ``c`` at position ``t`` describes point ``t`` of a track:
  ``dy, dx`` the step t-1 -> t divided by the track's scale ``s`` (px); ``dot1`` the product of
  that step with the previous one over ``2 s^2``; ``logd1 .. logd16`` ``0.5 log(|r_t - r_{t-k}|^2
  / (2 k s^2) + 1e-3)`` for lags ``k`` = 1, 2, 4, 8, 16 (0 where the lag reaches before the
  start); ``has_step`` 1 where a step exists; ``log_scale`` ``0.5 ln s`` on every point;
  ``pos_y, pos_x`` the position minus the track's mean, over ``s sqrt(n)``.
* ``mask`` (B, L) float32: 1 on the track's points, 0 on padding.

The scale ``s`` is the rms step per coordinate (px/frame), so the network predicts K relative to
the track: ``log K = log_k_rel + 2 ln s`` (K in px^2/frame^alpha, per-coordinate MSD
``2 K t^alpha``, as the AnDi challenge). Outputs, all (B, L) or (B, L, 4): ``alpha``,
``log_k_rel``, ``state_prob`` (0 immobile, 1 confined, 2 free, 3 directed) and ``cp_prob`` (the
probability that a new segment starts at that point).

Padding never changes the predictions on a track's points: every layer of the network is masked,
so a track gives the same values alone or in any batch (up to float32 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgetrack.runtime.errors import InputError, ModelError

__all__ = [
    "MODEL_NAME",
    "INPUT_CHANNELS",
    "LAGS",
    "STATES",
    "LENGTH_MULTIPLE",
    "MIN_POINTS",
    "FramePredictions",
    "pad_tracks",
    "motion_features",
    "predict_frames",
    "msd_fit",
]

MODEL_NAME = "andi_motion"
LAGS: tuple[int, ...] = (1, 2, 4, 8, 16)
INPUT_CHANNELS: tuple[str, ...] = (
    ("dy", "dx", "dot1") + tuple(f"logd{k}" for k in LAGS) + ("has_step", "log_scale", "pos_y", "pos_x")
)
STATES: tuple[str, ...] = ("immobile", "confined", "free", "directed")
LENGTH_MULTIPLE = 8
MIN_POINTS = 3  # a track needs at least 2 steps to be characterised
_EPS = 1e-3
_MIN_SCALE = 1e-6  # px


def _check_track(pos: np.ndarray, i: int) -> np.ndarray:
    p = np.asarray(pos, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise InputError(f"track {i}: positions must be an (n, 2) array of (y, x) px, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError(f"track {i}: positions contain NaN or infinite values")
    return p


def pad_tracks(tracks: Sequence[np.ndarray], multiple: int = LENGTH_MULTIPLE) -> tuple[np.ndarray, np.ndarray]:
    """Stack tracks of (n_i, 2) positions (px, consecutive frames) into a padded (B, L, 2) float64
    array (padding repeats the last point) and their lengths (B,) int64; ``L`` is the longest
    length rounded up to ``multiple``."""
    if len(tracks) == 0:
        raise InputError("no tracks given")
    arrays = [_check_track(p, i) for i, p in enumerate(tracks)]
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    if lengths.min() < 1:
        raise InputError("every track needs at least one point")
    width = int(-(-int(lengths.max()) // multiple) * multiple)
    out = np.empty((len(arrays), width, 2))
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
        out[i, a.shape[0]:] = a[-1]
    return out, lengths


def motion_features(pos: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network inputs of padded tracks.

    pos: (B, L, 2) float64 px (as :func:`pad_tracks`); lengths: (B,) points per track.
    Returns ``features`` (B, C, L) float32, ``mask`` (B, L) float32 and ``log_scale`` (B,) float64
    (``ln s``, s = rms step per coordinate in px/frame, at least 1e-6).
    """
    p = np.asarray(pos, dtype=np.float64)
    n = np.asarray(lengths, dtype=np.int64)
    if p.ndim != 3 or p.shape[2] != 2 or n.shape != (p.shape[0],):
        raise InputError(f"pos must be (B, L, 2) with lengths (B,), got {p.shape} and {n.shape}")
    b, width, _ = p.shape
    t = np.arange(width)
    valid = t[None, :] < n[:, None]
    d1 = np.zeros_like(p)
    d1[:, 1:] = p[:, 1:] - p[:, :-1]
    has1 = valid & (t[None, :] >= 1)
    d1 *= has1[:, :, None]
    n_steps = np.maximum(n - 1, 1)
    s2 = np.sum(d1 * d1, axis=(1, 2)) / (2.0 * n_steps)
    scale = np.sqrt(np.maximum(s2, _MIN_SCALE**2))
    feats = np.zeros((b, len(INPUT_CHANNELS), width), dtype=np.float64)
    inv = 1.0 / scale[:, None]
    feats[:, 0] = d1[:, :, 0] * inv
    feats[:, 1] = d1[:, :, 1] * inv
    dot = np.zeros((b, width))
    dot[:, 1:] = np.sum(d1[:, 1:] * d1[:, :-1], axis=2)
    feats[:, 2] = dot / (2.0 * scale[:, None] ** 2) * (valid & (t[None, :] >= 2))
    for j, k in enumerate(LAGS):
        dk = np.zeros((b, width))
        if k < width:
            dk[:, k:] = np.sum((p[:, k:] - p[:, :-k]) ** 2, axis=2)
        ok = valid & (t[None, :] >= k)
        e = dk / (2.0 * k * scale[:, None] ** 2)
        feats[:, 3 + j] = np.where(ok, 0.5 * np.log(e + _EPS), 0.0)
    c = 3 + len(LAGS)
    feats[:, c] = has1
    log_scale = np.log(scale)
    feats[:, c + 1] = 0.5 * log_scale[:, None] * valid
    mean = np.sum(p * valid[:, :, None], axis=1) / np.maximum(n, 1)[:, None]
    norm = 1.0 / (scale * np.sqrt(np.maximum(n, 1)))
    centred = (p - mean[:, None, :]) * norm[:, None, None] * valid[:, :, None]
    feats[:, c + 2] = centred[:, :, 0]
    feats[:, c + 3] = centred[:, :, 1]
    return feats.astype(np.float32), valid.astype(np.float32), log_scale


@dataclass(frozen=True)
class FramePredictions:
    """Per-point network outputs of one track of ``n`` points.

    alpha (n,) float64; K (n,) float64 px^2/frame^alpha; state_prob (n, 4) float64 (0 immobile,
    1 confined, 2 free, 3 directed); cp_prob (n,) float64 (a new segment starts at the point).
    """

    alpha: np.ndarray
    K: np.ndarray
    state_prob: np.ndarray
    cp_prob: np.ndarray

    @property
    def n(self) -> int:
        return int(self.alpha.size)

    @classmethod
    def empty(cls, n: int) -> "FramePredictions":
        """NaN predictions for a track too short to characterise."""
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full((n, len(STATES)), np.nan), np.full(n, np.nan))


def _batches(lengths: np.ndarray, max_points: int, max_tracks: int) -> list[np.ndarray]:
    """Track indices in batches of similar length (sorted), each with at most ``max_tracks``
    tracks and ``max_points`` padded points."""
    order = np.argsort(lengths, kind="stable")
    out, cur = [], []
    for i in order:
        width = -(-int(lengths[i]) // LENGTH_MULTIPLE) * LENGTH_MULTIPLE
        if cur and ((len(cur) + 1) * width > max_points or len(cur) >= max_tracks):
            out.append(np.array(cur))
            cur = []
        cur.append(int(i))
    if cur:
        out.append(np.array(cur))
    return out


def predict_frames(
    tracks: Sequence[np.ndarray],
    model=None,
    *,
    folder: Path | str | None = None,
    provider: str | None = None,
    max_points: int = 32768,
    max_tracks: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> list[FramePredictions]:
    """Run the motion network on tracks of (n_i, 2) positions (y, x px, one per consecutive frame).

    model: a loaded model (:func:`edgetrack.runtime.models.onnx.load_model`), or None to load
    :data:`MODEL_NAME` from ``folder`` (default: the installed exported models) with ``provider``.
    Tracks with fewer than :data:`MIN_POINTS` points get NaN predictions. Tracks are batched by
    length (at most ``max_tracks`` tracks and ``max_points`` padded points per run). progress:
    called as ``progress(tracks_done, n_tracks)`` after each run of the network.
    Raises ModelError when the model is missing or corrupt.
    """
    if model is None:
        from edgetrack.runtime.models.onnx import load_model

        model = load_model(MODEL_NAME, folder=folder, provider=provider)
    arrays = [_check_track(p, i) for i, p in enumerate(tracks)]
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    result: list[FramePredictions | None] = [None] * len(arrays)
    usable = np.flatnonzero(lengths >= MIN_POINTS)
    for i in np.flatnonzero(lengths < MIN_POINTS):
        result[i] = FramePredictions.empty(int(lengths[i]))
    if usable.size:
        for batch in _batches(lengths[usable], int(max_points), int(max_tracks)):
            idx = usable[batch]
            pos, n = pad_tracks([arrays[i] for i in idx])
            feats, mask, log_scale = motion_features(pos, n)
            out = model.run({"features": feats, "mask": mask})
            for row, i in enumerate(idx):
                m = int(n[row])
                try:
                    alpha = out["alpha"][row, :m].astype(np.float64)
                    log_k = out["log_k_rel"][row, :m].astype(np.float64) + 2.0 * log_scale[row]
                    probs = out["state_prob"][row, :m].astype(np.float64)
                    cp = out["cp_prob"][row, :m].astype(np.float64)
                except KeyError as exc:
                    raise ModelError(f"the motion model has no output {exc}; re-export it") from None
                result[i] = FramePredictions(alpha, np.exp(log_k), probs, cp)
            if progress is not None:
                progress(sum(r is not None for r in result), len(result))
    return result  # type: ignore[return-value]


def msd_fit(positions: np.ndarray, max_lag: int = 5) -> tuple[float, float]:
    """The naive estimate of one track: a straight-line fit of ``log MSD`` against ``log lag`` over
    lags 1 .. ``max_lag`` (fewer when the track is short). Returns (alpha, K) with K in
    px^2/frame^alpha from the per-coordinate MSD ``2 K t^alpha`` (NaN when the track has fewer
    than 3 points)."""
    p = _check_track(positions, 0)
    n = p.shape[0]
    lags = np.arange(1, min(int(max_lag), n - 1) + 1)
    if lags.size < 2:
        return float("nan"), float("nan")
    msd = np.array([np.mean(np.sum((p[k:] - p[:-k]) ** 2, axis=1)) for k in lags])
    msd = np.maximum(msd, 1e-12)
    slope, intercept = np.polyfit(np.log(lags), np.log(msd), 1)
    return float(slope), float(np.exp(intercept) / 4.0)
