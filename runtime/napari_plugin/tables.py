"""edgetrack tables <-> napari layer data (plain numpy and pandas, no Qt, no napari import).

Tracks layer data is float64 (N, 4) ``track_id, t, y, x`` (N, 5 with ``z`` before ``y``), sorted by track
then frame, with the division graph ``{child track: [parent track]}`` and one feature row per point.
Points layer data is float64 (N, 3) ``t, y, x``. Coordinates are px, ``t`` is the 0-based frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.napari import to_napari
from edgetrack.runtime.io.tables import check_table

__all__ = ["SPATIAL", "LayerData", "points_layer_data", "sorted_tracks", "tracks_from_layer", "tracks_layer_data", "with_parents"]

#: A napari "LayerDataTuple": (data, layer keyword arguments, layer type).
LayerData = tuple[Any, dict[str, Any], str]
#: The coordinate columns that become layer data rather than features.
SPATIAL = ("z", "y", "x")
_NOT_FEATURES = frozenset(("frame", "track_id", "parent_track_id", *SPATIAL))


def sorted_tracks(tracks: pd.DataFrame) -> pd.DataFrame:
    """``tracks`` in the row order of napari's Tracks layer (by ``track_id``, then ``frame``), index reset."""
    table = check_table(tracks, ("frame", "y", "x", "track_id"), source="tracks")
    return table.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def _features(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if c not in _NOT_FEATURES and pd.api.types.is_numeric_dtype(table[c])]
    return table[keep].reset_index(drop=True)


def tracks_layer_data(tracks: pd.DataFrame, name: str = "tracks", **kwargs: Any) -> LayerData:
    """A Tracks layer from an edgetrack tracks table (``frame, y, x, track_id`` [, ``parent_track_id``], features).

    The numeric columns other than the coordinates become the layer's features (``mass``, ``label``,
    ``alpha``, ...); ``parent_track_id`` becomes the division graph. Extra keyword arguments go to the
    layer (``scale``, ``tail_length``, ...).
    """
    table = sorted_tracks(tracks)
    data, graph = to_napari(table)
    return data, {"name": name, "graph": graph, "features": _features(table), **kwargs}, "tracks"


def points_layer_data(table: pd.DataFrame, name: str = "spots", **kwargs: Any) -> LayerData:
    """A Points layer (``t, y, x`` per row) from a table with ``frame, y, x``; numeric columns become features."""
    table = check_table(table, ("frame", "y", "x"), source="points").reset_index(drop=True)
    data = np.ascontiguousarray(table[["frame", "y", "x"]].to_numpy(np.float64)).reshape(-1, 3)
    features = table[[c for c in table.columns if c not in ("frame", "y", "x")
                      and pd.api.types.is_numeric_dtype(table[c])]]
    return data, {"name": name, "features": features, **kwargs}, "points"


def tracks_from_layer(data: np.ndarray, features: pd.DataFrame | Mapping[str, Any] | None = None,
                      graph: Mapping[int, Any] | None = None) -> pd.DataFrame:
    """An edgetrack tracks table from a Tracks layer's data (N, 4 or 5), features and graph.

    Columns: ``frame, [z,] y, x, track_id``, then ``parent_track_id`` where the graph has divisions
    (the parent on each daughter track's first row, -1 elsewhere, as the trackers write it), then the
    features. A track with several parents in the graph (a merge) is refused: edgetrack tracks never merge.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] not in (4, 5):
        raise InputError(f"tracks layer data must be (N, 4) track_id, t, y, x or (N, 5) with z, got shape {data.shape}")
    spatial = ["y", "x"] if data.shape[1] == 4 else ["z", "y", "x"]
    table = pd.DataFrame({"frame": data[:, 1], **{c: data[:, 2 + j] for j, c in enumerate(spatial)},
                          "track_id": data[:, 0]})
    if len(table) and ((table["frame"] != np.round(table["frame"])).any()
                       or (table["track_id"] != np.round(table["track_id"])).any()):
        raise InputError("tracks layer data: track ids and times must be whole numbers")
    table["frame"] = table["frame"].astype(np.int64)
    table["track_id"] = table["track_id"].astype(np.int64)
    parents = _parents(graph or {})
    if parents:
        table = with_parents(table, parents)
    if features is not None:
        extra = pd.DataFrame(features).reset_index(drop=True)
        extra = extra[[c for c in extra.columns if c not in table.columns]]
        if len(extra.columns):
            if len(extra) != len(table):
                raise InputError(f"tracks layer: {len(extra)} feature rows for {len(table)} points")
            table = pd.concat([table, extra], axis=1)
    return table


def with_parents(table: pd.DataFrame, parents: Mapping[int, int]) -> pd.DataFrame:
    """``table`` (``frame, track_id``) with ``parent_track_id``: ``parents[track]`` on each track's first row
    (a track missing from ``parents`` or mapped to a value < 0 has none), -1 on every other row."""
    table = table.copy()
    first = table["frame"] == table.groupby("track_id")["frame"].transform("min")
    mapped = table["track_id"].astype(np.int64).map(dict(parents)).fillna(-1).astype(np.int64)
    table["parent_track_id"] = np.where(first & (mapped >= 0), mapped, -1)
    return table


def _parents(graph: Mapping[int, Any]) -> dict[int, int]:
    parents: dict[int, int] = {}
    for child, value in graph.items():
        listed = [int(p) for p in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
        if len(listed) > 1:
            raise InputError(f"tracks layer: track {int(child)} has {len(listed)} parents {listed} (a merge); "
                             "edgetrack tracks have at most one parent")
        if listed:
            parents[int(child)] = listed[0]
    return parents
