"""Tracks in the layout of napari's Tracks layer: ``(track_id, t, [z,] y, x)`` rows plus the division graph.

napari (``viewer.add_tracks(data, graph=graph, features=features)``) wants the rows sorted by track
and time, and the divisions as a dict ``{child_track_id: [parent_track_id]}``. :func:`to_napari`
builds both from an edgetrack tracks table; :func:`write_napari` saves them as a CSV (the data columns
first, then the per-point features) and a JSON graph beside it, which load back with::

    import json, numpy as np, pandas as pd
    table = pd.read_csv("tracks_napari.csv")
    data = table[["track_id", "t", "y", "x"]].to_numpy()          # add "z" before "y" for 3-D
    graph = {int(k): v for k, v in json.load(open("tracks_napari.graph.json")).items()}
    viewer.add_tracks(data, graph=graph, features=table.drop(columns=["track_id", "t", "y", "x"]))

No napari import is needed to export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.io.tables import check_table, write_table


def to_napari(tracks: pd.DataFrame) -> tuple[np.ndarray, dict[int, list[int]]]:
    """(data, graph) for napari: data float64 (N, 4) ``track_id, t, y, x`` (N, 5 with ``z``), sorted by
    track then frame; graph ``{child track: [parent track]}`` from ``parent_track_id`` (>= 0) where present.
    """
    table = _checked(tracks)
    spatial = ["z", "y", "x"] if "z" in table.columns else ["y", "x"]
    data = table[["track_id", "frame", *spatial]].to_numpy(dtype=np.float64)
    return np.ascontiguousarray(data), _graph(table)


def _checked(tracks: pd.DataFrame) -> pd.DataFrame:
    required = ["frame", "y", "x", "track_id"] + (["z"] if "z" in tracks.columns else [])
    table = check_table(tracks, required, source="tracks")
    tid = table["track_id"].to_numpy(dtype=np.float64)
    if len(tid) and ((tid < 0).any() or (tid != np.round(tid)).any()):
        from edgetrack.runtime.errors import InputError

        raise InputError("tracks: 'track_id' must hold whole numbers >= 0 (untracked points have no napari track)")
    table["track_id"] = tid.astype(np.int64)
    return table.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def _graph(table: pd.DataFrame) -> dict[int, list[int]]:
    if "parent_track_id" not in table.columns:
        return {}
    parents = table[["track_id", "parent_track_id"]]
    parents = parents[pd.to_numeric(parents["parent_track_id"], errors="coerce").fillna(-1) >= 0]
    graph: dict[int, list[int]] = {}
    for child, parent in parents.drop_duplicates().itertuples(index=False):
        if int(parent) != int(child):
            graph.setdefault(int(child), [])
            if int(parent) not in graph[int(child)]:
                graph[int(child)].append(int(parent))
    return graph


def write_napari(tracks: pd.DataFrame, out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``out`` (CSV: track_id, t, [z,] y, x, then numeric features) and ``<stem>.graph.json``.

    Both files are written atomically. Returns their paths.
    """
    out = Path(out)
    table = _checked(tracks)
    spatial = ["z", "y", "x"] if "z" in table.columns else ["y", "x"]
    skip = {"frame", "track_id", "parent_track_id", *spatial}
    features = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    frame = table[["track_id", "frame", *spatial, *features]].rename(columns={"frame": "t"})
    graph_path = out.with_name(out.stem + ".graph.json")
    write_table(frame, out)
    with atomic_open(graph_path, "w") as handle:
        json.dump({str(k): v for k, v in sorted(_graph(table).items())}, handle, indent=1)
    return out, graph_path
