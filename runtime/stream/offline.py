"""Offline linking: the whole detection table as one window, solved once (no streaming).

This is the reference the streaming :class:`~edgetrack.runtime.stream.tracker.Tracker` is measured
against: the same candidate graph (:func:`~edgetrack.runtime.graph.candidates.build_graph`, the kernel the
Tracker uses frame by frame), the same scorer and linker, but every detection undecided at once,
so a global linker ('flow', 'ilp') returns the optimum over the whole movie.

Detections are put in the Tracker's order (by frame, then y, then x), so node ``i`` here is the
detection the Tracker numbers ``det_id = i`` when no frame is skipped, and track ids are given in
the same way: a detection starts a new track when it has no parent or when its parent has two or
more children (a division: ``parent_track_id`` of the daughter's first point is the mother's track).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
import pandas as pd

from edgetrack.runtime.associate.registry import make_scorer
from edgetrack.runtime.graph.candidates import CandidateEdges, build_graph
from edgetrack.runtime.io.tables import check_table
from edgetrack.runtime.link.problem import UNDECIDED, LinkProblem
from edgetrack.runtime.link.registry import get_linker
from edgetrack.runtime.stream.config import TrackerConfig
from edgetrack.runtime.stream.updates import points_frame

__all__ = ["OfflineGraph", "offline_graph", "tracks_from_parents", "link_offline"]

_NOT_FEATURES = ("frame", "y", "x", "track_id", "parent_track_id", "particle")


class OfflineGraph(NamedTuple):
    """The whole movie as one window.

    node_frame: int64 (n,) frame of each detection (sorted by frame, then y, then x).
    values: float64 (n, F) columns ``y, x`` then the numeric features.
    columns: names of the columns of ``values``.
    edges: the candidate edges (node indices).
    score: float64 (m,) link probability of each edge.
    """

    node_frame: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    edges: CandidateEdges
    score: np.ndarray


def offline_graph(detections: pd.DataFrame, config: TrackerConfig | dict | None = None, **options: Any) -> OfflineGraph:
    """Candidate graph and scores of a detection table (``frame, y, x`` [+ numeric features]).

    Options are those of :class:`~edgetrack.runtime.stream.config.TrackerConfig` (``window`` is unused).
    """
    cfg = config.replace(**options) if isinstance(config, TrackerConfig) and options else (
        config if isinstance(config, TrackerConfig) else TrackerConfig.from_dict(config or {}, **options))
    detections = check_table(detections, ("frame", "y", "x"), source="detections")
    features = [c for c in detections.columns if c not in _NOT_FEATURES and pd.api.types.is_numeric_dtype(detections[c])]
    columns = ("y", "x", *features)
    frame = detections["frame"].to_numpy().astype(np.int64)
    values = np.empty((len(detections), len(columns)), np.float64)
    for j, name in enumerate(columns):
        values[:, j] = detections[name].to_numpy(dtype=np.float64)
    order = np.lexsort((values[:, 1], values[:, 0], frame))
    frame = np.ascontiguousarray(frame[order])
    values = np.ascontiguousarray(values[order])
    edges = build_graph(frame, np.ascontiguousarray(values[:, 0]), np.ascontiguousarray(values[:, 1]),
                        cfg.max_distance, cfg.max_gap)
    if cfg.scorer == "distance":
        sigma = cfg.step_sigma if cfg.step_sigma is not None else cfg.max_distance / 3.0
        scorer = make_scorer("distance", step_sigma=sigma, gap_penalty=cfg.gap_penalty)
    else:
        scorer = make_scorer(cfg.scorer)
    if getattr(scorer, "needs_window", False):
        score = scorer.score_window(frame, values, columns, edges)
    else:
        score = scorer.score(edges)
    return OfflineGraph(frame, values, columns, edges, np.ascontiguousarray(score, dtype=np.float64))


@numba.njit(cache=True, nogil=True)
def _track_ids(parent, n_children):
    """Track id and parent track id (first point of a daughter only) of nodes in time order."""
    n = parent.shape[0]
    track = np.empty(n, np.int64)
    parent_track = np.full(n, -1, np.int64)
    next_id = 0
    for i in range(n):
        p = parent[i]
        if p < 0 or n_children[p] >= 2:
            track[i] = next_id
            next_id += 1
            if p >= 0:
                parent_track[i] = track[p]
        else:
            track[i] = track[p]
    return track, parent_track


def tracks_from_parents(node_frame: np.ndarray, values: np.ndarray, columns: tuple[str, ...], parent: np.ndarray,
                        divisions: bool = False) -> pd.DataFrame:
    """Tracks of a linked window: a DataFrame ``frame, y, x, track_id[, parent_track_id], features``.

    node_frame: int64 (n,) sorted ascending; values: float64 (n, F) (``y, x`` first); parent: int64
    (n,) parent node or -1 (parents earlier in time). ``divisions`` adds ``parent_track_id``.
    """
    parent = np.ascontiguousarray(parent, dtype=np.int64)
    linked = parent[parent >= 0]
    n_children = np.bincount(linked, minlength=parent.shape[0]).astype(np.int64)
    track, parent_track = _track_ids(parent, n_children)
    return points_frame(np.asarray(node_frame, np.int64), columns, values, track, parent_track if divisions else None)


def link_offline(detections: pd.DataFrame, config: TrackerConfig | dict | None = None, **options: Any) -> pd.DataFrame:
    """Link a whole detection table at once (one window; the global optimum for 'flow' and 'ilp').

    Options are those of :class:`~edgetrack.runtime.stream.config.TrackerConfig` (``window`` unused;
    ``linker_options`` go to the linker, e.g. ``{"time_limit": 60.0}`` for 'ilp'). Returns the tracks as
    :meth:`~edgetrack.runtime.stream.tracker.Tracker.finish` does.
    """
    cfg = config.replace(**options) if isinstance(config, TrackerConfig) and options else (
        config if isinstance(config, TrackerConfig) else TrackerConfig.from_dict(config or {}, **options))
    graph = offline_graph(detections, cfg)
    n = graph.node_frame.shape[0]
    e = graph.edges
    linker = get_linker(cfg.linker)
    problem = LinkProblem.from_arrays(graph.node_frame, e.src, e.dst, e.dt, graph.score, np.full(n, UNDECIDED, np.int64),
                                      np.zeros(n, np.int64), max_children=cfg.max_children, min_score=cfg.min_score,
                                      dist=e.dist)
    parent = linker(problem, linker.parse_options(cfg.linker_options)).parent
    return tracks_from_parents(graph.node_frame, graph.values, graph.columns, parent, cfg.max_children > 1)
