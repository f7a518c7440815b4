"""Scores of motion characterisation, as defined by the 2nd AnDi Challenge.

These follow the challenge's scoring code (``andi_datasets.utils_challenge``, release 2.1.13)
so that numbers are comparable with published results:

* **Change points** (per trajectory, frames counted from its first point): predicted and true
  change points are paired by the Hungarian algorithm on ``|t_true - t_pred|``; a pair closer
  than ``threshold`` (10) frames is a true positive, otherwise it counts as one false positive
  and one false negative; unpaired predictions are false positives, unpaired true change points
  false negatives. A trajectory without any change point, true or predicted, counts as one true
  positive. Over the whole set: ``JSC = TP / (TP + FP + FN)`` and the RMSE of the true-positive
  distances (0 if there is none).
* **Segment properties**: the segments of each trajectory are paired by the Hungarian algorithm
  on ``1 - Jaccard`` of their frame supports; over all pairs of the set, alpha MAE (capped at
  1.999), K mean squared *logarithmic* error ``mean((log(1 + K) - log(1 + K_pred))^2)`` with
  both clamped at >= 1e-12 (capped at its value for 1e-12 vs 1e6) and the micro-averaged F1 of
  the diffusive state, which for one label per segment equals the fraction of correct states.
  Note: these are over paired *segments*, not frames; :func:`framewise_scores` gives the
  per-frame versions.
* **Ensemble**: each experiment's distributions of alpha and of K are mixtures of truncated
  normals given as (5, n_states) matrices (rows: mean alpha, variance of alpha, mean K, variance
  of K, weight); the scores are Wasserstein-1 distances between the true and predicted mixtures
  evaluated on a grid (alpha: linear on [0, 1.999]; K: logarithmic on [1e-12, 1e6], distance in
  K units).

numpy and scipy only; no torch.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgetrack.runtime.errors import InputError

__all__ = [
    "CP_THRESHOLD",
    "SegmentLabels",
    "change_point_scores",
    "segment_pairs",
    "alpha_mae",
    "k_msle",
    "state_f1",
    "SingleTrajectoryScores",
    "single_trajectory_scores",
    "wasserstein1",
    "ensemble_distances",
    "framewise_scores",
]

CP_THRESHOLD = 10  # frames
ALPHA_BOUNDS = (0.0, 1.999)
K_BOUNDS = (1e-12, 1e6)
_ALPHA_PENALTY = 2.0  # added to the true alpha when a predicted alpha is NaN or outside [0, 2]
_K_PENALTY = 1e5  # added to the true K when a predicted K is NaN
_STATE_FALLBACK = 0  # replaces predicted states outside [0, 4]
_MSLE_MAX = float((np.log1p(K_BOUNDS[0]) - np.log1p(K_BOUNDS[1])) ** 2)


@dataclasses.dataclass(frozen=True, eq=False)
class SegmentLabels:
    """One trajectory as segments.

    ``change_points`` (n-1,) int64: first frame of segments 2..n, counted from the trajectory's
    first point; ``length``: its number of frames (T); ``alpha``, ``K`` (px^2/frame^alpha) and
    ``state`` (0 immobile, 1 confined, 2 free, 3 directed): (n,) values per segment.
    """

    change_points: np.ndarray
    length: int
    alpha: np.ndarray
    K: np.ndarray
    state: np.ndarray

    def __post_init__(self) -> None:
        cps = np.atleast_1d(np.asarray(self.change_points, dtype=np.float64))
        if cps.ndim != 1 or not np.all(np.isfinite(cps)):
            raise InputError("change_points must be a 1-D array of finite frame numbers")
        object.__setattr__(self, "change_points", cps.astype(np.int64))
        for name in ("alpha", "K", "state"):
            v = np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64))
            if v.shape != (cps.size + 1,):
                raise InputError(
                    f"{name} needs one value per segment ({cps.size + 1}), got shape {v.shape}"
                )
            object.__setattr__(self, name, v)
        if not np.isfinite(self.length) or int(self.length) < 1:
            raise InputError(f"length must be a frame count >= 1, got {self.length}")
        object.__setattr__(self, "length", int(self.length))

    @classmethod
    def from_row(cls, row: Sequence[float]) -> tuple[int, "SegmentLabels"]:
        """Parse one line of the challenge's files:
        ``[traj_idx, K_1, alpha_1, state_1, CP_1, ..., K_n, alpha_n, state_n, T]``.
        Returns ``(traj_idx, labels)``."""
        v = np.asarray(row, dtype=np.float64).ravel()
        if v.size < 5 or v.size % 4 != 1:
            raise InputError(
                f"a challenge row has 4 n + 1 values (traj_idx, then K, alpha, state, CP per "
                f"segment, the last CP being T), got {v.size}"
            )
        body = v[1:].reshape(-1, 4)  # K, alpha, state, CP-or-T
        return int(v[0]), cls(
            change_points=np.trunc(body[:-1, 3]), length=int(body[-1, 3]),
            alpha=body[:, 1], K=body[:, 0], state=body[:, 2],
        )

    @classmethod
    def from_frames(cls, alpha: np.ndarray, K: np.ndarray, state: np.ndarray) -> "SegmentLabels":
        """Segments of per-frame labels (T,) of one trajectory: a change point wherever alpha,
        K or the state differs from the previous frame."""
        a, k, s = (np.asarray(x, dtype=np.float64).ravel() for x in (alpha, K, state))
        if not (a.shape == k.shape == s.shape) or a.size == 0:
            raise InputError("alpha, K and state need the same non-zero length")
        change = (a[1:] != a[:-1]) | (k[1:] != k[:-1]) | (s[1:] != s[:-1])
        cps = np.flatnonzero(change) + 1
        last = np.append(cps, a.size) - 1  # value of a segment is read at its last frame
        return cls(change_points=cps, length=a.size, alpha=a[last], K=k[last], state=s[last])

    def to_row(self, traj_idx: int) -> list[float]:
        """The challenge's line for this trajectory (inverse of :meth:`from_row`)."""
        row: list[float] = [float(traj_idx)]
        ends = list(self.change_points.astype(float)) + [float(self.length)]
        for i in range(self.alpha.size):
            row += [float(self.K[i]), float(self.alpha[i]), float(self.state[i]), ends[i]]
        return row


def _match_change_points(
    true: np.ndarray, pred: np.ndarray, threshold: float
) -> tuple[int, int, int, list[float]]:
    """TP, FP, FN and squared errors of the true positives for one trajectory."""
    cost = np.abs(true[:, None].astype(np.float64) - pred[None, :].astype(np.float64))
    rows, cols = linear_sum_assignment(cost)
    d = cost[rows, cols]
    hit = d < threshold
    tp = int(hit.sum())
    miss = int((~hit).sum())
    fp, fn = miss, miss
    if pred.size > true.size:
        fp += pred.size - true.size
    else:
        fn += true.size - pred.size
    return tp, fp, fn, list(d[hit] ** 2)


def change_point_scores(
    true_cps: Sequence[np.ndarray],
    pred_cps: Sequence[np.ndarray],
    threshold: float = CP_THRESHOLD,
) -> tuple[float, float]:
    """RMSE (frames) of the true-positive change points and the Jaccard index JSC over a set.

    ``true_cps[i]`` and ``pred_cps[i]``: change points of trajectory i (frames, without T).
    """
    if len(true_cps) != len(pred_cps):
        raise InputError(f"{len(true_cps)} true and {len(pred_cps)} predicted trajectories")
    tp = fp = fn = 0
    empty_both = 0
    sq: list[float] = []
    n_true = 0
    for t, p in zip(true_cps, pred_cps):
        t = np.atleast_1d(np.asarray(t, dtype=np.float64)).ravel()
        p = np.atleast_1d(np.asarray(p, dtype=np.float64)).ravel()
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
            raise InputError("change points must be finite")
        n_true += t.size
        a, b, c, s = _match_change_points(t, p, threshold)
        tp, fp, fn = tp + a, fp + b, fn + c
        sq += s
        if t.size == 0 and p.size == 0:
            empty_both += 1
    if tp + fp + fn == 0:
        return 0.0, 1.0  # no change point anywhere, true or predicted
    rmse = float(np.sqrt(np.mean(sq))) if sq else 0.0
    return rmse, float((tp + empty_both) / (tp + empty_both + fp + fn))


def _binary_segments(cps: np.ndarray, length: int) -> np.ndarray:
    """Frame supports (n_segments, length) of the challenge's segment matching. As in the
    reference, segment k covers frames (cp_k, cp_{k+1}] (frame 0 in the first), and a
    trajectory without change point has an extra empty segment."""
    c = np.concatenate([[0], cps]).astype(np.int64)
    seg = np.zeros((c.size, length), dtype=bool)
    for k in range(c.size - 1):
        seg[k, c[k] + 1 : c[k + 1] + 1] = True
    seg[-1, c[-1] + 1 :] = True
    seg[0, 0] = True
    return seg


def _segment_assignment(true: SegmentLabels, pred: SegmentLabels) -> tuple[np.ndarray, np.ndarray]:
    # a trajectory without change point is represented by [T] itself, as in the reference
    t_cps = true.change_points if true.change_points.size else np.array([true.length])
    p_cps = pred.change_points if pred.change_points.size else np.array([pred.length])
    st = _binary_segments(t_cps, true.length)
    sp = _binary_segments(p_cps, pred.length)
    width = max(st.shape[1], sp.shape[1])
    st = np.pad(st, ((0, 0), (0, width - st.shape[1])))
    sp = np.pad(sp, ((0, 0), (0, width - sp.shape[1])))
    inter = st.astype(np.int64) @ sp.T.astype(np.int64)
    union = st.sum(1)[:, None] + sp.sum(1)[None, :] - inter
    jac = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    return linear_sum_assignment(1.0 - jac)


def segment_pairs(
    true: SegmentLabels, pred: SegmentLabels, reference_quirks: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (true, predicted) of alpha, K and state of the matched segments, each (P, 2).

    Segments are matched by the Hungarian algorithm on 1 - Jaccard of their frames. With
    ``reference_quirks`` (default) the pairing reproduces the reference exactly, including that
    when only the prediction lacks change points, the true segment is taken by its position in
    the list of matched rows rather than the matched row itself.
    """
    rows, cols = _segment_assignment(true, pred)
    no_t, no_p = true.change_points.size == 0, pred.change_points.size == 0
    if no_t and no_p:
        idx_t, idx_p = np.array([0]), np.array([0])
    elif no_t:
        idx_t, idx_p = np.array([0]), cols[:1]
    elif no_p:
        k = int(np.flatnonzero(cols == 0)[0])
        idx_t = np.array([k if reference_quirks else rows[k]])
        idx_p = cols[k : k + 1]
    else:
        keep = rows < true.alpha.size
        idx_t, idx_p = rows[keep], cols[keep]
    return (
        np.stack([true.alpha[idx_t], pred.alpha[idx_p]], axis=1),
        np.stack([true.K[idx_t], pred.K[idx_p]], axis=1),
        np.stack([true.state[idx_t], pred.state[idx_p]], axis=1),
    )


def alpha_mae(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error of alpha, capped at 1.999 (the width of the alpha range)."""
    t, p = _same_shape(true, pred)
    return float(min(np.mean(np.abs(t - p)), ALPHA_BOUNDS[1] - ALPHA_BOUNDS[0]))


def k_msle(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared logarithmic error ``mean((log(1 + K) - log(1 + K_pred))^2)`` with both
    clamped at >= 1e-12, capped at its value for 1e-12 vs 1e6."""
    t, p = _same_shape(true, pred)
    t = np.maximum(t, K_BOUNDS[0])
    p = np.maximum(p, K_BOUNDS[0])
    return float(min(np.mean((np.log1p(t) - np.log1p(p)) ** 2), _MSLE_MAX))


def state_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Micro-averaged F1 of the diffusive states (= fraction of correct states)."""
    t, p = _same_shape(true, pred)
    return float(np.mean(t.astype(np.int64) == p.astype(np.int64)))


def _same_shape(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if t.shape != p.shape or t.size == 0:
        raise InputError(f"true and predicted values differ in size or are empty: {t.size} vs {p.size}")
    return t, p


@dataclasses.dataclass(frozen=True)
class SingleTrajectoryScores:
    """Scores of one set of trajectories (one experiment in the challenge)."""

    cp_rmse: float
    cp_jsc: float
    alpha_mae: float
    k_msle: float
    state_f1: float
    n_trajectories: int
    n_missing: int


def single_trajectory_scores(
    true: Mapping[int, SegmentLabels],
    pred: Mapping[int, SegmentLabels],
    threshold: float = CP_THRESHOLD,
    reference_quirks: bool = True,
) -> SingleTrajectoryScores:
    """The challenge's five single-trajectory scores of predictions ``pred`` against ``true``
    (both keyed by trajectory index). A trajectory without prediction gets the maximal errors
    (as the reference: a missed change point, alpha error 2, K 1 vs 1e5 + 1, a wrong state).
    Predicted alpha that is NaN or outside [0, 2] is replaced by true + 2, NaN K by true + 1e5,
    |K| is used, and states outside [0, 4] become 0 (as the reference)."""
    if len(true) == 0:
        raise InputError("no true trajectories to score")
    t_cps, p_cps = [], []
    pa, pk, ps = [], [], []
    missing = 0
    for idx, t in true.items():
        p = pred.get(idx)
        if p is None:
            missing += 1
            t = SegmentLabels([], 10 + threshold, [_ALPHA_PENALTY], [1 + _K_PENALTY], [10])
            p = SegmentLabels([], 10, [0.0], [1.0], [0.0])
            t_cps.append(np.array([10 + threshold]))
            p_cps.append(np.array([10]))
        else:
            t_cps.append(t.change_points)
            p_cps.append(p.change_points)
        a, k, s = segment_pairs(t, p, reference_quirks)
        pa.append(a)
        pk.append(k)
        ps.append(s)
    a, k, s = np.concatenate(pa), np.concatenate(pk), np.concatenate(ps)
    bad_a = np.isnan(a[:, 1]) | (a[:, 1] > 2) | (a[:, 1] < 0)
    a[bad_a, 1] = a[bad_a, 0] + _ALPHA_PENALTY
    bad_k = np.isnan(k[:, 1])
    k = np.abs(k)
    k[bad_k, 1] = k[bad_k, 0] + _K_PENALTY
    s[(s[:, 1] > 4) | (s[:, 1] < 0), 1] = _STATE_FALLBACK
    s[np.isnan(s[:, 1]), 1] = -1  # never equal to a true state
    rmse, jsc = change_point_scores(t_cps, p_cps, threshold)
    return SingleTrajectoryScores(
        cp_rmse=rmse,
        cp_jsc=jsc,
        alpha_mae=alpha_mae(a[:, 0], a[:, 1]),
        k_msle=k_msle(k[:, 0], k[:, 1]),
        state_f1=state_f1(s[:, 0], s[:, 1]),
        n_trajectories=len(true),
        n_missing=missing,
    )


def wasserstein1(
    u_values: np.ndarray,
    v_values: np.ndarray,
    u_weights: np.ndarray | None = None,
    v_weights: np.ndarray | None = None,
) -> float:
    """Wasserstein-1 (earth mover's) distance between two weighted 1-D samples:
    the integral of |F_u - F_v| over the line."""
    u = np.asarray(u_values, dtype=np.float64).ravel()
    v = np.asarray(v_values, dtype=np.float64).ravel()
    wu = np.ones_like(u) if u_weights is None else np.asarray(u_weights, dtype=np.float64).ravel()
    wv = np.ones_like(v) if v_weights is None else np.asarray(v_weights, dtype=np.float64).ravel()
    for x, w, name in ((u, wu, "u"), (v, wv, "v")):
        if x.size == 0 or w.shape != x.shape or not np.all(np.isfinite(x)) or not np.all(np.isfinite(w)):
            raise InputError(f"{name}: need finite values with one finite weight each")
        if np.any(w < 0) or w.sum() <= 0:
            raise InputError(f"{name}: weights must be >= 0 with a positive sum")
    ou, ov = np.argsort(u), np.argsort(v)
    u, wu, v, wv = u[ou], wu[ou], v[ov], wv[ov]
    grid = np.sort(np.concatenate([u, v]))
    cu = np.concatenate([[0.0], np.cumsum(wu)]) / wu.sum()
    cv = np.concatenate([[0.0], np.cumsum(wv)]) / wv.sum()
    fu = cu[np.searchsorted(u, grid[:-1], side="right")]
    fv = cv[np.searchsorted(v, grid[:-1], side="right")]
    return float(np.sum(np.abs(fu - fv) * np.diff(grid)))


def _mixture_density(
    info: np.ndarray, weights: np.ndarray, bounds: tuple[float, float], x: np.ndarray
) -> np.ndarray:
    from scipy.stats import truncnorm

    dens = np.zeros_like(x)
    lo, hi = bounds
    for (mean, var), w in zip(info, weights):
        sd = np.sqrt(max(var, 1e-9))
        dens += w * truncnorm.pdf(x, (lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
    return dens


def _split_ensemble(m: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
        if a.shape[0] != 5:
            raise InputError(f"{name}: an ensemble matrix has 5 rows, got {a.shape[0]}")
        weights = np.ones(1)
    else:
        if a.ndim != 2 or a.shape[0] != 5:
            raise InputError(f"{name}: an ensemble matrix has shape (5, n_states), got {a.shape}")
        weights = a[4].copy()
        if weights.sum() > 1:
            weights = weights / weights.sum()
    if not np.all(np.isfinite(a[:4])) or np.any(a[[1, 3]] < 0):
        raise InputError(f"{name}: means must be finite and variances >= 0")
    return a[[0, 1]].T, a[[2, 3]].T, weights


def ensemble_distances(
    true_matrix: np.ndarray, pred_matrix: np.ndarray, size_support: int = 10**6
) -> tuple[float, float]:
    """Wasserstein-1 distances (alpha, K) between two ensembles.

    Each matrix is (5, n_states): mean alpha, variance of alpha, mean K, variance of K and the
    weight (frames or fraction) of each state, as the challenge's ensemble files; a 1-D (5,)
    array is a single state. Each state is a normal distribution truncated to alpha in
    [0, 1.999] and K in [1e-12, 1e6] (variances below 1e-9 count as 1e-9), evaluated on
    ``size_support`` points (alpha: linear grid; K: logarithmic grid, distance in K units).
    """
    if int(size_support) < 2:
        raise InputError("size_support must be >= 2")
    x_a = np.linspace(ALPHA_BOUNDS[0], ALPHA_BOUNDS[1], int(size_support))
    x_k = np.logspace(np.log10(K_BOUNDS[0]), np.log10(K_BOUNDS[1]), int(size_support))
    dens = []
    for m, name in ((true_matrix, "true"), (pred_matrix, "predicted")):
        a_info, k_info, w = _split_ensemble(m, name)
        dens.append((_mixture_density(a_info, w, ALPHA_BOUNDS, x_a), _mixture_density(k_info, w, K_BOUNDS, x_k)))
    for d_a, d_k in dens:
        if not (d_a.sum() > 0 and d_k.sum() > 0):
            raise InputError("an ensemble distribution has no mass on the grid")
    return (
        wasserstein1(x_a, x_a, dens[0][0], dens[1][0]),
        wasserstein1(x_k, x_k, dens[0][1], dens[1][1]),
    )


def framewise_scores(
    true_alpha: np.ndarray,
    true_K: np.ndarray,
    true_state: np.ndarray,
    pred_alpha: np.ndarray,
    pred_K: np.ndarray,
    pred_state: np.ndarray,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Per-frame versions: alpha MAE, K MSLE and micro F1 of the states over all frames where
    ``mask`` (default: where the true alpha is finite) is True. Arrays of any equal shape."""
    arrays = [np.asarray(x) for x in (true_alpha, true_K, true_state, pred_alpha, pred_K, pred_state)]
    if len({a.shape for a in arrays}) != 1:
        raise InputError(f"per-frame arrays differ in shape: {[a.shape for a in arrays]}")
    m = np.isfinite(arrays[0].astype(np.float64)) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != arrays[0].shape or not m.any():
        raise InputError("mask must have the arrays' shape and select at least one frame")
    ta, tk, ts, pa, pk, ps = (a[m].astype(np.float64) for a in arrays)
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(pk)) and np.all(np.isfinite(ps))):
        raise InputError("predictions contain NaN or inf in the scored frames")
    return {"alpha_mae": alpha_mae(ta, pa), "k_msle": k_msle(tk, pk), "state_f1": state_f1(ts, ps)}
