"""Tracks as a geff graph (the graph exchange format for tracking that motile, ultrack and traccuracy read).

:func:`write_geff` writes a tracks table as a geff zarr folder, :func:`read_geff` reads one back (or a
geff someone else wrote) as a tracks table. Both need the ``geff`` package (``pip install
"edgetrack[geff]"``), imported only when called.

What is written (one node per row of the table, node id = row position):

- node properties ``t`` (the frame, int), ``y``, ``x`` [, ``z``] (px), ``track_id`` (declared as the
  geff *tracklet*), ``lineage_id`` (the first track of the lineage, declared as the geff *lineage*;
  a ``lineage_id`` column of the table is written as it is instead),
  ``parent_track_id`` where the table has it, and every other column (numbers, booleans or strings);
- edges between consecutive points of a track (gaps allowed) and from the last point of a parent
  track to the first point of each daughter track (divisions), directed forward in time;
- axes ``t`` (unit ``frame``) and ``y``, ``x`` [, ``z``] (unit ``pixel``); with ``frame_interval`` /
  ``pixel_size`` given, their ``scale`` and ``scaled_unit`` say what one frame / one pixel is. The
  values themselves stay in frames and px, so a round trip gives back the same table.
- ``extra["edgetrack"]``: the edgetrack version and the column order.

:func:`read_geff` of a geff from another tool: the frame is the node property ``frame`` (any case)
if there is one, else the time axis (whole numbers); y / x / z are the space axes (by name, ``y`` or
``position_y``..., else in order with x last); track ids come from the tracklet property (or one named
``track_id``), otherwise from the edges: a node whose parent has one child continues its track, a
division (two or more children) starts new tracks whose ``parent_track_id`` is the parent's track.
Coordinates are returned as stored: a geff in physical units gives a table in those units.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import FileReadError, InputError, OutputError
from edgetrack.runtime.io.trackgraph import track_graph, tracks_from_edges

__all__ = ["read_geff", "require_geff", "write_geff"]

INSTALL = 'pip install "edgetrack[geff]"'
TIME = "t"
LINEAGE = "lineage_id"


def write_geff(tracks: pd.DataFrame, path: str | os.PathLike[str], *, pixel_size: float | None = None,
               frame_interval: float | None = None, space_unit: str = "micrometer", time_unit: str = "second",
               zarr_format: int = 2) -> Path:
    """Write a tracks table (``frame, y, x, track_id`` [, ``z``, ``parent_track_id``, features]) as a geff.

    ``path``: the geff zarr folder to create (``tracks.geff``); an existing geff there is replaced, any
    other existing file or folder is refused. ``pixel_size`` (``space_unit`` per px) and
    ``frame_interval`` (``time_unit`` per frame) go into the axes metadata as scales; units are
    OME-Zarr names (``micrometer``, ``nanometer``; ``second``, ``millisecond``). The folder is written
    beside the target and renamed into place, and checked with geff's structure validator first.
    Returns the path.
    """
    metadata_cls, axis_cls, hint_cls, write_arrays = _geff_writer()
    from edgetrack.runtime import __version__

    path = Path(path)
    graph = track_graph(tracks)
    table, coords = graph.table, graph.coords
    for name, value in (("pixel_size", pixel_size), ("frame_interval", frame_interval)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    if TIME in table.columns:
        raise InputError(f"tracks: column '{TIME}' is the name of the geff time axis (the frame); rename it")
    props = {TIME: table["frame"].to_numpy(np.int64)}
    props.update({c: table[c].to_numpy() for c in table.columns if c != "frame"})
    track_props = {"tracklet": "track_id"}
    if LINEAGE not in table.columns:  # a table read from another geff may have its own: kept as it is
        props[LINEAGE] = graph.lineage
        track_props["lineage"] = LINEAGE
    node_props = {name: {"values": _prop_values(name, values), "missing": None} for name, values in props.items()}
    axes = [axis_cls(name=TIME, type="time", unit="frame", scale=frame_interval,
                     scaled_unit=time_unit if frame_interval is not None else None)]
    axes += [axis_cls(name=c, type="space", unit="pixel", scale=pixel_size,
                      scaled_unit=space_unit if pixel_size is not None else None) for c in coords]
    metadata = metadata_cls(
        directed=True, axes=axes, node_props_metadata={}, edge_props_metadata={},
        track_node_props=track_props,
        display_hints=hint_cls(display_horizontal="x", display_vertical="y", display_time=TIME,
                               display_depth="z" if "z" in coords else None),
        extra={"edgetrack": {"version": __version__, "columns": [str(c) for c in table.columns]}})
    node_ids = np.arange(len(table), dtype=np.uint64)
    edge_ids = np.stack([graph.src, graph.dst], axis=1).astype(np.uint64).reshape(-1, 2)
    _check_target(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        os.rmdir(tmp)  # a fresh name beside the target; zarr creates the folder
        try:
            write_arrays(str(tmp), node_ids, node_props, edge_ids, {}, metadata, zarr_format=zarr_format)
        except (ValueError, TypeError) as exc:
            raise OutputError(f"{path}: geff refused the graph: {str(exc).splitlines()[0]}") from None
        _check_target(path)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def require_geff() -> None:
    """Raise :class:`OutputError` naming the install command when the geff package is missing."""
    _geff_writer()


def _geff_writer():
    try:
        from geff.core_io import write_arrays
        from geff_spec import Axis, DisplayHint, GeffMetadata
    except ImportError:
        raise OutputError(f"writing geff needs the geff package: {INSTALL}") from None
    return GeffMetadata, Axis, DisplayHint, write_arrays


def _prop_values(name: str, values: np.ndarray) -> np.ndarray:
    """A column as a geff property array: numbers and booleans as they are, text as fixed-width str."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return np.ascontiguousarray(values)
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values):
        return values.astype(str)
    if values.dtype.kind == "U":
        return values
    raise InputError(f"tracks: column '{name}' holds {values.dtype} values; geff properties here are numbers, "
                     "booleans or text")


def _is_geff(path: Path) -> bool:
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        try:
            attrs = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(attrs, dict) and "geff" in (attrs.get(key, {}) if key else attrs):
            return True
    return False


def _check_target(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if path.exists() and not (path.is_dir() and _is_geff(path)):
        raise OutputError(f"cannot write {path}: it exists and is not a geff (remove it or choose another path)")


def read_geff(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a geff as a tracks table: ``frame, y, x`` [, ``z``], ``track_id``, ``parent_track_id`` and features.

    A geff written by :func:`write_geff` comes back as the table that was written (same rows in the
    same order, columns, dtypes, track ids and divisions). ``table.attrs`` holds ``pixel_size``,
    ``frame_interval``, ``space_unit`` and ``time_unit`` where the axes say them. The geff is checked
    with geff's structure validator; properties with more than one value per node (polygons,
    covariances) are left out.
    """
    read_to_memory = _geff_reader()
    path = Path(path)
    if not path.exists():
        raise FileReadError(f"{path}: no such geff")
    try:
        graph = read_to_memory(str(path))
    except (ValueError, KeyError, TypeError, OSError) as exc:  # zarr's and pydantic's errors are ValueErrors
        raise FileReadError(f"{path}: not a readable geff ({str(exc).splitlines()[0] if str(exc) else exc!r})") \
            from None
    meta = graph["metadata"]
    node_ids = np.asarray(graph["node_ids"]).astype(np.int64)
    order = np.argsort(node_ids, kind="stable")
    sorted_ids = node_ids[order]
    edges = np.asarray(graph["edge_ids"]).astype(np.int64).reshape(-1, 2)
    if (np.diff(sorted_ids) == 0).any():
        raise InputError(f"{path}: node id {sorted_ids[1:][np.diff(sorted_ids) == 0][0]} appears more than once")
    position = np.minimum(np.searchsorted(sorted_ids, edges), max(len(sorted_ids) - 1, 0))
    if len(edges) and (sorted_ids[position] != edges).any():
        raise InputError(f"{path}: an edge names node {edges[sorted_ids[position] != edges][0]}, which is not a node")
    props = {name: _column(prop, order) for name, prop in graph["node_props"].items()
             if np.asarray(prop["values"]).ndim == 1 and np.asarray(prop["values"]).dtype.kind != "O"}
    source = str(path)
    axes = list(meta.axes or [])
    frame_name, frame = _frame(props, axes, source)
    coords = _coords(props, axes, source)
    src, dst = position[:, 0], position[:, 1]
    if not meta.directed:  # orient every edge forward in time
        flip = frame[src] > frame[dst]
        src, dst = np.where(flip, dst, src), np.where(flip, src, dst)
    columns = {"frame": frame, **{c: props[name] for c, name in coords.items()}}
    used = {frame_name, *coords.values()}
    tracklet = (meta.track_node_props or {}).get("tracklet") or ("track_id" if "track_id" in props else None)
    if tracklet in props:
        columns["track_id"] = _whole(props[tracklet], tracklet, source)
        used.add(tracklet)
        if "parent_track_id" in props:
            columns["parent_track_id"] = _whole(props["parent_track_id"], "parent_track_id", source, -1)
            used.add("parent_track_id")
        else:
            columns["parent_track_id"] = _parents_of_tracklets(columns["track_id"], src, dst, source)
    else:
        columns["track_id"], columns["parent_track_id"] = tracks_from_edges(frame, src, dst, source)
    ours = meta.extra.get("edgetrack") if isinstance(meta.extra, dict) else None
    for name in sorted(props):
        if name not in used and name not in columns:
            columns[name] = props[name]
    table = pd.DataFrame(columns)
    if isinstance(ours, dict) and set(ours.get("columns", ())) <= set(table.columns):
        table = table[[c for c in ours["columns"] if c in table.columns]]
    table.attrs.update(_scales(axes))
    return table


def _geff_reader():
    try:
        from geff.core_io import read_to_memory
    except ImportError:
        raise FileReadError(f"reading geff needs the geff package: {INSTALL}") from None
    return read_to_memory


def _column(prop: dict, order: np.ndarray) -> np.ndarray:
    values = np.asarray(prop["values"])[order]
    missing = prop.get("missing")
    if missing is None or not np.asarray(missing).any():
        return values
    missing = np.asarray(missing, dtype=bool)[order]
    if values.dtype.kind in "biuf":
        values = values.astype(np.float64)
        values[missing] = np.nan
        return values
    values = values.astype(object)
    values[missing] = None
    return values


def _whole(values: np.ndarray, name: str, source: str, minimum: int = 0) -> np.ndarray:
    numbers = np.asarray(values, dtype=np.float64) if np.asarray(values).dtype.kind in "biuf" else None
    if numbers is None or (~np.isfinite(numbers)).any() or (numbers < minimum).any() \
            or (numbers != np.round(numbers)).any():
        raise InputError(f"{source}: node property '{name}' must hold whole numbers >= {minimum}")
    return numbers.astype(np.int64)


def _frame(props: dict, axes: list, source: str) -> tuple[str, np.ndarray]:
    """The node property that holds the frame and its values (int64)."""
    named = [n for n in props if n.lower() == "frame"]
    time_axes = [a.name for a in axes if a.type == "time" and a.name in props]
    candidates = named + time_axes + ([TIME] if TIME in props else [])
    if not candidates:
        raise InputError(f"{source}: no frame: no node property 'frame', no time axis and no property 't'")
    name = candidates[0]
    values = np.asarray(props[name])
    if values.dtype.kind not in "biuf":
        raise InputError(f"{source}: the time property '{name}' is not numeric")
    numbers = values.astype(np.float64)
    if (~np.isfinite(numbers)).any() or (numbers < 0).any() or (numbers != np.round(numbers)).any():
        raise InputError(f"{source}: the time property '{name}' does not hold whole frame numbers >= 0 "
                         "(a time in seconds? edgetrack needs frames)")
    return name, numbers.astype(np.int64)


def _coords(props: dict, axes: list, source: str) -> dict[str, str]:
    """Table coordinate (z, y, x) -> node property name."""
    space = [a.name for a in axes if a.type == "space" and a.name in props]
    if not space:
        space = [n for n in ("z", "y", "x") if n in props]
    by_name = {n.lower().removeprefix("position_"): n for n in space}
    if len(by_name) == len(space) and set(by_name) <= {"z", "y", "x"} and {"y", "x"} <= set(by_name):
        return {c: by_name[c] for c in ("z", "y", "x") if c in by_name}
    if not 2 <= len(space) <= 3:
        raise InputError(f"{source}: edgetrack needs 2 or 3 space axes, found {len(space)} ({', '.join(space) or 'none'})")
    return dict(zip(("z", "y", "x")[3 - len(space):], space))


def _parents_of_tracklets(track_id: np.ndarray, src: np.ndarray, dst: np.ndarray, source: str) -> np.ndarray:
    """parent_track_id per node from the edges that join two tracklets (-1 where none)."""
    crossing = track_id[src] != track_id[dst]
    child, parent = track_id[dst[crossing]], track_id[src[crossing]]
    links = pd.DataFrame({"child": child, "parent": parent}).drop_duplicates()
    if links["child"].duplicated().any():
        bad = int(links.loc[links["child"].duplicated(), "child"].iloc[0])
        raise InputError(f"{source}: tracklet {bad} has edges from more than one tracklet (a merge)")
    lookup = pd.Series(links["parent"].to_numpy(), index=links["child"].to_numpy(), dtype=np.int64)
    return pd.Series(track_id).map(lookup).fillna(-1).to_numpy(np.int64)


def _scales(axes: list) -> dict:
    out = {}
    for axis in axes:
        if axis.scale is None:
            continue
        if axis.type == "time":
            out.setdefault("frame_interval", float(axis.scale))
            if axis.scaled_unit:
                out.setdefault("time_unit", str(axis.scaled_unit))
        elif axis.type == "space":
            out.setdefault("pixel_size", float(axis.scale))
            if axis.scaled_unit:
                out.setdefault("space_unit", str(axis.scaled_unit))
    return out
