"""Rolling-MSD baseline of the temporal segmentation (the classical method DeepSPT compares with).

For every point, a window of ``window`` points around it (shifted inside the track at its ends)
gives a time-averaged MSD at lags 1..``window // 2``; two exponents are fitted on log-log axes:
``alpha_short`` on lags 1..4 and ``alpha_long`` on lags 4..window // 2. The mode is then

* directed (1) if alpha_short >= ``alpha_directed``;
* otherwise, if alpha_short <= ``alpha_restricted``: confined (2) when the MSD bends down
  (``alpha_long - alpha_short < curvature``), subdiffusive (3) otherwise;
* normal (0) in between.

DeepSPT's own baseline uses a 20-point window with thresholds 0.7 / 1.3 and no confined class;
:func:`tune_rolling_msd` picks the window and thresholds that maximise accuracy on training tracks,
so the baseline is given its best chance. numpy + numba, px and frames.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numba
import numpy as np

__all__ = ["RollingMSD", "rolling_exponents", "rolling_msd_modes", "tune_rolling_msd"]


@dataclasses.dataclass(frozen=True)
class RollingMSD:
    """Window (points) and thresholds of the rolling-MSD classifier."""

    window: int = 20
    alpha_directed: float = 1.3
    alpha_restricted: float = 0.7
    curvature: float = -0.2


@numba.njit(cache=True, nogil=True)
def _slope(msd: np.ndarray, lo: int, hi: int) -> float:
    """Least-squares slope of log msd[lag-1] against log lag for lag in lo..hi (positive MSDs only)."""
    n = 0
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    for lag in range(lo, hi + 1):
        m = msd[lag - 1]
        if m > 0.0:
            x = np.log(lag)
            y = np.log(m)
            n += 1
            sx += x
            sy += y
            sxx += x * x
            sxy += x * y
    if n < 2:
        return np.nan
    v = sxx - sx * sx / n
    return (sxy - sx * sy / n) / v if v > 0.0 else np.nan


@numba.njit(cache=True, nogil=True)
def _rolling(pos: np.ndarray, offsets: np.ndarray, window: int, out: np.ndarray) -> None:
    d = pos.shape[1]
    for tr in range(offsets.size - 1):
        a = offsets[tr]
        n = offsets[tr + 1] - a
        w = min(window, n)
        max_lag = max(2, w // 2)
        msd = np.zeros(max_lag)
        for t in range(n):
            lo = min(max(0, t - w // 2), n - w)
            for lag in range(1, max_lag + 1):
                acc = 0.0
                cnt = 0
                for j in range(lo, lo + w - lag):
                    s = 0.0
                    for k in range(d):
                        s += (pos[a + j + lag, k] - pos[a + j, k]) ** 2
                    acc += s
                    cnt += 1
                msd[lag - 1] = acc / cnt if cnt > 0 else 0.0
            out[a + t, 0] = _slope(msd, 1, min(4, max_lag))
            out[a + t, 1] = _slope(msd, min(4, max_lag - 1), max_lag)


def rolling_exponents(tracks: Sequence[np.ndarray], window: int = 20) -> list[np.ndarray]:
    """Per point (alpha_short, alpha_long) of each (T, d) track: a list of (T, 2) float64 arrays."""
    arrays = [np.ascontiguousarray(t, dtype=np.float64) for t in tracks]
    if not arrays:
        return []
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out = np.full((int(offsets[-1]), 2), np.nan)
    _rolling(np.concatenate(arrays, axis=0), offsets, int(window), out)
    return [out[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _classify(exps: np.ndarray, p: RollingMSD) -> np.ndarray:
    short = np.nan_to_num(exps[:, 0], nan=1.0)
    long = np.nan_to_num(exps[:, 1], nan=1.0)
    mode = np.zeros(short.size, dtype=np.int64)
    mode[short >= p.alpha_directed] = 1
    low = short <= p.alpha_restricted
    mode[low & (long - short < p.curvature)] = 2
    mode[low & ~(long - short < p.curvature)] = 3
    return mode


def rolling_msd_modes(tracks: Sequence[np.ndarray], params: RollingMSD | None = None) -> list[np.ndarray]:
    """Mode per point (0 normal, 1 directed, 2 confined, 3 subdiffusive) of each (T, d) track."""
    p = params or RollingMSD()
    return [_classify(e, p) for e in rolling_exponents(tracks, p.window)]


def tune_rolling_msd(tracks: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                     windows: Sequence[int] = (10, 20, 30),
                     directed: Sequence[float] = (1.2, 1.3, 1.4, 1.5),
                     restricted: Sequence[float] = (0.6, 0.7, 0.8, 0.9),
                     curvature: Sequence[float] = (-0.4, -0.3, -0.2, -0.1, 0.0)) -> tuple[RollingMSD, float]:
    """Grid search of window and thresholds for the best per-frame accuracy on labelled tracks."""
    truth = np.concatenate([np.asarray(l, dtype=np.int64) for l in labels])
    best = (RollingMSD(), -1.0)
    for w in windows:
        exps = np.concatenate(rolling_exponents(tracks, w), axis=0)
        for a_dir, a_res, curv in itertools.product(directed, restricted, curvature):
            if a_res >= a_dir:
                continue
            p = RollingMSD(window=int(w), alpha_directed=a_dir, alpha_restricted=a_res, curvature=curv)
            acc = float(np.mean(_classify(exps, p) == truth))
            if acc > best[1]:
                best = (p, acc)
    return best
