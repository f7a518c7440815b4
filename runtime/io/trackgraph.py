"""A tracks table as a directed graph of its points, and a graph of points back to track ids.

The shared core of the geff and TrackMate XML exports. The nodes are the rows of the table (row
position = node index). An edge joins two consecutive points of a track (frames may be skipped within
a track: a gap), and one edge joins the last point of a parent track to the first point of each of its
daughter tracks (a division; ``parent_track_id`` names the parent, -1 none).

Going back (:func:`tracks_from_edges`): a node whose parent has exactly one child continues the
parent's track; a node without a parent, or whose parent has two or more children (a division),
starts a new track, and a division's daughters get the parent's track as ``parent_track_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.io.tables import check_table


@dataclass(frozen=True)
class TrackGraph:
    """The checked table and its edges.

    ``table``: a copy of the tracks in their row order, ``frame`` and ``track_id`` (and
    ``parent_track_id`` where present) int64. ``coords``: ``["y", "x"]`` or ``["z", "y", "x"]``.
    ``src``, ``dst``: int64 (m,) row positions, ``frame[src] < frame[dst]``; the track edges first,
    sorted by track and frame, then the division edges. ``lineage``: int64 (n,) the track id of the
    first track of each point's lineage (its connected component). ``n_divisions``: how many of the
    edges are division edges.
    """

    table: pd.DataFrame
    coords: list[str]
    src: np.ndarray
    dst: np.ndarray
    lineage: np.ndarray
    n_divisions: int


def _whole_ids(table: pd.DataFrame, column: str, source: str, minimum: int) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    if column == "parent_track_id":
        values = np.where(np.isnan(values), -1.0, values)  # an empty cell: no parent
    bad = ~np.isfinite(values) | (values < minimum) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{source}: '{column}' must hold whole numbers >= {minimum}; row {row} has "
                         f"{table[column].iloc[row]!r}")
    return values.astype(np.int64)


def track_graph(tracks: pd.DataFrame, source: str = "tracks") -> TrackGraph:
    """Check a tracks table (``frame, y, x, track_id`` [, ``z``, ``parent_track_id``]) and build its graph.

    Raises :class:`InputError` for a missing or non-numeric column, a track with two points in one
    frame, a track that is its own parent, a track that names two parent tracks, or a daughter track
    that starts before its parent track ends. ``parent_track_id`` may be on every point of a daughter
    track or on its first point only (-1 on the others). A parent track id that names no track in
    the table is kept in the column but makes no edge.
    """
    coords = ["z", "y", "x"] if isinstance(tracks, pd.DataFrame) and "z" in tracks.columns else ["y", "x"]
    table = check_table(tracks, ["frame", *coords, "track_id"], source=source).reset_index(drop=True)
    tid = table["track_id"] = _whole_ids(table, "track_id", source, 0)
    frame = table["frame"].to_numpy()
    order = np.lexsort((frame, tid))
    same = tid[order][1:] == tid[order][:-1]
    repeat = same & (frame[order][1:] == frame[order][:-1])
    if repeat.any():
        row = order[1:][repeat][0]
        raise InputError(f"{source}: track {tid[row]} has more than one point in frame {frame[row]}")
    src, dst = order[:-1][same], order[1:][same]
    n = len(table)
    lineage = tid.copy()
    div_src = div_dst = np.empty(0, dtype=np.int64)
    if "parent_track_id" in table.columns:
        parent = table["parent_track_id"] = _whole_ids(table, "parent_track_id", source, -1)
        div_src, div_dst, lineage = _divisions(tid, parent, frame, order, same, source)
    return TrackGraph(table=table, coords=coords, src=np.concatenate([src, div_src]).astype(np.int64),
                      dst=np.concatenate([dst, div_dst]).astype(np.int64), lineage=lineage[:n],
                      n_divisions=len(div_src))


def _divisions(tid, parent, frame, order, same, source):
    """Division edges (last point of the parent track -> first point of the daughter) and lineage ids."""
    starts = order[np.concatenate([[True], ~same])] if len(order) else order
    ends = order[np.concatenate([~same, [True]])] if len(order) else order
    tracks = tid[starts]  # ascending
    named = parent >= 0  # the parent may be on every point of the daughter track or on its first only
    varying = pd.Series(parent[named]).groupby(tid[named]).nunique()
    if (varying > 1).any():
        raise InputError(f"{source}: track {varying.index[varying.to_numpy() > 1][0]} names more than one "
                         "parent_track_id")
    track_parent = pd.Series(parent).groupby(tid).max().to_numpy() if len(tid) else tracks
    if (track_parent == tracks).any():
        raise InputError(f"{source}: track {tracks[track_parent == tracks][0]} is its own parent_track_id")
    where = np.searchsorted(tracks, track_parent)
    known = (track_parent >= 0) & (where < len(tracks))
    known[known] = tracks[where[known]] == track_parent[known]
    children = np.flatnonzero(known)
    div_src, div_dst = ends[where[children]], starts[children]
    early = frame[div_dst] <= frame[div_src]
    if early.any():
        k = int(np.flatnonzero(early)[0])
        raise InputError(f"{source}: track {tid[div_dst[k]]} starts in frame {frame[div_dst[k]]}, not after its "
                         f"parent track {tid[div_src[k]]} ends (frame {frame[div_src[k]]})")
    up = np.arange(len(tracks))
    up[children] = where[children]  # each track's parent track, as an index into `tracks`
    root = _roots(up)
    lineage = tracks[root][np.searchsorted(tracks, tid)]
    return div_src, div_dst, lineage


def _roots(up: np.ndarray) -> np.ndarray:
    """The root of every node of a forest given each node's parent (itself at a root): pointer jumping."""
    root = up.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def tracks_from_edges(frame: np.ndarray, src: np.ndarray, dst: np.ndarray,
                      source: str = "graph") -> tuple[np.ndarray, np.ndarray]:
    """Track ids and parent track ids (int64 (n,), -1 none) of n points from directed edges between them.

    ``frame``: int (n,); ``src``, ``dst``: (m,) node positions with ``frame[src] < frame[dst]``. Tracks
    are numbered 0, 1, ... in the order of their first point (frame, then node position). Raises
    :class:`InputError` for an edge that does not go forward in time or a node with two parents (a merge,
    which edgetrack tracks cannot hold).
    """
    frame = np.asarray(frame, dtype=np.int64)
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    n = len(frame)
    backward = frame[dst] <= frame[src]
    if backward.any():
        k = int(np.flatnonzero(backward)[0])
        raise InputError(f"{source}: edge {src[k]} -> {dst[k]} goes from frame {frame[src[k]]} to frame "
                         f"{frame[dst[k]]}; edges must go forward in time")
    indegree = np.bincount(dst, minlength=n)
    if (indegree > 1).any():
        node = int(np.flatnonzero(indegree > 1)[0])
        raise InputError(f"{source}: node {node} has {indegree[node]} incoming edges (a merge); edgetrack tracks "
                         "allow one parent per point")
    outdegree = np.bincount(src, minlength=n)
    parent = np.full(n, -1, dtype=np.int64)
    parent[dst] = src
    has_parent = parent >= 0
    continues = has_parent.copy()
    continues[has_parent] = outdegree[parent[has_parent]] == 1
    head = np.flatnonzero(~continues)
    root = _roots(np.where(continues, parent, np.arange(n)))
    number = np.empty(n, dtype=np.int64)
    number[head[np.lexsort((head, frame[head]))]] = np.arange(len(head))
    track_id = number[root]
    head_parent = np.full(n, -1, dtype=np.int64)
    divided = head[has_parent[head]]
    head_parent[divided] = track_id[parent[divided]]
    return track_id, head_parent[root]
