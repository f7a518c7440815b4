"""Fragments of one cell merged: two objects of a frame that together are the cell before and after.

A segmenter cuts a nucleus in two for a frame (a watershed seed too many); the tracker then sees a
false division into the two pieces, or a continuation into one piece and a one-frame object beside it.
:func:`merge_fragments` works on committed links (one row per object: ``frame``, ``det`` id,
``parent`` det id, -1 none, and ``values`` with columns ``y, x, label`` then
:data:`~edgetrack.runtime.cells.features.CELL_FEATURES`). Objects B and C of frame t are one cell when

- all the parents of B and C are one object M and all their children are one object D (so each of them
  has M or nothing before it and D or nothing after it: a false division M -> B, C, or a one-frame
  object C beside the continuation M -> B -> D),
- their areas add up to M's and to D's (within ``area_tolerance``, a ratio) while the larger piece
  alone is at most ``piece_fraction`` of the smaller of the two,
- the two pieces touch (centroids closer than the sum of their equivalent radii, x ``touch_factor``)
  and their joint centroid lies within half an equivalent radius of M's and of D's.

C is then merged into the larger piece B: B's row gets the features of the union (area-weighted
centroid, intensity and second moments with the parallel-axis term; perimeter the sum; eccentricity
from the joint moments; solidity the area-weighted mean), M -> B and B -> D become its links, and the
pair ``(frame, C's label, B's label)`` is listed so :func:`relabel_masks` paints C's pixels with B's
label. Every decision looks at frames t - max_gap .. t + max_gap only (the links of a frame's
neighbours), so a live tracker can take it ``max_gap`` frames after a frame is committed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgetrack.runtime.cells.features import CELL_FEATURES
from edgetrack.runtime.io.masks import Masks, open_masks
from edgetrack.runtime.io.movie import Movie

__all__ = ["MERGED_COLUMNS", "children_of", "merge_fragments", "relabel_masks", "union_values"]

#: Columns of the merged-labels table: the fragment ``label`` of ``frame`` is painted with ``into``.
MERGED_COLUMNS = ("frame", "label", "into")

_Y, _X, _LABEL = 0, 1, 2
_F = {name: 3 + j for j, name in enumerate(CELL_FEATURES)}


def children_of(det: np.ndarray, parent: np.ndarray) -> dict[int, list[int]]:
    """Row indices of each row's children: {row: [child rows]} (det ids unique, parent -1 = none)."""
    row_of = {int(d): i for i, d in enumerate(det.tolist())}
    out: dict[int, list[int]] = {}
    for i, p in enumerate(parent.tolist()):
        if p >= 0 and p in row_of:
            out.setdefault(row_of[p], []).append(i)
    return out


def union_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Features of the union of two objects from their rows (``y, x, label`` + CELL_FEATURES); label of ``a``."""
    wa, wb = a[_F["area"]], b[_F["area"]]
    w = wa + wb
    out = a.copy()
    cy = (wa * a[_Y] + wb * b[_Y]) / w
    cx = (wa * a[_X] + wb * b[_X]) / w
    out[_Y], out[_X] = cy, cx
    out[_F["area"]] = w
    out[_F["perimeter"]] = a[_F["perimeter"]] + b[_F["perimeter"]]
    out[_F["mean_intensity"]] = (wa * a[_F["mean_intensity"]] + wb * b[_F["mean_intensity"]]) / w
    out[_F["solidity"]] = (wa * a[_F["solidity"]] + wb * b[_F["solidity"]]) / w
    moments = []
    for name, (du, dv) in (("inertia_yy", (_Y, _Y)), ("inertia_xy", (_Y, _X)), ("inertia_xx", (_X, _X))):
        centre = (cy, cx)
        m = sum(wk * (r[_F[name]] + (r[du] - centre[du]) * (r[dv] - centre[dv])) for wk, r in ((wa, a), (wb, b))) / w
        out[_F[name]] = m
        moments.append(m)
    yy, xy, xx = moments
    half_trace, root = (yy + xx) / 2.0, np.sqrt(((yy - xx) / 2.0) ** 2 + xy ** 2)
    l1, l2 = half_trace + root, half_trace - root
    out[_F["eccentricity"]] = float(np.sqrt(max(0.0, 1.0 - l2 / l1))) if l1 > 0 else 0.0
    return out


def merge_fragments(frame: np.ndarray, det: np.ndarray, parent: np.ndarray, values: np.ndarray, *,
                    area_tolerance: float = 1.35, piece_fraction: float = 0.8,
                    touch_factor: float = 1.25) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Merge the fragments of one cell (see the module docstring).

    frame, det, parent: int64 (n,); values: float64 (n, 3 + len(CELL_FEATURES)).
    Returns (keep bool (n,): False for the rows merged away, parent int64 (n,) updated, values (n, k)
    updated, the merged-labels table with columns :data:`MERGED_COLUMNS`).
    """
    parent = np.asarray(parent, np.int64).copy()
    values = np.asarray(values, np.float64).copy()
    keep = np.ones(len(det), bool)
    row_of = {int(d): i for i, d in enumerate(det.tolist())}
    kids = children_of(det, parent)
    area = values[:, _F["area"]]
    merged = []
    by_frame = pd.Series(np.arange(len(frame))).groupby(np.asarray(frame)).indices

    def parent_row(i: int) -> int:
        return row_of.get(int(parent[i]), -1)

    for t in sorted(by_frame):
        rows = by_frame[t]
        if len(rows) < 2:
            continue
        y, x = values[rows, _Y], values[rows, _X]
        radius = np.sqrt(area[rows] / np.pi)
        dist = np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])
        close = dist < touch_factor * (radius[:, None] + radius[None, :])
        np.fill_diagonal(close, False)
        # candidate pairs, smallest joint distance first
        pairs = sorted((dist[a, b], int(rows[a]), int(rows[b])) for a, b in zip(*np.nonzero(np.triu(close))))
        for _, i, j in pairs:
            if not (keep[i] and keep[j]):
                continue
            b_row, c_row = (i, j) if area[i] >= area[j] else (j, i)
            ps = {parent_row(r) for r in (b_row, c_row)} - {-1}
            cs = set(kids.get(b_row, [])) | set(kids.get(c_row, []))
            if len(ps) != 1 or len(cs) != 1:
                continue
            m, d = ps.pop(), cs.pop()
            joint = area[b_row] + area[c_row]
            if not all(1.0 / area_tolerance <= joint / area[r] <= area_tolerance for r in (m, d)):
                continue
            if area[b_row] > piece_fraction * min(area[m], area[d]):
                continue
            jy = (area[b_row] * values[b_row, _Y] + area[c_row] * values[c_row, _Y]) / joint
            jx = (area[b_row] * values[b_row, _X] + area[c_row] * values[c_row, _X]) / joint
            if any(np.hypot(jy - values[r, _Y], jx - values[r, _X]) > 0.5 * np.sqrt(area[r] / np.pi) for r in (m, d)):
                continue
            values[b_row] = union_values(values[b_row], values[c_row])
            keep[c_row] = False
            parent[b_row] = det[m]
            parent[c_row] = -1
            parent[d] = det[b_row]
            kids[m] = [r for r in kids.get(m, []) if r not in (b_row, c_row)] + [b_row]
            kids[b_row] = [d]
            kids.pop(c_row, None)
            gone, into = int(values[c_row, _LABEL]), int(values[b_row, _LABEL])
            merged = [(f, lab, into if (f == t and to == gone) else to) for f, lab, to in merged]
            merged.append((int(t), gone, into))
    table = pd.DataFrame(np.array(merged, np.int64).reshape(-1, 3), columns=list(MERGED_COLUMNS))
    return keep, parent, values, table


def relabel_masks(masks, merged: pd.DataFrame) -> Masks:
    """``masks`` (anything :func:`~edgetrack.runtime.io.masks.open_masks` takes) with each merged fragment
    painted with the label it was merged into (``merged``: columns :data:`MERGED_COLUMNS`), read lazily."""
    masks = open_masks(masks)
    if len(merged) == 0:
        return masks
    todo = {int(t): (g["label"].to_numpy(np.int64), g["into"].to_numpy(np.int64))
            for t, g in merged.groupby("frame")}

    def read(t: int) -> np.ndarray:
        frame = np.asarray(masks[t])
        if t not in todo:
            return frame
        labels, into = todo[t]
        order = np.argsort(labels)
        frame = frame.copy()
        hit = np.isin(frame, labels)
        frame[hit] = into[order][np.searchsorted(labels[order], frame[hit])]
        return frame

    return Masks(Movie(f"{masks.source} (fragments merged)", len(masks), masks.frame_shape, read), masks.frame_numbers)
