"""Accuracy metrics for detection and linking against a ground truth.

Points are matched one-to-one within each frame: among all pairs closer than ``max_distance``
(px) the matching has the largest possible number of pairs and, among those, the smallest total
distance (a minimum-cost assignment solved per connected group of candidate pairs, so it stays
fast for thousands of points per frame). Link metrics count a predicted link
(two consecutive points of one predicted track) as a true positive when both of its points are
matched to truth points that are consecutive points of one truth track.

Divisions: where a track table has a ``parent_track_id`` column (the mother's track id on any
point of a daughter track, -1 or absent elsewhere), the link from the mother's last point to each
daughter's first point counts as a link too, and a mother with two or more daughters is a
division. A predicted division is correct when its mother's last point and its daughters' first
points are matched to a truth mother's last point and exactly that mother's daughters' first points.

3-D: where both tables have a ``z`` column, points are matched on (y, x, z); give z in the units of y
and x (multiply voxel z by the z voxel size over the pixel size first when the voxels are anisotropic).

Undefined ratios (for example precision with no predictions) are returned as NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from edgetrack.runtime.errors import InputError

__all__ = ["match_points", "localization_metrics", "link_metrics", "division_metrics"]

def _space(a: pd.DataFrame, b: pd.DataFrame) -> tuple[str, ...]:
    """The coordinates to match on: ``y, x``, and ``z`` too when both tables have it (3-D)."""
    both = isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and "z" in a.columns and "z" in b.columns
    return ("y", "x", "z") if both else ("y", "x")


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of matching rows of two (n, 2) or (n, 3) coordinate arrays."""
    if a.shape[1] == 2:
        return np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def _table(df: pd.DataFrame, name: str, track: bool = False,
           space: tuple[str, ...] = ("y", "x")) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a point table; return frame (int64, n), coordinates (float64, (n, len(space))) and
    track_id (int64, n) or None."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    needed = ["frame", *space] + (["track_id"] if track else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputError(f"{name} is missing column(s) {', '.join(missing)} (needs {', '.join(needed)})")
    arrays = {}
    for col in needed:
        values = df[col].to_numpy()
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            try:
                values = values.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError(f"{name} column {col!r} must be numeric, got dtype {df[col].dtype}") from None
        values = values.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise InputError(f"{name} column {col!r} contains NaN or infinite values")
        arrays[col] = values
    for col in ("frame",) + (("track_id",) if track else ()):
        if np.any(arrays[col] != np.round(arrays[col])):
            raise InputError(f"{name} column {col!r} must hold integers")
    frame = arrays["frame"].astype(np.int64)
    yx = np.ascontiguousarray(np.column_stack([arrays[c] for c in space]))
    track_id = arrays["track_id"].astype(np.int64) if track else None
    return frame, yx, track_id


def _local_numbers(nodes: np.ndarray, side_labels: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the distinct ``nodes`` (indices into one side) 0.. within their connected group.

    ``side_labels[i]`` is the group of node ``i`` of this side. Returns ``sorted_nodes`` (the
    distinct nodes ordered by (group, node)), ``start`` (int64, ``n_groups + 1``) such that group
    ``g`` holds ``sorted_nodes[start[g]:start[g + 1]]``, and ``local`` (int64, one per node of the
    side; -1 for nodes not listed) with each node's position inside its group.
    """
    distinct = np.unique(nodes)
    groups = side_labels[distinct]
    order = np.lexsort((distinct, groups))
    sorted_nodes = distinct[order]
    start = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(groups, minlength=n_groups), out=start[1:])
    local = np.full(len(side_labels), -1, dtype=np.int64)
    local[sorted_nodes] = np.arange(len(sorted_nodes)) - start[groups[order]]
    return sorted_nodes, start, local


def _candidate_pairs(
    t_frame: np.ndarray, t_yx: np.ndarray, p_frame: np.ndarray, p_yx: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """All (truth row, pred row) pairs in the same frame within ``max_distance`` px (k-d tree per frame)."""
    t_order = np.argsort(t_frame, kind="stable")
    p_order = np.argsort(p_frame, kind="stable")
    t_sorted, p_sorted = t_frame[t_order], p_frame[p_order]
    frames = np.intersect1d(t_sorted, p_sorted)
    t_lo, t_hi = np.searchsorted(t_sorted, frames), np.searchsorted(t_sorted, frames, side="right")
    p_lo, p_hi = np.searchsorted(p_sorted, frames), np.searchsorted(p_sorted, frames, side="right")
    out_t, out_p = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for a, b, c, d in zip(t_lo, t_hi, p_lo, p_hi):
        rows, cols = t_order[a:b], p_order[c:d]
        tree_t = cKDTree(t_yx[rows], balanced_tree=False)
        tree_p = cKDTree(p_yx[cols], balanced_tree=False)
        pairs = tree_t.sparse_distance_matrix(tree_p, max_distance, output_type="ndarray")
        out_t.append(rows[pairs["i"]])
        out_p.append(cols[pairs["j"]])
    return np.concatenate(out_t).astype(np.int64), np.concatenate(out_p).astype(np.int64)


def _match(t_frame: np.ndarray, t_yx: np.ndarray, p_frame: np.ndarray, p_yx: np.ndarray, max_distance: float) -> pd.DataFrame:
    """Core matcher on validated arrays; returns the match table sorted by (frame, truth_index)."""
    n_t, n_p = len(t_frame), len(p_frame)
    empty = pd.DataFrame(
        {
            "frame": np.empty(0, np.int64),
            "truth_index": np.empty(0, np.int64),
            "pred_index": np.empty(0, np.int64),
            "distance": np.empty(0, np.float64),
        }
    )
    if n_t == 0 or n_p == 0:
        return empty
    ti, pj = _candidate_pairs(t_frame, t_yx, p_frame, p_yx, max_distance)
    if len(ti) == 0:
        return empty
    dist = _distance(t_yx[ti], p_yx[pj])

    # Split the bipartite candidate graph into connected groups; solve each one on its own.
    graph = coo_matrix((np.ones(len(ti)), (ti, n_t + pj)), shape=(n_t + n_p, n_t + n_p))
    _, labels = connected_components(graph, directed=False)
    comp = labels[ti]
    edges_per_comp = np.bincount(comp)
    single = edges_per_comp[comp] == 1
    out_t = [ti[single]]
    out_p = [pj[single]]
    multi = np.flatnonzero(~single)
    if multi.size:
        e_order = multi[np.argsort(comp[multi], kind="stable")]
        groups = np.flatnonzero(np.r_[True, comp[e_order][1:] != comp[e_order][:-1]])
        bounds = np.r_[groups, len(e_order)]
        # Local row/column numbers of every node inside its group (vectorised, no per-group unique).
        n_groups = int(labels.max()) + 1
        t_nodes, t_start, t_local = _local_numbers(ti[multi], labels[:n_t], n_groups)
        p_nodes, p_start, p_local = _local_numbers(pj[multi], labels[n_t:], n_groups)
        for k in range(len(groups)):
            e = e_order[bounds[k] : bounds[k + 1]]
            c = comp[e[0]]
            r_off, c_off = t_start[c], p_start[c]
            n_rows = t_start[c + 1] - r_off
            n_cols = p_start[c + 1] - c_off
            # Non-pairs cost more than any set of real pairs: maximum cardinality first, then distance.
            big = (len(e) + 1) * (max_distance + 1.0)
            cost = np.full((n_rows, n_cols), big)
            cost[t_local[ti[e]], p_local[pj[e]]] = dist[e]
            r, cc = linear_sum_assignment(cost)
            real = cost[r, cc] < big
            out_t.append(t_nodes[r_off + r[real]])
            out_p.append(p_nodes[c_off + cc[real]])
    mt = np.concatenate(out_t)
    mp = np.concatenate(out_p)
    order = np.lexsort((mt, t_frame[mt]))
    mt, mp = mt[order], mp[order]
    return pd.DataFrame(
        {
            "frame": t_frame[mt],
            "truth_index": mt,
            "pred_index": mp,
            "distance": _distance(t_yx[mt], p_yx[mp]),
        }
    )


def _check_distance(max_distance: float) -> float:
    try:
        value = float(max_distance)
    except (TypeError, ValueError):
        raise InputError(f"max_distance must be a number of px, got {max_distance!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"max_distance must be a finite number > 0 px, got {max_distance!r}")
    return value


def match_points(truth: pd.DataFrame, pred: pd.DataFrame, max_distance: float = 2.0) -> pd.DataFrame:
    """Match truth and predicted points one-to-one within each frame.

    ``truth`` and ``pred`` need columns ``frame``, ``y``, ``x`` (px). Pairs farther apart than
    ``max_distance`` px are never matched; the matching has the most pairs possible and, among
    those, the smallest summed distance.

    Returns a DataFrame with columns ``frame`` (int64), ``truth_index`` and ``pred_index`` (int64
    row positions 0..len-1 in the inputs, not index labels) and ``distance`` (float64, px),
    sorted by (frame, truth_index).
    """
    max_distance = _check_distance(max_distance)
    space = _space(truth, pred)
    t_frame, t_yx, _ = _table(truth, "truth", space=space)
    p_frame, p_yx, _ = _table(pred, "pred", space=space)
    return _match(t_frame, t_yx, p_frame, p_yx, max_distance)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _f1(precision: float, recall: float) -> float:
    if math.isnan(precision) or math.isnan(recall):
        return float("nan")
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _rmse(distance: np.ndarray) -> float:
    return float(np.sqrt(np.mean(distance**2))) if len(distance) else float("nan")


def localization_metrics(truth: pd.DataFrame, detections: pd.DataFrame, max_distance: float = 2.0) -> dict:
    """Detection accuracy of ``detections`` against ``truth`` (columns ``frame``, ``y``, ``x``).

    Returns a dict: ``recall`` (matched / truth points), ``precision`` (matched / detections),
    ``f1``, ``rmse`` (root mean square distance of matched pairs, px), ``n_truth``, ``n_pred``,
    ``n_matched``.
    """
    matches = match_points(truth, detections, max_distance)
    n_truth, n_pred, n_matched = len(truth), len(detections), len(matches)
    recall = _ratio(n_matched, n_truth)
    precision = _ratio(n_matched, n_pred)
    return {
        "recall": recall,
        "precision": precision,
        "f1": _f1(precision, recall),
        "rmse": _rmse(matches["distance"].to_numpy()),
        "n_truth": int(n_truth),
        "n_pred": int(n_pred),
        "n_matched": int(n_matched),
    }


def _links(frame: np.ndarray, track_id: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Links (source row, target row) joining consecutive points of each track, ordered by frame."""
    order = np.lexsort((frame, track_id))
    same = track_id[order][1:] == track_id[order][:-1]
    dup = same & (frame[order][1:] == frame[order][:-1])
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"{name}: track_id {int(track_id[order][k])} has more than one point in frame {int(frame[order][k])}"
        )
    return order[:-1][same], order[1:][same]


class _Lineage(NamedTuple):
    """Division links of one track table: rows of the mother's last point (src) and of the daughter's first (dst)."""

    src: np.ndarray
    dst: np.ndarray


def _parents(df: pd.DataFrame, name: str, frame: np.ndarray, track_id: np.ndarray) -> _Lineage | None:
    """The division structure of a track table with a ``parent_track_id`` column (None without one)."""
    if "parent_track_id" not in df.columns:
        return None
    values = df["parent_track_id"].to_numpy()
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise InputError(f"{name} column 'parent_track_id' must be numeric, got dtype {df['parent_track_id'].dtype}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all() or np.any(values != np.round(values)):
        raise InputError(f"{name} column 'parent_track_id' must hold integers (-1 for none), without NaN")
    parent_of_point = values.astype(np.int64)
    tracks, idx = np.unique(track_id, return_inverse=True)
    parent = np.full(len(tracks), -1, dtype=np.int64)
    np.maximum.at(parent, idx, parent_of_point)
    has = parent_of_point >= 0
    if np.any(parent_of_point[has] != parent[idx[has]]):
        k = int(np.flatnonzero(has & (parent_of_point != parent[idx]))[0])
        raise InputError(f"{name}: track_id {int(track_id[k])} has more than one parent_track_id")
    # first and last point (row) of every track
    order = np.lexsort((frame, idx))
    starts = np.searchsorted(idx[order], np.arange(len(tracks)))
    ends = np.r_[starts[1:], len(order)] - 1
    first, last = order[starts], order[ends]
    mother = np.searchsorted(tracks, parent)
    present = (parent >= 0) & (mother < len(tracks))
    present[present] = tracks[mother[present]] == parent[present]
    daughters = np.flatnonzero(present)
    return _Lineage(src=last[mother[daughters]], dst=first[daughters])


def _divisions(lineage: _Lineage | None) -> dict[int, frozenset[int]]:
    """Mother's last point row -> the rows of its daughters' first points (mothers with two or more daughters)."""
    out: dict[int, set[int]] = {}
    if lineage is not None:
        for s, d in zip(lineage.src.tolist(), lineage.dst.tolist()):
            out.setdefault(s, set()).add(d)
    return {s: frozenset(ds) for s, ds in out.items() if len(ds) >= 2}


def _division_scores(t_lin: _Lineage | None, p_lin: _Lineage | None, truth_of_pred: np.ndarray) -> dict:
    truth_div = _divisions(t_lin)
    pred_div = _divisions(p_lin)
    tp = 0
    for mother, daughters in pred_div.items():
        t_mother = int(truth_of_pred[mother])
        if t_mother < 0 or t_mother not in truth_div:
            continue
        mapped = frozenset(int(truth_of_pred[d]) for d in daughters)
        if mapped == truth_div[t_mother]:
            tp += 1
    precision = _ratio(tp, len(pred_div))
    recall = _ratio(tp, len(truth_div))
    return {
        "division_precision": precision,
        "division_recall": recall,
        "division_f1": _f1(precision, recall),
        "division_tp": tp,
        "n_truth_divisions": len(truth_div),
        "n_pred_divisions": len(pred_div),
    }


def division_metrics(truth_tracks: pd.DataFrame, pred_tracks: pd.DataFrame, max_distance: float = 2.0) -> dict:
    """Division accuracy of ``pred_tracks`` against ``truth_tracks`` (``frame, y, x, track_id`` and
    ``parent_track_id``; a table without that column has no divisions).

    Returns ``division_precision``, ``division_recall``, ``division_f1``, ``division_tp``,
    ``n_truth_divisions``, ``n_pred_divisions`` (see the module docstring for what is correct).
    """
    m = link_metrics(truth_tracks, pred_tracks, max_distance)
    keys = ("division_precision", "division_recall", "division_f1", "division_tp", "n_truth_divisions", "n_pred_divisions")
    if "division_f1" not in m:
        return {k: (float("nan") if k in keys[:3] else 0) for k in keys}
    return {k: m[k] for k in keys}


def link_metrics(truth_tracks: pd.DataFrame, pred_tracks: pd.DataFrame, max_distance: float = 2.0) -> dict:
    """Linking accuracy of ``pred_tracks`` against ``truth_tracks`` (columns ``frame, y, x, track_id``).

    A link joins consecutive points of one track ordered by frame (gaps allowed). A predicted
    link is a true positive when both of its points are matched (see :func:`match_points`) to
    truth points joined by a truth link. Returns a dict with ``precision`` (tp / predicted
    links), ``recall`` (tp / truth links), ``f1``, ``jaccard`` (tp / (tp + fp + fn)), ``tp``,
    ``n_truth_links``, ``n_pred_links``, ``perfect_tracks`` (fraction of truth tracks whose every
    point is matched, all to one predicted track that contains nothing else), ``rmse`` (px, of
    matched points), ``detection_recall``, ``detection_precision``, ``n_truth_tracks``,
    ``n_pred_tracks``. Where either table has ``parent_track_id``, division links count as links
    and the division scores of :func:`division_metrics` are added.
    """
    max_distance = _check_distance(max_distance)
    space = _space(truth_tracks, pred_tracks)
    t_frame, t_yx, t_id = _table(truth_tracks, "truth_tracks", track=True, space=space)
    p_frame, p_yx, p_id = _table(pred_tracks, "pred_tracks", track=True, space=space)
    t_src, t_dst = _links(t_frame, t_id, "truth_tracks")
    p_src, p_dst = _links(p_frame, p_id, "pred_tracks")
    t_lin = _parents(truth_tracks, "truth_tracks", t_frame, t_id)
    p_lin = _parents(pred_tracks, "pred_tracks", p_frame, p_id)
    if t_lin is not None:
        t_src, t_dst = np.r_[t_src, t_lin.src], np.r_[t_dst, t_lin.dst]
    if p_lin is not None:
        p_src, p_dst = np.r_[p_src, p_lin.src], np.r_[p_dst, p_lin.dst]
    matches = _match(t_frame, t_yx, p_frame, p_yx, max_distance)
    mt = matches["truth_index"].to_numpy()
    mp = matches["pred_index"].to_numpy()
    n_t, n_p = len(t_frame), len(p_frame)

    truth_of_pred = np.full(n_p, -1, dtype=np.int64)
    truth_of_pred[mp] = mt
    a, b = truth_of_pred[p_src], truth_of_pred[p_dst]
    both = (a >= 0) & (b >= 0)
    truth_keys = t_src * n_t + t_dst
    tp = int(np.isin(a[both] * n_t + b[both], truth_keys).sum())
    n_truth_links, n_pred_links = len(t_src), len(p_src)
    precision = _ratio(tp, n_pred_links)
    recall = _ratio(tp, n_truth_links)

    # Perfect tracks: every point matched, all to one predicted track of the same length.
    t_tracks, t_track_idx = np.unique(t_id, return_inverse=True)
    p_tracks, p_track_idx, p_sizes = np.unique(p_id, return_inverse=True, return_counts=True)
    pred_track_of_truth = np.full(n_t, -1, dtype=np.int64)
    pred_track_of_truth[mt] = p_track_idx[mp]
    n_tt = len(t_tracks)
    t_sizes = np.bincount(t_track_idx, minlength=n_tt)
    lo = np.full(n_tt, np.iinfo(np.int64).max)
    hi = np.full(n_tt, -1)
    np.minimum.at(lo, t_track_idx, pred_track_of_truth)
    np.maximum.at(hi, t_track_idx, pred_track_of_truth)
    perfect = (lo >= 0) & (lo == hi)
    perfect[perfect] &= p_sizes[lo[perfect]] == t_sizes[perfect]

    out = {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "jaccard": _ratio(tp, n_truth_links + n_pred_links - tp),
        "tp": tp,
        "n_truth_links": int(n_truth_links),
        "n_pred_links": int(n_pred_links),
        "perfect_tracks": _ratio(int(perfect.sum()), n_tt),
        "rmse": _rmse(matches["distance"].to_numpy()),
        "detection_recall": _ratio(len(mt), n_t),
        "detection_precision": _ratio(len(mt), n_p),
        "n_truth_tracks": int(n_tt),
        "n_pred_tracks": int(len(p_tracks)),
    }
    if t_lin is not None or p_lin is not None:
        out.update(_division_scores(t_lin, p_lin, truth_of_pred))
    return out
