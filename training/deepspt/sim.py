"""Heterogeneous tracks with a diffusional mode per time point (training data of the DeepSPT models).

The generator follows DeepSPT's own (Kaestel-Hansen et al., after Kowalek et al. 2020), written in
px and frames. Each track is a chain of segments; each segment moves in one of four modes (the
classes of :data:`edgetrack.runtime.motion.deepspt.MODES`):

* 0 normal: Brownian steps, per coordinate N(0, 2 D).
* 1 directed: Brownian steps plus a constant drift ``v u`` (``u`` a random unit vector) with
  ``v = sqrt(4 R D / N_v)`` px/frame, ``R`` in ``R_range`` and ``N_v`` an integer drawn in
  ``drift_length_range`` independently of the segment (DeepSPT's eq. 7 of Kowalek et al. solved
  for v with a random duration): the squared drift over ``N_v`` frames is ``R`` times ``4 D N_v``.
* 2 confined: Brownian motion inside an ellipse (ellipsoid in 3-D) centred where the segment
  starts, with a random orientation, sampled as DeepSPT does: every frame is split into
  ``confinement_substeps`` Brownian sub-steps and a sub-step that would leave the ellipse is
  rejected (the particle stays put). The full axes are drawn uniformly in
  ``confinement_size_range`` in DeepSPT's units (um, for D in um^2/s and 1 s frames) together with
  a reference ``D_ref`` log-uniform in ``confinement_D_range`` (DeepSPT's D range) and rescaled by
  ``sqrt(D / D_ref)``, so that the ratio of the ellipse to the step length has DeepSPT's
  distribution whatever the track's D in px^2/frame.
* 3 subdiffusive: fractional Brownian motion with exponent ``alpha`` in ``alpha_range`` and
  ``K = D`` (exact fGn from :mod:`edgetrack.training.andi.fbm`).

A fraction ``switching_fraction`` of the tracks has 2 to ``max_change_points + 1`` segments
(consecutive segments differ, every segment at least ``min_segment`` steps, cut points uniform);
the others keep one mode. Track lengths are uniform in ``[min_length, max_length]`` points
(DeepSPT's 5-600). ``D`` of a track is log-uniform in ``D_range`` (px^2/frame, four orders of
magnitude by default) and can vary between its segments by up to ``segment_D_spread`` decades (0
by default: DeepSPT keeps one D per track). The localisation error per coordinate is Gaussian with standard deviation
``sqrt(D) / Q`` (``sqrt(D + v^2) / Q`` on directed segments; DeepSPT's eq. 12 of Kowalek et al.),
``Q`` uniform in ``Q_range`` per track.

Labels: point ``t >= 1`` has the mode of the step ``t-1 -> t``; point 0 has the mode of the first
step. Units: px and frames. numpy and numba only.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from edgetrack.runtime.config import StageConfig, require
from edgetrack.training.andi.fbm import fgn_segments

__all__ = ["SimConfig", "TrackSet", "simulate_tracks", "N_MODES"]

N_MODES = 4
NORMAL, DIRECTED, CONFINED, SUBDIFFUSIVE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class SimConfig(StageConfig):
    """Parameters of the heterogeneous-track simulator (see the module docstring; px, frames)."""

    ndim: int = 2
    min_length: int = 5
    max_length: int = 600
    switching_fraction: float = 0.8
    max_change_points: int = 3
    min_segment: int = 5
    D_range: tuple[float, float] = (1e-3, 10.0)
    segment_D_spread: float = 0.0
    Q_range: tuple[float, float] = (1.0, 16.0)
    R_range: tuple[float, float] = (5.0, 25.0)
    drift_length_range: tuple[float, float] = (5.0, 600.0)
    confinement_size_range: tuple[float, float] = (0.05, 0.25)
    confinement_D_range: tuple[float, float] = (1e-4, 0.5)
    confinement_substeps: int = 100
    alpha_range: tuple[float, float] = (0.1, 0.7)

    def validate(self) -> None:
        require(self.ndim in (2, 3), f"ndim must be 2 or 3, got {self.ndim}")
        require(3 <= self.min_length <= self.max_length, "need 3 <= min_length <= max_length")
        require(0.0 <= self.switching_fraction <= 1.0, "switching_fraction must be in [0, 1]")
        require(self.max_change_points >= 1, "max_change_points must be >= 1")
        require(self.min_segment >= 1, "min_segment must be >= 1")
        require(self.confinement_substeps >= 1, "confinement_substeps must be >= 1")
        for name in ("D_range", "Q_range", "R_range", "drift_length_range", "confinement_size_range",
                     "confinement_D_range", "alpha_range"):
            lo, hi = getattr(self, name)
            require(0.0 < lo <= hi, f"{name} must be 0 < low <= high, got {(lo, hi)}")
        require(self.alpha_range[1] < 2.0, "alpha_range must stay below 2")
        require(self.segment_D_spread >= 0.0, "segment_D_spread must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrackSet:
    """Simulated tracks stored one after the other.

    positions: (M, d) float64 px (with localisation error); offsets: (n + 1,) int64, track i is
    rows ``offsets[i]:offsets[i+1]``; labels: (M,) int64 mode per point; seg_track, seg_start,
    seg_length, seg_mode: (S,) the segments (start and length in steps of their track).
    """

    positions: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    seg_track: np.ndarray
    seg_start: np.ndarray
    seg_length: np.ndarray
    seg_mode: np.ndarray

    @property
    def n_tracks(self) -> int:
        return int(self.offsets.size - 1)

    def track(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions (T, d), labels (T,)) of track ``i``."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.positions[a:b], self.labels[a:b]

    def tracks(self) -> list[np.ndarray]:
        return [self.positions[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _segments(n_steps: np.ndarray, cfg: SimConfig, rng: np.random.Generator):
    """Segment lengths and modes of every track (python loop over tracks: cheap)."""
    seg_track, seg_len, seg_mode = [], [], []
    switching = rng.random(n_steps.size) < cfg.switching_fraction
    for i, n in enumerate(n_steps):
        k_max = min(cfg.max_change_points + 1, int(n) // cfg.min_segment)
        k = int(rng.integers(2, k_max + 1)) if (switching[i] and k_max >= 2) else 1
        if k == 1:
            lens = np.array([n])
        else:
            spare = int(n) - k * cfg.min_segment
            cuts = np.sort(rng.integers(0, spare + 1, k - 1))
            lens = np.diff(np.concatenate([[0], cuts, [spare]])) + cfg.min_segment
        modes = np.empty(k, dtype=np.int64)
        modes[0] = rng.integers(0, N_MODES)
        for j in range(1, k):
            other = rng.integers(0, N_MODES - 1)
            modes[j] = other + (other >= modes[j - 1])
        seg_track.append(np.full(k, i))
        seg_len.append(lens)
        seg_mode.append(modes)
    return (np.concatenate(seg_track).astype(np.int64), np.concatenate(seg_len).astype(np.int64),
            np.concatenate(seg_mode).astype(np.int64))


@numba.njit(cache=True, nogil=True)
def _confined_steps(seed: int, sd: np.ndarray, seg_start: np.ndarray, seg_len: np.ndarray, semi_axes: np.ndarray,
                    rotation: np.ndarray, substeps: int, out: np.ndarray) -> None:
    """Steps of Brownian motion confined to an ellipse(oid) centred on each segment's start.

    sd: (S,) px, standard deviation per coordinate of a whole frame's free step; segment s owns
    rows seg_start[s] : seg_start[s] + seg_len[s] of out (N, d); semi_axes: (S, d) px;
    rotation: (S, d, d), columns the ellipse's axes. Each frame is ``substeps`` Gaussian sub-steps,
    a sub-step leaving the ellipse is rejected. Random numbers come from Numba's generator seeded
    with ``seed``.
    """
    np.random.seed(seed)
    d = out.shape[1]
    p = np.zeros(d)
    q = np.zeros(d)
    for s in range(seg_start.size):
        sub_sd = sd[s] / np.sqrt(substeps)
        for k in range(d):
            p[k] = 0.0
        for t in range(seg_start[s], seg_start[s] + seg_len[s]):
            for k in range(d):
                out[t, k] = p[k]
            for _ in range(substeps):
                for k in range(d):
                    q[k] = p[k] + sub_sd * np.random.standard_normal()
                inside = 0.0
                for j in range(d):
                    u = 0.0
                    for k in range(d):
                        u += rotation[s, k, j] * q[k]
                    u /= semi_axes[s, j]
                    inside += u * u
                if inside <= 1.0:
                    for k in range(d):
                        p[k] = q[k]
            for k in range(d):
                out[t, k] = p[k] - out[t, k]


def _rotations(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d, d) uniformly random rotation matrices (QR of Gaussian matrices, sign-corrected)."""
    q, r = np.linalg.qr(rng.standard_normal((n, d, d)))
    return q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]


def _unit_vectors(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return v / norm


def simulate_tracks(n_tracks: int, config: SimConfig | None = None, seed: int | np.random.Generator = 0,
                    **overrides) -> TrackSet:
    """Simulate ``n_tracks`` heterogeneous tracks (see the module docstring)."""
    cfg = (config or SimConfig()).replace(**overrides) if overrides else (config or SimConfig())
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    d = cfg.ndim
    lengths = rng.integers(cfg.min_length, cfg.max_length + 1, n_tracks).astype(np.int64)
    n_steps = lengths - 1
    seg_track, seg_len, seg_mode = _segments(n_steps, cfg, rng)
    n_seg = seg_len.size
    step_off = np.concatenate([[0], np.cumsum(n_steps)]).astype(np.int64)
    seg_first = np.concatenate([[0], np.cumsum(seg_len)[:-1]]).astype(np.int64)  # global step row
    seg_start_in_track = seg_first - step_off[seg_track]

    d_track = _log_uniform(rng, *cfg.D_range, n_tracks)
    spread = cfg.segment_D_spread / 2.0
    d_seg = d_track[seg_track] * 10.0 ** rng.uniform(-spread, spread, n_seg)
    q_track = rng.uniform(*cfg.Q_range, n_tracks)
    r_seg = rng.uniform(*cfg.R_range, n_seg)
    n_drift = rng.integers(int(cfg.drift_length_range[0]), int(cfg.drift_length_range[1]) + 1, n_seg)
    a_seg = rng.uniform(*cfg.alpha_range, n_seg)
    u_seg = _unit_vectors(rng, n_seg, d)

    total = int(n_steps.sum())
    row_seg = np.repeat(np.arange(n_seg), seg_len)
    sd_row = np.sqrt(2.0 * d_seg[row_seg])
    steps = rng.standard_normal((total, d)) * sd_row[:, None]
    mode_row = seg_mode[row_seg]
    # directed: add the drift
    vel = np.where(seg_mode == DIRECTED, np.sqrt(4.0 * r_seg * d_seg / n_drift), 0.0)
    steps += (vel[:, None] * u_seg)[row_seg]
    # subdiffusive: replace by fGn
    sub = np.flatnonzero(seg_mode == SUBDIFFUSIVE)
    if sub.size:
        noise = fgn_segments(a_seg[sub], seg_len[sub], rng, ndim=d)
        rows = np.concatenate([np.arange(seg_first[s], seg_first[s] + seg_len[s]) for s in sub])
        steps[rows] = noise * sd_row[rows, None]
    # confined: Brownian sub-steps inside a random ellipse(oid)
    con = np.flatnonzero(seg_mode == CONFINED)
    if con.size:
        axes = rng.uniform(*cfg.confinement_size_range, (con.size, d))
        d_ref = _log_uniform(rng, *cfg.confinement_D_range, con.size)
        semi = 0.5 * axes * np.sqrt(d_seg[con] / d_ref)[:, None]
        out = np.zeros_like(steps)
        _confined_steps(int(rng.integers(2 ** 31)), np.sqrt(2.0 * d_seg[con]), seg_first[con], seg_len[con],
                        semi, _rotations(rng, con.size, d), cfg.confinement_substeps, out)
        rows = np.concatenate([np.arange(seg_first[s], seg_first[s] + seg_len[s]) for s in con])
        steps[rows] = out[rows]

    # positions: a zero row before each track's steps, cumulative sums per track
    m = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    inc = np.zeros((m, d))
    track_of_step = np.repeat(np.arange(n_tracks), n_steps)
    dest = np.arange(total) + track_of_step + 1  # skip each track's first row
    inc[dest] = steps
    pos = np.cumsum(inc, axis=0)
    pos -= np.repeat(pos[offsets[:-1]], lengths, axis=0)
    # localisation error: sqrt(D) / Q, sqrt(D + v^2) / Q on directed steps (a point takes its step's)
    sigma_seg = np.sqrt(d_seg + vel ** 2) / q_track[seg_track]
    sigma = np.empty(m)
    sigma[dest] = sigma_seg[row_seg]
    sigma[offsets[:-1]] = sigma[offsets[:-1] + 1]
    pos += rng.standard_normal((m, d)) * sigma[:, None]
    start = rng.uniform(0.0, 100.0, (n_tracks, d))
    pos += np.repeat(start, lengths, axis=0)

    labels = np.empty(m, dtype=np.int64)
    labels[dest] = mode_row
    labels[offsets[:-1]] = labels[offsets[:-1] + 1]
    return TrackSet(positions=pos, offsets=offsets, labels=labels, seg_track=seg_track,
                    seg_start=seg_start_in_track, seg_length=seg_len, seg_mode=seg_mode)
