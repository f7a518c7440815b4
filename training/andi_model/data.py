"""Training data of the motion network: 2nd AnDi Challenge experiments, cut into tracks, batched.

Tracks come from :func:`edgetrack.training.andi.challenge_dataset` (field of view, label filter,
localisation noise), one configuration per experiment: the challenge's random defaults
(:func:`edgetrack.training.andi.challenge_config`) or, for a fraction ``broad`` of the
experiments, wider random settings (:func:`broad_config`: alpha over [0.05, 1.95] with directed
motion, K over four decades, faster switching, three-state chains, smaller or larger traps and
compartments, noise 0.02 - 0.4 px) so that the network also sees harder cases.

Batches (:func:`make_batch`) rotate and mirror the tracks at random, cut some of them to random
sub-tracks (at least 8 points) and build the network inputs with
:func:`edgetrack.runtime.motion.network.motion_features`, the run-time function, plus per-point targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.motion.network import motion_features, pad_tracks
from edgetrack.training.andi import PHENOM_MODELS, challenge_dataset
from edgetrack.training.andi.models import Confinement, Dimerization, ImmobileTraps, MultiState, SingleState

__all__ = ["TrackSet", "broad_config", "tracks_of", "simulate_tracks", "Batch", "make_batch", "fov_table", "CP_SIGMA"]

CP_SIGMA = 1.0  # frames: width of the soft change-point target
_L = 1.8 * 128.0


@dataclasses.dataclass
class TrackSet:
    """Tracks with per-point labels: ``pos[i]`` (n_i, 2) px, ``alpha[i]``, ``K[i]`` (px^2/frame^alpha),
    ``state[i]`` (n_i,) and ``model[i]`` (index into PHENOM_MODELS)."""

    pos: list
    alpha: list
    K: list
    state: list
    model: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)

    def lengths(self) -> np.ndarray:
        return np.array([p.shape[0] for p in self.pos], dtype=np.int64)

    def extend(self, other: "TrackSet") -> None:
        self.pos += other.pos
        self.alpha += other.alpha
        self.K += other.K
        self.state += other.state
        self.model = np.concatenate([self.model, other.model])


def _k_pair(k: float) -> tuple[float, float]:
    return (k, 0.01 * k)


def broad_config(model: str, rng: np.random.Generator):
    """A wider random configuration of ``model`` than the challenge defaults (see module doc)."""
    def alpha() -> float:
        return float(rng.choice([rng.uniform(0.05, 1.95), rng.uniform(1.9, 1.99)], p=[0.85, 0.15]))

    fast = float(10 ** rng.uniform(-1.5, 1.0))
    if model == "single_state":
        return SingleState(alpha=(alpha(), 0.01), K=_k_pair(fast), L=_L)
    if model == "immobile_traps":
        return ImmobileTraps(alpha=(alpha(), 0.01), K=_k_pair(fast), L=_L, r=float(rng.uniform(0.3, 1.2)),
                             Pu=float(10 ** rng.uniform(-2.3, -1.0)), Pb=float(rng.uniform(0.5, 1.0)),
                             n_traps=int(rng.integers(100, 600)))
    n_states = 3 if (model == "multi_state" and rng.random() < 0.3) else 2
    a = sorted((alpha() for _ in range(n_states)), reverse=True)
    ks = [fast]
    for _ in range(n_states - 1):
        ks.append(ks[-1] * float(10 ** rng.uniform(-2.0, -0.2)))
    alphas = tuple((x, 0.01) for x in a)
    Ks = tuple(_k_pair(k) for k in ks)
    if model == "multi_state":
        p = float(rng.uniform(0.9, 0.995))
        off = (1.0 - p) / (n_states - 1)
        M = tuple(tuple(p if i == j else off for j in range(n_states)) for i in range(n_states))
        return MultiState(M=M, alpha=alphas, K=Ks, L=_L)
    if model == "dimerization":
        return Dimerization(alpha=alphas, K=Ks, L=_L, r=float(rng.uniform(0.5, 1.5)),
                            Pu=float(10 ** rng.uniform(-2.3, -1.0)), Pb=1.0)
    if model == "confinement":
        return Confinement(alpha=alphas, K=Ks, L=_L, r=float(rng.uniform(3.0, 9.0)),
                           n_compartments=int(rng.integers(15, 40)), trans=float(rng.uniform(0.05, 0.4)))
    raise InputError(f"unknown model {model!r}")


def tracks_of(data, model_index: int) -> TrackSet:
    """The trajectories of a :class:`~edgetrack.training.andi.ChallengeData` as a TrackSet."""
    tr = data.trajectories
    pres = tr.present
    out = TrackSet([], [], [], [], np.full(tr.n_trajectories, model_index, dtype=np.int64))
    for i in range(tr.n_trajectories):
        sel = pres[i]
        out.pos.append(np.ascontiguousarray(tr.positions[i, sel]))
        out.alpha.append(tr.alpha[i, sel].astype(np.float64))
        out.K.append(tr.K[i, sel].astype(np.float64))
        out.state.append(tr.state[i, sel].astype(np.int64))
    return out


def simulate_tracks(n_experiments: int, rng: np.random.Generator, broad: float = 0.4,
                    models: tuple[str, ...] = PHENOM_MODELS) -> TrackSet:
    """``n_experiments`` experiments of each model (a fraction ``broad`` of them with
    :func:`broad_config` and noise 0.02 - 0.4 px, the rest with the challenge defaults)."""
    out = TrackSet([], [], [], [], np.zeros(0, dtype=np.int64))
    for model in models:
        n_broad = int(round(broad * n_experiments))
        n_default = int(n_experiments) - n_broad
        if n_default > 0:
            data = challenge_dataset(model, n_default, rng)
            out.extend(tracks_of(data, PHENOM_MODELS.index(model)))
        for _ in range(n_broad):  # one call each: the noise level is per call
            cfg = broad_config(model, rng)
            data = challenge_dataset(model, 1, rng, configs=[cfg], noise_sigma=float(rng.uniform(0.02, 0.4)))
            out.extend(tracks_of(data, PHENOM_MODELS.index(model)))
    return out


@dataclasses.dataclass
class Batch:
    """Network inputs and per-point targets of B tracks padded to L points.

    features (B, C, L) float32, mask (B, L) float32; alpha (B, L) float32; log_k (B, L) float32
    (log K minus 2 ln s, the network's target); reg_mask (B, L) float32 (points with alpha and K:
    present and not immobile); state (B, L) int64 (-1 on padding); cp (B, L) float32 soft
    change-point target; lengths (B,).
    """

    features: np.ndarray
    mask: np.ndarray
    alpha: np.ndarray
    log_k: np.ndarray
    reg_mask: np.ndarray
    state: np.ndarray
    cp: np.ndarray
    lengths: np.ndarray


def _crop(n: int, rng: np.random.Generator, p_crop: float, min_len: int) -> tuple[int, int]:
    if n <= min_len or rng.random() >= p_crop:
        return 0, n
    length = int(np.exp(rng.uniform(np.log(min_len), np.log(n))))
    start = int(rng.integers(0, n - length + 1))
    return start, start + length


def make_batch(tracks: TrackSet, idx: np.ndarray, rng: np.random.Generator | None = None,
               p_crop: float = 0.3, min_len: int = 8) -> Batch:
    """Inputs and targets of tracks ``idx``; with ``rng`` each track is rotated by a random angle,
    mirrored with probability 1/2 and, with probability ``p_crop``, cut to a random sub-track of
    at least ``min_len`` points (log-uniform length)."""
    pos, alpha, K, state = [], [], [], []
    for i in idx:
        p = tracks.pos[i]
        a, k, s = tracks.alpha[i], tracks.K[i], tracks.state[i]
        if rng is not None:
            lo, hi = _crop(p.shape[0], rng, p_crop, min_len)
            p, a, k, s = p[lo:hi], a[lo:hi], k[lo:hi], s[lo:hi]
            th = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
            if rng.random() < 0.5:
                rot = rot @ np.array([[1.0, 0.0], [0.0, -1.0]])
            p = (p - p[0]) @ rot.T
        pos.append(p)
        alpha.append(a)
        K.append(k)
        state.append(s)
    padded, lengths = pad_tracks(pos)
    feats, mask, log_scale = motion_features(padded, lengths)
    b, width = mask.shape
    t_alpha = np.zeros((b, width), dtype=np.float32)
    t_logk = np.zeros((b, width), dtype=np.float32)
    reg = np.zeros((b, width), dtype=np.float32)
    t_state = np.full((b, width), -1, dtype=np.int64)
    t_cp = np.zeros((b, width), dtype=np.float32)
    t = np.arange(width)
    for r in range(b):
        n = int(lengths[r])
        a, k, s = alpha[r], K[r], state[r]
        t_state[r, :n] = s
        ok = (s != 0) & (k > 0)
        reg[r, :n] = ok
        t_alpha[r, :n] = np.where(ok, a, 0.0)
        t_logk[r, :n] = np.where(ok, np.log(np.maximum(k, 1e-12)) - 2.0 * log_scale[r], 0.0)
        change = np.flatnonzero((a[1:] != a[:-1]) | (k[1:] != k[:-1]) | (s[1:] != s[:-1])) + 1
        if change.size:
            bumps = np.exp(-0.5 * ((t[None, :n] - change[:, None]) / CP_SIGMA) ** 2)
            t_cp[r, :n] = bumps.max(axis=0)
    return Batch(feats, mask, t_alpha, t_logk, reg, t_state, t_cp, lengths)


def fov_table(tracks: TrackSet, rows: np.ndarray, first_frames: np.ndarray | None = None) -> pd.DataFrame:
    """Track table (``track_id`` = position in ``rows``, ``frame``, ``y``, ``x``) of some tracks,
    as ``edgetrack analyze`` reads it; frames start at ``first_frames[row]`` (default 0)."""
    parts = []
    for j, i in enumerate(rows):
        p = tracks.pos[i]
        f0 = 0 if first_frames is None else int(first_frames[i])
        parts.append(pd.DataFrame({"track_id": j, "frame": np.arange(f0, f0 + p.shape[0]), "y": p[:, 0], "x": p[:, 1]}))
    return pd.concat(parts, ignore_index=True)
