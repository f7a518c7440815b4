"""Saving and loading a :class:`~edgetrack.runtime.stream.tracker.Tracker` checkpoint to one file.

The file is a NumPy ``.npz`` archive (no pickle): a JSON header with the scalar state and one array per
block, written atomically, so an acquisition that restarts its analysis resumes from the last saved
state and loses nothing that was committed.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edgetrack.runtime.io.atomic import atomic_path
from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.stream.tracker import Tracker


def _flatten(state: dict) -> tuple[dict, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    header = {k: v for k, v in state.items() if k not in ("blocks", "results")}
    header["n_blocks"] = len(state["blocks"])
    header["has_results"] = state["results"] is not None
    header["block_meta"] = [{"frame": b["frame"], "first_id": b["first_id"]} for b in state["blocks"]]
    for i, b in enumerate(state["blocks"]):
        for key in ("values", "locked_parent", "child_count", "track_id", "score_in"):
            arrays[f"b{i}_{key}"] = b[key]
        for key, value in b["edges_in"].items():
            arrays[f"b{i}_e_{key}"] = value
    if state["results"] is not None:
        for key, value in state["results"].items():
            arrays[f"r_{key}"] = value
    return header, arrays


def save_checkpoint(tracker: Tracker, path: str | os.PathLike[str]) -> Path:
    """Write ``tracker.checkpoint()`` to ``path`` (``.npz``) atomically; returns the path."""
    header, arrays = _flatten(tracker.checkpoint())
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Tracker:
    """Restore a tracker saved by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileReadError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["__header__"]).decode())
            arrays = {k: data[k] for k in data.files if k != "__header__"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise FileReadError(f"{path}: not a readable edgetrack checkpoint ({exc})") from None
    try:
        blocks = []
        for i, meta in enumerate(header["block_meta"]):
            blocks.append({
                **meta,
                **{k: arrays[f"b{i}_{k}"] for k in ("values", "locked_parent", "child_count", "track_id", "score_in")},
                "edges_in": {k[len(f"b{i}_e_"):]: v for k, v in arrays.items() if k.startswith(f"b{i}_e_")},
            })
        results = ({k[2:]: v for k, v in arrays.items() if k.startswith("r_")} if header["has_results"] else None)
        state = {k: v for k, v in header.items() if k not in ("n_blocks", "has_results", "block_meta")}
        state["blocks"] = blocks
        state["results"] = results
    except KeyError as exc:
        raise InputError(f"{path}: corrupt checkpoint (missing {exc})") from None
    return Tracker.resume(state)
