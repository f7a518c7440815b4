"""Saving and loading a :class:`~edgetrack.runtime.stream.tracker.Tracker` checkpoint to one file.

The file is a NumPy ``.npz`` archive (no pickle): a JSON header with the scalar state and one array per
block, written atomically, so an acquisition that restarts its analysis resumes from the last saved
state and loses nothing that was committed.

A checkpoint is input like any other: :func:`load_checkpoint` reads the zip's member headers first and
refuses an archive that would expand beyond ``max_bytes`` before anything is decompressed, reads every
``.npy`` header (shape and dtype) before its data, and :func:`check_state` then checks every array
(shape, dtype, value range) and the consistency of blocks, ids and frames, so no Numba kernel ever sees
an index out of range (:mod:`edgetrack.runtime.stream.state`). Every problem is an
:class:`~edgetrack.runtime.errors.InputError` naming it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from edgetrack.runtime.errors import EdgetrackError, FileReadError, InputError
from edgetrack.runtime.io.atomic import atomic_path
from edgetrack.runtime.stream.state import BLOCK_ARRAYS, EDGE_FIELDS, OPTIONAL_BLOCK_ARRAYS, RESULT_ARRAYS, check_state
from edgetrack.runtime.stream.tracker import Tracker

__all__ = ["MAX_CHECKPOINT_BYTES", "check_state", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint"]

#: Largest uncompressed size of a checkpoint that :func:`load_checkpoint` accepts by default, bytes.
MAX_CHECKPOINT_BYTES = 2 * 2**30
_MAX_HEADER_BYTES = 16 * 2**20  # the JSON header
_MAX_MEMBERS = 100_000


# ----------------------------------------------------------------------------------------- writing

def _flatten(state: dict) -> tuple[dict, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    header = {k: v for k, v in state.items() if k not in ("blocks", "results", "psf_frames")}
    if state.get("psf_frames") is not None:
        arrays["psf_frames"] = state["psf_frames"]
    header["n_blocks"] = len(state["blocks"])
    header["has_results"] = state["results"] is not None
    header["block_meta"] = [{"frame": b["frame"], "first_id": b["first_id"]} for b in state["blocks"]]
    for i, b in enumerate(state["blocks"]):
        for key in BLOCK_ARRAYS:
            if key in b:
                arrays[f"b{i}_{key}"] = b[key]
        for key, value in b["edges_in"].items():
            arrays[f"b{i}_e_{key}"] = value
    if state["results"] is not None:
        for key, value in state["results"].items():
            arrays[f"r_{key}"] = value
    return header, arrays


def save_checkpoint(tracker: Tracker, path: str | os.PathLike[str], meta: dict | None = None) -> Path:
    """Write ``tracker.checkpoint()`` to ``path`` (``.npz``) atomically; returns the path.

    ``meta``: optional JSON-serialisable values stored beside the state (the command line keeps its
    output position there); read them back with :func:`read_checkpoint_meta`.
    """
    header, arrays = _flatten(tracker.checkpoint())
    if meta is not None:
        header["meta"] = meta
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return path


# ----------------------------------------------------------------------------------------- reading

def _read_archive(path: Path, max_bytes: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header and the arrays of a checkpoint file, with every size checked before it is read."""
    if not path.is_file():
        raise FileReadError(f"{path}: no such checkpoint file")
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise FileReadError(f"{path}: not a readable edgetrack checkpoint ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise InputError(f"{path}: corrupt checkpoint: {len(infos)} archive members (at most {_MAX_MEMBERS})")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise InputError(f"{path}: corrupt checkpoint: duplicated archive members")
        total = sum(int(i.file_size) for i in infos)  # from the member headers, before decompressing anything
        if total > max_bytes:
            raise InputError(f"{path}: checkpoint refused: it would expand to {total / 2**20:.1f} MiB uncompressed "
                             f"(limit {max_bytes / 2**20:.1f} MiB; compressed {path.stat().st_size / 2**20:.1f} MiB)")
        bad = [n for n in names if not n.endswith(".npy") or "/" in n or "\\" in n]
        if bad:
            raise InputError(f"{path}: corrupt checkpoint: unexpected archive member {bad[0]!r}")
        if "__header__.npy" not in names:
            raise InputError(f"{path}: not an edgetrack tracker checkpoint (no __header__)")
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            name = info.filename[:-4]
            limit = _MAX_HEADER_BYTES if name == "__header__" else max_bytes
            arrays[name] = _read_member(path, archive, info, limit)
    raw = arrays.pop("__header__")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise InputError(f"{path}: corrupt checkpoint: the header is {raw.dtype} {raw.shape}, expected uint8 bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: corrupt checkpoint: the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: corrupt checkpoint: the header is a JSON {type(header).__name__}, "
                         "expected an object")
    return header, arrays


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> np.ndarray:
    """One ``.npy`` member: its header (shape, dtype) is checked against the member's size before the data."""
    fmt = np.lib.format
    where = f"{path}: corrupt checkpoint: array {info.filename!r}"
    if info.file_size > limit:
        raise InputError(f"{where} is {info.file_size} bytes (at most {limit})")
    try:
        with archive.open(info) as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise InputError(f"{where}: unsupported .npy version {version}")
            if dtype.hasobject or dtype.fields is not None or dtype.kind not in "iufb":
                raise InputError(f"{where} has dtype {dtype}, expected plain numbers")
            count = math.prod(shape)
            if count * dtype.itemsize > info.file_size:
                raise InputError(f"{where} declares shape {shape} ({count * dtype.itemsize} bytes) "
                                 f"in a member of {info.file_size} bytes")
        with archive.open(info) as fh:  # the size is known to fit: now the data
            array = fmt.read_array(fh, allow_pickle=False)
    except EdgetrackError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise InputError(f"{where} is unreadable ({exc})") from None
    if array.shape != tuple(shape):
        raise InputError(f"{where} is truncated")
    return array


def read_checkpoint_meta(path: str | os.PathLike[str], max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict:
    """The ``meta`` values stored by :func:`save_checkpoint` ({} when none)."""
    header, _ = _read_archive(Path(path), max_bytes)
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError(f"{path}: corrupt checkpoint: 'meta' is a {type(meta).__name__}, expected an object")
    return meta


def load_checkpoint(path: str | os.PathLike[str], max_bytes: int = MAX_CHECKPOINT_BYTES) -> Tracker:
    """Restore a tracker saved by :func:`save_checkpoint`.

    max_bytes: the largest uncompressed size accepted (bytes, read from the zip's member headers before
    anything is decompressed). Raises :class:`FileReadError` for a missing or unreadable file and
    :class:`InputError` for a checkpoint that is too large, inconsistent or corrupt.
    """
    path = Path(path)
    header, arrays = _read_archive(path, max_bytes)
    try:
        state = _unflatten(header, arrays)
        return Tracker.resume(state)
    except InputError as exc:
        message = str(exc)
        raise InputError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _unflatten(header: dict, arrays: dict[str, np.ndarray]) -> dict:
    meta = header.get("block_meta")
    if not isinstance(meta, list) or not all(isinstance(m, dict) and set(m) == {"frame", "first_id"} for m in meta):
        raise InputError("corrupt checkpoint: 'block_meta' must be a list of {frame, first_id} objects")
    if header.get("n_blocks") != len(meta):
        raise InputError(f"corrupt checkpoint: n_blocks {header.get('n_blocks')!r} but {len(meta)} block entries")
    has_results = header.get("has_results")
    if not isinstance(has_results, bool):
        raise InputError("corrupt checkpoint: 'has_results' must be true or false")
    # a file written before an optional array existed has none of it (the tracker then takes zeros)
    present = [k for k in BLOCK_ARRAYS if k not in OPTIONAL_BLOCK_ARRAYS or not meta
               or any(f"b{i}_{k}" in arrays for i in range(len(meta)))]
    expected = {f"b{i}_{k}" for i in range(len(meta)) for k in present}
    expected |= {f"b{i}_e_{k}" for i in range(len(meta)) for k in EDGE_FIELDS}
    if has_results:
        expected |= {f"r_{k}" for k in RESULT_ARRAYS}
    if "psf_frames" in arrays:  # optional: frames of a still unsettled psf_sigma="auto"
        expected.add("psf_frames")
    missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
    if missing:
        raise InputError(f"corrupt checkpoint: missing array(s) {', '.join(missing[:5])}")
    if extra:
        raise InputError(f"corrupt checkpoint: unexpected array(s) {', '.join(extra[:5])}")
    blocks = [{**m, **{k: arrays[f"b{i}_{k}"] for k in present},
               "edges_in": {k: arrays[f"b{i}_e_{k}"] for k in EDGE_FIELDS}} for i, m in enumerate(meta)]
    state = {k: v for k, v in header.items() if k not in ("n_blocks", "has_results", "block_meta", "meta")}
    state["blocks"] = blocks
    state["results"] = {k: arrays[f"r_{k}"] for k in RESULT_ARRAYS} if has_results else None
    state["psf_frames"] = arrays.get("psf_frames")
    return state
