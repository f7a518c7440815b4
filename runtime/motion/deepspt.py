"""DeepSPT-style temporal segmentation of tracks into diffusional modes, one label per point.

After Kaestel-Hansen et al. ("Deep learning assisted single particle tracking for automated
correlation between diffusion and function"): an ensemble of 1-D fully convolutional U-Nets reads
every track point by point and gives, for each point, the probability of four modes

    0 normal (Brownian), 1 directed (drift + diffusion), 2 confined, 3 subdiffusive (fBm, alpha < 1),

calibrated by temperature scaling. The networks are trained on simulated tracks
(:mod:`edgetrack.training.deepspt`) and run here with ONNX Runtime; one model per dimension:
``deepspt_2d`` (y, x) and ``deepspt_3d`` (z, y, x), chosen from the columns of the table.

Input channels per point (per track normalisation, so the result does not depend on the units or
on the diffusion coefficient): with ``s`` the root-mean-square step length of the track (px),
    positions minus their mean, divided by s (one channel per coordinate),
    step length into the point divided by s (the first point repeats the second),
    dot product of the steps into and out of the point divided by s^2 (the ends repeat their
    neighbours),
    a mask (1 on the track, 0 on padding).
Tracks are batched by length and zero-padded at the end to a multiple of ``LENGTH_MULTIPLE``.

Tracks with missing frames are filled by linear interpolation for the network (predictions are
returned for the observed frames only); tracks of fewer than ``MIN_POINTS`` points get mode -1 and
NaN probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError, ModelError

__all__ = [
    "MODES",
    "PROB_COLUMNS",
    "DEFAULT_MODELS",
    "MIN_POINTS",
    "LENGTH_MULTIPLE",
    "n_channels",
    "channel_names",
    "prepare_channels",
    "batch_plan",
    "pack_batch",
    "predict_arrays",
    "segment_arrays",
    "segment_tracks",
]

#: Names of the modes, in the order of the model's output classes.
MODES: tuple[str, ...] = ("normal", "directed", "confined", "subdiffusive")
#: Output probability columns of :func:`segment_tracks`, in class order.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{m}" for m in MODES)
#: Exported model per number of spatial dimensions.
DEFAULT_MODELS: dict[int, str] = {2: "deepspt_2d", 3: "deepspt_3d"}
#: Shortest track that is segmented (points).
MIN_POINTS = 3
#: The padded length of a batch is a multiple of this (the U-Net pools three times by 2).
LENGTH_MULTIPLE = 8
_DEFAULT_BATCH_POINTS = 1 << 16


def n_channels(ndim: int) -> int:
    """Number of input channels of the network for ``ndim`` spatial dimensions (ndim + 3)."""
    return int(ndim) + 3


def channel_names(ndim: int) -> tuple[str, ...]:
    """Names of the input channels, in order."""
    coords = ("y", "x") if ndim == 2 else ("z", "y", "x")
    return tuple(f"{c}_norm" for c in coords) + ("step_norm", "dot_norm", "mask")


def prepare_channels(positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Network input channels of many tracks stored one after the other.

    positions: (M, d) float array, px, the points of track i in rows ``offsets[i]:offsets[i+1]``
    (consecutive frames, each track at least 2 points). Returns (M, d + 3) float32 (see the
    module docstring for the channels).
    """
    pos = np.asarray(positions, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise InputError(f"positions must have shape (M, 2) or (M, 3), got {pos.shape}")
    lengths = np.diff(off)
    if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != pos.shape[0] or np.any(lengths < 2):
        raise InputError("offsets must start at 0, end at len(positions) and give tracks of >= 2 points")
    if not np.all(np.isfinite(pos)):
        raise InputError("positions contain NaN or infinite values")
    m, d = pos.shape
    n_tracks = lengths.size
    starts = off[:-1]
    track = np.repeat(np.arange(n_tracks), lengths)
    # step into point t (zero at each track start, replaced below)
    step = np.zeros_like(pos)
    step[1:] = pos[1:] - pos[:-1]
    first = np.zeros(m, dtype=bool)
    first[starts] = True
    step[first] = 0.0
    sq = np.einsum("ij,ij->i", step, step)
    msq = np.bincount(track, weights=sq, minlength=n_tracks) / (lengths - 1)
    scale = np.sqrt(msq)
    scale[~(scale > 0)] = 1.0
    mean = np.stack([np.bincount(track, weights=pos[:, k], minlength=n_tracks) for k in range(d)], axis=1)
    mean /= lengths[:, None]
    s = scale[track]
    out = np.empty((m, d + 3), dtype=np.float32)
    out[:, :d] = (pos - mean[track]) / s[:, None]
    sl = np.sqrt(sq) / s
    sl[starts] = sl[starts + 1]
    out[:, d] = sl
    # dot of the step into t and the step out of t, for interior points
    dot = np.zeros(m)
    dot[:-1] = np.einsum("ij,ij->i", step[:-1], step[1:])
    last = off[1:] - 1
    dot[starts] = dot[starts + 1]
    dot[last] = dot[last - 1]
    out[:, d + 1] = dot / (s * s)
    out[:, d + 2] = 1.0
    return out


def batch_plan(lengths: np.ndarray, max_points: int = _DEFAULT_BATCH_POINTS,
               multiple: int = LENGTH_MULTIPLE) -> list[tuple[np.ndarray, int]]:
    """Group tracks into batches of similar length.

    lengths: (n,) points per track. Returns a list of (track indices, padded length) with the
    tracks sorted by length, the padded length a multiple of ``multiple`` and at most about
    ``max_points`` padded points per batch (a longer track is a batch of its own).
    """
    lens = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lens, kind="stable")
    plan: list[tuple[np.ndarray, int]] = []
    i = 0
    n = order.size
    while i < n:
        # the batch's longest track is the last one taken (sorted), so grow while it fits
        j = i + 1
        padded = -(-int(lens[order[i]]) // multiple) * multiple
        while j < n:
            cand = -(-int(lens[order[j]]) // multiple) * multiple
            if cand * (j - i + 1) > max_points:
                break
            padded = cand
            j += 1
        plan.append((order[i:j], max(padded, multiple)))
        i = j
    return plan


def pack_batch(channels: np.ndarray, offsets: np.ndarray, tracks: np.ndarray, length: int) -> np.ndarray:
    """(B, C, length) float32 batch of ``tracks`` (indices into ``offsets``), zero-padded at the end."""
    off = np.asarray(offsets, dtype=np.int64)
    starts = off[tracks]
    lens = off[tracks + 1] - starts
    b = tracks.size
    c = channels.shape[1]
    out = np.zeros((b, length, c), dtype=np.float32)
    col = np.arange(length)
    valid = col[None, :] < lens[:, None]
    src = (starts[:, None] + col[None, :])[valid]
    out[valid] = channels[src]
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def _model(ndim: int, model: str | None, provider, folder, threads):
    from edgetrack.runtime.models.onnx import load_model

    name = model or DEFAULT_MODELS[ndim]
    loaded = load_model(name, provider=provider, folder=folder, threads=threads)
    entry = loaded.entry
    if entry.get("task") != "segmentation":
        raise ModelError(f"model {name!r} is a {entry.get('task')!r} model, not a DeepSPT segmentation model")
    if int(entry.get("ndim", -1)) != ndim:
        raise ModelError(f"model {name!r} segments {entry.get('ndim')}-D tracks, these tracks are {ndim}-D")
    return loaded


def predict_arrays(tracks: Sequence[np.ndarray], run: Callable[[np.ndarray], np.ndarray],
                   max_points: int = _DEFAULT_BATCH_POINTS) -> list[np.ndarray]:
    """Per-point outputs of ``run`` for every track, batched by length.

    tracks: sequence of (T_i, d) float arrays (px, consecutive frames, all of one d in {2, 3}).
    run: maps a (B, d + 3, L) float32 batch (see :func:`pack_batch`) to (B, K, L) outputs.
    Returns a list of (T_i, K) float32 arrays; tracks shorter than :data:`MIN_POINTS` get NaN rows
    (K = 4 when no track is long enough).
    """
    arrays = [np.asarray(t, dtype=np.float64) for t in tracks]
    if not arrays:
        return []
    dims = {a.shape[1] if a.ndim == 2 else -1 for a in arrays}
    if len(dims) != 1 or next(iter(dims)) not in (2, 3):
        raise InputError(f"tracks must all be (T, 2) or all (T, 3) arrays, got dimensions {sorted(dims)}")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    keep = np.flatnonzero(lengths >= MIN_POINTS)
    results: list[np.ndarray | None] = [None] * len(arrays)
    k_out = len(MODES)
    if keep.size:
        offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        channels = prepare_channels(np.concatenate([arrays[i] for i in keep], axis=0), offsets)
        for idx, length in batch_plan(lengths[keep], max_points=max_points):
            out = np.asarray(run(pack_batch(channels, offsets, idx, length)), dtype=np.float32)
            k_out = out.shape[1]
            for row, i in enumerate(idx):
                results[keep[i]] = np.ascontiguousarray(out[row, :, :lengths[keep[i]]].T)
    return [r if r is not None else np.full((n, k_out), np.nan, dtype=np.float32) for r, n in zip(results, lengths)]


def segment_arrays(tracks: Sequence[np.ndarray], *, model: str | None = None, provider=None,
                   folder: Path | str | None = None, threads: int | None = None,
                   max_points: int = _DEFAULT_BATCH_POINTS) -> list[np.ndarray]:
    """Mode probabilities of every point of every track with an exported model.

    tracks: sequence of (T_i, d) float arrays (px, consecutive frames, d = 2 or 3, all the same).
    model: manifest name (default ``deepspt_2d`` / ``deepspt_3d`` by d). Returns a list of (T_i, 4)
    float32 arrays (columns in :data:`MODES` order; rows of tracks shorter than
    :data:`MIN_POINTS` are NaN). Raises ModelError when the model is missing.
    """
    arrays = [np.asarray(t, dtype=np.float64) for t in tracks]
    if not arrays or all(a.shape[0] < MIN_POINTS for a in arrays):
        return predict_arrays(arrays, lambda b: b, max_points)
    ndim = arrays[0].shape[1] if arrays[0].ndim == 2 else -1
    if ndim not in (2, 3):
        raise InputError(f"tracks must be (T, 2) or (T, 3) arrays, got shape {arrays[0].shape}")
    loaded = _model(ndim, model, provider, folder, threads)
    name_in, name_out = loaded.input_names[0], loaded.output_names[0]
    return predict_arrays(arrays, lambda batch: loaded.run({name_in: batch})[name_out], max_points)


def _check_tracks(tracks: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if not isinstance(tracks, pd.DataFrame):
        raise InputError(f"tracks must be a pandas DataFrame, got {type(tracks).__name__}")
    missing = [c for c in ("track_id", "frame", "y", "x") if c not in tracks.columns]
    if missing:
        raise InputError(f"tracks table is missing column(s) {', '.join(missing)}")
    coords = ["y", "x"]
    if "z" in tracks.columns and tracks["z"].notna().any():
        coords = ["z", "y", "x"]
    sub = tracks[["track_id", "frame", *coords]]
    for c in ("frame", *coords):
        if not pd.api.types.is_numeric_dtype(sub[c]):
            raise InputError(f"column {c!r} must be numeric")
    values = sub[["frame", *coords]].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = [c for k, c in enumerate(["frame", *coords]) if not np.all(np.isfinite(values[:, k]))]
        raise InputError(f"column(s) {', '.join(bad)} contain NaN or infinite values")
    if sub["track_id"].isna().any():
        raise InputError("column 'track_id' contains missing values")
    if np.any(values[:, 0] != np.round(values[:, 0])):
        raise InputError("column 'frame' must hold whole numbers")
    return sub, coords


def segment_tracks(tracks: pd.DataFrame, *, model: str | None = None, provider=None,
                   folder: Path | str | None = None, threads: int | None = None) -> pd.DataFrame:
    """DeepSPT mode of every track point.

    tracks: table with columns ``track_id, frame, y, x`` (px; optional ``z`` for 3-D tracks, which
    selects the 3-D model). Returns one row per input row, in the input order, with columns
    ``track_id, frame, mode`` (int64: 0 normal, 1 directed, 2 confined, 3 subdiffusive; -1 for
    tracks shorter than 3 points) and ``p_normal, p_directed, p_confined, p_subdiffusive``
    (float64, calibrated probabilities summing to 1; NaN where mode is -1). Missing frames inside a
    track are interpolated linearly for the network. Raises InputError for a bad table (missing
    column, NaN, repeated frame within a track) and ModelError when the model is missing.
    """
    sub, coords = _check_tracks(tracks)
    n = len(sub)
    out = pd.DataFrame({"track_id": sub["track_id"].to_numpy(), "frame": sub["frame"].to_numpy().astype(np.int64)})
    probs = np.full((n, len(MODES)), np.nan)
    if n:
        codes, _ = pd.factorize(sub["track_id"], sort=False)
        frame = out["frame"].to_numpy()
        order = np.lexsort((frame, codes))
        c_sorted = codes[order]
        f_sorted = frame[order]
        same = (c_sorted[1:] == c_sorted[:-1])
        if np.any(same & (f_sorted[1:] == f_sorted[:-1])):
            dup = sub["track_id"].to_numpy()[order[1:][same & (f_sorted[1:] == f_sorted[:-1])][0]]
            raise InputError(f"track {dup!r} has the same frame more than once")
        pos = sub[coords].to_numpy(dtype=np.float64)[order]
        bounds = np.concatenate([[0], np.flatnonzero(~same) + 1, [n]])
        arrays: list[np.ndarray] = []
        picks: list[np.ndarray | None] = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            f = f_sorted[a:b]
            p = pos[a:b]
            if b - a > 1 and f[-1] - f[0] != b - a - 1:
                full = np.arange(f[0], f[-1] + 1)
                p = np.stack([np.interp(full, f, p[:, k]) for k in range(p.shape[1])], axis=1)
                picks.append(f - f[0])
            else:
                picks.append(None)
            arrays.append(p)
        results = segment_arrays(arrays, model=model, provider=provider, folder=folder, threads=threads)
        sorted_probs = np.concatenate([r if pick is None else r[pick] for r, pick in zip(results, picks)], axis=0)
        probs[order] = sorted_probs
    valid = np.all(np.isfinite(probs), axis=1)
    mode = np.full(n, -1, dtype=np.int64)
    if valid.any():
        mode[valid] = np.argmax(probs[valid], axis=1)
    out["mode"] = mode
    for k, name in enumerate(PROB_COLUMNS):
        out[name] = probs[:, k]
    return out
