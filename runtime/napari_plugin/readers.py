"""npe2 readers: edgetrack tracks tables (CSV / Parquet, and the napari-layout CSV of
``edgetrack export --format napari``), Cell Tracking Challenge result folders and geff tracking graphs.

Each ``get_*_reader(path)`` answers None for a path that is not its kind (napari then asks its other
readers: a CSV of points without ``track_id`` stays napari's), else a function ``path -> [LayerData]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import FileReadError
from edgetrack.runtime.napari_plugin.tables import (
    LayerData,
    tracks_layer_data,
    with_parents,
)

__all__ = [
    "ctc_tracks",
    "get_ctc_reader",
    "get_geff_reader",
    "get_tracks_reader",
    "read_ctc",
    "read_geff_graph",
    "read_tracks",
    "single_path",
]

#: The files that make a folder a zarr group (v2, v3).
ZARR_GROUP_FILES = (".zgroup", ".zattrs", "zarr.json")
PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
Reader = Callable[[PathOrPaths], list[LayerData]]


def single_path(path: PathOrPaths) -> Path | None:
    """The one path napari gives (a list of one path counts), or None for several paths."""
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def _csv_columns(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError):
        return []


def get_tracks_reader(path: PathOrPaths) -> Reader | None:
    """A reader for a tracks table: CSV with ``frame, y, x, track_id`` (or trackpy's ``particle``), the
    napari-layout CSV (``track_id, t, y, x`` with ``<stem>.graph.json`` beside it) or any ``.parquet`` file."""
    one = single_path(path)
    if one is None or not one.is_file():
        return None
    if one.suffix.lower() == ".parquet":
        return read_tracks
    columns = set(_csv_columns(one)) if one.suffix.lower() == ".csv" else set()
    ours = {"frame", "y", "x"} <= columns and bool({"track_id", "particle"} & columns)
    napari_layout = {"track_id", "t", "y", "x"} <= columns
    return read_tracks if ours or napari_layout else None


def read_tracks(path: PathOrPaths) -> list[LayerData]:
    """A tracks table as a Tracks layer named after the file (its other numeric columns as features)."""
    from edgetrack.runtime.io.tables import read_table

    one = single_path(path)
    if one is None:
        raise FileReadError("edgetrack reads one tracks table at a time")
    columns = set(_csv_columns(one)) if one.suffix.lower() == ".csv" else set()
    if "t" in columns and "frame" not in columns:  # edgetrack export --format napari
        table = read_table(one, ("t", "y", "x", "track_id")).rename(columns={"t": "frame"})
        table = _with_graph(table, one.with_name(one.stem + ".graph.json"))
    else:
        table = read_table(one, ("frame", "y", "x", "track_id"))
    return [tracks_layer_data(table, name=one.stem)]


def _with_graph(table: pd.DataFrame, graph_path: Path) -> pd.DataFrame:
    if not graph_path.is_file():
        return table
    try:
        graph = {int(k): v for k, v in json.loads(graph_path.read_text()).items()}
    except (ValueError, OSError, AttributeError) as exc:
        raise FileReadError(f"{graph_path}: not a division graph ({exc})") from None
    return with_parents(table, {child: int(p[0] if isinstance(p, list) else p)
                                for child, p in graph.items() if p not in ([], None)})


def get_ctc_reader(path: PathOrPaths) -> Reader | None:
    """A reader for a CTC result (or ground-truth TRA) folder: ``maskTTT.tif`` + ``res_track.txt``."""
    one = single_path(path)
    if one is None or not one.is_dir():
        return None
    if not any((one / name).is_file() for name in ("res_track.txt", "man_track.txt")):
        return None
    return read_ctc


def ctc_tracks(masks: np.ndarray, lineage: pd.DataFrame) -> pd.DataFrame:
    """The tracks of a CTC folder: one row per object (centroid ``y, x`` px, ``label``, cell features),
    ``track_id`` = its CTC label, ``parent_track_id`` = the lineage parent on a track's first row (-1 else)."""
    from edgetrack.runtime.cells.features import movie_features

    objects = movie_features(masks)
    objects["track_id"] = objects["label"].astype(np.int64)
    lineage = lineage[lineage["parent"] > 0]  # CTC parent 0 = none
    return with_parents(objects, dict(zip(lineage["label"].astype(int), lineage["parent"].astype(int))))


def read_ctc(path: PathOrPaths) -> list[LayerData]:
    """A CTC folder as a Labels layer (the masks) and a Tracks layer (object centroids, the lineage as graph)."""
    from edgetrack.runtime.io.masks import read_ctc_result

    one = single_path(path)
    if one is None:
        raise FileReadError("edgetrack reads one CTC folder at a time")
    masks, lineage = read_ctc_result(one)
    stack = np.stack([masks[t] for t in range(len(masks))]) if len(masks) else np.zeros((0, 1, 1), np.uint16)
    tracks = ctc_tracks(stack, lineage)
    return [(stack, {"name": f"{one.name} masks"}, "labels"), tracks_layer_data(tracks, name=f"{one.name} tracks")]


def get_geff_reader(path: PathOrPaths) -> Reader | None:
    """A reader for a geff zarr folder (its metadata read by the geff package; without the package, a
    ``*.geff`` folder is still claimed, so that reading it says what to install)."""
    one = single_path(path)
    if one is None or not one.is_dir():
        return None
    if not any((one / name).is_file() for name in ZARR_GROUP_FILES):
        return None  # not a zarr group (and opening it as one would write zarr.json into the folder)
    try:
        from geff_spec import GeffMetadata
    except ImportError:
        return read_geff_graph if one.suffix.lower() == ".geff" else None
    try:
        GeffMetadata.read(str(one))
    except (ValueError, KeyError, OSError, TypeError):  # a zarr group without (valid) geff metadata
        return None
    return read_geff_graph


def read_geff_graph(path: PathOrPaths) -> list[LayerData]:
    """A geff tracking graph as a Tracks layer (``edgetrack.runtime.io.geff.read_geff``: node properties as
    features, divisions as the graph)."""
    from edgetrack.runtime.io.geff import read_geff

    one = single_path(path)
    if one is None:
        raise FileReadError("edgetrack reads one geff at a time")
    return [tracks_layer_data(read_geff(one), name=one.stem)]
