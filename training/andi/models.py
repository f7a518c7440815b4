"""The five phenomenological models of the 2nd AnDi Challenge, vectorised over many particles.

Models (definitions of ``andi_datasets.models_phenom``): single state, multi-state (Markov
switching of alpha and K), immobile traps, dimerisation and transient confinement. Every
particle moves by fractional Brownian motion whose parameters depend on its current state; each
time its state changes, a fresh exact fGn series starts with the new parameters (no memory across
a change). Positions are px, time is frames, K is px^2/frame^alpha with per-coordinate MSD
``2 K t^alpha`` (see :mod:`.fbm`).

Parameter distributions follow the reference: each ``(mean, variance)`` pair is a normal
distribution truncated to alpha in [0, 1.999] and K in [1e-12, 1e6]; a variance of 0 means the
value is fixed. Diffusive-state labels per frame: 0 immobile, 1 confined, 2 free, 3 directed
(free motion with alpha >= 1.9).

Which displacement a frame's label governs follows each reference model: for single state,
multi-state and confinement the label of frame t governs the step t -> t+1 (confinement: the
state is decided by where the particle landed); for immobile traps and dimerisation the label of
frame t governs the step t-1 -> t (a particle trapped at frame t has not moved since t-1).

Many experiments (fields of view) are simulated at once: pass one configuration per experiment.
Particles of one experiment share its box, traps and compartments, and only they interact.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, Union

import numpy as np
import pandas as pd

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import ConfigError, InputError

from . import kernels as andi_kernels
from .fbm import fgn, fgn_segments

__all__ = [
    "ALPHA_BOUNDS",
    "K_BOUNDS",
    "ALPHA_DIRECTED",
    "IMMOBILE",
    "CONFINED",
    "FREE",
    "DIRECTED",
    "SingleState",
    "MultiState",
    "ImmobileTraps",
    "Dimerization",
    "Confinement",
    "MODEL_CONFIGS",
    "Trajectories",
    "sample_truncated_normal",
    "simulate",
]

ALPHA_BOUNDS = (0.0, 1.999)
K_BOUNDS = (1e-12, 1e6)
ALPHA_DIRECTED = 1.9
IMMOBILE, CONFINED, FREE, DIRECTED = 0, 1, 2, 3

Pair = tuple[float, float]


def _pair(value: Any, name: str) -> Pair:
    if np.ndim(value) == 0:
        return (float(value), 0.0)
    v = tuple(float(x) for x in value)
    require(len(v) == 2, f"{name} must be a number or a (mean, variance) pair, got {value!r}")
    return v  # type: ignore[return-value]


def _pairs(value: Any, name: str) -> tuple[Pair, ...]:
    return tuple(_pair(v, f"{name}[{i}]") for i, v in enumerate(value))


def _check_pair(p: Pair, bounds: tuple[float, float], name: str) -> None:
    require(np.isfinite(p[0]) and np.isfinite(p[1]) and p[1] >= 0, f"{name}: bad (mean, variance) {p}")
    if p[1] == 0:
        require(bounds[0] <= p[0] <= bounds[1], f"{name}: fixed value {p[0]} outside {bounds}")


class _PhenomConfig(StageConfig):
    """Shared normalisation: numbers and lists become (mean, variance) tuples."""

    _pair_fields: tuple[str, ...] = ()
    _pairs_fields: tuple[str, ...] = ()
    _tuple_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            for f in self._pair_fields:
                object.__setattr__(self, f, _pair(getattr(self, f), f))
            for f in self._pairs_fields:
                object.__setattr__(self, f, _pairs(getattr(self, f), f))
            for f in self._tuple_fields:
                v = getattr(self, f)
                if v is not None:
                    object.__setattr__(self, f, tuple(np.asarray(v, dtype=float).ravel().tolist()))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{type(self).__name__}: {exc}") from None
        self.validate()

    def _check_box(self, required: bool) -> None:
        L = getattr(self, "L")
        if required:
            require(L is not None and np.isfinite(L) and L > 0, f"{type(self).__name__}: L must be > 0")
        else:
            require(L is None or (np.isfinite(L) and L > 0), f"{type(self).__name__}: L must be None or > 0")

    def _check_states(self, n_states: int) -> None:
        name = type(self).__name__
        require(len(self.alpha) == n_states and len(self.K) == n_states,
                f"{name}: alpha and K need {n_states} (mean, variance) pairs")
        for i in range(n_states):
            _check_pair(self.alpha[i], ALPHA_BOUNDS, f"{name}.alpha[{i}]")
            _check_pair(self.K[i], K_BOUNDS, f"{name}.K[{i}]")


@dataclasses.dataclass(frozen=True)
class SingleState(_PhenomConfig):
    """One state per particle. ``alpha``, ``K``: (mean, variance); ``L``: box side in px or None
    (no box, trajectories start at the origin)."""

    alpha: Pair = (1.0, 0.0)
    K: Pair = (1.0, 0.0)
    L: float | None = None
    _pair_fields = ("alpha", "K")

    def validate(self) -> None:
        _check_pair(self.alpha, ALPHA_BOUNDS, "SingleState.alpha")
        _check_pair(self.K, K_BOUNDS, "SingleState.K")
        self._check_box(required=False)


@dataclasses.dataclass(frozen=True)
class MultiState(_PhenomConfig):
    """Markov switching between states with per-frame transition matrix ``M`` (rows sum to 1).

    ``alpha[k]``, ``K[k]``: (mean, variance) of state k, drawn once per particle. ``init_state``:
    initial state or None (uniform). ``epsilon_a[k-1]`` (0 = off): redraw alpha of state k until
    ``alpha[k-1] - alpha[k] >= epsilon_a``; ``gamma_d[k-1]`` (1 = off): redraw K of state k until
    ``K[k] <= gamma K[k-1]`` (gamma < 1) or ``K[k] >= gamma K[k-1]`` (gamma > 1).
    """

    M: tuple[tuple[float, ...], ...] = ((0.9, 0.1), (0.1, 0.9))
    alpha: tuple[Pair, ...] = ((1.0, 0.0), (1.0, 0.0))
    K: tuple[Pair, ...] = ((1.0, 0.0), (0.1, 0.0))
    L: float | None = None
    init_state: int | None = None
    epsilon_a: tuple[float, ...] | None = None
    gamma_d: tuple[float, ...] | None = None
    _pairs_fields = ("alpha", "K")
    _tuple_fields = ("epsilon_a", "gamma_d")

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "M", tuple(tuple(float(x) for x in row) for row in self.M))
        except TypeError as exc:
            raise ConfigError(f"MultiState.M: {exc}") from None
        super().__post_init__()

    def validate(self) -> None:
        m = np.asarray(self.M, dtype=float)
        s = m.shape[0] if m.ndim == 2 else 0
        require(m.ndim == 2 and m.shape == (s, s) and s >= 1, "MultiState.M must be a square matrix")
        require(np.all(m >= 0) and np.allclose(m.sum(1), 1.0),
                "MultiState.M rows must be probabilities summing to 1")
        self._check_states(s)
        self._check_box(required=False)
        require(self.init_state is None or 0 <= self.init_state < s, "MultiState.init_state out of range")
        for f in ("epsilon_a", "gamma_d"):
            v = getattr(self, f)
            require(v is None or len(v) == s - 1, f"MultiState.{f} needs {s - 1} values")
        require(self.gamma_d is None or all(g > 0 for g in self.gamma_d), "MultiState.gamma_d must be > 0")

    @property
    def n_states(self) -> int:
        return len(self.M)


@dataclasses.dataclass(frozen=True)
class ImmobileTraps(_PhenomConfig):
    """Free particles (``alpha``, ``K``) that, within ``r`` px of one of ``n_traps`` traps placed
    uniformly in the ``L`` x ``L`` box, bind with probability ``Pb`` per frame and stay immobile
    until they unbind with probability ``Pu`` per frame."""

    L: float = 100.0
    r: float = 1.0
    Pu: float = 0.1
    Pb: float = 0.01
    alpha: Pair = (1.0, 0.0)
    K: Pair = (1.0, 0.0)
    n_traps: int = 10
    _pair_fields = ("alpha", "K")

    def validate(self) -> None:
        _check_pair(self.alpha, ALPHA_BOUNDS, "ImmobileTraps.alpha")
        _check_pair(self.K, K_BOUNDS, "ImmobileTraps.K")
        self._check_box(required=True)
        require(self.r > 0, "ImmobileTraps.r must be > 0")
        require(0 <= self.Pu <= 1 and 0 <= self.Pb <= 1, "ImmobileTraps.Pu and Pb must be in [0, 1]")
        require(int(self.n_traps) == self.n_traps and self.n_traps >= 0,
                "ImmobileTraps.n_traps must be an integer >= 0")


@dataclasses.dataclass(frozen=True)
class Dimerization(_PhenomConfig):
    """Particles of radius ``r`` px closer than ``2 r`` bind in pairs with probability ``Pb`` per
    frame and move together (state 1: ``alpha[1]``, ``K[1]`` of the lower-index particle, or with
    ``stokes`` K = 1 / (1/K_a + 1/K_b)); a pair splits with probability ``Pu`` per frame.
    ``epsilon_a`` (0 = off): redraw the pair's alpha until ``min(free alphas) - alpha >= epsilon_a``."""

    L: float = 100.0
    r: float = 1.0
    Pu: float = 0.1
    Pb: float = 0.01
    alpha: tuple[Pair, ...] = ((1.0, 0.0), (1.0, 0.0))
    K: tuple[Pair, ...] = ((1.0, 0.0), (0.1, 0.0))
    epsilon_a: float = 0.0
    stokes: bool = False
    _pairs_fields = ("alpha", "K")

    def validate(self) -> None:
        self._check_states(2)
        self._check_box(required=True)
        require(self.r > 0, "Dimerization.r must be > 0")
        require(0 <= self.Pu <= 1 and 0 <= self.Pb <= 1, "Dimerization.Pu and Pb must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Confinement(_PhenomConfig):
    """``n_compartments`` non-overlapping circles of radius ``r`` px in the ``L`` x ``L`` box whose
    rim a particle inside crosses with probability ``trans`` (it is reflected otherwise).
    State 0 (free): ``alpha[0]``, ``K[0]``; state 1 (confined): ``alpha[1]``, ``K[1]``.
    ``epsilon_a``/``gamma_d``: constraints between the two states, as in :class:`MultiState`."""

    L: float = 100.0
    alpha: tuple[Pair, ...] = ((1.0, 0.0), (1.0, 0.0))
    K: tuple[Pair, ...] = ((1.0, 0.0), (0.1, 0.0))
    r: float = 1.0
    n_compartments: int = 10
    trans: float = 0.1
    epsilon_a: tuple[float, ...] | None = None
    gamma_d: tuple[float, ...] | None = None
    _pairs_fields = ("alpha", "K")
    _tuple_fields = ("epsilon_a", "gamma_d")

    def validate(self) -> None:
        self._check_states(2)
        self._check_box(required=True)
        require(self.r > 0 and 2 * self.r < self.L, "Confinement.r must be > 0 and 2 r < L")
        require(0 <= self.trans <= 1, "Confinement.trans must be in [0, 1]")
        require(int(self.n_compartments) == self.n_compartments and self.n_compartments >= 0,
                "Confinement.n_compartments must be an integer >= 0")
        for f in ("epsilon_a", "gamma_d"):
            v = getattr(self, f)
            require(v is None or len(v) == 1, f"Confinement.{f} needs 1 value")


PhenomConfig = Union[SingleState, MultiState, ImmobileTraps, Dimerization, Confinement]

MODEL_CONFIGS: dict[str, type] = {
    "single_state": SingleState,
    "multi_state": MultiState,
    "immobile_traps": ImmobileTraps,
    "dimerization": Dimerization,
    "confinement": Confinement,
}
_MODEL_NAMES = {cls: name for name, cls in MODEL_CONFIGS.items()}


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectories:
    """Simulated trajectories with per-frame ground truth.

    Each trajectory is present on one run of consecutive frames.

    Attributes
    ----------
    positions : (N, T, 2) float64, px; ``[..., 0]`` is y (row), ``[..., 1]`` is x (column); NaN
        where the trajectory is absent.
    alpha : (N, T) float64 anomalous exponent (0 for immobile frames); NaN where absent.
    K : (N, T) float64 generalised diffusion coefficient, px^2/frame^alpha; NaN where absent.
    state : (N, T) int8 diffusive state, 0 immobile, 1 confined, 2 free, 3 directed; -1 absent.
    state_num : (N, T) int8 model-internal state (multi-state index, 1 = bound/dimer/confined);
        -1 where absent.
    experiment : (N,) int64 experiment (field of view) of each trajectory.
    model : name of the model (a key of :data:`MODEL_CONFIGS`).
    """

    positions: np.ndarray
    alpha: np.ndarray
    K: np.ndarray
    state: np.ndarray
    state_num: np.ndarray
    experiment: np.ndarray
    model: str

    def __post_init__(self) -> None:
        n, t = self.alpha.shape
        if self.positions.shape != (n, t, 2):
            raise InputError(f"positions must have shape {(n, t, 2)}, got {self.positions.shape}")
        for name in ("K", "state", "state_num"):
            if getattr(self, name).shape != (n, t):
                raise InputError(f"{name} must have shape {(n, t)}")
        if self.experiment.shape != (n,):
            raise InputError(f"experiment must have shape {(n,)}")

    @property
    def n_trajectories(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.alpha.shape[1])

    @property
    def present(self) -> np.ndarray:
        """(N, T) bool: frames where each trajectory exists."""
        return self.state >= 0

    @property
    def first_frame(self) -> np.ndarray:
        """(N,) int64 first frame of each trajectory."""
        return np.argmax(self.present, axis=1).astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64 number of frames of each trajectory."""
        return self.present.sum(axis=1).astype(np.int64)

    def change_points(self) -> list[np.ndarray]:
        """Per trajectory, the frames (counted from its first frame) at which alpha, K or the
        state differ from the previous frame: the first frame of each new segment."""
        pres = self.present
        both = pres[:, 1:] & pres[:, :-1]
        diff = both & (
            (self.alpha[:, 1:] != self.alpha[:, :-1])
            | (self.K[:, 1:] != self.K[:, :-1])
            | (self.state[:, 1:] != self.state[:, :-1])
        )
        rows, cols = np.nonzero(diff)
        rel = cols + 1 - self.first_frame[rows]
        split = np.searchsorted(rows, np.arange(1, self.n_trajectories))
        return [a.astype(np.int64) for a in np.split(rel, split)]

    def segment_rows(self) -> list[list[float]]:
        """Ground truth in the challenge's label-file layout, one list per trajectory:
        ``[traj_idx, K_1, alpha_1, state_1, CP_1, K_2, ..., K_n, alpha_n, state_n, T]``
        (change points and T counted in frames from the trajectory's first point)."""
        rows = []
        first, lengths = self.first_frame, self.lengths
        for i, cps in enumerate(self.change_points()):
            ends = np.append(cps, lengths[i]) - 1 + first[i]  # last frame of each segment
            row: list[float] = [float(i)]
            for k, end in enumerate(ends):
                row += [float(self.K[i, end]), float(self.alpha[i, end]), float(self.state[i, end])]
                row.append(float(cps[k]) if k < cps.size else float(lengths[i]))
            rows.append(row)
        return rows

    def to_dataframe(self) -> pd.DataFrame:
        """One row per present point: ``traj_idx, frame, y, x, alpha, K, state`` (plus
        ``experiment``), sorted by trajectory then frame."""
        rows, frames = np.nonzero(self.present)
        return pd.DataFrame(
            {
                "traj_idx": rows.astype(np.int64),
                "frame": frames.astype(np.int64),
                "y": self.positions[rows, frames, 0],
                "x": self.positions[rows, frames, 1],
                "alpha": self.alpha[rows, frames],
                "K": self.K[rows, frames],
                "state": self.state[rows, frames],
                "experiment": self.experiment[rows],
            }
        )


# ----------------------------------------------------------------------------- sampling helpers


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def sample_truncated_normal(
    mean: np.ndarray, var: np.ndarray, bounds: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Draws from normal distributions N(mean, var) truncated to ``bounds`` (inverse CDF).

    ``mean`` and ``var`` broadcast; where ``var == 0`` the value is ``mean`` itself.
    """
    from scipy.special import ndtr, ndtri

    mean, var = np.broadcast_arrays(np.asarray(mean, float), np.asarray(var, float))
    out = np.array(mean, dtype=np.float64, copy=True)
    lo, hi = bounds
    fixed = var <= 0
    if np.any(fixed & ((mean < lo) | (mean > hi))):
        raise ConfigError(f"fixed value outside {bounds}")
    m = ~fixed
    if not m.any():
        return out
    sd = np.sqrt(var[m])
    a = (lo - mean[m]) / sd
    b = (hi - mean[m]) / sd
    flip = a > 0  # sample the mirrored interval so that the CDF stays away from 1
    a2 = np.where(flip, -b, a)
    b2 = np.where(flip, -a, b)
    pa, pb = ndtr(a2), ndtr(b2)
    z = ndtri(pa + rng.random(a.size) * (pb - pa))
    z = np.clip(np.where(flip, -z, z), a, b)
    out[m] = mean[m] + sd * z
    return np.clip(out, lo, hi)


def _per_experiment(cfgs: Sequence[Any], name: str) -> np.ndarray:
    return np.array([getattr(c, name) for c in cfgs], dtype=np.float64)


def _state_specs(cfgs: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(E, S) means and variances of the per-state pairs ``name`` ('alpha' or 'K')."""
    arr = np.array([getattr(c, name) for c in cfgs], dtype=np.float64)
    if arr.ndim == 2:  # single-state pairs
        arr = arr[:, None, :]
    return arr[..., 0], arr[..., 1]


def _sample_state_params(
    cfgs: Sequence[Any], group: np.ndarray, rng: np.random.Generator, constrained: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per particle and state: alpha (N, S) and K (N, S), with the epsilon/gamma constraints."""
    am, av = _state_specs(cfgs, "alpha")
    km, kv = _state_specs(cfgs, "K")
    am, av, km, kv = am[group], av[group], km[group], kv[group]
    n, s = am.shape
    alpha = np.empty((n, s))
    K = np.empty((n, s))
    eps = np.zeros((len(cfgs), max(s - 1, 0)))
    gam = np.ones((len(cfgs), max(s - 1, 0)))
    if constrained:
        for e, c in enumerate(cfgs):
            if c.epsilon_a is not None:
                eps[e] = c.epsilon_a
            if c.gamma_d is not None:
                gam[e] = c.gamma_d
    eps, gam = eps[group], gam[group]
    for k in range(s):
        alpha[:, k] = sample_truncated_normal(am[:, k], av[:, k], ALPHA_BOUNDS, rng)
        K[:, k] = sample_truncated_normal(km[:, k], kv[:, k], K_BOUNDS, rng)
        if k == 0:
            continue
        for _ in range(101):
            bad_a = (eps[:, k - 1] != 0) & (alpha[:, k - 1] - alpha[:, k] < eps[:, k - 1])
            g = gam[:, k - 1]
            bad_k = ((g < 1) & (K[:, k] > K[:, k - 1] * g)) | ((g > 1) & (K[:, k] < K[:, k - 1] * g))
            if not (bad_a.any() or bad_k.any()):
                break
            if bad_a.any():
                alpha[bad_a, k] = sample_truncated_normal(am[bad_a, k], av[bad_a, k], ALPHA_BOUNDS, rng)
            if bad_k.any():
                K[bad_k, k] = sample_truncated_normal(km[bad_k, k], kv[bad_k, k], K_BOUNDS, rng)
        else:
            raise ConfigError(
                f"could not draw parameters of state {k} meeting epsilon_a/gamma_d in 100 tries; "
                "the state distributions are probably too close"
            )
    return alpha, K


def _free_label(alpha: np.ndarray) -> np.ndarray:
    return np.where(alpha >= ALPHA_DIRECTED, DIRECTED, FREE).astype(np.int8)


def _uniform_in_box(L: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.random((L.size, 2)) * L[:, None]


def _box(L: np.ndarray) -> np.ndarray:
    """Box sides per particle with 'no box' encoded as 0 for the kernels."""
    return np.ascontiguousarray(np.where(np.isnan(L), 0.0, L))


def _result(model: str, pos, alpha, K, state, state_num, group) -> Trajectories:
    return Trajectories(
        positions=np.ascontiguousarray(pos, dtype=np.float64),
        alpha=np.ascontiguousarray(alpha, dtype=np.float64),
        K=np.ascontiguousarray(K, dtype=np.float64),
        state=np.ascontiguousarray(state, dtype=np.int8),
        state_num=np.ascontiguousarray(state_num, dtype=np.int8),
        experiment=np.asarray(group, dtype=np.int64),
        model=model,
    )


def _start_positions(L: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform in the box where there is one, the origin otherwise."""
    start = np.zeros((L.size, 2))
    has = ~np.isnan(L)
    if has.any():
        start[has] = _uniform_in_box(L[has], rng)
    return start


# ----------------------------------------------------------------------------- models


def _single_state(cfgs, group, n_frames, rng) -> Trajectories:
    alpha, K = _sample_state_params(cfgs, group, rng, constrained=False)
    alpha, K = alpha[:, 0], K[:, 0]
    L = np.array([np.nan if c.L is None else c.L for c in cfgs])[group]
    steps = fgn(alpha, n_frames - 1, rng) * np.sqrt(2.0 * K)[:, None, None]
    pos = andi_kernels.integrate_reflecting(_start_positions(L, rng), steps, _box(L))
    t = n_frames
    return _result(
        "single_state", pos, np.repeat(alpha[:, None], t, 1), np.repeat(K[:, None], t, 1),
        np.repeat(_free_label(alpha)[:, None], t, 1), np.zeros((alpha.size, t)), group,
    )


def _markov_chain(mcum: np.ndarray, s0: np.ndarray, n_frames: int, rng) -> np.ndarray:
    """States (N, T): s[:, t] drawn from the rows of the cumulative matrices ``mcum`` (N, S, S)."""
    n, s = mcum.shape[0], mcum.shape[1]
    states = np.empty((n, n_frames), dtype=np.int64)
    states[:, 0] = s0
    u = rng.random((n, max(n_frames - 1, 0)))
    rows = np.arange(n)
    for t in range(1, n_frames):
        cum = mcum[rows, states[:, t - 1]]
        states[:, t] = np.minimum((u[:, t - 1, None] >= cum).sum(1), s - 1)
    return states


def _multi_state(cfgs, group, n_frames, rng) -> Trajectories:
    s = cfgs[0].n_states
    if any(c.n_states != s for c in cfgs):
        raise ConfigError("all MultiState experiments simulated together need the same number of states")
    alpha_s, K_s = _sample_state_params(cfgs, group, rng, constrained=True)
    n = group.size
    mcum = np.cumsum(np.array([c.M for c in cfgs], dtype=np.float64), axis=2)[group]
    init = np.array([-1 if c.init_state is None else c.init_state for c in cfgs])[group]
    s0 = np.where(init >= 0, init, rng.integers(0, s, size=n))
    states = _markov_chain(mcum, s0, n_frames, rng)
    rows = np.arange(n)[:, None]
    alpha_t, K_t = alpha_s[rows, states], K_s[rows, states]
    # segments of constant state; the step t -> t+1 belongs to the segment of frame t
    t1 = n_frames - 1
    new_seg = np.ones((n, t1), dtype=bool)
    if t1 > 1:
        new_seg[:, 1:] = states[:, 1:t1] != states[:, : t1 - 1]
    seg_r, seg_t = np.nonzero(new_seg)  # row-major: sorted by particle then time
    ends = np.append(seg_t[1:], t1)
    ends[np.append(seg_r[1:] != seg_r[:-1], True)] = t1
    noise = fgn_segments(alpha_t[seg_r, seg_t], ends - seg_t, rng).reshape(n, t1, 2)
    steps = noise * np.sqrt(2.0 * K_t[:, :t1])[:, :, None]
    L = np.array([np.nan if c.L is None else c.L for c in cfgs])[group]
    pos = andi_kernels.integrate_reflecting(_start_positions(L, rng), steps, _box(L))
    return _result("multi_state", pos, alpha_t, K_t, _free_label(alpha_t), states, group)


def _fixed_points(points: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.all(np.isfinite(p)):
        raise InputError(f"{name} must be a finite (n, 2) array of (y, x) positions in px, got shape {p.shape}")
    return p


def _trap_index(traps: np.ndarray, trap_group: np.ndarray, n_groups: int, r_max: float, L_max: float):
    """Traps sorted into square cells (side >= r_max) per experiment, with the CSR start of
    every cell; at most about 4 million cells in all."""
    ncell = max(1, min(int(L_max / r_max), int(np.sqrt(float(1 << 22) / n_groups))))
    cell = L_max / ncell
    cy = np.clip((traps[:, 0] // cell).astype(np.int64), 0, ncell - 1)
    cx = np.clip((traps[:, 1] // cell).astype(np.int64), 0, ncell - 1)
    keys = (trap_group.astype(np.int64) * ncell + cy) * ncell + cx
    order = np.argsort(keys, kind="stable")
    starts = np.zeros(n_groups * ncell * ncell + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_groups * ncell * ncell), out=starts[1:])
    return starts, np.ascontiguousarray(traps[order]), float(cell), ncell


def _immobile_traps(cfgs, group, n_frames, rng, traps=None) -> Trajectories:
    alpha, K = _sample_state_params(cfgs, group, rng, constrained=False)
    alpha, K = alpha[:, 0], K[:, 0]
    n = group.size
    L = _per_experiment(cfgs, "L")
    r = _per_experiment(cfgs, "r")
    Pu, Pb = _per_experiment(cfgs, "Pu")[group], _per_experiment(cfgs, "Pb")[group]
    if traps is None:
        counts = np.array([int(c.n_traps) for c in cfgs])
        trap_group = np.repeat(np.arange(len(cfgs)), counts)
        traps = rng.random((trap_group.size, 2)) * L[trap_group, None]
    else:
        traps = _fixed_points(traps, "traps")
        trap_group = np.tile(np.arange(len(cfgs)), (traps.shape[0], 1)).T.ravel()
        traps = np.tile(traps, (len(cfgs), 1))
    cell_start, trap_xy, cell, ncell = _trap_index(traps, trap_group, len(cfgs), float(r.max()), float(L.max()))
    Lp, rp = L[group], np.ascontiguousarray(r[group])
    pos = np.empty((n, n_frames, 2))
    pos[:, 0] = _uniform_in_box(Lp, rng)
    steps = np.zeros((n, n_frames, 2))  # steps[:, t]: move t-1 -> t
    steps[:, 1:] = fgn(alpha, n_frames - 1, rng) * np.sqrt(2.0 * K)[:, None, None]
    bound = np.zeros((n, n_frames), dtype=bool)
    for t in range(1, n_frames):
        u_unbind, u_bind = rng.random(n), rng.random(n)
        prev = bound[:, t - 1]
        leaves = prev & (u_unbind < Pu)
        cand = np.flatnonzero(~prev & (u_bind < Pb))
        now = prev & ~leaves
        if cand.size:
            near = andi_kernels.near_any_point(
                np.ascontiguousarray(pos[cand, t - 1]), group[cand], rp[cand], cell_start, trap_xy,
                cell, ncell,
            )
            now[cand[near]] = True
        bound[:, t] = now
        released = np.flatnonzero(leaves)
        if released.size:  # a fresh fGn starts at release
            fresh = fgn(alpha[released], n_frames - t, rng)
            steps[released, t:] = fresh * np.sqrt(2.0 * K[released])[:, None, None]
        move = np.where(now[:, None], 0.0, steps[:, t])
        nxt = pos[:, t - 1] + move
        andi_kernels.fold_into_box(nxt, Lp)
        pos[:, t] = nxt
    free = ~bound
    alpha_t = np.where(free, alpha[:, None], 0.0)
    K_t = np.where(free, K[:, None], 0.0)
    state = np.where(free, _free_label(alpha)[:, None], IMMOBILE)
    return _result("immobile_traps", pos, alpha_t, K_t, state, bound.astype(np.int8), group)


def _dimerization(cfgs, group, n_frames, rng) -> Trajectories:
    alpha_s, K_s = _sample_state_params(cfgs, group, rng, constrained=False)  # (N, 2)
    n = group.size
    L = _per_experiment(cfgs, "L")
    starts = np.searchsorted(group, np.arange(len(cfgs) + 1)).astype(np.int64)
    radius = _per_experiment(cfgs, "r")
    Pu, Pb = _per_experiment(cfgs, "Pu"), _per_experiment(cfgs, "Pb")
    eps = _per_experiment(cfgs, "epsilon_a")
    stokes = np.array([bool(c.stokes) for c in cfgs])
    am, av = _state_specs(cfgs, "alpha")
    Lp = L[group]
    pos = np.empty((n, n_frames, 2))
    pos[:, 0] = _uniform_in_box(Lp, rng)
    steps = np.zeros((n, n_frames, 2))  # steps[:, t]: move t-1 -> t
    steps[:, 1:] = fgn(alpha_s[:, 0], n_frames - 1, rng) * np.sqrt(2.0 * K_s[:, 0])[:, None, None]
    cur_a, cur_k = alpha_s[:, 0].copy(), K_s[:, 0].copy()
    alpha_t = np.empty((n, n_frames))
    K_t = np.empty((n, n_frames))
    bound = np.zeros((n, n_frames), dtype=bool)
    alpha_t[:, 0], K_t[:, 0] = cur_a, cur_k
    partner = -np.ones(n, dtype=np.int64)
    for t in range(1, n_frames):
        new, split = andi_kernels.dimer_step(
            np.ascontiguousarray(pos[:, t - 1]), partner, starts, radius, Pu, Pb, rng
        )
        lo = np.flatnonzero((new > np.arange(n)) & (partner < 0))  # newly formed pairs
        hi = new[lo]
        freed = np.flatnonzero(split)
        if freed.size:
            cur_a[freed], cur_k[freed] = alpha_s[freed, 0], K_s[freed, 0]
        if lo.size:
            g = group[lo]
            a_new = alpha_s[lo, 1].copy()
            need = eps[g] != 0
            for _ in range(101):
                bad = need & (np.minimum(alpha_s[lo, 0], alpha_s[hi, 0]) - a_new < eps[g])
                if not bad.any():
                    break
                a_new[bad] = sample_truncated_normal(am[g[bad], 1], av[g[bad], 1], ALPHA_BOUNDS, rng)
            else:
                raise ConfigError("Dimerization: could not draw a dimer alpha meeting epsilon_a in 100 tries")
            k_new = np.where(stokes[g], 1.0 / (1.0 / cur_k[lo] + 1.0 / cur_k[hi]), K_s[lo, 1])
            cur_a[lo] = cur_a[hi] = a_new
            cur_k[lo] = cur_k[hi] = k_new
        movers = np.concatenate([freed, lo])
        if movers.size:  # fresh fGn from frame t; a pair shares one series
            fresh = fgn(cur_a[movers], n_frames - t, rng) * np.sqrt(2.0 * cur_k[movers])[:, None, None]
            steps[movers, t:] = fresh
            steps[hi, t:] = fresh[freed.size:]
        partner = new
        nxt = pos[:, t - 1] + steps[:, t]
        andi_kernels.fold_into_box(nxt, Lp)
        pos[:, t] = nxt
        alpha_t[:, t], K_t[:, t] = cur_a, cur_k
        bound[:, t] = new >= 0
    return _result("dimerization", pos, alpha_t, K_t, _free_label(alpha_t), bound.astype(np.int8), group)


def _place_compartments(cfgs, rng) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping circle centres per experiment, (E, C, 2) NaN-padded, and counts (E,)."""
    e = len(cfgs)
    want = np.array([int(c.n_compartments) for c in cfgs])
    L = _per_experiment(cfgs, "L")
    r = _per_experiment(cfgs, "r")
    centers = np.full((e, max(int(want.max(initial=0)), 1), 2), np.nan)
    have = np.zeros(e, dtype=np.int64)
    tries = np.zeros(e, dtype=np.int64)
    active = have < want
    while active.any():
        idx = np.flatnonzero(active)
        cand = rng.random((idx.size, 2)) * (L[idx, None] - 2 * r[idx, None]) + r[idx, None]
        d = np.linalg.norm(centers[idx] - cand[:, None, :], axis=2)
        ok = ~np.any(d <= 2 * r[idx, None], axis=1)  # NaN rows compare False
        centers[idx[ok], have[idx[ok]]] = cand[ok]
        have[idx[ok]] += 1
        tries[idx] += 1
        stuck = (have < want) & (tries > 100 * want)
        if stuck.any():
            k = int(np.flatnonzero(stuck)[0])
            raise ConfigError(
                f"Confinement: placed only {have[k]} of {want[k]} compartments of radius {r[k]} in a "
                f"box of side {L[k]}; use fewer or smaller compartments or a larger box"
            )
        active = have < want
    return np.ascontiguousarray(centers), have


def _confinement(cfgs, group, n_frames, rng, compartments=None) -> Trajectories:
    alpha_s, K_s = _sample_state_params(cfgs, group, rng, constrained=True)  # (N, 2)
    n = group.size
    if compartments is None:
        centers, counts = _place_compartments(cfgs, rng)
    else:
        c = _fixed_points(compartments, "compartments")
        centers = np.ascontiguousarray(np.broadcast_to(c, (len(cfgs),) + c.shape))
        counts = np.full(len(cfgs), c.shape[0], dtype=np.int64)
    L = _per_experiment(cfgs, "L")
    Lp = np.ascontiguousarray(L[group])
    rp = np.ascontiguousarray(_per_experiment(cfgs, "r")[group])
    trans = np.ascontiguousarray(_per_experiment(cfgs, "trans")[group])
    pos = np.empty((n, n_frames, 2))
    pos[:, 0] = _uniform_in_box(Lp, rng)
    # initial state: inside a compartment or not (a zero step does not move anyone)
    _, s0, c0 = andi_kernels.confinement_step(
        np.ascontiguousarray(pos[:, 0]), np.zeros((n, 2)), np.zeros(n, np.int8), -np.ones(n, np.int64),
        centers, counts, group, rp, trans, np.ones(n), Lp,
    )
    states = np.empty((n, n_frames), dtype=np.int8)
    states[:, 0] = s0
    comp = c0
    rows = np.arange(n)
    steps = fgn(alpha_s[rows, s0], n_frames - 1, rng) * np.sqrt(2.0 * K_s[rows, s0])[:, None, None]
    for t in range(1, n_frames):  # steps[:, t-1]: move t-1 -> t
        coin = rng.random(n)
        nxt, st, comp = andi_kernels.confinement_step(
            np.ascontiguousarray(pos[:, t - 1]), np.ascontiguousarray(steps[:, t - 1]),
            np.ascontiguousarray(states[:, t - 1]), comp, centers, counts, group, rp, trans, coin, Lp,
        )
        pos[:, t], states[:, t] = nxt, st
        changed = np.flatnonzero(st != states[:, t - 1])
        if changed.size and t < n_frames - 1:  # fresh fGn with the new state's parameters
            sc = st[changed]
            steps[changed, t:] = (
                fgn(alpha_s[changed, sc], n_frames - 1 - t, rng)
                * np.sqrt(2.0 * K_s[changed, sc])[:, None, None]
            )
    s = states.astype(np.int64)
    alpha_t, K_t = alpha_s[rows[:, None], s], K_s[rows[:, None], s]
    label = np.where(s == 1, CONFINED, _free_label(alpha_s[:, 0])[:, None])
    return _result("confinement", pos, alpha_t, K_t, label, states, group)


_SIMULATORS = {
    SingleState: _single_state,
    MultiState: _multi_state,
    ImmobileTraps: _immobile_traps,
    Dimerization: _dimerization,
    Confinement: _confinement,
}


def simulate(
    config: PhenomConfig | Sequence[PhenomConfig],
    n_particles: int,
    n_frames: int,
    rng: np.random.Generator | int | None = None,
    *,
    traps: np.ndarray | None = None,
    compartments: np.ndarray | None = None,
) -> Trajectories:
    """Simulate ``n_particles`` particles for ``n_frames`` frames in each experiment.

    Parameters
    ----------
    config : one model configuration, or a sequence of configurations of the same model (one
        per experiment, simulated together; their parameters may differ).
    n_particles : particles per experiment.
    n_frames : frames per trajectory (T).
    rng : numpy Generator or seed.
    traps : (n_traps, 2) trap positions (y, x) in px used in every experiment (immobile traps
        only); by default ``n_traps`` traps are placed uniformly per experiment.
    compartments : (n, 2) compartment centres (y, x) in px used in every experiment
        (confinement only); by default ``n_compartments`` non-overlapping circles are placed
        uniformly per experiment.

    Returns
    -------
    :class:`Trajectories` with ``n_experiments * n_particles`` trajectories of ``n_frames``
    frames, particles of experiment e in rows ``e * n_particles ...``.
    """
    cfgs = [config] if isinstance(config, StageConfig) else list(config)
    if not cfgs:
        raise InputError("simulate needs at least one configuration")
    kind = type(cfgs[0])
    if kind not in _SIMULATORS or any(type(c) is not kind for c in cfgs):
        raise InputError("simulate needs configurations of one phenomenological model")
    if int(n_particles) != n_particles or n_particles < 1:
        raise InputError(f"n_particles must be an integer >= 1, got {n_particles}")
    if int(n_frames) != n_frames or n_frames < 2:
        raise InputError(f"n_frames must be an integer >= 2, got {n_frames}")
    if kind in (SingleState, MultiState):
        boxes = {c.L is None for c in cfgs}
        if len(boxes) > 1:
            raise ConfigError("experiments simulated together must all have a box (L) or none")
    rng = _as_rng(rng)
    group = np.repeat(np.arange(len(cfgs), dtype=np.int64), int(n_particles))
    if traps is not None and kind is not ImmobileTraps:
        raise InputError("traps is only used by the immobile_traps model")
    if compartments is not None and kind is not Confinement:
        raise InputError("compartments is only used by the confinement model")
    if kind is ImmobileTraps:
        return _immobile_traps(cfgs, group, int(n_frames), rng, traps=traps)
    if kind is Confinement:
        return _confinement(cfgs, group, int(n_frames), rng, compartments=compartments)
    return _SIMULATORS[kind](cfgs, group, int(n_frames), rng)
