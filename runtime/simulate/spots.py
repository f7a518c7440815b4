"""Simulated fluorescence spot movies with known ground truth (numpy/scipy only, no torch).

Particles diffuse (Brownian), drift (directed) or diffuse inside a reflecting disc (confined) in a
box somewhat larger than the field of view, so they wander in and out of view. They are born and
die with exponential lifetimes, may divide in two (``division_rate``; the truth then records each
daughter's ``parent_track_id``), and emitters blink (a two-state Markov chain). The movie is
rendered with a pixel-integrated Gaussian PSF on a constant background, with Poisson shot noise
and Gaussian read noise (gain 1: one photon = one electron = one count).

Conventions: ``y`` = row, ``x`` = column, in px; pixel ``(r, c)`` covers
``[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]`` so pixel centres sit at integer coordinates and the
field of view is ``[-0.5, H - 0.5) x [-0.5, W - 0.5)``. ``frame`` is a 0-based integer.

SNR definition: the peak amplitude of a spot (photons per px^2 at the centre of the continuous
PSF, above background) is ``snr * sqrt(background + read_noise**2)``, i.e. ``snr`` times the noise
standard deviation of a background pixel. A spot of amplitude ``A`` holds ``A * 2 * pi *
psf_sigma**2`` photons in total; a pixel centred exactly on it receives the PSF integrated over
the pixel, slightly less than ``A`` (about ``0.963 * A`` for ``psf_sigma = 1.5``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.special import erf

from edgetrack.runtime.config import StageConfig, is_int, is_real, require
from edgetrack.runtime.errors import ConfigError, InputError

__all__ = [
    "SpotSimConfig",
    "simulate_trajectories",
    "render_movie",
    "simulate_movie",
    "simulate_detections",
    "peak_amplitude",
]

BROWNIAN, DIRECTED, CONFINED = 0, 1, 2

# Independent random streams derived from the one seed (SeedSequence spawn keys).
_STREAM_TRAJECTORIES = 0
_STREAM_RENDER = 1
_STREAM_DETECTIONS = 2
_STREAM_DIVISIONS = 3



def _pair(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not isinstance(value, np.ndarray):
        raise ConfigError(f"SpotSimConfig.{name} must be a sequence, got {value!r}")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class SpotSimConfig(StageConfig):
    """Parameters of the spot-movie simulator (units: px, frames, photons).

    - ``n_frames``: number of frames T.
    - ``shape``: (rows H, cols W) of the field of view, px.
    - ``n_spots``: mean number of particles inside the field of view per frame (emitting or dark).
    - ``D_range``: (min, max) diffusion coefficient, px^2/frame, drawn log-uniform per particle
      (MSD = 4 D t in 2D). ``min == max`` gives every particle the same D (0 allowed then).
    - ``motion_fractions``: probabilities of (brownian, directed, confined) motion; must sum to 1.
    - ``speed``: drift speed of directed particles, px/frame, in a random direction per particle
      (they also diffuse with their D).
    - ``confinement_radius``: radius of the reflecting disc of confined particles, px; the disc
      is centred on the particle's birth position.
    - ``mean_lifetime``: mean particle lifetime, frames (exponential); ``inf`` = no births or deaths.
    - ``p_blink_off`` / ``p_blink_on``: per-frame probabilities that an emitting particle goes dark /
      a dark particle emits again. Particles start in the stationary blinking state.
    - ``psf_sigma``: standard deviation of the Gaussian PSF, px.
    - ``snr``: peak amplitude / background noise std, see the module docstring:
      ``amplitude = snr * sqrt(background + read_noise**2)`` photons.
    - ``amplitude_spread``: relative standard deviation of the per-particle amplitude (log-normal
      with mean equal to the nominal peak amplitude).
    - ``background``: photons per pixel per frame; ``read_noise``: electrons rms per pixel.
    - ``division_rate``: per-frame probability that a particle divides: its track ends and two
      daughters (new track ids, ``parent_track_id`` = the mother's) start in the next frame, placed
      ``division_distance`` px apart on either side of the mother's last position (then each takes
      its own step). Daughters inherit D, motion, amplitude and blinking state. Births make up for
      deaths minus divisions (none when ``division_rate >= 1 - exp(-1/mean_lifetime)``, and then
      the number of particles grows).
    - ``division_distance``: distance between the two daughters at their start, px.
    - ``seed``: seed of every random draw.
    """

    n_frames: int = 100
    shape: tuple[int, int] = (512, 512)
    n_spots: int = 500
    D_range: tuple[float, float] = (0.5, 2.0)
    motion_fractions: tuple[float, float, float] = (1.0, 0.0, 0.0)
    speed: float = 1.0
    confinement_radius: float = 3.0
    mean_lifetime: float = 100.0
    p_blink_off: float = 0.0
    p_blink_on: float = 0.5
    psf_sigma: float = 1.5
    snr: float = 10.0
    amplitude_spread: float = 0.2
    background: float = 100.0
    read_noise: float = 2.0
    seed: int = 0
    division_rate: float = 0.0
    division_distance: float = 2.0

    def __post_init__(self) -> None:
        # Accept lists (JSON, CLI) for the tuple fields; store tuples so the config stays hashable.
        for name in ("shape", "D_range", "motion_fractions"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        super().__post_init__()

    def validate(self) -> None:
        require(is_int(self.n_frames) and self.n_frames >= 1, f"n_frames must be an integer >= 1, got {self.n_frames!r}")
        require(
            len(self.shape) == 2 and all(is_int(v) and v >= 1 for v in self.shape),
            f"shape must be two integers >= 1 (rows, cols), got {self.shape!r}",
        )
        require(is_real(self.n_spots) and 0 <= self.n_spots < math.inf, f"n_spots must be a finite number >= 0, got {self.n_spots!r}")
        require(
            len(self.D_range) == 2 and all(is_real(v) and 0 <= v < math.inf for v in self.D_range),
            f"D_range must be two finite numbers >= 0 (px^2/frame), got {self.D_range!r}",
        )
        d_min, d_max = self.D_range
        require(d_min <= d_max, f"D_range must be (min, max) with min <= max, got {self.D_range!r}")
        require(d_min > 0 or d_min == d_max, f"D_range is drawn log-uniform: min must be > 0 unless min == max, got {self.D_range!r}")
        require(
            len(self.motion_fractions) == 3 and all(is_real(v) and 0 <= v <= 1 for v in self.motion_fractions),
            f"motion_fractions must be three numbers in [0, 1] (brownian, directed, confined), got {self.motion_fractions!r}",
        )
        require(
            abs(sum(self.motion_fractions) - 1.0) <= 1e-6,
            f"motion_fractions must sum to 1, got {self.motion_fractions!r} (sum {sum(self.motion_fractions):g})",
        )
        require(is_real(self.speed) and 0 <= self.speed < math.inf, f"speed must be a finite number >= 0 (px/frame), got {self.speed!r}")
        require(
            is_real(self.confinement_radius) and 0 < self.confinement_radius < math.inf,
            f"confinement_radius must be a finite number > 0 (px), got {self.confinement_radius!r}",
        )
        require(is_real(self.mean_lifetime) and self.mean_lifetime > 0, f"mean_lifetime must be > 0 frames (inf allowed), got {self.mean_lifetime!r}")
        require(is_real(self.p_blink_off) and 0 <= self.p_blink_off <= 1, f"p_blink_off must be in [0, 1], got {self.p_blink_off!r}")
        require(is_real(self.p_blink_on) and 0 <= self.p_blink_on <= 1, f"p_blink_on must be in [0, 1], got {self.p_blink_on!r}")
        require(
            self.p_blink_off == 0 or self.p_blink_on > 0,
            "p_blink_on must be > 0 when p_blink_off > 0 (otherwise every emitter goes dark for good)",
        )
        require(is_real(self.psf_sigma) and 0 < self.psf_sigma <= 50, f"psf_sigma must be in (0, 50] px, got {self.psf_sigma!r}")
        require(is_real(self.snr) and 0 <= self.snr < math.inf, f"snr must be a finite number >= 0, got {self.snr!r}")
        require(
            is_real(self.amplitude_spread) and 0 <= self.amplitude_spread < math.inf,
            f"amplitude_spread must be a finite number >= 0, got {self.amplitude_spread!r}",
        )
        require(is_real(self.background) and 0 <= self.background < math.inf, f"background must be a finite number >= 0 photons, got {self.background!r}")
        require(is_real(self.read_noise) and 0 <= self.read_noise < math.inf, f"read_noise must be a finite number >= 0 electrons, got {self.read_noise!r}")
        require(
            self.background + self.read_noise**2 > 0,
            "background and read_noise cannot both be 0 (the SNR is defined relative to the background noise)",
        )
        require(is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        require(is_real(self.division_rate) and 0 <= self.division_rate <= 1,
                f"division_rate must be in [0, 1] per frame, got {self.division_rate!r}")
        require(is_real(self.division_distance) and 0 <= self.division_distance < math.inf,
                f"division_distance must be a finite number >= 0 px, got {self.division_distance!r}")


def peak_amplitude(config: SpotSimConfig) -> float:
    """Nominal peak amplitude of a spot, photons per px^2 above background: ``snr * sqrt(background + read_noise**2)``."""
    return float(config.snr * math.sqrt(config.background + config.read_noise**2))


def seeded_generator(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream for ``seed`` and the integers ``key`` (one stream per purpose)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def _resolve(config: SpotSimConfig | None, overrides: dict[str, Any]) -> SpotSimConfig:
    if config is None:
        return SpotSimConfig.from_dict(overrides)
    if not isinstance(config, SpotSimConfig):
        raise ConfigError(f"config must be a SpotSimConfig, got {type(config).__name__}")
    return config.replace(**overrides) if overrides else config


def _margin(config: SpotSimConfig) -> float:
    """Width (px) of the band around the field of view where particles still move, unseen."""
    step = math.sqrt(2.0 * config.D_range[1]) + (config.speed if config.motion_fractions[1] > 0 else 0.0)
    margin = 4.0 * step
    if config.motion_fractions[2] > 0:
        margin += config.confinement_radius
    return max(margin, 2.0)


def _new_particles(rng: np.random.Generator, n: int, config: SpotSimConfig, lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
    """Draw ``n`` new particles (positions uniform in the box, stationary blinking state)."""
    pos = lo + rng.random((n, 2)) * (hi - lo)
    d_min, d_max = config.D_range
    if d_min == d_max:
        diff = np.full(n, float(d_min))
    else:
        diff = np.exp(rng.uniform(math.log(d_min), math.log(d_max), n))
    motion = rng.choice(3, size=n, p=np.asarray(config.motion_fractions, dtype=float) / sum(config.motion_fractions)).astype(np.int8)
    angle = rng.uniform(0.0, 2.0 * math.pi, n)
    vel = np.where((motion == DIRECTED)[:, None], config.speed * np.column_stack([np.sin(angle), np.cos(angle)]), 0.0)
    # Confined particles: disc centred on the drawn point, start uniform inside the disc
    # (the stationary distribution of a reflected diffusion).
    centre = pos.copy()
    conf = motion == CONFINED
    if conf.any():
        k = int(conf.sum())
        r = config.confinement_radius * np.sqrt(rng.random(k))
        phi = rng.uniform(0.0, 2.0 * math.pi, k)
        pos[conf] = centre[conf] + r[:, None] * np.column_stack([np.sin(phi), np.cos(phi)])
    spread = config.amplitude_spread
    if spread > 0:
        s2 = math.log1p(spread**2)
        amp = peak_amplitude(config) * np.exp(rng.normal(-0.5 * s2, math.sqrt(s2), n))
    else:
        amp = np.full(n, peak_amplitude(config))
    if config.p_blink_off > 0:
        p_emit = config.p_blink_on / (config.p_blink_on + config.p_blink_off)
        emitting = rng.random(n) < p_emit
    else:
        emitting = np.ones(n, dtype=bool)
    return {"pos": pos, "vel": vel, "centre": centre, "D": diff, "motion": motion, "amplitude": amp, "emitting": emitting}


def _fold_box(pos: np.ndarray, vel: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflect positions into the box [lo, hi] (any number of bounces); flip velocity per bounce."""
    span = hi - lo
    u = (pos - lo) / span
    k = np.floor(u)
    frac = u - k
    odd = np.mod(k, 2) != 0
    frac = np.where(odd, 1.0 - frac, frac)
    return lo + frac * span, np.where(odd, -vel, vel)


def _fold_disc(pos: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Reflect positions radially into the disc of ``radius`` around ``centre``."""
    d = pos - centre
    r = np.hypot(d[:, 0], d[:, 1])
    out = r > radius
    if not out.any():
        return pos
    folded = np.mod(r[out], 2.0 * radius)
    folded = np.where(folded > radius, 2.0 * radius - folded, folded)
    result = pos.copy()
    result[out] = centre[out] + d[out] * (folded / r[out])[:, None]
    return result


def simulate_trajectories(config: SpotSimConfig) -> pd.DataFrame:
    """Simulate every particle position while the particle exists.

    Particles live in a box that extends the field of view by a margin of a few step sizes,
    with reflecting walls (confined particles are held by their own disc instead). The mean
    number of particles in the field of view is ``config.n_spots``; with a finite
    ``mean_lifetime`` particles die with probability ``1 - exp(-1/mean_lifetime)`` per frame
    and are born uniformly in the box at the matching rate, so the number is stationary.

    Returns a DataFrame sorted by (frame, track_id) with columns ``frame`` (int64), ``y``, ``x``
    (float64, px), ``track_id`` (int64, 0.. in order of birth; one id per particle, kept when it
    leaves the view and comes back), ``D`` (px^2/frame), ``motion`` (int8: 0 brownian,
    1 directed, 2 confined), ``amplitude`` (photons per px^2, peak), ``visible`` (bool: inside
    the field of view and emitting), and with ``division_rate > 0`` ``parent_track_id`` (int64, the
    mother's track id of a daughter, -1 otherwise).
    """
    if not isinstance(config, SpotSimConfig):
        raise ConfigError(f"config must be a SpotSimConfig, got {type(config).__name__}")
    rng = seeded_generator(config.seed, _STREAM_TRAJECTORIES)
    height, width = config.shape
    margin = _margin(config)
    lo = np.array([-0.5 - margin, -0.5 - margin])
    hi = np.array([height - 0.5 + margin, width - 0.5 + margin])
    n_box = config.n_spots * float(np.prod(hi - lo)) / (height * width)
    p_death = -math.expm1(-1.0 / config.mean_lifetime) if math.isfinite(config.mean_lifetime) else 0.0
    births_mean = n_box * max(p_death - config.division_rate, 0.0)
    radius = config.confinement_radius
    p_off, p_on = config.p_blink_off, config.p_blink_on

    n0 = int(rng.poisson(n_box))
    state = _new_particles(rng, n0, config, lo, hi)
    ids = np.arange(n0, dtype=np.int64)
    next_id = n0
    attrs_d, attrs_motion, attrs_amp = [state["D"]], [state["motion"]], [state["amplitude"]]
    parents = [np.full(n0, -1, dtype=np.int64)]  # mother's track id per track id (-1 none)
    div_rng = seeded_generator(config.seed, _STREAM_DIVISIONS) if config.division_rate > 0 else None

    rec_frame, rec_id, rec_pos, rec_emit = [], [], [], []
    for t in range(config.n_frames):
        rec_frame.append(np.full(ids.size, t, dtype=np.int64))
        rec_id.append(ids)
        rec_pos.append(state["pos"])
        rec_emit.append(state["emitting"])
        if t == config.n_frames - 1:
            break
        if p_death > 0 and ids.size:
            keep = rng.random(ids.size) >= p_death
            ids = ids[keep]
            state = {k: v[keep] for k, v in state.items()}
        if div_rng is not None and ids.size:
            ids, state, born_ids = _divide(div_rng, ids, state, next_id, config)
            if born_ids.size:
                next_id += born_ids.size
                attrs_d.append(state["D"][-born_ids.size:])
                attrs_motion.append(state["motion"][-born_ids.size:])
                attrs_amp.append(state["amplitude"][-born_ids.size:])
                parents.append(born_ids)
        n = ids.size
        if n:
            step = rng.normal(size=(n, 2)) * np.sqrt(2.0 * state["D"])[:, None]
            pos = state["pos"] + step + state["vel"]
            free = state["motion"] != CONFINED
            if free.all():
                pos, state["vel"] = _fold_box(pos, state["vel"], lo, hi)
            else:
                box_pos, box_vel = _fold_box(pos, state["vel"], lo, hi)
                disc_pos = _fold_disc(pos, state["centre"], radius)
                pos = np.where(free[:, None], box_pos, disc_pos)
                state["vel"] = np.where(free[:, None], box_vel, state["vel"])
            state["pos"] = pos
            if p_off > 0:
                u = rng.random(n)
                state["emitting"] = np.where(state["emitting"], u >= p_off, u < p_on)
        if births_mean > 0:
            nb = int(rng.poisson(births_mean))
            if nb:
                born = _new_particles(rng, nb, config, lo, hi)
                state = {k: np.concatenate([state[k], born[k]]) for k in state}
                ids = np.concatenate([ids, np.arange(next_id, next_id + nb, dtype=np.int64)])
                next_id += nb
                attrs_d.append(born["D"])
                attrs_motion.append(born["motion"])
                attrs_amp.append(born["amplitude"])
                parents.append(np.full(nb, -1, dtype=np.int64))

    frame = np.concatenate(rec_frame)
    track = np.concatenate(rec_id)
    pos = np.concatenate(rec_pos).reshape(-1, 2)
    emitting = np.concatenate(rec_emit).astype(bool)
    y = np.ascontiguousarray(pos[:, 0], dtype=np.float64)
    x = np.ascontiguousarray(pos[:, 1], dtype=np.float64)
    inside = (y >= -0.5) & (y < height - 0.5) & (x >= -0.5) & (x < width - 0.5)
    all_d = np.concatenate(attrs_d)
    all_motion = np.concatenate(attrs_motion)
    all_amp = np.concatenate(attrs_amp)
    columns = {
            "frame": frame,
            "y": y,
            "x": x,
            "track_id": track,
            "D": all_d[track].astype(np.float64),
            "motion": all_motion[track].astype(np.int8),
            "amplitude": all_amp[track].astype(np.float64),
            "visible": inside & emitting,
    }
    if div_rng is not None:
        columns["parent_track_id"] = np.concatenate(parents)[track]
    return pd.DataFrame(columns)


def _divide(rng: np.random.Generator, ids: np.ndarray, state: dict[str, np.ndarray], next_id: int,
            config: SpotSimConfig) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Replace each particle that divides (probability ``division_rate``) by two daughters.

    Returns the new ids and state (daughters appended, two per mother, ids from ``next_id``) and
    the mothers' ids of the daughters (int64, one per daughter, empty when nobody divides).
    """
    splits = rng.random(ids.size) < config.division_rate
    k = int(splits.sum())
    if k == 0:
        return ids, state, np.zeros(0, dtype=np.int64)
    angle = rng.uniform(0.0, 2.0 * math.pi, k)
    half = 0.5 * config.division_distance * np.column_stack([np.sin(angle), np.cos(angle)])
    daughters = {key: np.repeat(value[splits], 2, axis=0) for key, value in state.items()}
    daughters["pos"] = daughters["pos"] + np.repeat(half, 2, axis=0) * np.tile([1.0, -1.0], k)[:, None]
    daughters["centre"] = daughters["pos"].copy()
    stay = ~splits
    state = {key: np.concatenate([value[stay], daughters[key]]) for key, value in state.items()}
    new_ids = np.concatenate([ids[stay], np.arange(next_id, next_id + 2 * k, dtype=np.int64)])
    return new_ids, state, np.repeat(ids[splits], 2)


def _check_points(points: pd.DataFrame, n_frames: int) -> None:
    if not isinstance(points, pd.DataFrame):
        raise InputError(f"points must be a pandas DataFrame, got {type(points).__name__}")
    missing = [c for c in ("frame", "y", "x") if c not in points.columns]
    if missing:
        raise InputError(f"points is missing column(s) {', '.join(missing)}")
    for col in ("y", "x", "frame") + (("amplitude",) if "amplitude" in points.columns else ()):
        values = points[col].to_numpy()
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
            raise InputError(f"points column {col!r} must be numeric, got dtype {values.dtype}")
        if not np.isfinite(values.astype(np.float64)).all():
            raise InputError(f"points column {col!r} contains NaN or infinite values")
    frames = points["frame"].to_numpy()
    if len(frames) and (np.any(frames != np.round(frames)) or frames.min() < 0 or frames.max() >= n_frames):
        raise InputError(f"points column 'frame' must hold integers in [0, {n_frames - 1}] (n_frames = {n_frames})")


def _axis_weights(centres: np.ndarray, start: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Fraction of a unit Gaussian (std ``sigma``) at ``centres`` falling in pixels start..start+size-1.

    Returns float64 (n, size): ``0.5 * (erf((p + 0.5 - c) / (sqrt(2) sigma)) - erf((p - 0.5 - c) / ...))``.
    """
    edges = start[:, None] + np.arange(size + 1) - 0.5
    cdf = erf((edges - centres[:, None]) / (math.sqrt(2.0) * sigma))
    return 0.5 * np.diff(cdf, axis=1)


def render_movie(points: pd.DataFrame, config: SpotSimConfig) -> np.ndarray:
    """Render spots into a noisy movie, uint16 of shape (n_frames, H, W).

    Uses the rows of ``points`` (columns ``frame``, ``y``, ``x`` in px, optional ``amplitude``
    in photons per px^2, default the nominal :func:`peak_amplitude`) whose ``visible`` is True, or
    all rows when there is no ``visible`` column. Each spot adds ``amplitude * 2 pi sigma^2``
    photons spread by a Gaussian PSF integrated exactly over each pixel (erf), within
    ``ceil(4 sigma) + 1`` px of its centre. The expected image (spots + ``background``) is
    drawn with Poisson shot noise, Gaussian read noise (``read_noise`` electrons rms) is
    added, and the result is rounded and clipped to [0, 65535]. Each frame has its own random
    stream derived from ``config.seed``, so the movie is deterministic.
    """
    if not isinstance(config, SpotSimConfig):
        raise ConfigError(f"config must be a SpotSimConfig, got {type(config).__name__}")
    n_frames = config.n_frames
    height, width = config.shape
    _check_points(points, n_frames)
    if "visible" in points.columns:
        points = points[points["visible"].to_numpy(dtype=bool)]
    frame = points["frame"].to_numpy().astype(np.int64)
    y = points["y"].to_numpy(dtype=np.float64)
    x = points["x"].to_numpy(dtype=np.float64)
    if "amplitude" in points.columns:
        amp = points["amplitude"].to_numpy(dtype=np.float64)
    else:
        amp = np.full(frame.size, peak_amplitude(config))

    sigma = float(config.psf_sigma)
    half = int(math.ceil(4.0 * sigma)) + 1
    size = 2 * half + 1
    near = (y > -half - 0.5) & (y < height - 0.5 + half) & (x > -half - 0.5) & (x < width - 0.5 + half)
    frame, y, x, amp = frame[near], y[near], x[near], amp[near]
    order = np.argsort(frame, kind="stable")
    frame, y, x, amp = frame[order], y[order], x[order], amp[order]
    bounds = np.searchsorted(frame, np.arange(n_frames + 1))

    total = amp * (2.0 * math.pi * sigma**2)
    row0 = np.rint(y).astype(np.int64) - half
    col0 = np.rint(x).astype(np.int64) - half
    offsets = np.arange(size)
    n_pix = height * width
    try:
        movie = np.empty((n_frames, height, width), dtype=np.uint16)
    except MemoryError:
        gib = n_frames * n_pix * 2 / 2**30
        raise ConfigError(f"a movie of {n_frames} x {height} x {width} uint16 ({gib:.1f} GiB) does not fit in memory") from None
    for t in range(n_frames):
        a, b = bounds[t], bounds[t + 1]
        expected = np.full(n_pix, float(config.background))
        if b > a:
            wy = _axis_weights(y[a:b], row0[a:b], size, sigma) * total[a:b, None]
            wx = _axis_weights(x[a:b], col0[a:b], size, sigma)
            rows = row0[a:b, None] + offsets  # (n, size)
            cols = col0[a:b, None] + offsets
            weight = wy[:, :, None] * wx[:, None, :]
            flat = rows[:, :, None] * width + cols[:, None, :]
            ok = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
            expected += np.bincount(flat[ok], weights=weight[ok], minlength=n_pix)
        rng = seeded_generator(config.seed, _STREAM_RENDER, t)
        image = rng.poisson(expected).astype(np.float64)
        if config.read_noise > 0:
            image += rng.normal(0.0, float(config.read_noise), n_pix)
        np.rint(image, out=image)
        np.clip(image, 0, 65535, out=image)
        movie[t] = image.reshape(height, width).astype(np.uint16)
    return movie


def _truth(trajectories: pd.DataFrame) -> pd.DataFrame:
    visible = trajectories["visible"].to_numpy()
    columns = ["frame", "y", "x", "track_id", "D", "motion", "amplitude"]
    if "parent_track_id" in trajectories.columns:
        columns.append("parent_track_id")
    return trajectories.loc[visible, columns].reset_index(drop=True)


def simulate_movie(config: SpotSimConfig | None = None, **overrides: Any) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulate and render a spot movie.

    ``overrides`` are :class:`SpotSimConfig` fields (unknown names raise ConfigError), applied on
    top of ``config`` (or of the defaults). Returns ``(movie, truth)``: the uint16 movie of shape
    (n_frames, H, W) and the visible particle positions, columns ``frame, y, x, track_id, D,
    motion, amplitude`` (and ``parent_track_id`` with divisions; see :func:`simulate_trajectories`),
    sorted by (frame, track_id), with a fresh RangeIndex.
    """
    config = _resolve(config, overrides)
    truth = _truth(simulate_trajectories(config))
    return render_movie(truth, config), truth


def simulate_detections(
    config: SpotSimConfig | None = None,
    *,
    miss_rate: float = 0.05,
    localization_error: float = 0.1,
    **overrides: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate detections directly, without rendering a movie.

    ``detections`` are the visible truth positions plus independent Gaussian noise of std
    ``localization_error`` px per axis, with a random fraction ``miss_rate`` of them dropped;
    columns ``frame`` (int64), ``y``, ``x`` (float64 px), sorted by frame, then y, then x, no track
    ids. ``truth`` holds the visible rows before dropping (as returned by :func:`simulate_movie`).
    Deterministic for ``config.seed``.
    """
    if not (is_real(miss_rate) and 0 <= miss_rate <= 1):
        raise ConfigError(f"miss_rate must be in [0, 1], got {miss_rate!r}")
    if not (is_real(localization_error) and 0 <= localization_error < math.inf):
        raise ConfigError(f"localization_error must be a finite number >= 0 px, got {localization_error!r}")
    config = _resolve(config, overrides)
    truth = _truth(simulate_trajectories(config))
    rng = seeded_generator(config.seed, _STREAM_DETECTIONS)
    n = len(truth)
    y = truth["y"].to_numpy() + rng.normal(0.0, float(localization_error), n)
    x = truth["x"].to_numpy() + rng.normal(0.0, float(localization_error), n)
    keep = rng.random(n) >= miss_rate
    frame = truth["frame"].to_numpy()[keep]
    y, x = y[keep], x[keep]
    order = np.lexsort((x, y, frame))
    detections = pd.DataFrame({"frame": frame[order].astype(np.int64), "y": y[order], "x": x[order]})
    return detections, truth
