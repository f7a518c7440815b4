"""End-to-end check on held-out simulated movies: the streaming Tracker with a scorer and a linker,
links and divisions against the simulator's truth, and the model's speed in ONNX Runtime.

True links: each object of a true track (its representative, see
:func:`edgetrack.training.cell_assoc.data.representatives`) is linked to the previous object of its
track, or, for the first object of a daughter track, to the last object of its mother, when that
object is at most ``max_gap`` frames earlier. A true division is a mother object with its two
daughters' first objects (one frame later) as children.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.associate.cell_transformer import CELL_FEATURE_COLUMNS

from .data import LabelledMovie, representatives

__all__ = ["true_links", "track_links", "link_scores", "evaluate_tracking", "time_model"]


def true_links(movie: LabelledMovie, max_gap: int = 2) -> set[tuple[int, int]]:
    """(parent row, child row) pairs of ``movie.table`` (see the module docstring)."""
    tab = movie.table
    frame = tab["frame"].to_numpy(np.int64)
    rep = representatives(frame, tab["track_id"].to_numpy(np.int64), tab["area"].to_numpy(np.float64))
    by_track: dict[int, list[int]] = {}
    for row in np.argsort(frame, kind="stable"):
        if rep[row] > 0:
            by_track.setdefault(int(rep[row]), []).append(int(row))
    links = set()
    for track, rows in by_track.items():
        for k, row in enumerate(rows):
            if k > 0:
                prev = rows[k - 1]
            else:
                mother = movie.parent.get(track, 0)
                prev = by_track[mother][-1] if mother in by_track else -1
            if prev >= 0 and 1 <= frame[row] - frame[prev] <= max_gap:
                links.add((prev, row))
    return links


def track_links(movie: LabelledMovie, scorer: str, linker: str, max_distance: float, window: int = 4,
                max_gap: int = 2, min_score: float = 0.05) -> tuple[set[tuple[int, int]], float]:
    """Links (parent row, child row) made by a streaming Tracker (divisions on), and ms per frame."""
    from edgetrack.runtime.stream.tracker import Tracker

    tab = movie.table
    columns = ["y", "x", *CELL_FEATURE_COLUMNS]
    tracker = Tracker(scorer=scorer, linker=linker, max_children=2, max_distance=max_distance, window=window,
                      max_gap=max_gap, min_score=min_score)
    det_row: dict[int, int] = {}
    links = set()
    n_frames = movie.n_frames
    groups = {int(f): g for f, g in tab.groupby("frame")}
    start = time.perf_counter()
    updates = []
    for t in range(n_frames):
        g = groups.get(t, tab.iloc[:0])
        updates.extend(tracker.push(g[columns], frame=t))
    updates.extend(tracker.flush())
    elapsed = time.perf_counter() - start
    for u in updates:
        g = groups.get(u.frame, tab.iloc[:0])
        key = {(float(y), float(x)): int(r) for r, y, x in zip(g.index, g["y"], g["x"])}
        for k in range(len(u)):
            det_row[int(u.det_id[k])] = key[(float(u.values[k, 0]), float(u.values[k, 1]))]
    for u in updates:
        for k in range(len(u)):
            if u.parent_det_id[k] >= 0:
                links.add((det_row[int(u.parent_det_id[k])], det_row[int(u.det_id[k])]))
    return links, 1000.0 * elapsed / max(1, n_frames)


def _divisions(links: set[tuple[int, int]]) -> set[tuple[int, frozenset]]:
    children: dict[int, list[int]] = {}
    for p, c in links:
        children.setdefault(p, []).append(c)
    return {(p, frozenset(c)) for p, c in children.items() if len(c) == 2}


def _f1(pred: set, truth: set) -> dict:
    tp = len(pred & truth)
    p = tp / max(1, len(pred))
    r = tp / max(1, len(truth))
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(1e-12, p + r), "n_true": len(truth),
            "n_pred": len(pred)}


def link_scores(pred: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict:
    """Link precision / recall / F1 and division precision / recall / F1 (a division counts when the
    mother and both children are right)."""
    out = {f"link_{k}": v for k, v in _f1(pred, truth).items()}
    out.update({f"division_{k}": v for k, v in _f1(_divisions(pred), _divisions(truth)).items()})
    return out


def evaluate_tracking(movies: Sequence[LabelledMovie], scorers=("distance", "transformer"),
                      linkers=("greedy", "ilp"), max_distance_diameters: float = 1.5, window: int = 4,
                      max_gap: int = 2, min_score: float = 0.05) -> pd.DataFrame:
    """One row per (scorer, linker): link and division scores pooled over ``movies``, and ms per frame.

    max_distance: ``max_distance_diameters`` times each movie's median equivalent diameter (px).
    """
    rows = []
    for scorer in scorers:
        for linker in linkers:
            pred_all: set = set()
            truth_all: set = set()
            ms = []
            for k, movie in enumerate(movies):
                area = movie.table["area"].to_numpy(np.float64)
                d = float(np.median(np.sqrt(4 * area[area > 0] / math.pi)))
                pred, per_frame = track_links(movie, scorer, linker, max_distance_diameters * d, window, max_gap,
                                              min_score)
                truth = true_links(movie, max_gap)
                pred_all |= {(k, p, c) for p, c in pred}
                truth_all |= {(k, p, c) for p, c in truth}
                ms.append(per_frame)
            pred2 = {(k * 10**7 + p, k * 10**7 + c) for k, p, c in pred_all}
            truth2 = {(k * 10**7 + p, k * 10**7 + c) for k, p, c in truth_all}
            rows.append({"scorer": scorer, "linker": linker, **link_scores(pred2, truth2),
                         "ms_per_frame": float(np.mean(ms))})
    return pd.DataFrame(rows)


def time_model(n_objects: int = 100, n_frames: int = 4, repeats: int = 30, folder: str | None = None,
               threads: int | None = None, seed: int = 0) -> dict:
    """Median ms of one ONNX Runtime call on a window of ``n_frames`` x ``n_objects`` cell-like objects."""
    from edgetrack.runtime.associate.cell_transformer import TransformerScorer

    from .export import random_window

    rng = np.random.default_rng(seed)
    inputs = random_window(n_objects * n_frames, rng, n_frames=n_frames)
    scorer = TransformerScorer(folder=folder, threads=threads)
    scorer.run(inputs["coords"], inputs["features"])  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        scorer.run(inputs["coords"], inputs["features"])
        times.append(time.perf_counter() - t)
    return {"ms_median": 1000 * float(np.median(times)), "ms_p90": 1000 * float(np.percentile(times, 90)),
            "n_tokens": n_objects * n_frames, "provider": scorer.provider, "threads": threads}
