"""Theoretical anomalous-diffusion models of the AnDi challenges, vectorised, in 2-D.

Definitions follow ``andi_datasets.models_theory`` (2-D versions); every function takes one
anomalous exponent per trajectory and returns positions ``(N, T, 2)`` float64 in px, starting at
the origin. Time is in frames.

* **FBM**: exact fractional Brownian motion, per-coordinate MSD ``2 K t^alpha``, 0 < alpha < 2.
* **SBM** (scaled Brownian motion): independent Gaussian steps whose variance grows so that the
  per-coordinate MSD is exactly ``2 K t^alpha``, 0 < alpha <= 2.
* **CTRW** (continuous-time random walk): waiting times ``tau >= 1`` with
  ``P(tau > s) = s^-alpha``, jumps N(0, 2 K) per coordinate, observed at integer frames;
  0 < alpha <= 1.
* **ATTM** (annealed transient time model, regime 1): Brownian motion whose diffusion coefficient
  ``D = U^(1/sigma)`` (U uniform in (0.01, 0.9]) is redrawn after a time ``D^-gamma`` with
  ``gamma = sigma / alpha`` and ``sigma`` uniform in [0.03, min(3.3, alpha / (1 - alpha))]; steps
  N(0, 2 K D); 0 < alpha <= 1.
* **LW** (Levy walk): flights of duration ``tau >= 1`` with ``P(tau > s) = s^-(3 - alpha)``
  (for alpha = 2 the exponent is uniform in (0, 1)), constant speed (uniform in (0, 10) px/frame
  per trajectory unless given) and a uniformly random direction per flight; 1 < alpha <= 2.

Where the reference differs in a detail it is noted in the function. Model indices follow the
first AnDi challenge: 0 attm, 1 ctrw, 2 fbm, 3 lw, 4 sbm.
"""

from __future__ import annotations

import numpy as np

from edgetrack.runtime.errors import InputError

from .fbm import fbm as _fbm

__all__ = [
    "THEORY_MODELS",
    "ALPHA_RANGES",
    "fbm",
    "sbm",
    "ctrw",
    "attm",
    "levy_walk",
    "simulate_theory",
    "theory_dataset",
]

THEORY_MODELS = ("attm", "ctrw", "fbm", "lw", "sbm")
# valid exponents (low exclusive, high inclusive except FBM whose high is exclusive)
ALPHA_RANGES = {"attm": (0.0, 1.0), "ctrw": (0.0, 1.0), "fbm": (0.0, 2.0), "lw": (1.0, 2.0), "sbm": (0.0, 2.0)}
# exponent grid of the first AnDi challenge (0.05 ... 2.0) valid per model
_ANDI1_GRID = np.round(np.arange(0.05, 2.001, 0.05), 2)


def _alphas(alpha: np.ndarray | float, model: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    lo, hi = ALPHA_RANGES[model]
    ok = np.isfinite(a) & (a > lo) & ((a < hi) if model == "fbm" else (a <= hi))
    if a.ndim != 1 or not ok.all():
        bad = a.ravel()[~ok.ravel()][:3].tolist() if a.ndim == 1 else a.shape
        raise InputError(f"{model} needs alpha in ({lo}, {hi}{')' if model == 'fbm' else ']'}, got {bad}")
    return a


def _check_frames(n_frames: int) -> int:
    if int(n_frames) != n_frames or n_frames < 2:
        raise InputError(f"n_frames must be an integer >= 2, got {n_frames}")
    return int(n_frames)


def _rowwise_count(ends: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For sorted rows ``ends`` (N, M) (values in [0, Q_max]), count per row the entries <= each
    query (Q,): returns (N, Q) int64. One global binary search on row-offset values."""
    n, m = ends.shape
    span = float(max(ends.max(initial=0.0), queries.max(initial=0.0))) + 1.0
    offs = np.arange(n, dtype=np.float64)[:, None] * span
    flat = (ends + offs).ravel()
    idx = np.searchsorted(flat, (queries[None, :] + offs).ravel(), side="right").reshape(n, -1)
    return idx - (np.arange(n)[:, None] * m)


def _segment_of_step(durations: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Index of the segment (N, M durations >= 1, in frames) containing each step index (Q,)."""
    ends = np.cumsum(durations, axis=1).astype(np.float64)  # step k is in segment j if k < ends[j]
    return _rowwise_count(ends, steps.astype(np.float64))


def fbm(alpha: np.ndarray | float, n_frames: int, rng: np.random.Generator, K: float = 1.0) -> np.ndarray:
    """Fractional Brownian motion (exact), per-coordinate MSD ``2 K t^alpha``. (N, T, 2)."""
    a = _alphas(alpha, "fbm")
    return _fbm(a, K, _check_frames(n_frames), rng)


def sbm(alpha: np.ndarray | float, n_frames: int, rng: np.random.Generator, K: float = 1.0) -> np.ndarray:
    """Scaled Brownian motion, per-coordinate MSD exactly ``2 K t^alpha``. (N, T, 2).

    (The reference drops the first step, so its MSD is ``(t + 1)^alpha - 1``.)
    """
    a = _alphas(alpha, "sbm")
    t = _check_frames(n_frames)
    k = np.arange(t, dtype=np.float64)
    var = 2.0 * K * (np.power(k[None, 1:], a[:, None]) - np.power(k[None, :-1], a[:, None]))
    steps = rng.standard_normal((a.size, t - 1, 2)) * np.sqrt(var)[:, :, None]
    pos = np.zeros((a.size, t, 2))
    np.cumsum(steps, axis=1, out=pos[:, 1:])
    return pos


def ctrw(alpha: np.ndarray | float, n_frames: int, rng: np.random.Generator, K: float = 1.0) -> np.ndarray:
    """Continuous-time random walk observed at integer frames. (N, T, 2).

    The position at frame f is the sum of the jumps made at times ``t_k < f + 1`` (times are
    cumulative waiting times, the first jump happening at ``t_1 = tau_1 >= 1``).
    """
    a = _alphas(alpha, "ctrw")
    t = _check_frames(n_frames)
    n = a.size
    u = rng.random((n, t))
    with np.errstate(over="ignore"):
        tau = np.minimum((1.0 - u) ** (-1.0 / a[:, None]), t + 1.0)  # beyond the horizon is all alike
    times = np.cumsum(tau, axis=1)
    jumps = rng.standard_normal((n, t, 2)) * np.sqrt(2.0 * K)
    walk = np.zeros((n, t + 1, 2))
    np.cumsum(jumps, axis=1, out=walk[:, 1:])
    # jumps done by frame f: times < f + 1  <=>  count of times <= f + 1 - tiny
    done = _rowwise_count(times, np.arange(1, t + 1, dtype=np.float64) - 1e-9)
    return walk[np.arange(n)[:, None], done]


def attm(alpha: np.ndarray | float, n_frames: int, rng: np.random.Generator, K: float = 1.0) -> np.ndarray:
    """Annealed transient time model (regime 1). (N, T, 2).

    Segment durations are ``floor(D^-gamma)`` frames (capped at T); the reference draws sigma by
    rejection from uniform(0.03, 3.3) until gamma <= sigma + 1, which is sampled here directly.
    """
    a = _alphas(alpha, "attm")
    t = _check_frames(n_frames)
    n = a.size
    if np.any(a < 0.03 / 1.03):
        raise InputError("attm needs alpha >= 0.0292 (sigma range is empty below)")
    with np.errstate(divide="ignore"):
        sig_hi = np.minimum(3.3, np.where(a < 1.0, a / (1.0 - a), np.inf))
    sigma = 0.03 + rng.random(n) * (sig_hi - 0.03)
    gamma = sigma / a
    m = t - 1  # at most T-1 segments: each lasts >= 1 frame
    D = (1.0 - rng.uniform(0.1, 0.99, size=(n, m))) ** (1.0 / sigma[:, None])
    dur = np.floor(np.minimum(D ** (-gamma[:, None]), float(t)))
    seg = np.minimum(_segment_of_step(dur, np.arange(t - 1)), m - 1)
    d_step = D[np.arange(n)[:, None], seg]
    steps = rng.standard_normal((n, t - 1, 2)) * np.sqrt(2.0 * K * d_step)[:, :, None]
    pos = np.zeros((n, t, 2))
    np.cumsum(steps, axis=1, out=pos[:, 1:])
    return pos


def levy_walk(
    alpha: np.ndarray | float,
    n_frames: int,
    rng: np.random.Generator,
    velocity: np.ndarray | float | None = None,
) -> np.ndarray:
    """Levy walk with constant speed (px/frame) and random direction per flight. (N, T, 2).

    ``velocity``: speed per trajectory; by default uniform in (0, 10) as in the reference.
    As in the reference, the first frame slot of the flight sequence is not used as a step.
    """
    a = _alphas(alpha, "lw")
    t = _check_frames(n_frames)
    n = a.size
    sigma = np.where(a == 2.0, rng.random(n), 3.0 - a)
    sigma = np.maximum(sigma, 1e-12)
    with np.errstate(over="ignore"):
        tau = (1.0 - rng.random((n, t))) ** (-1.0 / sigma[:, None])
    dur = np.floor(np.where(tau > t, t + 1.0, tau))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, t))
    v = 10.0 * rng.random(n) if velocity is None else np.broadcast_to(np.asarray(velocity, float), (n,))
    flight = np.minimum(_segment_of_step(dur, np.arange(1, t)), t - 1)  # slots 1..T-1
    th = angle[np.arange(n)[:, None], flight]
    steps = np.stack([np.sin(th), np.cos(th)], axis=-1) * v[:, None, None]
    pos = np.zeros((n, t, 2))
    np.cumsum(steps, axis=1, out=pos[:, 1:])
    return pos


_GENERATORS = {"attm": attm, "ctrw": ctrw, "fbm": fbm, "lw": levy_walk, "sbm": sbm}


def simulate_theory(
    model: str, alpha: np.ndarray | float, n_frames: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Trajectories (N, T, 2) of one theoretical ``model`` (a name of :data:`THEORY_MODELS`)."""
    if model not in _GENERATORS:
        raise InputError(f"unknown theory model {model!r}; choose from {', '.join(THEORY_MODELS)}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return _GENERATORS[model](alpha, n_frames, gen)


def theory_dataset(
    n: int,
    n_frames: int,
    rng: np.random.Generator | int | None = None,
    models: tuple[str, ...] = THEORY_MODELS,
    grid: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mixed dataset: ``n`` trajectories, model drawn uniformly from ``models``.

    ``alpha`` per trajectory is drawn uniformly from the first challenge's grid 0.05 ... 2.0
    restricted to the model's valid range (``grid=True``) or uniformly from [0.05, high]
    of that range (``grid=False``).
    Returns positions (n, T, 2) float64, alpha (n,) float64, model index (n,) int8 (index into
    :data:`THEORY_MODELS`).
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    for m in models:
        if m not in _GENERATORS:
            raise InputError(f"unknown theory model {m!r}; choose from {', '.join(THEORY_MODELS)}")
    which = gen.integers(0, len(models), size=int(n))
    alpha = np.empty(int(n))
    for k, m in enumerate(models):
        sel = which == k
        lo, hi = ALPHA_RANGES[m]
        if grid:
            below = (_ANDI1_GRID < hi) if m == "fbm" else (_ANDI1_GRID <= hi)
            choices = _ANDI1_GRID[(_ANDI1_GRID > lo) & below]
            alpha[sel] = gen.choice(choices, size=int(sel.sum()))
        else:
            top = np.nextafter(hi, 0.0) if m == "fbm" else hi
            alpha[sel] = gen.uniform(max(lo, 0.05), top, size=int(sel.sum()))
    pos = np.empty((int(n), _check_frames(n_frames), 2))
    for k, m in enumerate(models):
        sel = np.flatnonzero(which == k)
        if sel.size:
            pos[sel] = _GENERATORS[m](alpha[sel], n_frames, gen)
    index = np.array([THEORY_MODELS.index(m) for m in models], dtype=np.int8)[which]
    return pos, alpha, index
