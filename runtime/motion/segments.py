"""From per-point network outputs to segments: change points, state smoothing, per-segment values.

One track at a time (numpy and ruptures, no torch):

1. **Change points** (:func:`change_points`), ``method``:

   * ``"network"``: peaks of the network's change-point probability. The network is trained on a
     bump of width 1 frame around each change point, so the sum of ``cp_prob`` over +-2 points
     divided by :data:`BUMP_MASS` estimates the probability that a segment starts there; peaks
     above ``threshold`` are kept, strongest first, at least ``min_dwell`` points apart.
   * ``"pelt"``, ``"window"``, ``"binseg"``: ruptures (PELT, sliding window, binary
     segmentation; L2 cost) on the network's per-point outputs (alpha, log K / 2 and the state
     probabilities) with penalty ``penalty`` (window: width ``2 * window_half``).
   * ``"combined"``: the change points of ruptures ``base`` kept where the network agrees
     (its estimated probability within +-``support`` points is at least ``confirm``), plus the
     network's own peaks above ``strong``.

2. **States** (:func:`smooth_states`): the most probable state of every point, then runs shorter
   than ``min_dwell`` points are merged into a neighbouring run (the one whose state is more
   probable over the short run), repeatedly, shortest first.
3. **Segments** (:func:`segment_track`): boundaries are the change points and the changes
   between immobile, confined and moving (free or directed: they differ only by alpha, so a
   segment is never cut between them); segments shorter than ``min_dwell`` are merged into a
   neighbour. Per segment: alpha and K the medians of the per-point values, the class with the
   largest mean probability; immobile segments get alpha = K = 0 and moving ones are directed
   when alpha >= 1.9 and free below, as the challenge labels them.

Points are counted from the track's first point; a change point is the first point of a segment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.motion.network import STATES, FramePredictions

__all__ = [
    "CP_METHODS",
    "BUMP_MASS",
    "SegmentConfig",
    "TrackSegments",
    "network_change_points",
    "ruptures_change_points",
    "change_points",
    "smooth_states",
    "segment_track",
]

CP_METHODS = ("network", "pelt", "window", "binseg", "combined")
BUMP_MASS = float(np.sum(np.exp(-0.5 * np.arange(-2, 3) ** 2)))  # a unit-width Gaussian bump over +-2 points
IMMOBILE, CONFINED, FREE, DIRECTED = 0, 1, 2, 3
ALPHA_DIRECTED = 1.9


@dataclasses.dataclass(frozen=True)
class SegmentConfig(StageConfig):
    """Options of the post-processing (points = frames of a track).

    method: one of :data:`CP_METHODS`. threshold: minimum network probability of a change point
    (network, combined). penalty: ruptures penalty on the L2 cost of the outputs (alpha,
    log K / 2, state probabilities). The defaults were chosen by change-point JSC on simulated
    validation experiments of the challenge's default settings (``combined`` about 0.01 above
    ``network`` and ``binseg``, 0.02 above ``window``; ``pelt`` scored like ``combined`` in
    benchmarks/bench_motion.py but is 15x slower).
    window_half: half-width of the ruptures window (points). base: the ruptures method of
    ``combined``. support / confirm: a ruptures change point is kept when the network gives at
    least ``confirm`` within +-``support`` points. strong: network peaks kept by ``combined`` on
    their own. min_dwell: shortest segment and shortest state run (points).
    """

    method: str = "combined"
    threshold: float = 0.5
    penalty: float = 2.0
    window_half: int = 8
    base: str = "binseg"
    support: int = 3
    confirm: float = 0.25
    strong: float = 0.7
    min_dwell: int = 4

    def validate(self) -> None:
        require(self.method in CP_METHODS, f"method must be one of {', '.join(CP_METHODS)}, got {self.method!r}")
        require(self.base in ("pelt", "window", "binseg"), f"base must be pelt, window or binseg, got {self.base!r}")
        require(0.0 < self.threshold <= 10.0 and 0.0 < self.strong <= 10.0, "threshold and strong must be > 0")
        require(self.penalty > 0, "penalty must be > 0")
        require(self.window_half >= 2 and self.support >= 0 and self.min_dwell >= 1,
                "window_half >= 2, support >= 0 and min_dwell >= 1")
        require(0.0 <= self.confirm <= 10.0, "confirm must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrackSegments:
    """Segments of one track of ``n`` points.

    change_points (k,) int64: first point of segments 2..k+1; states (n,) int64 smoothed
    per-point states; alpha, K (px^2/frame^alpha), state: (k+1,) per segment; start, end (k+1,)
    int64 first and last point of each segment (inclusive); state_prob (k+1, 4) the segment's
    mean state probabilities.
    """

    change_points: np.ndarray
    states: np.ndarray
    alpha: np.ndarray
    K: np.ndarray
    state: np.ndarray
    start: np.ndarray
    end: np.ndarray
    state_prob: np.ndarray

    @property
    def n_segments(self) -> int:
        return int(self.alpha.size)

    def per_point(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """alpha, K, state and segment index of every point (piecewise constant)."""
        lengths = self.end - self.start + 1
        seg = np.repeat(np.arange(self.n_segments), lengths)
        return self.alpha[seg], self.K[seg], self.state[seg], seg


def _cp_mass(cp_prob: np.ndarray) -> np.ndarray:
    """Estimated probability that a segment starts at each point (+-2 point sum over the bump mass)."""
    kernel = np.ones(5)
    return np.convolve(np.nan_to_num(cp_prob), kernel, mode="same") / BUMP_MASS


def _nms(candidates: np.ndarray, score: np.ndarray, n: int, min_dwell: int) -> np.ndarray:
    """Candidates strongest first, at least ``min_dwell`` apart and from both ends."""
    kept: list[int] = []
    for c in candidates[np.argsort(-score[candidates], kind="stable")]:
        c = int(c)
        if c < min_dwell or n - c < min_dwell:
            continue
        if all(abs(c - k) >= min_dwell for k in kept):
            kept.append(c)
    return np.array(sorted(kept), dtype=np.int64)


def network_change_points(cp_prob: np.ndarray, threshold: float = 0.5, min_dwell: int = 3) -> np.ndarray:
    """Change points (first points of new segments) from the network's per-point probability."""
    p = np.asarray(cp_prob, dtype=np.float64)
    n = p.size
    if n < 2 * min_dwell:
        return np.zeros(0, dtype=np.int64)
    mass = _cp_mass(p)
    left = np.r_[-np.inf, p[:-1]]
    right = np.r_[p[1:], -np.inf]
    peaks = np.flatnonzero((p >= left) & (p > right) & (mass >= threshold))
    return _nms(peaks, mass, n, min_dwell)


def _signal(pred: FramePredictions) -> np.ndarray:
    """The per-point outputs that ruptures segments: alpha, log K / 2, state probabilities."""
    log_k = np.log(np.maximum(pred.K, 1e-12))
    sig = np.column_stack([pred.alpha, 0.5 * log_k, pred.state_prob])
    return np.ascontiguousarray(np.nan_to_num(sig))


def ruptures_change_points(signal: np.ndarray, method: str, penalty: float, min_dwell: int = 3,
                           window_half: int = 8) -> np.ndarray:
    """Change points of an (n, d) signal by ruptures ``method`` (pelt, window, binseg; L2 cost)."""
    import ruptures as rpt

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    if n < 2 * min_dwell + 1:
        return np.zeros(0, dtype=np.int64)
    if method == "pelt":
        algo = rpt.Pelt(model="l2", min_size=min_dwell, jump=1)
    elif method == "binseg":
        algo = rpt.Binseg(model="l2", min_size=min_dwell, jump=1)
    elif method == "window":
        width = 2 * int(window_half)
        if n <= width:
            return np.zeros(0, dtype=np.int64)
        algo = rpt.Window(width=width, model="l2", min_size=min_dwell, jump=1)
    else:
        raise InputError(f"unknown ruptures method {method!r}; use pelt, window or binseg")
    bkps = algo.fit(x).predict(pen=float(penalty))
    return np.array([int(b) for b in bkps if 0 < b < n], dtype=np.int64)


def change_points(pred: FramePredictions, cfg: SegmentConfig | None = None) -> np.ndarray:
    """Change points of one track by ``cfg.method`` (see the module docstring)."""
    cfg = cfg or SegmentConfig()
    n = pred.n
    if n < 2 * cfg.min_dwell:
        return np.zeros(0, dtype=np.int64)
    if cfg.method == "network":
        return network_change_points(pred.cp_prob, cfg.threshold, cfg.min_dwell)
    base = cfg.base if cfg.method == "combined" else cfg.method
    found = ruptures_change_points(_signal(pred), base, cfg.penalty, cfg.min_dwell, cfg.window_half)
    if cfg.method != "combined":
        return found
    mass = _cp_mass(pred.cp_prob)
    kept = []
    for c in found:
        lo, hi = max(0, c - cfg.support), min(n, c + cfg.support + 1)
        if mass[lo:hi].max() >= cfg.confirm:
            kept.append(int(lo + np.argmax(mass[lo:hi])))  # moved to the network's peak
    strong = network_change_points(pred.cp_prob, cfg.strong, cfg.min_dwell)
    candidates = np.unique(np.array(kept + list(strong), dtype=np.int64))
    return _nms(candidates, mass, n, cfg.min_dwell)


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of runs of equal values."""
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, labels.size]
    return starts, ends


def smooth_states(state_prob: np.ndarray, min_dwell: int = 3) -> np.ndarray:
    """Most probable state per point (n, 4) -> (n,) int64, with runs shorter than ``min_dwell``
    merged into the neighbouring run whose state is more probable over them."""
    p = np.asarray(state_prob, dtype=np.float64)
    s = np.argmax(np.nan_to_num(p, nan=-1.0), axis=1).astype(np.int64)
    if s.size == 0:
        return s
    while True:
        starts, ends = _runs(s)
        if starts.size == 1:
            return s
        lengths = ends - starts
        i = int(np.argmin(lengths))
        if lengths[i] >= min_dwell:
            return s
        lo, hi = starts[i], ends[i]
        options = []
        if i > 0:
            options.append(s[lo - 1])
        if i < starts.size - 1:
            options.append(s[hi])
        best = max(options, key=lambda k: float(np.sum(p[lo:hi, k])))
        s[lo:hi] = best


def _motion_classes(state_prob: np.ndarray) -> np.ndarray:
    """Probabilities (..., 4) -> (..., 3): immobile, confined, moving (free or directed). Free and
    directed differ only by alpha (directed: alpha >= 1.9), so segments are not cut between them;
    each moving segment is labelled by its alpha."""
    p = np.asarray(state_prob, dtype=np.float64)
    return np.concatenate([p[..., :2], p[..., 2:3] + p[..., 3:4]], axis=-1)


def _merge_short(bounds: list[int], n: int, min_dwell: int, strength: np.ndarray) -> list[int]:
    """Drop the weakest boundary of any segment shorter than ``min_dwell`` until none is left."""
    b = sorted(set(int(x) for x in bounds if 0 < x < n))
    while b:
        edges = [0] + b + [n]
        lengths = np.diff(edges)
        i = int(np.argmin(lengths))
        if lengths[i] >= min_dwell:
            break
        choices = [j for j in (i - 1, i) if 0 <= j < len(b)]  # boundaries at either end of segment i
        drop = min(choices, key=lambda j: strength[b[j]])
        del b[drop]
    return b


def segment_track(pred: FramePredictions, cfg: SegmentConfig | None = None,
                  cps: np.ndarray | None = None) -> TrackSegments:
    """Segments of one track from its per-point predictions (``cps``: change points to use instead
    of :func:`change_points`)."""
    cfg = cfg or SegmentConfig()
    n = pred.n
    if n == 0:
        raise InputError("cannot segment a track without points")
    if not np.all(np.isfinite(pred.alpha)):
        z = np.zeros(0, dtype=np.int64)
        return TrackSegments(z, np.full(n, -1, dtype=np.int64), np.array([np.nan]), np.array([np.nan]),
                             np.array([-1]), np.array([0]), np.array([n - 1]), np.full((1, len(STATES)), np.nan))
    states = smooth_states(_motion_classes(pred.state_prob), cfg.min_dwell)
    found = change_points(pred, cfg) if cps is None else np.asarray(cps, dtype=np.int64)
    state_changes = np.flatnonzero(states[1:] != states[:-1]) + 1
    strength = _cp_mass(pred.cp_prob)
    strength[state_changes] += 1.0  # a state change outranks a change point without one
    bounds = _merge_short(list(found) + list(state_changes), n, cfg.min_dwell, strength)
    edges = np.array([0] + bounds + [n], dtype=np.int64)
    k = edges.size - 1
    alpha, K, state = np.empty(k), np.empty(k), np.empty(k, dtype=np.int64)
    probs = np.empty((k, pred.state_prob.shape[1]))
    for j in range(k):
        lo, hi = edges[j], edges[j + 1]
        probs[j] = np.mean(pred.state_prob[lo:hi], axis=0)
        st = int(np.argmax(_motion_classes(probs[j])))
        a = float(np.median(pred.alpha[lo:hi]))
        kk = float(np.median(pred.K[lo:hi]))
        if st == IMMOBILE:
            a, kk = 0.0, 0.0
        elif st == FREE:
            st = DIRECTED if a >= ALPHA_DIRECTED else FREE
        alpha[j], K[j], state[j] = a, kk, st
    return TrackSegments(np.array(bounds, dtype=np.int64), states, alpha, K, state, edges[:-1], edges[1:] - 1, probs)
