"""Heterogeneous tracks with a diffusional mode per time point (training data of the DeepSPT models).

Each track is a chain of segments; each segment moves in one of four modes (the classes of
:data:`edgetrack.runtime.deepspt.MODES`):

* 0 normal: Brownian steps, per coordinate N(0, 2 D).
* 1 directed: Brownian steps plus a constant drift ``v u`` (``u`` a random unit vector) with
  ``v = sqrt(R * 2 d D / n)`` px/frame for a segment of ``n`` steps, so that the squared drift
  distance is ``R`` times the free diffusion MSD of the segment (``R`` drawn in ``R_range``).
* 2 confined: Brownian motion inside a reflecting disc (ball in 3-D) centred where the segment
  starts, of radius ``r_c = sqrt(B * 2 d D n)`` (``B`` in ``B_range``: the confinement area is a
  fraction of what free diffusion would explore); a step that leaves the disc is folded back
  radially.
* 3 subdiffusive: fractional Brownian motion with exponent ``alpha`` in ``alpha_range`` and
  ``K = D`` (exact fGn from :mod:`edgetrack.training.andi.fbm`).

A fraction ``switching_fraction`` of the tracks switch mode 1 to ``max_change_points`` times
(consecutive segments differ, every segment at least ``min_segment`` steps); the others keep one
mode. Track lengths are uniform in ``[min_length, max_length]`` points. ``D`` of a track is
log-uniform in ``D_range`` (px^2/frame, four orders of magnitude by default) and varies between
its segments by up to ``segment_D_spread`` decades; the localisation error (per coordinate,
Gaussian) is ``sqrt(2 D) / Q`` with ``Q`` log-uniform in ``Q_range`` (the ratio of the step to
the localisation error).

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
    min_length: int = 20
    max_length: int = 400
    switching_fraction: float = 0.8
    max_change_points: int = 4
    min_segment: int = 10
    D_range: tuple[float, float] = (1e-3, 10.0)
    segment_D_spread: float = 0.5
    Q_range: tuple[float, float] = (1.0, 16.0)
    R_range: tuple[float, float] = (5.0, 25.0)
    B_range: tuple[float, float] = (0.05, 0.25)
    alpha_range: tuple[float, float] = (0.1, 0.7)

    def validate(self) -> None:
        require(self.ndim in (2, 3), f"ndim must be 2 or 3, got {self.ndim}")
        require(3 <= self.min_length <= self.max_length, "need 3 <= min_length <= max_length")
        require(0.0 <= self.switching_fraction <= 1.0, "switching_fraction must be in [0, 1]")
        require(self.max_change_points >= 1, "max_change_points must be >= 1")
        require(self.min_segment >= 1, "min_segment must be >= 1")
        for name in ("D_range", "Q_range", "R_range", "B_range", "alpha_range"):
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
def _confined_steps(noise: np.ndarray, seg_start: np.ndarray, seg_len: np.ndarray, radius: np.ndarray,
                    out: np.ndarray) -> None:
    """Steps of Brownian motion folded radially into a ball of ``radius`` around each segment's start.

    noise: (N, d) free Brownian steps; segment s owns rows seg_start[s] : seg_start[s] + seg_len[s];
    out: (N, d) the confined steps.
    """
    d = noise.shape[1]
    p = np.zeros(d)
    q = np.zeros(d)
    for s in range(seg_start.size):
        r = radius[s]
        for k in range(d):
            p[k] = 0.0
        for t in range(seg_start[s], seg_start[s] + seg_len[s]):
            nrm2 = 0.0
            for k in range(d):
                q[k] = p[k] + noise[t, k]
                nrm2 += q[k] * q[k]
            nrm = np.sqrt(nrm2)
            if nrm > r:
                # fold the radial distance back inside: r -> 2 R - r (repeated for long jumps)
                rad = nrm
                for _ in range(64):
                    if rad <= r:
                        break
                    rad = 2.0 * r - rad
                    if rad < 0.0:
                        rad = -rad
                scale = rad / nrm
                for k in range(d):
                    q[k] *= scale
            for k in range(d):
                out[t, k] = q[k] - p[k]
                p[k] = q[k]


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
    q_track = _log_uniform(rng, *cfg.Q_range, n_tracks)
    r_seg = rng.uniform(*cfg.R_range, n_seg)
    b_seg = rng.uniform(*cfg.B_range, n_seg)
    a_seg = rng.uniform(*cfg.alpha_range, n_seg)
    u_seg = _unit_vectors(rng, n_seg, d)

    total = int(n_steps.sum())
    row_seg = np.repeat(np.arange(n_seg), seg_len)
    sd_row = np.sqrt(2.0 * d_seg[row_seg])
    steps = rng.standard_normal((total, d)) * sd_row[:, None]
    mode_row = seg_mode[row_seg]
    # directed: add the drift
    vel = np.sqrt(r_seg * 2.0 * d * d_seg / seg_len)
    drift = (vel[:, None] * u_seg)[row_seg]
    steps += np.where((mode_row == DIRECTED)[:, None], drift, 0.0)
    # subdiffusive: replace by fGn
    sub = np.flatnonzero(seg_mode == SUBDIFFUSIVE)
    if sub.size:
        noise = fgn_segments(a_seg[sub], seg_len[sub], rng, ndim=d)
        rows = np.concatenate([np.arange(seg_first[s], seg_first[s] + seg_len[s]) for s in sub])
        steps[rows] = noise * sd_row[rows, None]
    # confined: fold into the ball
    con = np.flatnonzero(seg_mode == CONFINED)
    if con.size:
        radius = np.sqrt(b_seg[con] * 2.0 * d * d_seg[con] * seg_len[con])
        out = np.zeros_like(steps)
        _confined_steps(np.ascontiguousarray(steps), seg_first[con], seg_len[con], radius, out)
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
    sigma = np.sqrt(2.0 * d_track) / q_track
    pos += rng.standard_normal((m, d)) * np.repeat(sigma, lengths)[:, None]
    start = rng.uniform(0.0, 100.0, (n_tracks, d))
    pos += np.repeat(start, lengths, axis=0)

    labels = np.empty(m, dtype=np.int64)
    labels[dest] = mode_row
    labels[offsets[:-1]] = labels[offsets[:-1] + 1]
    return TrackSet(positions=pos, offsets=offsets, labels=labels, seg_track=seg_track,
                    seg_start=seg_start_in_track, seg_length=seg_len, seg_mode=seg_mode)
