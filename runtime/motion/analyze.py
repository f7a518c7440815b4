"""Motion characterisation of a track table: per-frame alpha, K, state and change points, segments,
ensemble summary, the 2nd AnDi Challenge files, and a streaming estimator.

:func:`analyze_tracks` takes a table with ``track_id, frame, y, x`` (px, frames) and returns

* ``frames``: one row per track point: ``track_id, frame, alpha, K, state, cp_prob, segment``
  (alpha, K and state of the point's segment; ``cp_prob`` the network's probability that a
  segment starts at that point), plus the DeepSPT ``mode, p_normal, p_directed, p_confined,
  p_subdiffusive`` when :mod:`edgetrack.runtime.motion.deepspt` and its model are available;
* ``segments``: ``track_id, start, end`` (first and last frame, inclusive), ``n_frames, alpha,
  K, state``, ``ensemble_state`` (the segment's column of the ensemble), ``paired_fraction``
  (share of its frames with another track within 2 px), plus ``mode`` and the diffusional
  fingerprint features when available (``fp_`` before a feature name that is already a column,
  such as ``fp_alpha``);
* ``ensemble``: one row per state of the experiment: ``ensemble_state, immobile, alpha_mean,
  alpha_var, K_mean, K_var, n_frames, fraction``.

States: 0 immobile, 1 confined, 2 free, 3 directed. K is in px^2/frame^alpha (per-coordinate MSD
``2 K t^alpha``) unless ``pixel_size`` (um/px) and/or ``frame_interval`` (s) are given: then every
K column is in um^2/s^alpha (or um^2/frame^alpha, px^2/s^alpha with only one of them), as
:attr:`AnalyzeResult.K_unit` says. The challenge files always use px and frames.

Tracks with gaps are filled by linear interpolation for the network; rows are written only for
the frames the table has. Tracks with fewer than 3 frames get NaN and state -1.
"""

from __future__ import annotations

import contextlib

import dataclasses
import math
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.errors import InputError, ModelError
from edgetrack.runtime.motion.network import MIN_POINTS, FramePredictions, predict_frames
from edgetrack.runtime.motion.ensemble import EnsembleSummary, ensemble_summary, guess_model, harmonise_states
from edgetrack.runtime.motion.segments import SegmentConfig, TrackSegments, segment_track

__all__ = [
    "TRACK_COLUMNS",
    "TrackInput",
    "AnalyzeResult",
    "split_tracks",
    "analyze_tracks",
    "analyze_predictions",
    "paired_fraction",
    "andi_rows",
    "fill_values",
    "write_andi",
    "write_analysis",
    "MotionEstimate",
    "MotionEstimator",
]

TRACK_COLUMNS = ("track_id", "frame", "y", "x")
MODE_COLUMNS = ("mode", "p_normal", "p_directed", "p_confined", "p_subdiffusive")


@dataclasses.dataclass(frozen=True)
class TrackInput:
    """One track: ``frames`` (n,) int64 as given (sorted), ``positions`` (T, 2) px on every frame
    from ``first`` to ``first + T - 1`` (gaps filled linearly)."""

    track_id: object
    frames: np.ndarray
    positions: np.ndarray

    @property
    def first(self) -> int:
        return int(self.frames[0])

    @property
    def length(self) -> int:
        return int(self.positions.shape[0])


def split_tracks(tracks: pd.DataFrame) -> list[TrackInput]:
    """Check a track table (``track_id, frame, y, x``) and split it into tracks, in order of
    first appearance of each track id. Raises InputError on missing columns, NaN, non-integer or
    repeated frames within a track."""
    from edgetrack.runtime.io.tables import check_table, from_trackpy_names

    table = check_table(from_trackpy_names(tracks, "tracks"), TRACK_COLUMNS[1:], source="tracks")
    if "track_id" not in table.columns:
        raise InputError("tracks: missing required column track_id (or trackpy's particle)")
    if table["track_id"].isna().any():
        raise InputError("tracks: column 'track_id' has missing values")
    if len(table) == 0:
        raise InputError("tracks: the table has no rows")
    ids = table["track_id"].to_numpy()
    codes, uniques = pd.factorize(ids, sort=False)
    frame = table["frame"].to_numpy(np.int64)
    yx = table[["y", "x"]].to_numpy(np.float64)
    order = np.lexsort((frame, codes))
    codes_s, frame_s, yx_s = codes[order], frame[order], yx[order]
    dup = (codes_s[1:] == codes_s[:-1]) & (frame_s[1:] == frame_s[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        tid = uniques[codes_s[i]]
        tid = tid.item() if isinstance(tid, np.generic) else tid
        raise InputError(f"tracks: track {tid!r} has two rows at frame {frame_s[i]}")
    bounds = np.r_[0, np.flatnonzero(codes_s[1:] != codes_s[:-1]) + 1, codes_s.size]
    out = []
    for j in range(bounds.size - 1):
        lo, hi = bounds[j], bounds[j + 1]
        f = frame_s[lo:hi]
        p = yx_s[lo:hi]
        span = np.arange(f[0], f[-1] + 1)
        if span.size != f.size:
            p = np.column_stack([np.interp(span, f, p[:, 0]), np.interp(span, f, p[:, 1])])
        out.append(TrackInput(uniques[codes_s[lo]], f.copy(), np.ascontiguousarray(p)))
    return out


@dataclasses.dataclass(frozen=True)
class AnalyzeResult:
    """Output of :func:`analyze_tracks` (see the module docstring for the tables)."""

    frames: pd.DataFrame
    segments: pd.DataFrame
    ensemble: pd.DataFrame
    summary: EnsembleSummary | None
    model_guess: str
    tracks: tuple[TrackInput, ...]
    track_segments: tuple[TrackSegments, ...]
    K_unit: str
    notes: tuple[str, ...]


def _k_unit(pixel_size: float | None, frame_interval: float | None) -> str:
    length = "um" if pixel_size is not None else "px"
    time = "s" if frame_interval is not None else "frame"
    return f"{length}^2/{time}^alpha"


def _check_unit(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _convert_k(K: np.ndarray, alpha: np.ndarray, pixel_size: float | None, frame_interval: float | None) -> np.ndarray:
    factor = np.full(np.shape(K), (pixel_size or 1.0) ** 2)
    if frame_interval is not None:
        factor = factor / np.power(frame_interval, np.nan_to_num(alpha))
    return np.asarray(K) * factor


def _optional(label: str, module: str, name: str, call, notes: list[str]):
    """``call(function)`` with ``function`` = ``edgetrack.runtime.<module>.<name>``; None and a note
    when the module is not there or its model cannot be used."""
    import importlib

    try:
        function = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    except (ImportError, AttributeError) as exc:
        notes.append(f"{label} left out: {exc}")
        return None
    try:
        return call(function)
    except ModelError as exc:
        notes.append(f"{label} left out: {exc}")
        return None


def paired_fraction(items: Sequence[TrackInput], segs: Sequence[TrackSegments], distance: float = 2.0) -> np.ndarray:
    """Per segment (in order of ``segs``, one TrackSegments per item), the fraction of its frames
    at which another track is closer than ``distance`` px (a bound pair moves together)."""
    from scipy.spatial import cKDTree

    n_seg = sum(s.n_segments for s in segs)
    if len(items) < 2:
        return np.zeros(n_seg)
    frames = np.concatenate([np.arange(t.first, t.first + t.length) for t in items]).astype(np.float64)
    pos = np.concatenate([t.positions for t in items])
    span = float(np.ptp(pos, axis=0).max()) + 10.0 * distance + 1.0  # frames far apart never meet
    pts = np.column_stack([frames * span, pos])
    dist, _ = cKDTree(pts).query(pts, k=2, distance_upper_bound=float(distance))
    near = np.isfinite(dist[:, 1])
    out, offset = [], 0
    for t, s in zip(items, segs):
        cs = np.concatenate([[0], np.cumsum(near[offset:offset + t.length])])
        out.append((cs[s.end + 1] - cs[s.start]) / (s.end - s.start + 1))
        offset += t.length
    return np.concatenate(out) if out else np.zeros(0)


def analyze_tracks(
    tracks: pd.DataFrame,
    *,
    config: SegmentConfig | None = None,
    max_states: int = 4,
    model=None,
    folder: Path | str | None = None,
    provider: str | None = None,
    pixel_size: float | None = None,
    frame_interval: float | None = None,
    harmonise: bool = True,
    shrink: bool = True,
    extras: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    z_scale: float | None = None,
) -> AnalyzeResult:
    """Characterise every track of ``tracks`` (``track_id, frame, y, x`` in px and frames).

    3-D tracks (a ``z`` column; ``z_scale`` the z voxel size over the pixel size when z is in voxels, None =
    z already in the units of y and x): the motion model, trained on 2-D tracks, reads each track's three
    planar projections (y, x), (z, x) and (y, z); per point, alpha, the state and change-point
    probabilities are averaged over them and K is their geometric mean (per-coordinate K, as in 2-D).

    config: post-processing options (:class:`~edgetrack.runtime.motion.segments.SegmentConfig`).
    max_states: most states in the ensemble summary (BIC chooses). model / folder / provider:
    the motion network (default: the exported ``andi_motion``; ModelError when missing).
    pixel_size (um/px), frame_interval (s): convert K in the tables. harmonise: one diffusive
    state per ensemble state (confined or not, by the frame-weighted vote of its segments; see
    :func:`~edgetrack.runtime.motion.ensemble.harmonise_states`). shrink: alpha and K of each
    segment become their posterior means within its ensemble state, with the network's error
    variances from the model's manifest entry (``calibration``; see
    :mod:`~edgetrack.runtime.motion.ensemble`). extras: also run the
    DeepSPT segmentation and fingerprints when they are installed (otherwise a note says why not).
    trackpy's ``particle`` is accepted as the track id. progress: called as ``progress(stage, done,
    total)`` while the network runs (stage ``"network"``, in tracks) and as segments are made
    (``"segments"``, in tracks).
    """
    from edgetrack.runtime.io.tables import from_trackpy_names

    tracks = from_trackpy_names(tracks, "tracks")
    items = split_tracks(tracks)
    planes = [items]
    if "z" in tracks.columns:
        scale = 1.0 if z_scale is None else float(z_scale)
        if not (math.isfinite(scale) and scale > 0):
            raise InputError(f"z_scale must be a number > 0 (z voxel size / pixel size), got {z_scale!r}")
        if tracks["z"].isna().any():
            raise InputError("tracks: column 'z' has missing values (3-D tracks need z on every row)")
        zs = tracks["z"].to_numpy(np.float64) * scale
        planes += [split_tracks(tracks.assign(y=zs)), split_tracks(tracks.assign(x=zs))]  # (z, x) and (y, z)
        tracks = tracks.assign(z=zs)  # DeepSPT's 3-D model and the fingerprints see z in the units of y and x
    elif z_scale is not None:
        raise InputError("z_scale goes with 3-D tracks (a z column)")
    if model is None:
        from edgetrack.runtime.models.onnx import load_model
        from edgetrack.runtime.motion.network import MODEL_NAME

        model = load_model(MODEL_NAME, folder=folder, provider=provider)
    positions = [t.positions for plane in planes for t in plane]
    preds = predict_frames(positions, model, progress=(lambda d, t: progress("network", d, t)) if progress else None)
    if len(planes) > 1:
        preds = _mean_over_planes(preds, len(items))
    calibration = dict(getattr(model, "entry", {}).get("calibration") or {})
    if not shrink:
        calibration.pop("alpha_error_var", None)
    return analyze_predictions(tracks, items, preds, config=config, max_states=max_states, pixel_size=pixel_size,
                               frame_interval=frame_interval, harmonise=harmonise, calibration=calibration,
                               extras=extras, progress=progress)


def _mean_over_planes(preds: Sequence[FramePredictions], n_tracks: int) -> list[FramePredictions]:
    """One prediction per track from its planar projections (``preds`` holds the planes one after the
    other, ``n_tracks`` each): alpha, state and change-point probabilities averaged, K geometric."""
    out = []
    for i in range(n_tracks):
        parts = preds[i::n_tracks]
        with np.errstate(divide="ignore", invalid="ignore"):
            K = np.exp(np.mean([np.log(p.K) for p in parts], axis=0))
        out.append(FramePredictions(np.mean([p.alpha for p in parts], axis=0), K,
                                    np.mean([p.state_prob for p in parts], axis=0),
                                    np.mean([p.cp_prob for p in parts], axis=0)))
    return out


def analyze_predictions(
    tracks: pd.DataFrame,
    items: Sequence[TrackInput],
    preds: Sequence[FramePredictions],
    *,
    config: SegmentConfig | None = None,
    max_states: int = 4,
    pixel_size: float | None = None,
    frame_interval: float | None = None,
    harmonise: bool = True,
    calibration: dict | None = None,
    pair_distance: float = 2.0,
    extras: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> AnalyzeResult:
    """The post-processing of :func:`analyze_tracks` on network outputs already computed
    (``items`` from :func:`split_tracks` of ``tracks``, ``preds`` one per item); ``calibration``:
    ``{"alpha_error_var": [e0, e1], "log10_K_error_var": [e0, e1]}``, the network's error
    variances for the ensemble's extreme deconvolution and the per-segment posterior means
    (absent: plain mixture, raw values) and ``"confined_vote"``, the threshold of
    :func:`~edgetrack.runtime.motion.ensemble.harmonise_states` (default 0.5). pair_distance
    (px): segments that spend their frames this close to another track are bound pairs, not
    confined (:func:`paired_fraction`)."""
    cfg = config or SegmentConfig()
    ps = _check_unit(pixel_size, "pixel_size")
    dt = _check_unit(frame_interval, "frame_interval")
    if int(max_states) < 1:
        raise InputError(f"max_states must be >= 1, got {max_states}")
    if len(items) != len(preds):
        raise InputError(f"{len(items)} tracks but {len(preds)} predictions")
    segs = []
    for k, p in enumerate(preds, start=1):
        segs.append(segment_track(p, cfg))
        if progress is not None and (k % 256 == 0 or k == len(preds)):
            progress("segments", k, len(preds))
    notes: list[str] = []
    if "z" in tracks.columns:
        notes.append("3-D tracks: alpha, K, states and change points are the means over the tracks' (y, x), "
                     "(z, x) and (y, z) projections (the motion model is 2-D)"
                     + ("; the DeepSPT modes and fingerprints are 3-D" if extras else ""))
    short = sum(t.length < MIN_POINTS for t in items)
    if short:
        notes.append(f"{short} track(s) shorter than {MIN_POINTS} frames left without estimates (NaN, state -1)")

    summary: EnsembleSummary | None = None
    model_guess = "single_state"
    n_seg = np.array([s.n_segments for s in segs], dtype=np.int64)
    seg_alpha = np.concatenate([s.alpha for s in segs])
    seg_k = np.concatenate([s.K for s in segs])
    seg_state = np.concatenate([s.state for s in segs])
    seg_frames = np.concatenate([s.end - s.start + 1 for s in segs])
    labels = np.full(seg_alpha.size, -1, dtype=np.int64)
    paired = paired_fraction(items, segs, pair_distance)
    if np.isfinite(seg_alpha).any():
        errors = calibration if calibration and "alpha_error_var" in calibration else None
        summary = ensemble_summary(seg_alpha, seg_k, seg_state, seg_frames, max_states=max_states, error_var=errors)
        labels = summary.labels
        seg_alpha, seg_k = summary.alpha, summary.K
        if harmonise:
            probs = np.concatenate([s.state_prob for s in segs])
            threshold = float((calibration or {}).get("confined_vote", 0.5))
            seg_state = harmonise_states(labels, seg_state, seg_alpha, probs, seg_frames, summary.immobile, threshold,
                                         paired)
        parts = np.cumsum(n_seg)[:-1]
        segs = [dataclasses.replace(s, state=st, alpha=a, K=k) for s, st, a, k in
                zip(segs, np.split(seg_state, parts), np.split(seg_alpha, parts), np.split(seg_k, parts))]
        model_guess = guess_model(summary, seg_state)

    ids = pd.Series([t.track_id for t in items], dtype=object)
    try:
        ids = ids.astype(tracks["track_id"].dtype)
    except (TypeError, ValueError):
        pass
    n_pts = np.array([t.frames.size for t in items], dtype=np.int64)
    per_point = [s.per_point() for s in segs]
    rel = [t.frames - t.first for t in items]
    frames = pd.DataFrame({
        "track_id": ids.iloc[np.repeat(np.arange(len(items)), n_pts)].to_numpy(),
        "frame": np.concatenate([t.frames for t in items]),
        "alpha": np.concatenate([pp[0][r] for pp, r in zip(per_point, rel)]),
        "K": np.concatenate([pp[1][r] for pp, r in zip(per_point, rel)]),
        "state": np.concatenate([pp[2][r] for pp, r in zip(per_point, rel)]),
        "cp_prob": np.concatenate([p.cp_prob[r] for p, r in zip(preds, rel)]),
        "segment": np.concatenate([pp[3][r] for pp, r in zip(per_point, rel)]),
    })
    firsts = np.repeat(np.array([t.first for t in items], dtype=np.int64), n_seg)
    start = np.concatenate([s.start for s in segs]) + firsts
    end = np.concatenate([s.end for s in segs]) + firsts
    segments = pd.DataFrame({
        "track_id": ids.iloc[np.repeat(np.arange(len(items)), n_seg)].to_numpy(),
        "start": start, "end": end, "n_frames": end - start + 1, "alpha": seg_alpha, "K": seg_k,
        "state": seg_state, "ensemble_state": labels, "paired_fraction": paired,
    })
    ens_cols = ["ensemble_state", "immobile", "alpha_mean", "alpha_var", "K_mean", "K_var", "n_frames", "fraction"]
    ensemble = pd.DataFrame(columns=ens_cols)
    if summary is not None:
        m = summary.matrix
        ensemble = pd.DataFrame({
            "ensemble_state": np.arange(summary.n_states), "immobile": summary.immobile,
            "alpha_mean": m[0], "alpha_var": m[1], "K_mean": m[2], "K_var": m[3],
            "n_frames": m[4], "fraction": m[4] / m[4].sum(),
        })
    if ps is not None or dt is not None:
        frames["K"] = _convert_k(frames["K"].to_numpy(), frames["alpha"].to_numpy(), ps, dt)
        segments["K"] = _convert_k(segments["K"].to_numpy(), segments["alpha"].to_numpy(), ps, dt)
        if len(ensemble):
            f = _convert_k(np.ones(len(ensemble)), ensemble["alpha_mean"].to_numpy(), ps, dt)
            ensemble["K_mean"] = ensemble["K_mean"] * f
            ensemble["K_var"] = ensemble["K_var"] * f**2
            notes.append("ensemble K converted with each state's mean alpha")

    if extras:
        cols = [c for c in ("track_id", "frame", "y", "x", "z") if c in tracks.columns]
        modes = _optional("DeepSPT modes", "deepspt", "segment_tracks", lambda f: f(tracks[cols]), notes)
        if modes is not None:
            frames = frames.merge(modes[["track_id", "frame", *MODE_COLUMNS]], on=["track_id", "frame"], how="left")
            segments["mode"] = _segment_modes(segments, modes)
        prints = _optional("fingerprint features", "fingerprints", "fingerprint_table",
                           lambda f: f(tracks[cols], segments=segments[["track_id", "start", "end"]], modes=modes),
                           notes)
        if prints is not None:
            keys = ["track_id", "start", "end"]
            clash = {c: f"fp_{c}" for c in prints.columns if c in segments.columns and c not in keys}
            segments = segments.merge(prints.rename(columns=clash), on=keys, how="left")
    return AnalyzeResult(frames, segments, ensemble, summary, model_guess, tuple(items), tuple(segs),
                         _k_unit(ps, dt), tuple(notes))


def _segment_modes(segments: pd.DataFrame, modes: pd.DataFrame) -> np.ndarray:
    """Most frequent DeepSPT mode over each segment's frames (-1 when none)."""
    out = np.full(len(segments), -1, dtype=np.int64)
    by_track = {k: g for k, g in modes.groupby("track_id", sort=False)}
    for i, (tid, lo, hi) in enumerate(segments[["track_id", "start", "end"]].itertuples(index=False)):
        g = by_track.get(tid)
        if g is None:
            continue
        f = g["frame"].to_numpy()
        v = g["mode"].to_numpy()[(f >= lo) & (f <= hi)]
        v = v[v >= 0] if v.dtype.kind in "iu" else v[np.isfinite(v)].astype(np.int64)
        if v.size:
            out[i] = int(np.bincount(v.astype(np.int64)).argmax())
    return out


def andi_rows(result: AnalyzeResult) -> list[list[float]]:
    """One line per track in the 2nd AnDi Challenge's format:
    ``traj_idx, K_1, alpha_1, state_1, CP_1, ..., K_n, alpha_n, state_n, T`` with change points and
    T counted in frames from the track's first point (px, frames). traj_idx is the track id,
    which must be a whole number. A track too short to characterise (NaN alpha or K, state -1) gets
    the experiment's frame-weighted median alpha and K over the characterised segments (1 and 1
    when there are none) and state 2 (free), so that every track has a line the scorer can read."""
    alpha_fill, K_fill = fill_values(result)
    rows = []
    for t, s in zip(result.tracks, result.track_segments):
        try:
            idx = float(t.track_id)
        except (TypeError, ValueError):
            idx = float("nan")
        if not (math.isfinite(idx) and idx == round(idx)):
            raise InputError(f"the challenge format needs whole-number track ids, got {t.track_id!r}")
        row = [idx]
        ends = list(s.change_points) + [t.length]
        for j in range(s.n_segments):
            K, alpha, state = float(s.K[j]), float(s.alpha[j]), float(s.state[j])
            if not (math.isfinite(K) and math.isfinite(alpha) and state >= 0):
                K, alpha, state = K_fill, alpha_fill, 2.0
            row += [K, alpha, state, float(ends[j])]
        rows.append(row)
    return rows


def fill_values(result: AnalyzeResult) -> tuple[float, float]:
    """Frame-weighted medians of alpha and K over the segments that have both (1.0, 1.0 if none)."""
    alphas, Ks, weights = [], [], []
    for t, s in zip(result.tracks, result.track_segments):
        starts = [0, *s.change_points]
        ends = [*s.change_points, t.length]
        for j in range(s.n_segments):
            a, k = float(s.alpha[j]), float(s.K[j])
            if math.isfinite(a) and math.isfinite(k):
                alphas.append(a)
                Ks.append(k)
                weights.append(max(int(ends[j]) - int(starts[j]), 1))
    if not weights:
        return 1.0, 1.0

    def median(values: list[float]) -> float:
        order = np.argsort(values)
        cum = np.cumsum(np.asarray(weights, np.float64)[order])
        return float(np.asarray(values)[order][np.searchsorted(cum, cum[-1] / 2.0)])

    return median(alphas), median(Ks)


def _fmt(v: float) -> str:
    if v == round(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def write_andi(result: AnalyzeResult, folder: Path | str, fov: int = 0,
               rows: list[list[float]] | None = None) -> list[Path]:
    """Write ``fov_<fov>.txt`` (one line per track, comma-separated, :func:`andi_rows`, or ``rows``
    when given, such as :func:`~edgetrack.runtime.motion.vip.vip_andi_rows`) and
    ``ensemble_labels.txt`` (``model: <name>; num_state: <n>``, then 5 rows separated by ``;``:
    mean alpha, variance of alpha, mean K, variance of K, frames per state) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    traj = folder / f"fov_{int(fov)}.txt"
    with atomic_open(traj, "w") as fh:
        for row in andi_rows(result) if rows is None else rows:
            fh.write(",".join(_fmt(v) for v in row) + "\n")
    ens = folder / "ensemble_labels.txt"
    m = result.summary.matrix if result.summary is not None else np.zeros((5, 0))
    with atomic_open(ens, "w") as fh:
        fh.write(f"model: {result.model_guess}; num_state: {m.shape[1]}\n")
        for r in m:
            fh.write(";".join(repr(float(v)) for v in r) + "\n")
    return [traj, ens]


def write_analysis(result: AnalyzeResult, out: Path | str, *, andi: bool = False, fov: int = 0,
                   andi_lines: list[list[float]] | None = None) -> list[Path]:
    """Write ``frames.csv``, ``segments.csv``, ``ensemble.csv`` and ``units.txt`` into ``out``
    (created if needed), and with ``andi`` the challenge files into ``out/andi`` (the trajectory lines
    ``andi_lines`` when given, else one per track); atomically."""
    out = Path(out)
    created = [p for p in (out, *out.parents) if not p.exists()][::-1]  # folders this call makes, outermost first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from edgetrack.runtime.errors import OutputError

        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    try:
        return _write_analysis_files(result, out, andi, fov, andi_lines)
    except BaseException:  # interrupted or failed: each file is complete or absent; no empty folder is left
        for folder in ([out / "andi"] if andi else []) + created[::-1]:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise


def _write_analysis_files(result: AnalyzeResult, out: Path, andi: bool, fov: int,
                          andi_lines: list[list[float]] | None) -> list[Path]:
    from edgetrack.runtime.io.tables import write_table

    paths = [write_table(result.frames, out / "frames.csv"), write_table(result.segments, out / "segments.csv"),
             write_table(result.ensemble, out / "ensemble.csv")]
    units = out / "units.txt"
    with atomic_open(units, "w") as fh:
        fh.write(f"K: {result.K_unit} (per-coordinate MSD 2 K t^alpha)\nalpha: dimensionless\n"
                 "frame, start, end: frame numbers\nstate: 0 immobile, 1 confined, 2 free, 3 directed\n")
        if andi:
            fh.write("andi/: the challenge format, K in px^2/frame^alpha, change points and T in frames "
                     "from each track's first point\n")
    paths.append(units)
    if andi:
        paths += write_andi(result, out / "andi", fov, andi_lines)
    return paths


@dataclasses.dataclass(frozen=True)
class MotionEstimate:
    """Latest estimate of one track: at ``frame``, the current segment (since ``segment_start``)
    has ``alpha``, ``K`` (px^2/frame^alpha) and ``state``; ``cp_prob`` is the network's
    change-point probability at the latest point; ``n_points`` the points used (at most the
    estimator's window)."""

    track_id: object
    frame: int
    alpha: float
    K: float
    state: int
    cp_prob: float
    segment_start: int
    n_points: int


class MotionEstimator:
    """Per-track motion estimates updated as frames arrive.

    Each :meth:`update` adds one point (px) to the track's buffer (the last ``window`` frames;
    missing frames are filled linearly), runs the motion network on the buffer and segments it
    (``config``, default: the network's own change points, the fastest method), and returns the
    estimate of the track's current segment; :meth:`update_frame` does the same for all tracks
    of one frame in a single network run. Per track only: no ensemble step (use
    :func:`analyze_tracks` on the finished tracks for that).
    """

    def __init__(self, *, window: int = 200, config: SegmentConfig | None = None, model=None,
                 folder: Path | str | None = None, provider: str | None = None) -> None:
        if int(window) < MIN_POINTS:
            raise InputError(f"window must be >= {MIN_POINTS} frames, got {window}")
        if model is None:
            from edgetrack.runtime.models.onnx import load_model
            from edgetrack.runtime.motion.network import MODEL_NAME

            model = load_model(MODEL_NAME, folder=folder, provider=provider)
        self.window = int(window)
        self.config = config or SegmentConfig(method="network")
        self._model = model
        self._buffers: dict[object, deque] = {}
        self._latest: dict[object, MotionEstimate] = {}

    def update(self, track_id, frame: int, y: float, x: float) -> MotionEstimate:
        """Add the point (frame, y, x) of ``track_id`` and return its latest estimate.
        Frames of a track must increase; NaN positions are refused."""
        self._append(track_id, frame, y, x)
        return self._estimate([track_id])[0]

    def update_frame(self, frame: int, track_ids: Sequence, y: Sequence[float],
                     x: Sequence[float]) -> list[MotionEstimate]:
        """Add one frame's points of several tracks (one network run for all of them) and return
        their latest estimates, in the order given."""
        ids = list(track_ids)
        yy, xx = np.asarray(y, dtype=np.float64).ravel(), np.asarray(x, dtype=np.float64).ravel()
        if not (len(ids) == yy.size == xx.size):
            raise InputError(f"track_ids, y and x differ in length: {len(ids)}, {yy.size}, {xx.size}")
        if len(set(ids)) != len(ids):
            raise InputError(f"frame {frame}: a track id is given twice")
        for tid, a, b in zip(ids, yy, xx):
            self._append(tid, frame, a, b)
        return self._estimate(ids)

    def _append(self, track_id, frame: int, y: float, x: float) -> None:
        f = int(frame)
        if f != frame:
            raise InputError(f"frame must be a whole number, got {frame!r}")
        yy, xx = float(y), float(x)
        if not (math.isfinite(yy) and math.isfinite(xx)):
            raise InputError(f"track {track_id!r}: position at frame {f} is not finite")
        buf = self._buffers.setdefault(track_id, deque(maxlen=self.window))
        if buf:
            last_f, last_y, last_x = buf[-1]
            if f <= last_f:
                raise InputError(f"track {track_id!r}: frame {f} does not follow frame {last_f}")
            gap = f - last_f
            for g in range(1, gap):  # fill missing frames linearly
                w = g / gap
                buf.append((last_f + g, last_y + w * (yy - last_y), last_x + w * (xx - last_x)))
        buf.append((f, yy, xx))

    def _estimate(self, ids: list) -> list[MotionEstimate]:
        arrays = [np.array(self._buffers[t], dtype=np.float64) for t in ids]
        ready = [i for i, a in enumerate(arrays) if a.shape[0] >= MIN_POINTS]
        preds = predict_frames([arrays[i][:, 1:] for i in ready], self._model) if ready else []
        by_index = dict(zip(ready, preds))
        out = []
        for i, (tid, arr) in enumerate(zip(ids, arrays)):
            n, f = arr.shape[0], int(arr[-1, 0])
            pred = by_index.get(i)
            if pred is None:
                est = MotionEstimate(tid, f, float("nan"), float("nan"), -1, float("nan"), int(arr[0, 0]), n)
            else:
                seg = segment_track(pred, self.config)
                j = seg.n_segments - 1
                est = MotionEstimate(tid, f, float(seg.alpha[j]), float(seg.K[j]), int(seg.state[j]),
                                     float(pred.cp_prob[-1]), int(arr[seg.start[j], 0]), n)
            self._latest[tid] = est
            out.append(est)
        return out

    def drop(self, track_id) -> None:
        """Forget a track (its buffer and estimate)."""
        self._buffers.pop(track_id, None)
        self._latest.pop(track_id, None)

    def track_ids(self) -> Sequence:
        return list(self._buffers)

    def estimates(self) -> pd.DataFrame:
        """Latest estimate of every track as a table (one row per track)."""
        rows = [dataclasses.asdict(e) for e in self._latest.values()]
        cols = [f.name for f in dataclasses.fields(MotionEstimate)]
        return pd.DataFrame(rows, columns=cols)
