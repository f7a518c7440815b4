"""Checking a :class:`~edgetrack.runtime.stream.tracker.Tracker` state (``Tracker.checkpoint()``) before it is used.

A state restored from a file is input like any other: :func:`check_state` checks every array (shape,
dtype, value range) and the consistency of blocks, ids and frames, so that no Numba kernel ever sees an
index out of range and no inconsistent state silently gives other tracks. Every problem is an
:class:`~edgetrack.runtime.errors.InputError` naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.psf import PSF_TRIES, split_auto
from edgetrack.runtime.detect.volume import Detect3DConfig
from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.stream.config import TrackerConfig

__all__ = ["BLOCK_ARRAYS", "EDGE_FIELDS", "OPTIONAL_BLOCK_ARRAYS", "RESULT_ARRAYS", "check_state"]

_MAX_INT = 2**62  # ids, frames, counts
_MAX_COLUMNS = 1000
BLOCK_ARRAYS = ("values", "locked_parent", "child_count", "track_id", "score_in", "motion")
#: Block arrays a checkpoint written before they existed lacks (they are then taken as zeros).
OPTIONAL_BLOCK_ARRAYS = ("motion",)
EDGE_FIELDS = ("src", "dst", "dt", "dy", "dx", "dist")
RESULT_ARRAYS = ("frame", "length", "values", "track_id", "parent_track_id", "det_id", "parent_det_id")
_FLOAT = {"values", "score_in", "dy", "dx", "dist"}
_STATE_KEYS = {"format", "version", "config", "detect_config", "columns", "frame_shape", "next_frame", "next_id",
               "next_track", "n_committed_frames", "finished", "blocks", "results"}
UNDECIDED = -2  # as edgetrack.runtime.link.problem.UNDECIDED (not imported: keeps this module light)


def _int(value: Any, name: str, low: int = 0, high: int = _MAX_INT) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"corrupt checkpoint: {name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise InputError(f"corrupt checkpoint: {name} = {value} is outside [{low}, {high}]")
    return int(value)


def _array(value: Any, name: str, dtype: type, shape: tuple) -> np.ndarray:
    """``value`` as an array of exactly ``dtype`` and ``shape`` (None in shape: any length)."""
    if not isinstance(value, np.ndarray):
        raise InputError(f"corrupt checkpoint: {name} must be an array, got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise InputError(f"corrupt checkpoint: {name} has dtype {value.dtype}, expected {np.dtype(dtype)}")
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise InputError(f"corrupt checkpoint: {name} has shape {value.shape}, expected {wanted}")
    if value.dtype.kind == "f" and name.endswith(("score_in", "dy", "dx", "dist")) and not np.isfinite(value).all():
        raise InputError(f"corrupt checkpoint: {name} holds NaN or inf")
    return value


def _within(values: np.ndarray, low: int, high: int, name: str) -> None:
    """Every value in [low, high)."""
    if values.size and (values.min() < low or values.max() >= high):
        bad = values[(values < low) | (values >= high)][0]
        raise InputError(f"corrupt checkpoint: {name} holds {bad}, outside [{low}, {high})")


def check_state(state: Any) -> None:
    """Check a tracker state (:meth:`Tracker.checkpoint`) completely; raise :class:`InputError` naming the problem.

    Checked: the keys and scalar types, both configurations, every array's dtype and shape, the value
    ranges (ids, frames, parents, track ids, scores, distances), and the consistency between blocks
    (consecutive frames, contiguous ids), their candidate edges (ordered by target, sources in the window
    within ``max_gap`` frames and ``max_distance`` px, displacements matching the positions), child counts
    and committed parents, and the committed results.
    """
    if not isinstance(state, dict) or state.get("format") != "edgetrack-tracker-checkpoint":
        raise InputError("not an edgetrack tracker checkpoint")
    if state.get("version") != 1:
        raise InputError(f"unsupported checkpoint version {state.get('version')!r} (this edgetrack reads 1)")
    missing, extra = sorted(_STATE_KEYS - set(state)), sorted(set(state) - _STATE_KEYS - {"psf_frames"})
    if missing:
        raise InputError(f"corrupt checkpoint: missing {', '.join(missing)}")
    if extra:
        raise InputError(f"corrupt checkpoint: unknown key(s) {', '.join(map(str, extra))}")
    for key in ("config", "detect_config"):
        if not isinstance(state[key], dict):
            raise InputError(f"corrupt checkpoint: {key} must be an object, got {type(state[key]).__name__}")
    try:
        cfg = TrackerConfig.from_dict(state["config"])
        detect, auto = split_auto(state["detect_config"])  # "auto": the sigma was not measured yet
        if auto and cfg.ndim == 3:
            raise InputError("psf_sigma 'auto' is 2-D only")
        (Detect3DConfig if cfg.ndim == 3 else DetectConfig).from_dict(detect)
    except EdgetrackError as exc:
        raise InputError(f"corrupt checkpoint: {exc}") from None
    columns = state["columns"]
    if columns is not None:
        if (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or len(columns) < 2
                or columns[:2] != ["y", "x"] or len(set(columns)) != len(columns) or len(columns) > _MAX_COLUMNS):
            raise InputError("corrupt checkpoint: columns must be a list of distinct names starting y, x")
    n_columns = len(columns) if columns is not None else 2
    shape = state["frame_shape"]
    if shape is not None and (not isinstance(shape, list) or len(shape) != cfg.ndim):
        raise InputError(f"corrupt checkpoint: frame_shape must be [{'depth, ' if cfg.ndim == 3 else ''}height, width], "
                         f"got {shape!r}")
    if shape is not None:
        for k, side in enumerate(shape):
            _int(side, f"frame_shape[{k}]", 1, 2**31)
    pooled = state.get("psf_frames")
    if pooled is not None:  # frames tried while psf_sigma="auto" was pending (optional)
        if not auto:
            raise InputError("corrupt checkpoint: psf_frames without psf_sigma 'auto'")
        pooled = np.asarray(pooled)
        if (pooled.ndim != 3 or not 1 <= len(pooled) < PSF_TRIES or pooled.dtype.kind not in "iuf"
                or (shape is not None and list(pooled.shape[1:]) != shape) or not np.all(np.isfinite(pooled))):
            raise InputError(f"corrupt checkpoint: psf_frames must be 1 to {PSF_TRIES - 1} finite frames of the "
                             f"movie's shape, got {pooled.shape} {pooled.dtype}")
    next_frame = _int(state["next_frame"], "next_frame")
    next_id = _int(state["next_id"], "next_id")
    next_track = _int(state["next_track"], "next_track", 0, next_id)
    committed = _int(state["n_committed_frames"], "n_committed_frames", 0, next_frame)
    if not isinstance(state["finished"], bool):
        raise InputError("corrupt checkpoint: finished must be true or false")
    if state["finished"] and committed != next_frame:
        raise InputError(f"corrupt checkpoint: finished, but only {committed} of {next_frame} frames committed")
    if not state["finished"] and next_frame - committed >= cfg.window:
        raise InputError(f"corrupt checkpoint: {next_frame - committed} undecided frames (window {cfg.window})")

    blocks = state["blocks"]
    if not isinstance(blocks, list):
        raise InputError("corrupt checkpoint: blocks must be a list")
    first_frame = max(committed - cfg.max_gap, 0)
    if len(blocks) != next_frame - first_frame:
        raise InputError(f"corrupt checkpoint: {len(blocks)} blocks, but frames {first_frame}..{next_frame - 1} "
                         f"({next_frame - first_frame}) are held")
    starts, sizes = [], []
    for i, b in enumerate(blocks):
        full = {"frame", "first_id", *BLOCK_ARRAYS, "edges_in"}
        if not isinstance(b, dict) or not full - set(OPTIONAL_BLOCK_ARRAYS) <= set(b) <= full:
            raise InputError(f"corrupt checkpoint: block {i} is not a block")
        frame = _int(b["frame"], f"block {i} frame")
        if frame != first_frame + i:
            raise InputError(f"corrupt checkpoint: block {i} is frame {frame}, expected {first_frame + i}")
        first = _int(b["first_id"], f"block {i} first_id", 0, next_id)
        if starts and first != starts[-1] + sizes[-1]:
            raise InputError(f"corrupt checkpoint: block {i} starts at id {first}, expected {starts[-1] + sizes[-1]}")
        values = b["values"]
        if not isinstance(values, np.ndarray) or values.ndim != 2:
            raise InputError(f"corrupt checkpoint: block {i} values must be a 2-D array")
        n = values.shape[0]
        _array(values, f"block {i} values", np.float64, (n, n_columns))
        if n and not np.isfinite(values[:, :2]).all():
            raise InputError(f"corrupt checkpoint: block {i} (frame {frame}) has NaN or inf in y/x")
        for key in ("locked_parent", "child_count", "track_id"):
            _array(b[key], f"block {i} {key}", np.int64, (n,))
        if "motion" in b:
            motion = _array(b["motion"], f"block {i} motion", np.float64, (n, 2 + cfg.ndim))
            if n and (not np.isfinite(motion).all() or (motion[:, :2] < 0).any()):
                raise InputError(f"corrupt checkpoint: block {i} motion holds NaN, inf or a negative weight/variance")
        starts.append(first)
        sizes.append(n)
    if blocks and starts[-1] + sizes[-1] != next_id:
        raise InputError(f"corrupt checkpoint: the last block ends at id {starts[-1] + sizes[-1]}, "
                         f"but next_id is {next_id}")
    window_first = starts[0] if blocks else next_id
    id_frame = (np.concatenate([np.full(s, first_frame + i, np.int64) for i, s in enumerate(sizes)])
                if blocks else np.zeros(0, np.int64))
    y = np.concatenate([b["values"][:, 0] for b in blocks]) if blocks else np.zeros(0)
    x = np.concatenate([b["values"][:, 1] for b in blocks]) if blocks else np.zeros(0)
    z = None
    if cfg.ndim == 3:
        if columns is not None and "z" not in columns:
            raise InputError("corrupt checkpoint: a 3-D tracker's columns must include z")
        zc = columns.index("z") if columns is not None else None
        z = np.concatenate([b["values"][:, zc] for b in blocks]) if blocks and zc is not None else np.zeros(len(y))
    children = np.zeros(len(id_frame), np.int64)
    for i, b in enumerate(blocks):
        frame, first, n = first_frame + i, starts[i], sizes[i]
        e = b["edges_in"]
        if not isinstance(e, dict) or set(e) != set(EDGE_FIELDS):
            raise InputError(f"corrupt checkpoint: block {i} edges must have fields {', '.join(EDGE_FIELDS)}")
        m = e["src"].shape[0] if isinstance(e["src"], np.ndarray) and e["src"].ndim == 1 else -1
        for key in EDGE_FIELDS:
            _array(e[key], f"block {i} edge {key}", np.float64 if key in _FLOAT else np.int64, (m,))
        _array(b["score_in"], f"block {i} score_in", np.float64, (m,))
        parent, count, track = b["locked_parent"], b["child_count"], b["track_id"]
        _within(count, 0, cfg.max_children + 1, f"block {i} child_count")
        if frame < committed:  # a committed frame: parents fixed, track ids given, no edges left
            if m:
                raise InputError(f"corrupt checkpoint: committed block {i} (frame {frame}) still has {m} edges")
            _within(parent, -1, first, f"block {i} locked_parent")
            _within(track, 0, next_track, f"block {i} track_id")
            held = parent >= window_first
            if held.any():
                gap = frame - id_frame[parent[held] - window_first]
                if gap.min() < 1 or gap.max() > cfg.max_gap:
                    raise InputError(f"corrupt checkpoint: block {i} (frame {frame}) links a parent "
                                     f"{int(gap.max() if gap.max() > cfg.max_gap else gap.min())} frames back "
                                     f"(max_gap {cfg.max_gap})")
                np.add.at(children, parent[held] - window_first, 1)
            continue
        if n and ((parent != UNDECIDED).any() or (count != 0).any() or (track != -1).any()):
            raise InputError(f"corrupt checkpoint: undecided block {i} (frame {frame}) has decided parents, "
                             "children or track ids")
        if not m:
            continue
        src, dst, dt = e["src"], e["dst"], e["dt"]
        _within(dst, first, first + n, f"block {i} edge dst")
        _within(src, window_first, first, f"block {i} edge src")
        order = np.lexsort((src, dst))
        if (order != np.arange(m)).any() or ((np.diff(dst) == 0) & (np.diff(src) <= 0)).any():
            raise InputError(f"corrupt checkpoint: block {i} edges are not ordered by (dst, src) without repeats")
        if (np.bincount(dst - first, minlength=n) > cfg.max_candidates).any():
            raise InputError(f"corrupt checkpoint: block {i} has a detection with more than "
                             f"max_candidates={cfg.max_candidates} candidate parents")
        if (dt != frame - id_frame[src - window_first]).any() or dt.min() < 1 or dt.max() > cfg.max_gap:
            raise InputError(f"corrupt checkpoint: block {i} edge dt does not match the frames of its ends "
                             f"(1..max_gap={cfg.max_gap})")
        s, d = src - window_first, dst - window_first
        tol = 1e-6 * (1.0 + np.maximum(np.abs(y[d]) + np.abs(y[s]), np.abs(x[d]) + np.abs(x[s])))
        if (np.abs(e["dy"] - (y[d] - y[s])) > tol).any() or (np.abs(e["dx"] - (x[d] - x[s])) > tol).any():
            raise InputError(f"corrupt checkpoint: block {i} edge dy/dx do not match the detections' positions")
        dist = e["dist"]
        planar = np.hypot(e["dy"], e["dx"])
        expected = planar if z is None else np.sqrt(planar ** 2 + (cfg.z_scale * (z[d] - z[s])) ** 2)
        if (np.abs(dist - expected) > tol).any() or dist.max() > cfg.max_distance * (1 + 1e-9):
            raise InputError(f"corrupt checkpoint: block {i} edge dist is not the displacement or exceeds "
                             f"max_distance={cfg.max_distance:g} px")
        score = b["score_in"]
        if score.min() < 0.0 or score.max() > 1.0:
            raise InputError(f"corrupt checkpoint: block {i} scores outside [0, 1]")
    if blocks:
        counts = np.concatenate([b["child_count"] for b in blocks])
        if (counts != children).any():
            k = int(np.flatnonzero(counts != children)[0])
            raise InputError(f"corrupt checkpoint: detection {window_first + k} has child_count {counts[k]}, "
                             f"but {children[k]} committed children link to it")
    _check_results(state["results"], cfg.keep_results, n_columns, committed, next_id, next_track)


def _check_results(r: Any, keep: bool, n_columns: int, committed: int, next_id: int, next_track: int) -> None:
    if r is None:
        return
    if not keep:
        raise InputError("corrupt checkpoint: results saved with keep_results=False")
    if not isinstance(r, dict) or set(r) != set(RESULT_ARRAYS):
        raise InputError(f"corrupt checkpoint: results must have {', '.join(RESULT_ARRAYS)}")
    frame, length = r["frame"], r["length"]
    if not isinstance(frame, np.ndarray) or frame.ndim != 1:
        raise InputError("corrupt checkpoint: results frame must be a 1-D array")
    k = frame.shape[0]
    _array(frame, "results frame", np.int64, (k,))
    _array(length, "results length", np.int64, (k,))
    _within(frame, 0, committed, "results frame")
    if k > 1 and (np.diff(frame) <= 0).any():
        raise InputError("corrupt checkpoint: results frames must increase")
    _within(length, 0, next_id + 1, "results length")
    total = int(length.sum())
    _array(r["values"], "results values", np.float64, (total, n_columns))
    if total and not np.isfinite(r["values"][:, :2]).all():
        raise InputError("corrupt checkpoint: results hold NaN or inf in y/x")
    for key in ("track_id", "parent_track_id", "det_id", "parent_det_id"):
        _array(r[key], f"results {key}", np.int64, (total,))
    _within(r["track_id"], 0, next_track, "results track_id")
    _within(r["parent_track_id"], -1, next_track, "results parent_track_id")
    det = r["det_id"]
    _within(det, 0, next_id, "results det_id")
    if total > 1 and (np.diff(det) <= 0).any():
        raise InputError("corrupt checkpoint: results det_id must increase")
    parent = r["parent_det_id"]
    if total and ((parent < -1).any() or (parent >= det).any()):
        raise InputError("corrupt checkpoint: results parent_det_id must be -1 or an earlier detection")
