"""Diffusional fingerprints: 40 features per track or per segment (after DeepSPT and Pinholt et al.).

Positions are px, time is frames; lags and durations are counted in points of the track in frame
order (a gap in the frames counts as one step). With ``n`` points, ``N = n - 1`` steps
``dr_t = r_{t+1} - r_t`` of length ``s_t`` and ``d`` spatial dimensions, ``MSD(tau)`` is the
time-averaged mean squared displacement at lag ``tau`` for ``tau = 1 .. L`` with
``L = min(N, max(4, n // 4), 100)``.

====  ======================  =================  ================================================
 #    name                    unit               definition
====  ======================  =================  ================================================
  0   alpha                   1                  slope of log MSD against log tau (least squares)
  1   K                       px^2/frame^alpha   exp(intercept of that fit) / (2 d)
  2   velocity                px/frame           sqrt(b) of MSD = c + a tau + b tau^2 (0 if b < 0)
  3   msd_fit_r2              1                  R^2 of the log-log MSD fit
  4   efficiency              1                  |r_end - r_0|^2 / (N * sum s_t^2)
  5   log_efficiency          1                  ln(efficiency)
  6   fractal_dimension       1                  ln N / (ln N + ln(d_max / sum s_t)), Katz & George
  7   gaussianity             1                  mean over tau of <r^4> / ((1 + 2/d) <r^2>^2) - 1
  8   kurtosis                1                  kurtosis of the positions projected on the main
                                                 axis of the gyration tensor (3 for a Gaussian)
  9   msd_ratio               1                  mean over tau of MSD(tau)/MSD(tau+1) - tau/(tau+1)
 10   trappedness             1                  1 - exp(0.2048 - 0.25117 D N / r0^2), r0 = d_max/2,
                                                 D = short_lag_D (Saxton), clipped to [0, 1]
 11   step_state_0            1                  fraction of steps in step-size state 0 (slowest)
 12   step_state_1            1                  ... state 1
 13   step_state_2            1                  ... state 2
 14   step_state_3            1                  ... state 3 (fastest)
 15   step_state_lifetime     frames             mean run length of those states
 16   mean_step               px                 mean of s_t
 17   mean_msd                px^2               mean of MSD(tau) over tau = 1..L
 18   mean_dot                px^2               mean of dr_t . dr_{t+1}
 19   dot_sign_persistence    1                  fraction of consecutive dot products of one sign
 20   dot_positive_fraction   1                  fraction of dot products > 0
 21   min_step                px                 smallest s_t
 22   max_step                px                 largest s_t
 23   step_range              px                 max_step - min_step
 24   step_cv                 1                  std(s_t, ddof=1) / mean(s_t)
 25   slow_fraction           1                  fraction of steps shorter than median(s) / 2
 26   fast_fraction           1                  fraction of steps longer than 2 median(s)
 27   hull_volume             px^d               area (2-D) or volume (3-D) of the convex hull
 28   frac_normal             1                  fraction of points in DeepSPT mode 0
 29   frac_directed           1                  ... mode 1
 30   frac_confined           1                  ... mode 2
 31   frac_subdiffusive       1                  ... mode 3
 32   n_change_points         count              points whose mode differs from the previous one
 33   short_lag_D             px^2/frame         max(MSD(2) - MSD(1), 0) / (2 d) (free of the
                                                 localisation error); MSD(1)/(2 d) when n = 2
 34   segment_length_mean     frames             mean length of the runs of one mode
 35   segment_length_median   frames             median of those lengths
 36   segment_length_max      frames             longest run
 37   segment_length_min      frames             shortest run
 38   segment_length_std      frames             standard deviation of the run lengths
 39   mode_entropy            nats               -sum f_k ln f_k over the four mode fractions
====  ======================  =================  ================================================

Step-size states (11-15): the Viterbi path of a sticky four-state hidden Markov model on
``ln s_t`` with Gaussian emissions (standard deviation 0.5) centred at the track's median of
``ln s_t`` plus (-1.2, -0.4, 0.4, 1.2), staying probability 0.9 (scale-free: it describes how the
step size varies along the track). ``d_max`` is the largest distance between two points.

Features 28-32 and 34-39 need the DeepSPT modes (:func:`edgetrack.runtime.motion.deepspt.segment_tracks`)
and are NaN without them. A feature that a short track cannot define is NaN: every feature needs
2 points; alpha, K, velocity, fractal dimension, dot-product features and the step-state
lifetime need 3 or more (velocity needs L >= 3).
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError

__all__ = ["FEATURE_NAMES", "FEATURE_UNITS", "fingerprint_arrays", "fingerprint_table"]

FEATURE_NAMES: tuple[str, ...] = (
    "alpha", "K", "velocity", "msd_fit_r2", "efficiency", "log_efficiency", "fractal_dimension",
    "gaussianity", "kurtosis", "msd_ratio", "trappedness",
    "step_state_0", "step_state_1", "step_state_2", "step_state_3", "step_state_lifetime",
    "mean_step", "mean_msd", "mean_dot", "dot_sign_persistence", "dot_positive_fraction",
    "min_step", "max_step", "step_range", "step_cv", "slow_fraction", "fast_fraction", "hull_volume",
    "frac_normal", "frac_directed", "frac_confined", "frac_subdiffusive", "n_change_points",
    "short_lag_D", "segment_length_mean", "segment_length_median", "segment_length_max",
    "segment_length_min", "segment_length_std", "mode_entropy",
)
FEATURE_UNITS: dict[str, str] = dict(zip(FEATURE_NAMES, (
    "1", "px^2/frame^alpha", "px/frame", "1", "1", "1", "1", "1", "1", "1", "1",
    "1", "1", "1", "1", "frames",
    "px", "px^2", "px^2", "1", "1",
    "px", "px", "px", "1", "1", "1", "px^d",
    "1", "1", "1", "1", "count",
    "px^2/frame", "frames", "frames", "frames", "frames", "frames", "nats",
)))
_N_FEATURES = len(FEATURE_NAMES)
_MAX_LAG = 100
_STATE_OFFSETS = np.array([-1.2, -0.4, 0.4, 1.2])
_STATE_SD = 0.5
_STATE_STAY = 0.9


@numba.njit(cache=True, nogil=True)
def _chain(pts: np.ndarray, order: np.ndarray, start: int, stop: int, step: int, hull: np.ndarray, k: int,
           floor: int) -> int:
    """One pass of the monotone chain: push points order[start:stop:step], popping right turns."""
    i = start
    while i != stop:
        p = order[i]
        while k >= floor:
            o, a = hull[k - 2], hull[k - 1]
            cross = (pts[a, 0] - pts[o, 0]) * (pts[p, 1] - pts[o, 1]) - (pts[a, 1] - pts[o, 1]) * (pts[p, 0] - pts[o, 0])
            if cross > 0.0:
                break
            k -= 1
        hull[k] = p
        k += 1
        i += step
    return k


@numba.njit(cache=True, nogil=True)
def _hull2d(pts: np.ndarray) -> tuple[float, float]:
    """(area, largest pairwise distance) of 2-D points (monotone chain hull)."""
    n = pts.shape[0]
    if n == 1:
        return 0.0, 0.0
    by_y = np.argsort(pts[:, 1], kind="mergesort")
    order = by_y[np.argsort(pts[by_y, 0], kind="mergesort")]  # by x, then y
    hull = np.empty(2 * n, dtype=np.int64)
    k = _chain(pts, order, 0, n, 1, hull, 0, 2)  # lower hull
    k = _chain(pts, order, n - 2, -1, -1, hull, k, k + 1)  # upper hull
    h = k - 1 if k > 1 else k
    area = 0.0
    for i in range(h):
        a, b = hull[i], hull[(i + 1) % h]
        area += pts[a, 0] * pts[b, 1] - pts[b, 0] * pts[a, 1]
    dmax2 = 0.0
    for i in range(h):
        for j in range(i + 1, h):
            a, b = hull[i], hull[j]
            d2 = (pts[a, 0] - pts[b, 0]) ** 2 + (pts[a, 1] - pts[b, 1]) ** 2
            if d2 > dmax2:
                dmax2 = d2
    return 0.5 * abs(area), np.sqrt(dmax2)


@numba.njit(cache=True, nogil=True)
def _diameter(pts: np.ndarray) -> float:
    """Largest pairwise distance (brute force)."""
    n, d = pts.shape
    best = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            s = 0.0
            for k in range(d):
                s += (pts[i, k] - pts[j, k]) ** 2
            if s > best:
                best = s
    return np.sqrt(best)


@numba.njit(cache=True, nogil=True)
def _hulls_2d(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray, vol: np.ndarray, dmax: np.ndarray) -> None:
    for u in range(starts.size):
        if ends[u] - starts[u] >= 1:
            vol[u], dmax[u] = _hull2d(pos[starts[u]:ends[u]])


@numba.njit(cache=True, nogil=True)
def _viterbi_states(ls: np.ndarray, mu: np.ndarray, sd: float, stay: float) -> np.ndarray:
    """Most likely state path of a sticky Gaussian HMM (uniform start) for observations ``ls``."""
    n = ls.size
    m = mu.size
    log_stay = np.log(stay)
    log_move = np.log((1.0 - stay) / (m - 1))
    score = np.empty(m)
    new = np.empty(m)
    back = np.zeros((n, m), dtype=np.int64)
    for k in range(m):
        score[k] = -0.5 * ((ls[0] - mu[k]) / sd) ** 2
    for t in range(1, n):
        for k in range(m):
            best = -np.inf
            arg = 0
            for j in range(m):
                v = score[j] + (log_stay if j == k else log_move)
                if v > best:
                    best = v
                    arg = j
            new[k] = best - 0.5 * ((ls[t] - mu[k]) / sd) ** 2
            back[t, k] = arg
        for k in range(m):
            score[k] = new[k]
    path = np.empty(n, dtype=np.int64)
    path[n - 1] = np.argmax(score)
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@numba.njit(cache=True, nogil=True)
def _run_lengths(seq: np.ndarray) -> np.ndarray:
    n = seq.size
    runs = np.empty(n, dtype=np.float64)
    r = 0
    length = 1
    for t in range(1, n):
        if seq[t] == seq[t - 1]:
            length += 1
        else:
            runs[r] = length
            r += 1
            length = 1
    runs[r] = length
    return runs[:r + 1]


@numba.njit(cache=True, nogil=True)
def _features(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray, modes: np.ndarray, vol: np.ndarray,
              dmax: np.ndarray, offsets: np.ndarray, sd: float, stay: float, out: np.ndarray) -> None:
    """Fill ``out`` (U, 40) with the features of the units rows starts[u]:ends[u] of ``pos``."""
    d = pos.shape[1]
    nan = np.nan
    for u in range(starts.size):
        a = starts[u]
        n = ends[u] - a
        for f in range(out.shape[1]):
            out[u, f] = nan
        if n < 2:
            continue
        ns = n - 1
        p = pos[a:a + n]
        # steps
        sl = np.empty(ns)
        sum_sq = 0.0
        for t in range(ns):
            s2 = 0.0
            for k in range(d):
                s2 += (p[t + 1, k] - p[t, k]) ** 2
            sl[t] = np.sqrt(s2)
            sum_sq += s2
        lag_max = min(ns, max(4, n // 4), 100)
        msd = np.zeros(lag_max)
        m4 = np.zeros(lag_max)
        for lag in range(1, lag_max + 1):
            acc2 = 0.0
            acc4 = 0.0
            for t in range(n - lag):
                s2 = 0.0
                for k in range(d):
                    s2 += (p[t + lag, k] - p[t, k]) ** 2
                acc2 += s2
                acc4 += s2 * s2
            msd[lag - 1] = acc2 / (n - lag)
            m4[lag - 1] = acc4 / (n - lag)
        # 0, 1, 3: log-log fit
        cnt = 0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        for i in range(lag_max):
            if msd[i] > 0.0:
                x = np.log(i + 1.0)
                y = np.log(msd[i])
                cnt += 1
                sx += x
                sy += y
                sxx += x * x
                sxy += x * y
                syy += y * y
        if cnt >= 2:
            vx = sxx - sx * sx / cnt
            if vx > 0.0:
                slope = (sxy - sx * sy / cnt) / vx
                icpt = (sy - slope * sx) / cnt
                out[u, 0] = slope
                out[u, 1] = np.exp(icpt) / (2.0 * d)
                vy = syy - sy * sy / cnt
                out[u, 3] = (slope * slope * vx / vy) if vy > 0.0 else 1.0
        # 2: velocity from MSD = c + a tau + b tau^2
        if lag_max >= 3:
            ata = np.zeros((3, 3))
            atb = np.zeros(3)
            for i in range(lag_max):
                tau = i + 1.0
                row = np.array([1.0, tau, tau * tau])
                for r in range(3):
                    atb[r] += row[r] * msd[i]
                    for c in range(3):
                        ata[r, c] += row[r] * row[c]
            coef = np.linalg.solve(ata, atb)
            out[u, 2] = np.sqrt(coef[2]) if coef[2] > 0.0 else 0.0
        # 4, 5: efficiency
        e2 = 0.0
        for k in range(d):
            e2 += (p[n - 1, k] - p[0, k]) ** 2
        if sum_sq > 0.0:
            eff = e2 / (ns * sum_sq)
            out[u, 4] = eff
            out[u, 5] = np.log(eff) if eff > 0.0 else nan
        # 6: fractal dimension
        total = 0.0
        for t in range(ns):
            total += sl[t]
        if ns >= 2 and total > 0.0 and dmax[u] > 0.0:
            den = np.log(ns) + np.log(dmax[u] / total)
            if den != 0.0:
                out[u, 6] = np.log(ns) / den
        # 7: gaussianity
        g = 0.0
        gc = 0
        for i in range(lag_max):
            if msd[i] > 0.0:
                g += m4[i] / ((1.0 + 2.0 / d) * msd[i] * msd[i]) - 1.0
                gc += 1
        if gc > 0:
            out[u, 7] = g / gc
        # 8: kurtosis along the main axis of the gyration tensor
        mean = np.zeros(d)
        for t in range(n):
            for k in range(d):
                mean[k] += p[t, k]
        mean /= n
        cov = np.zeros((d, d))
        for t in range(n):
            for r in range(d):
                for c in range(d):
                    cov[r, c] += (p[t, r] - mean[r]) * (p[t, c] - mean[c])
        cov /= n
        w, v = np.linalg.eigh(cov)
        axis = v[:, d - 1]
        m2 = 0.0
        m4p = 0.0
        for t in range(n):
            proj = 0.0
            for k in range(d):
                proj += (p[t, k] - mean[k]) * axis[k]
            m2 += proj * proj
            m4p += proj ** 4
        m2 /= n
        m4p /= n
        if m2 > 0.0:
            out[u, 8] = m4p / (m2 * m2)
        # 9: MSD ratio
        if lag_max >= 2:
            r_acc = 0.0
            r_cnt = 0
            for i in range(lag_max - 1):
                if msd[i + 1] > 0.0:
                    r_acc += msd[i] / msd[i + 1] - (i + 1.0) / (i + 2.0)
                    r_cnt += 1
            if r_cnt > 0:
                out[u, 9] = r_acc / r_cnt
        # 33: short-lag D; 10: trappedness
        d_short = (max(msd[1] - msd[0], 0.0) if lag_max >= 2 else msd[0]) / (2.0 * d)
        out[u, 33] = d_short
        r0 = dmax[u] / 2.0
        if r0 > 0.0:
            trap = 1.0 - np.exp(0.2048 - 0.25117 * d_short * ns / (r0 * r0))
            out[u, 10] = min(max(trap, 0.0), 1.0)
        # 11-15: step-size states
        mean_sl = total / ns
        if mean_sl > 0.0:
            ls = np.empty(ns)
            floor = 1e-9 * mean_sl
            for t in range(ns):
                ls[t] = np.log(max(sl[t], floor))
            med = np.median(ls)
            path = _viterbi_states(ls, med + offsets, sd, stay)
            counts = np.zeros(4)
            for t in range(ns):
                counts[path[t]] += 1.0
            for k in range(4):
                out[u, 11 + k] = counts[k] / ns
            if ns >= 2:
                out[u, 15] = np.mean(_run_lengths(path))
        # 16, 21-26: step statistics
        out[u, 16] = mean_sl
        smin = sl.min()
        smax = sl.max()
        out[u, 21] = smin
        out[u, 22] = smax
        out[u, 23] = smax - smin
        if ns >= 2 and mean_sl > 0.0:
            var = 0.0
            for t in range(ns):
                var += (sl[t] - mean_sl) ** 2
            out[u, 24] = np.sqrt(var / (ns - 1)) / mean_sl
        med_sl = np.median(sl)
        slow = 0
        fast = 0
        for t in range(ns):
            if sl[t] < 0.5 * med_sl:
                slow += 1
            if sl[t] > 2.0 * med_sl:
                fast += 1
        out[u, 25] = slow / ns
        out[u, 26] = fast / ns
        # 17: mean MSD
        out[u, 17] = np.mean(msd)
        # 18-20: dot products of consecutive steps
        if ns >= 2:
            nd = ns - 1
            dots = np.empty(nd)
            pos_count = 0
            for t in range(nd):
                s = 0.0
                for k in range(d):
                    s += (p[t + 1, k] - p[t, k]) * (p[t + 2, k] - p[t + 1, k])
                dots[t] = s
                if s > 0.0:
                    pos_count += 1
            out[u, 18] = np.mean(dots)
            out[u, 20] = pos_count / nd
            if nd >= 2:
                same = 0
                for t in range(nd - 1):
                    if np.sign(dots[t]) == np.sign(dots[t + 1]):
                        same += 1
                out[u, 19] = same / (nd - 1)
        # 27: hull
        out[u, 27] = vol[u]
        # 28-32, 34-39: modes
        ok = True
        for t in range(n):
            if modes[a + t] < 0 or modes[a + t] > 3:
                ok = False
                break
        if ok:
            mc = np.zeros(4)
            for t in range(n):
                mc[modes[a + t]] += 1.0
            ent = 0.0
            for k in range(4):
                frac = mc[k] / n
                out[u, 28 + k] = frac
                if frac > 0.0:
                    ent -= frac * np.log(frac)
            out[u, 39] = ent
            runs = _run_lengths(modes[a:a + n])
            out[u, 32] = runs.size - 1.0
            out[u, 34] = np.mean(runs)
            out[u, 35] = np.median(runs)
            out[u, 36] = runs.max()
            out[u, 37] = runs.min()
            out[u, 38] = np.std(runs)


def _hulls(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hull area/volume, largest pairwise distance) of every unit."""
    u = starts.size
    vol = np.zeros(u)
    dmax = np.zeros(u)
    if pos.shape[1] == 2:
        _hulls_2d(pos, starts, ends, vol, dmax)
        return vol, dmax
    from scipy.spatial import ConvexHull, QhullError

    for i in range(u):
        pts = pos[starts[i]:ends[i]]
        if pts.shape[0] < 2:
            continue
        try:
            hull = ConvexHull(pts) if pts.shape[0] >= 4 else None
        except (QhullError, ValueError):
            hull = None
        if hull is None:
            dmax[i] = _diameter(np.ascontiguousarray(pts))
            continue
        vol[i] = hull.volume
        dmax[i] = _diameter(np.ascontiguousarray(pts[hull.vertices]))
    return vol, dmax


def fingerprint_arrays(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                       modes: np.ndarray | None = None) -> np.ndarray:
    """Fingerprints of units (tracks or segments) given as row ranges of one position array.

    positions: (M, d) float, px, d = 2 or 3, frame order inside each unit; starts, ends: (U,) int
    row ranges ``[start, end)``; modes: (M,) int DeepSPT modes (0..3; -1 or absent: unknown).
    Returns (U, 40) float64 in :data:`FEATURE_NAMES` order.
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise InputError(f"positions must have shape (M, 2) or (M, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InputError("positions contain NaN or infinite values")
    s = np.ascontiguousarray(starts, dtype=np.int64)
    e = np.ascontiguousarray(ends, dtype=np.int64)
    if s.shape != e.shape or s.ndim != 1 or np.any(s < 0) or np.any(e > pos.shape[0]) or np.any(e < s):
        raise InputError("starts and ends must be (U,) row ranges inside positions")
    if modes is None:
        m = np.full(pos.shape[0], -1, dtype=np.int64)
    else:
        m = np.ascontiguousarray(modes, dtype=np.int64)
        if m.shape != (pos.shape[0],):
            raise InputError(f"modes must have shape ({pos.shape[0]},), got {m.shape}")
    vol, dmax = _hulls(pos, s, e)
    out = np.empty((s.size, _N_FEATURES))
    _features(pos, s, e, m, vol, dmax, _STATE_OFFSETS, _STATE_SD, _STATE_STAY, out)
    return out


def _sorted_tracks(tracks: pd.DataFrame) -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray]:
    """Tracks sorted by (track, frame), coordinate columns, integer track codes and frames."""
    if not isinstance(tracks, pd.DataFrame):
        raise InputError(f"tracks must be a pandas DataFrame, got {type(tracks).__name__}")
    missing = [c for c in ("track_id", "frame", "y", "x") if c not in tracks.columns]
    if missing:
        raise InputError(f"tracks table is missing column(s) {', '.join(missing)}")
    coords = ["z", "y", "x"] if "z" in tracks.columns and tracks["z"].notna().any() else ["y", "x"]
    for c in ("frame", *coords):
        if not pd.api.types.is_numeric_dtype(tracks[c]):
            raise InputError(f"column {c!r} must be numeric")
        if not np.all(np.isfinite(tracks[c].to_numpy(dtype=np.float64))):
            raise InputError(f"column {c!r} contains NaN or infinite values")
    if tracks["track_id"].isna().any():
        raise InputError("column 'track_id' contains missing values")
    df = tracks.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    codes, _ = pd.factorize(df["track_id"], sort=False)
    frame = df["frame"].to_numpy().astype(np.int64)
    dup = (codes[1:] == codes[:-1]) & (frame[1:] == frame[:-1])
    if dup.any():
        raise InputError(f"track {df['track_id'].iloc[int(np.flatnonzero(dup)[0])]!r} has the same frame more than once")
    return df, coords, codes.astype(np.int64), frame


def _modes_for(df: pd.DataFrame, modes: pd.DataFrame | None) -> np.ndarray | None:
    if modes is None:
        return None
    if not isinstance(modes, pd.DataFrame) or any(c not in modes.columns for c in ("track_id", "frame", "mode")):
        raise InputError("modes must be a table with columns track_id, frame, mode (the output of segment_tracks)")
    key = modes[["track_id", "frame", "mode"]].drop_duplicates(["track_id", "frame"])
    merged = df[["track_id", "frame"]].merge(key, on=["track_id", "frame"], how="left")
    return merged["mode"].fillna(-1).to_numpy().astype(np.int64)


def fingerprint_table(tracks: pd.DataFrame, segments: pd.DataFrame | None = None,
                      modes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fingerprints of every track, or of every segment.

    tracks: ``track_id, frame, y, x`` (optional ``z``), px. segments: optional table ``track_id,
    start, end`` (frames, inclusive); when given, one row per segment in its order with columns
    ``track_id, start, end`` + :data:`FEATURE_NAMES`, otherwise one row per track (in order of
    first appearance) with ``track_id`` + FEATURE_NAMES. modes: optional output of
    :func:`edgetrack.runtime.motion.deepspt.segment_tracks` (``track_id, frame, mode``) for the
    mode features (NaN without it). See the module docstring for the features and units.
    """
    df, coords, codes, frame = _sorted_tracks(tracks)
    pos = df[coords].to_numpy(dtype=np.float64)
    mode_arr = _modes_for(df, modes)
    n = len(df)
    bounds = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1, [n]]) if n else np.zeros(1, np.int64)
    if segments is None:
        starts = bounds[:-1]
        ends = bounds[1:]
        feats = fingerprint_arrays(pos, starts, ends, mode_arr)
        ids = df["track_id"].to_numpy()[starts] if n else np.zeros(0)
        first_seen = pd.unique(tracks["track_id"])
        table = pd.DataFrame(feats, columns=list(FEATURE_NAMES))
        table.insert(0, "track_id", ids)
        pos_of = pd.Series(np.arange(len(first_seen)), index=first_seen)
        return table.iloc[np.argsort(pos_of.loc[ids].to_numpy(), kind="stable")].reset_index(drop=True)
    if not isinstance(segments, pd.DataFrame):
        raise InputError(f"segments must be a pandas DataFrame, got {type(segments).__name__}")
    missing = [c for c in ("track_id", "start", "end") if c not in segments.columns]
    if missing:
        raise InputError(f"segments table is missing column(s) {', '.join(missing)}")
    seg_start = segments["start"].to_numpy()
    seg_end = segments["end"].to_numpy()
    if not (np.all(np.isfinite(seg_start.astype(float))) and np.all(np.isfinite(seg_end.astype(float)))):
        raise InputError("segments start/end contain NaN")
    if np.any(seg_end < seg_start):
        raise InputError("segments must have end >= start")
    track_ids = df["track_id"].to_numpy()[bounds[:-1]] if n else np.zeros(0)
    code_of = pd.Series(np.arange(len(track_ids)), index=track_ids)
    seg_ids = segments["track_id"].to_numpy()
    unknown = ~pd.Series(seg_ids).isin(track_ids).to_numpy()
    if unknown.any():
        raise InputError(f"segments refer to track {seg_ids[np.flatnonzero(unknown)[0]]!r}, which is not in tracks")
    seg_code = code_of.loc[seg_ids].to_numpy().astype(np.int64)
    # rows of a segment: frames within [start, end] of its track (rows are sorted by code, frame)
    span = int(frame.max() - frame.min() + 2) if n else 1
    key = codes * span + (frame - (frame.min() if n else 0))
    base = frame.min() if n else 0
    lo = np.searchsorted(key, seg_code * span + (seg_start.astype(np.int64) - base).clip(0, span - 1), side="left")
    hi = np.searchsorted(key, seg_code * span + (seg_end.astype(np.int64) - base).clip(-1, span - 1), side="right")
    lo = np.minimum(lo, hi)
    feats = fingerprint_arrays(pos, lo.astype(np.int64), hi.astype(np.int64), mode_arr)
    table = pd.DataFrame(feats, columns=list(FEATURE_NAMES))
    table.insert(0, "end", seg_end)
    table.insert(0, "start", seg_start)
    table.insert(0, "track_id", seg_ids)
    return table
