"""Tracks as a TrackMate XML file, for Fiji's TrackMate (File > Open, or Plugins > Tracking > Load a TrackMate file).

The file has the layout that TrackMate's ``TmXmlReader`` reads:

- ``Model`` with ``spatialunits`` / ``timeunits``, the ``FeatureDeclarations`` of every spot, edge
  and track feature used, ``AllSpots`` grouped by frame, ``AllTracks`` and ``FilteredTracks``;
- a spot per row: ``ID`` (the row position), ``name``, ``POSITION_X/Y/Z`` (px times ``pixel_size``),
  ``POSITION_T`` (frame times ``frame_interval``), ``FRAME``, ``RADIUS``, ``QUALITY``, ``VISIBILITY``,
  ``EDGETRACK_TRACK_ID`` / ``EDGETRACK_PARENT_TRACK_ID`` and one attribute per numeric feature column
  (lengths and areas scaled to the spatial unit);
- edges ``SPOT_SOURCE_ID`` -> ``SPOT_TARGET_ID`` between consecutive points of a track and from the last
  point of a parent track to the first points of its daughters. A TrackMate track is a connected
  component, so a dividing cell and its daughters form one TrackMate track (with its splits); the
  edgetrack track ids stay on the spots. Single-point tracks are spots outside any track;
- ``Settings`` with the image (``image=``, else none: TrackMate then makes an empty image that fits
  the spots), its size and calibration, the manual detector and tracker, and no filters.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.io.trackgraph import track_graph

__all__ = ["FORMAT_VERSION", "write_trackmate"]

FORMAT_VERSION = "7.14.0"  # the TrackMate file layout written (any version >= 2.1.0 loads in TrackMate 7 and 8)

# feature key -> (name, short name, dimension, isint) for the features TrackMate itself defines
SPOT_FEATURES = {
    "QUALITY": ("Quality", "Quality", "QUALITY", False),
    "POSITION_X": ("X", "X", "POSITION", False),
    "POSITION_Y": ("Y", "Y", "POSITION", False),
    "POSITION_Z": ("Z", "Z", "POSITION", False),
    "POSITION_T": ("T", "T", "TIME", False),
    "FRAME": ("Frame", "Frame", "NONE", True),
    "RADIUS": ("Radius", "R", "LENGTH", False),
    "VISIBILITY": ("Visibility", "Visibility", "NONE", True),
}
EDGE_FEATURES = {
    "SPOT_SOURCE_ID": ("Source spot ID", "Source ID", "NONE", True),
    "SPOT_TARGET_ID": ("Target spot ID", "Target ID", "NONE", True),
}
TRACK_FEATURES = {
    "TRACK_INDEX": ("Track index", "Index", "NONE", True),
    "TRACK_ID": ("Track ID", "ID", "NONE", True),
    "NUMBER_SPOTS": ("Number of spots in track", "N spots", "NONE", True),
    "NUMBER_GAPS": ("Number of gaps", "N gaps", "NONE", True),
    "NUMBER_SPLITS": ("Number of split events", "N splits", "NONE", True),
    "NUMBER_MERGES": ("Number of merge events", "N merges", "NONE", True),
    "NUMBER_COMPLEX": ("Number of complex points", "N complex", "NONE", True),
    "LONGEST_GAP": ("Longest gap", "Lgst gap", "NONE", True),
    "TRACK_DURATION": ("Track duration", "Duration", "TIME", False),
    "TRACK_START": ("Track start", "Track start", "TIME", False),
    "TRACK_STOP": ("Track stop", "Track stop", "TIME", False),
}
# edgetrack columns with a physical dimension: lengths in px, areas in px^2, intensities in counts
DIMENSIONS = {"size": "LENGTH", "perimeter": "LENGTH", "area": "AREA", "mass": "INTENSITY", "signal": "INTENSITY",
              "mean_intensity": "INTENSITY"}


def write_trackmate(tracks: pd.DataFrame, path: str | os.PathLike[str], *, pixel_size: float | None = None,
                    frame_interval: float | None = None, space_unit: str | None = None, time_unit: str | None = None,
                    radius: float | str | None = None, quality: str | None = None,
                    image: str | os.PathLike[str] | None = None,
                    frame_shape: tuple[int, int] | None = None) -> Path:
    """Write a tracks table (``frame, y, x, track_id`` [, ``z``, ``parent_track_id``, features]) as TrackMate XML.

    ``pixel_size``: ``space_unit`` per px (default unit ``µm``; without it positions stay in ``pixel``);
    ``frame_interval``: ``time_unit`` per frame (default ``sec``; without it times are in ``frame``).
    ``z`` is taken in px like y and x. ``radius``: the spot radius, a number in px or the name of a
    column in px; by default ``sqrt(area / pi)`` for cells, ``size`` (radius of gyration) for spots,
    else 1 px. ``quality``: the column TrackMate shows as quality (default ``mass``, else ``area``,
    else 1). ``image``: the movie the tracks belong to, which TrackMate opens with them.
    ``frame_shape``: (height, width) in px (default: what the points cover). Columns that are not
    numbers are left out. Written atomically; returns the path.
    """
    path = Path(path)
    graph = track_graph(tracks)
    table = graph.table
    for name, value in (("pixel_size", pixel_size), ("frame_interval", frame_interval)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    dx = float(pixel_size) if pixel_size is not None else 1.0
    dt = float(frame_interval) if frame_interval is not None else 1.0
    units = (space_unit or ("µm" if pixel_size is not None else "pixel"),
             time_unit or ("sec" if frame_interval is not None else "frame"))
    spots, declared = _spot_columns(table, dx, dt, radius, quality)
    shape = _image_shape(table, frame_shape)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for text in _document(table, graph, spots, declared, units, dx, dt, shape, image):
            handle.write(text)
    return path


def _number(values: np.ndarray, isint: bool) -> list[str]:
    """Values as text that Java's Double.valueOf and Integer.parseInt read (NaN, Infinity)."""
    if isint:
        return [str(v) for v in np.asarray(values, dtype=np.int64).tolist()]
    out = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        out.append(repr(v) if math.isfinite(v) else "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity")
    return out


def _feature_key(column: str, taken: set[str]) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "_", str(column)).strip("_").upper() or "FEATURE"
    if key in taken:
        key = f"EDGETRACK_{key}"
    base, k = key, 2
    while key in taken:
        key, k = f"{base}_{k}", k + 1
    taken.add(key)
    return key


def _spot_columns(table: pd.DataFrame, dx: float, dt: float, radius, quality):
    """(key -> values as text) for every spot attribute, and the spot feature declarations."""
    n = len(table)
    columns = set(table.columns)
    if radius is None:
        radius_px = (np.sqrt(table["area"].to_numpy(np.float64) / np.pi) if "area" in columns
                     else table["size"].to_numpy(np.float64) if "size" in columns else np.ones(n))
    elif isinstance(radius, str):
        if radius not in columns:
            raise InputError(f"radius: no column '{radius}' in the tracks")
        radius_px = pd.to_numeric(table[radius], errors="coerce").to_numpy(np.float64)
    else:
        if not (np.isfinite(radius) and radius > 0):
            raise InputError(f"radius must be a positive number of px or a column name, got {radius!r}")
        radius_px = np.full(n, float(radius))
    if quality is None:
        quality = next((c for c in ("mass", "area") if c in columns), None)
    elif quality not in columns:
        raise InputError(f"quality: no column '{quality}' in the tracks")
    z = table["z"].to_numpy(np.float64) if "z" in columns else np.zeros(n)
    values = {
        "QUALITY": (table[quality].to_numpy(np.float64) if quality is not None else np.ones(n), False),
        "POSITION_X": (table["x"].to_numpy(np.float64) * dx, False),
        "POSITION_Y": (table["y"].to_numpy(np.float64) * dx, False),
        "POSITION_Z": (z * dx, False),
        "POSITION_T": (table["frame"].to_numpy(np.float64) * dt, False),
        "FRAME": (table["frame"].to_numpy(), True),
        "RADIUS": (radius_px * dx, False),
        "VISIBILITY": (np.ones(n, dtype=np.int64), True),
    }
    declared = dict(SPOT_FEATURES)
    ids = [("track_id", "EDGETRACK_TRACK_ID", "edgetrack track_id", "Track id")]
    if "parent_track_id" in columns:
        ids.append(("parent_track_id", "EDGETRACK_PARENT_TRACK_ID", "edgetrack parent_track_id", "Parent id"))
    for column, key, name, short in ids:
        values[key] = (table[column].to_numpy(), True)
        declared[key] = (name, short, "NONE", True)
    taken = set(declared) | {"ID", "NAME", "ROI_N_POINTS"}
    skip = {"frame", "y", "x", "z", "track_id", "parent_track_id"}
    for column in table.columns:
        kind = table[column].dtype.kind
        if column in skip or kind not in "biuf":
            continue
        dimension = DIMENSIONS.get(str(column), "NONE")
        scale = dx if dimension == "LENGTH" else dx * dx if dimension == "AREA" else 1.0
        isint = kind in "biu" and scale == 1.0
        data = table[column].to_numpy(np.int64 if isint else np.float64)
        key = _feature_key(column, taken)
        values[key] = (data if isint else data * scale, isint)
        declared[key] = (str(column), str(column), dimension, isint)
    text = {key: _number(data, isint) for key, (data, isint) in values.items()}
    return text, declared


def _image_shape(table: pd.DataFrame, frame_shape) -> tuple[int, int, int, int]:
    """(width, height, nslices, nframes) of the image the spots belong to."""
    def extent(column: str) -> int:
        return int(np.floor(table[column].max())) + 1 if len(table) and column in table.columns else 1

    if frame_shape is not None:
        height, width = (int(v) for v in frame_shape)
        if height < 1 or width < 1:
            raise InputError(f"frame_shape must be (height, width) in px, got {frame_shape!r}")
    else:
        height, width = max(extent("y"), 1), max(extent("x"), 1)
    return width, height, max(extent("z"), 1), max(extent("frame"), 1)


def _declarations(tag: str, features: dict) -> Iterator[str]:
    yield f"      <{tag}>\n"
    for key, (name, short, dimension, isint) in features.items():
        yield (f"        <Feature feature={quoteattr(key)} name={quoteattr(name)} shortname={quoteattr(short)} "
               f'dimension="{dimension}" isint="{str(isint).lower()}" />\n')
    yield f"      </{tag}>\n"


def _track_features(graph, frame: np.ndarray) -> pd.DataFrame:
    """One row per lineage with at least one edge: its TrackMate track id and features."""
    src, dst = graph.src, graph.dst
    lineage = graph.lineage
    edge_lineage = lineage[src]
    kept = np.unique(edge_lineage)
    gap = frame[dst] - frame[src] - 1
    children = np.bincount(src, minlength=len(frame))
    per_edge = pd.DataFrame({"lineage": edge_lineage, "gap": gap})
    points = pd.DataFrame({"lineage": lineage, "frame": frame, "split": children >= 2})
    points = points[np.isin(lineage, kept)]
    spots = points.groupby("lineage").agg(n=("frame", "size"), start=("frame", "min"), stop=("frame", "max"),
                                          splits=("split", "sum"))
    edges = per_edge.groupby("lineage").agg(gaps=("gap", lambda g: int((g > 0).sum())), longest=("gap", "max"))
    out = spots.join(edges).reset_index()
    out["track"] = np.arange(len(out))
    return out


def _document(table, graph, spots, declared, units, dx, dt, shape, image) -> Iterator[str]:
    from edgetrack.runtime import __version__

    n = len(table)
    frame = table["frame"].to_numpy()
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield f'<TrackMate version="{FORMAT_VERSION}">\n'
    log = f"Exported by edgetrack {__version__}: {n} spots, {len(graph.src)} links ({graph.n_divisions} at divisions)."
    yield f"  <Log>{escape(log)}</Log>\n"
    yield f"  <Model spatialunits={quoteattr(units[0])} timeunits={quoteattr(units[1])}>\n"
    yield "    <FeatureDeclarations>\n"
    yield from _declarations("SpotFeatures", declared)
    yield from _declarations("EdgeFeatures", EDGE_FEATURES)
    yield from _declarations("TrackFeatures", TRACK_FEATURES)
    yield "    </FeatureDeclarations>\n"
    yield f'    <AllSpots nspots="{n}">\n'
    keys = list(spots)
    columns = [spots[k] for k in keys]
    order = np.lexsort((np.arange(n), frame))
    for t in np.unique(frame):
        yield f'      <SpotsInFrame frame="{int(t)}">\n'
        for i in order[np.searchsorted(frame[order], t, "left"):np.searchsorted(frame[order], t, "right")]:
            attrs = " ".join(f'{k}="{col[i]}"' for k, col in zip(keys, columns))
            yield f'        <Spot ID="{i}" name="ID{i}" {attrs} />\n'
        yield "      </SpotsInFrame>\n"
    yield "    </AllSpots>\n"
    tracks = _track_features(graph, frame)
    yield "    <AllTracks>\n"
    edge_lineage = graph.lineage[graph.src]
    edge_order = np.lexsort((graph.dst, graph.src, edge_lineage))
    bounds = np.searchsorted(edge_lineage[edge_order], tracks["lineage"].to_numpy())
    ends = np.append(bounds[1:], len(edge_order))
    for row, lo, hi in zip(tracks.itertuples(index=False), bounds, ends):
        k = int(row.track)
        yield (f'      <Track name="Track_{k}" TRACK_ID="{k}" TRACK_INDEX="{k}" NUMBER_SPOTS="{int(row.n)}" '
               f'NUMBER_GAPS="{int(row.gaps)}" NUMBER_SPLITS="{int(row.splits)}" NUMBER_MERGES="0" '
               f'NUMBER_COMPLEX="0" LONGEST_GAP="{max(int(row.longest), 0)}" '
               f'TRACK_DURATION="{_number([(row.stop - row.start) * dt], False)[0]}" '
               f'TRACK_START="{_number([row.start * dt], False)[0]}" '
               f'TRACK_STOP="{_number([row.stop * dt], False)[0]}">\n')
        for e in edge_order[lo:hi]:
            yield f'        <Edge SPOT_SOURCE_ID="{graph.src[e]}" SPOT_TARGET_ID="{graph.dst[e]}" />\n'
        yield "      </Track>\n"
    yield "    </AllTracks>\n"
    yield "    <FilteredTracks>\n"
    for k in tracks["track"]:
        yield f'      <TrackID TRACK_ID="{int(k)}" />\n'
    yield "    </FilteredTracks>\n"
    yield "  </Model>\n"
    yield from _settings(image, shape, dx, dt, spots["RADIUS"])
    yield '  <GUIState state="ConfigureViews" />\n'
    yield "  <DisplaySettings></DisplaySettings>\n"  # empty: TrackMate uses the user's default display
    yield "</TrackMate>\n"


def _settings(image, shape, dx: float, dt: float, radius_text: list[str]) -> Iterator[str]:
    width, height, nslices, nframes = shape
    filename = folder = ""
    if image is not None:
        image = Path(image).resolve()
        filename, folder = image.name, str(image.parent) + os.sep
    radius = float(np.median([float(r) for r in radius_text])) if radius_text else 1.0
    radius = radius if math.isfinite(radius) and radius > 0 else dx
    yield "  <Settings>\n"
    yield (f"    <ImageData filename={quoteattr(filename)} folder={quoteattr(folder)} width=\"{width}\" "
           f'height="{height}" nslices="{nslices}" nframes="{nframes}" pixelwidth="{dx!r}" pixelheight="{dx!r}" '
           f'voxeldepth="{dx!r}" timeinterval="{dt!r}" />\n')
    yield (f'    <BasicSettings xstart="0" xend="{width - 1}" ystart="0" yend="{height - 1}" zstart="0" '
           f'zend="{nslices - 1}" tstart="0" tend="{nframes - 1}" />\n')
    yield f'    <DetectorSettings DETECTOR_NAME="MANUAL_DETECTOR" RADIUS="{radius!r}" />\n'
    yield '    <InitialSpotFilter feature="QUALITY" value="0.0" isabove="true" />\n'
    yield "    <SpotFilterCollection />\n"
    yield '    <TrackerSettings TRACKER_NAME="MANUAL_TRACKER" />\n'
    yield "    <TrackFilterCollection />\n"
    yield "    <AnalyzerCollection>\n      <SpotAnalyzers />\n      <EdgeAnalyzers />\n      <TrackAnalyzers />\n"
    yield "    </AnalyzerCollection>\n"
    yield "  </Settings>\n"
