"""Experiments as in the 2nd AnDi Challenge: random default parameters, field-of-view cropping,
label filtering, localisation noise, change points and ensemble labels.

An experiment simulates ``N = 50`` particles for ``T = 200`` frames in a box of side
``1.8 * 128`` px, then keeps the pieces of trajectories that stay strictly inside a 128 x 128 px
field of view (FOV) for at least 20 consecutive frames; each piece becomes one trajectory
(``traj_idx``). Its per-frame labels are smoothed by the challenge's label filter (segments
shorter than 3 frames are merged), change points are counted in frames from the piece's first
point, and Gaussian localisation noise (sigma 0.12 px per coordinate) is added to positions.
The defaults follow ``andi_datasets.datasets_challenge`` (``_defaults_andi2``, ``_get_dic_andi2``)
of the released andi-datasets 2.1.13.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from edgetrack.runtime.errors import InputError

from . import kernels as andi_kernels
from .models import (
    CONFINED,
    IMMOBILE,
    MODEL_CONFIGS,
    Confinement,
    Dimerization,
    ImmobileTraps,
    MultiState,
    SingleState,
    Trajectories,
    simulate,
)

__all__ = [
    "FOV_SIZE",
    "BOX_SIZE",
    "N_PARTICLES",
    "N_FRAMES",
    "MIN_LENGTH",
    "NOISE_SIGMA",
    "PHENOM_MODELS",
    "challenge_config",
    "crop_to_fov",
    "label_filter",
    "ensemble_labels",
    "ChallengeData",
    "challenge_dataset",
]

FOV_SIZE = 128.0  # px
BOX_SIZE = 1.8 * FOV_SIZE  # px
N_PARTICLES = 50
N_FRAMES = 200
MIN_LENGTH = 20  # frames
NOISE_SIGMA = 0.12  # px
PHENOM_MODELS = tuple(MODEL_CONFIGS)  # single_state, multi_state, immobile_traps, dimerization, confinement


def challenge_config(model: str, rng: np.random.Generator):
    """Random default configuration of one experiment of ``model`` (as ``_get_dic_andi2``).

    single state and immobile traps: alpha ~ (U(0.5, 1.5), var 0.01), K ~ (1, var 0.01).
    two-state models: K_fast = 1 + 0.01 N(0, 1), K_slow = 0.01 + 0.09 U K_fast,
    alpha_1 = U(0.8, 1.2), alpha_2 = alpha_1 - U(0.2, 0.6), variances 0.01 (alpha) and
    1 % of the mean (K). Traps: 300 traps of radius 0.4 px, Pb = 1, Pu = 0.01. Dimerisation:
    radius 0.6 px, Pb = 1, Pu = 0.01. Multi-state: M = [[0.99, 0.01], [0.01, 0.99]].
    Confinement: 30 compartments of radius 5 px, transmittance 0.1.
    """
    if model not in MODEL_CONFIGS:
        raise InputError(f"unknown model {model!r}; choose from {', '.join(PHENOM_MODELS)}")
    L = BOX_SIZE
    if model in ("single_state", "immobile_traps"):
        alpha = (float(rng.random() * 1.0 + 0.5), 0.01)
        K = (1.0, 0.01)
        if model == "single_state":
            return SingleState(alpha=alpha, K=K, L=L)
        return ImmobileTraps(alpha=alpha, K=K, L=L, r=0.4, Pu=0.01, Pb=1.0, n_traps=300)
    fast = 1.0 + float(rng.standard_normal()) * 0.01
    slow = fast * float(rng.random()) * (0.1 - 0.01) + 0.01
    a1 = float(rng.random()) * (1.2 - 0.8) + 0.8
    a2 = a1 - (float(rng.random()) * (0.6 - 0.2) + 0.2)
    alphas = ((a1, 0.01), (a2, 0.01))
    Ks = ((fast, fast * 0.01), (slow, slow * 0.01))
    if model == "multi_state":
        return MultiState(M=((0.99, 0.01), (0.01, 0.99)), alpha=alphas, K=Ks, L=L)
    if model == "dimerization":
        return Dimerization(alpha=alphas, K=Ks, L=L, r=0.6, Pu=0.01, Pb=1.0)
    return Confinement(alpha=alphas, K=Ks, L=L, r=5.0, n_compartments=30, trans=0.1)


def label_filter(labels: np.ndarray, window: int = 5, min_seg: int = 3) -> np.ndarray:
    """The challenge's filter of one label column (T,): if the labels change, one running mode
    over ``window`` frames (cut at the ends; ties go to the value seen first), then every run
    shorter than ``min_seg`` frames is merged into the run before it (the first run into the
    run after it). As ``utils_challenge.label_filter`` of andi-datasets 2.1.13."""
    v = np.ascontiguousarray(labels, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"label_filter needs a 1-D array, got shape {v.shape}")
    if window < 1 or window % 2 == 0:
        raise InputError(f"window must be odd and >= 1, got {window}")
    return andi_kernels.label_filter_segments(v, np.array([0, v.size], dtype=np.int64), window, min_seg)


def _runs_inside(inside: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, starts and ends (exclusive) of runs of True of at least ``min_length`` frames."""
    n, t = inside.shape
    padded = np.zeros((n, t + 2), dtype=np.int8)
    padded[:, 1:-1] = inside
    d = np.diff(padded, axis=1)
    r0, s = np.nonzero(d == 1)
    _, e = np.nonzero(d == -1)  # same order as the starts (row-major, one end per start)
    keep = (e - s) >= min_length
    return r0[keep], s[keep], e[keep]


def crop_to_fov(
    traj: Trajectories,
    origin: np.ndarray,
    size: float = FOV_SIZE,
    min_length: int = MIN_LENGTH,
    filter_labels: bool = True,
) -> Trajectories:
    """Pieces of ``traj`` strictly inside the square FOV ``[origin, origin + size]`` (px).

    ``origin``: (2,) or per experiment (E, 2) as (y, x). Every run of at least ``min_length``
    consecutive frames with both coordinates strictly inside becomes one trajectory, in order of
    the original trajectories then time. With ``filter_labels`` each label column (alpha, K,
    state, state_num) of each piece goes through :func:`label_filter`.
    """
    o = np.atleast_2d(np.asarray(origin, dtype=np.float64))
    if o.shape[1] != 2:
        raise InputError(f"origin must be (2,) or (n_experiments, 2), got {np.shape(origin)}")
    if o.shape[0] > 1 and traj.n_trajectories and o.shape[0] <= traj.experiment.max():
        raise InputError(
            f"origin has {o.shape[0]} rows but the trajectories span {traj.experiment.max() + 1} experiments"
        )
    o = o[traj.experiment] if o.shape[0] > 1 else np.broadcast_to(o, (traj.n_trajectories, 2))
    p = traj.positions
    lo = o[:, None, :]
    with np.errstate(invalid="ignore"):
        inside = np.all((p > lo) & (p < lo + size), axis=2)
    rows, starts, ends = _runs_inside(inside, int(min_length))
    lengths = ends - starts
    n_new, t = rows.size, traj.n_frames
    seg = np.repeat(np.arange(n_new), lengths)
    offs = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    frames = np.arange(offs[-1]) - np.repeat(offs[:-1], lengths) + np.repeat(starts, lengths)
    src = np.repeat(rows, lengths)

    def take(a: np.ndarray, fill: float, dtype: type) -> np.ndarray:
        flat = a[src, frames].astype(np.float64)
        if filter_labels and flat.size:
            flat = andi_kernels.label_filter_segments(np.ascontiguousarray(flat), offs, 5, 3)
        out = np.full((n_new, t), fill, dtype=dtype)
        out[seg, frames] = flat
        return out

    pos = np.full((n_new, t, 2), np.nan)
    pos[seg, frames] = p[src, frames]
    return Trajectories(
        positions=pos,
        alpha=take(traj.alpha, np.nan, np.float64),
        K=take(traj.K, np.nan, np.float64),
        state=take(traj.state, -1, np.int8),
        state_num=take(traj.state_num, -1, np.int8),
        experiment=traj.experiment[rows].astype(np.int64),
        model=traj.model,
    )


def ensemble_labels(config, traj: Trajectories) -> np.ndarray:
    """The challenge's ensemble label matrix of one experiment (columns: states):
    rows mean alpha, variance of alpha, mean K, variance of K, number of frames in the state
    (counted over the frames of ``traj``). Means and variances are those of the configuration's
    distributions, as in ``utils_challenge.extract_ensemble``."""
    state = traj.state[traj.present]
    num = traj.state_num[traj.present]
    if isinstance(config, SingleState):
        return np.array([[config.alpha[0]], [config.alpha[1]], [config.K[0]], [config.K[1]], [float(state.size)]])
    if isinstance(config, ImmobileTraps):
        # the free state's frames are labelled directed when its alpha >= 1.9: count all the mobile frames
        counts = [np.sum(state == IMMOBILE), np.sum(state != IMMOBILE)]
        return np.array(
            [[0.0, config.alpha[0]], [0.0, config.alpha[1]], [0.0, config.K[0]], [0.0, config.K[1]], counts],
            dtype=float,
        )
    a = np.asarray(config.alpha, dtype=float)
    k = np.asarray(config.K, dtype=float)
    if isinstance(config, MultiState):
        counts = np.bincount(num.astype(np.int64), minlength=config.n_states).astype(float)
        counts[counts == 0] = 1.0  # as the reference does for unvisited states
    elif isinstance(config, Dimerization):
        counts = np.array([np.sum(num == 0), np.sum(num == 1)], dtype=float)
    else:
        counts = np.array([np.sum(state != CONFINED), np.sum(state == CONFINED)], dtype=float)  # free or directed
    return np.vstack([a[:, 0], a[:, 1], k[:, 0], k[:, 1], counts])


@dataclasses.dataclass(frozen=True, eq=False)
class ChallengeData:
    """Experiments of one model as in the challenge.

    ``trajectories``: all FOV pieces (``experiment`` says which experiment each belongs to);
    ``configs``: the configuration of each experiment; ``fov_origins``: (E, 2) FOV corners (y, x)
    in px; ``ensembles``: per experiment the (5, n_states) ensemble label matrix.
    """

    trajectories: Trajectories
    configs: tuple
    fov_origins: np.ndarray
    ensembles: tuple


def challenge_dataset(
    model: str,
    n_experiments: int,
    rng: np.random.Generator | int | None = None,
    *,
    configs: Sequence | None = None,
    n_particles: int = N_PARTICLES,
    n_frames: int = N_FRAMES,
    fov_size: float = FOV_SIZE,
    min_length: int = MIN_LENGTH,
    noise_sigma: float = NOISE_SIGMA,
    filter_labels: bool = True,
) -> ChallengeData:
    """Simulate ``n_experiments`` experiments (one FOV each) of ``model`` at once.

    ``configs`` (one per experiment) replace the random defaults of :func:`challenge_config`.
    The FOV corner is drawn per experiment as integers in
    ``[int(0.05 L), int(0.95 L) - fov_size)`` per coordinate, as in the reference.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if configs is None:
        cfgs = [challenge_config(model, gen) for _ in range(int(n_experiments))]
    else:
        cfgs = list(configs)
        if len(cfgs) != n_experiments:
            raise InputError(f"configs has {len(cfgs)} entries for {n_experiments} experiments")
    if not cfgs:
        raise InputError("n_experiments must be >= 1")
    if any(getattr(c, "L", None) is None for c in cfgs):
        raise InputError("challenge experiments need a box (L) to place the field of view")
    raw = simulate(cfgs, n_particles, n_frames, gen)
    origins = np.empty((len(cfgs), 2))
    for e, c in enumerate(cfgs):
        lo, hi = int(0.05 * c.L), int(0.95 * c.L) - int(fov_size)
        if hi <= lo:
            raise InputError(f"box of side {c.L} px is too small for a FOV of {fov_size} px")
        origins[e] = gen.integers(lo, hi, size=2)
    cropped = crop_to_fov(raw, origins, fov_size, min_length, filter_labels)
    pos = cropped.positions
    pres = cropped.present
    pos[pres] += gen.standard_normal((int(pres.sum()), 2)) * noise_sigma
    ens = []
    for e, c in enumerate(cfgs):
        rows = cropped.experiment == e
        sub = Trajectories(
            positions=cropped.positions[rows], alpha=cropped.alpha[rows], K=cropped.K[rows],
            state=cropped.state[rows], state_num=cropped.state_num[rows],
            experiment=cropped.experiment[rows], model=cropped.model,
        )
        ens.append(ensemble_labels(c, sub))
    return ChallengeData(trajectories=cropped, configs=tuple(cfgs), fov_origins=origins, ensembles=tuple(ens))
