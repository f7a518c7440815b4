"""Contour (boundary) maps: the pieces of a foreground mask that boundaries of a given strength separate.

A contour map is high on the boundaries between cells and low inside them: the boundary probability of a
U-Net, the contour output of cellpose or StarDist pipelines, or the share of several segmentations that put
a boundary at a pixel (:func:`contours_from_labels`). ``cells.hypotheses.SegmentChooser`` cuts the user's
objects with it (not the foreground map's levels), so that cells merged by the segmenter can come apart
where a boundary runs between them.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from edgetrack.runtime.errors import InputError

__all__ = ["DEFAULT_CONTOUR_LEVEL", "contour_scale", "cut_by_contours", "contours_from_labels"]

DEFAULT_CONTOUR_LEVEL: float = 0.5
"""The boundary strength (of the map scaled to [0, 1]) above which a boundary separates two objects."""


def contour_scale(contours: np.ndarray) -> np.ndarray:
    """``contours`` (H, W) finite numbers as float32 in [0, 1]: a map already in [0, 1] (a probability) as it
    is, any other map scaled linearly from its 1st to its 99.5th percentile (from every 4th pixel of every 4th
    row) and clipped."""
    c = np.asarray(contours, np.float32)
    lo, hi = float(c.min()), float(c.max())
    if lo >= 0.0 and hi <= 1.0:
        return c
    sample = c[::4, ::4]
    p_lo, p_hi = (float(v) for v in np.percentile(sample, [1.0, 99.5]))
    if not p_hi > p_lo:
        p_lo, p_hi = lo, hi
    if not p_hi > p_lo:
        return np.zeros_like(c)
    return np.clip((c - p_lo) / (p_hi - p_lo), 0.0, 1.0).astype(np.float32, copy=False)


def cut_by_contours(regions: np.ndarray, contours: np.ndarray, level: float) -> np.ndarray:
    """The pieces of ``regions`` that boundaries stronger than ``level`` separate: int32 (H, W), labels 1..n,
    0 outside the regions.

    regions: bool (H, W), a foreground mask, or integer (H, W), a label image whose objects are cut each on
    its own (a piece never crosses from one object into another). contours: (H, W) in [0, 1] (see
    :func:`contour_scale`). The seeds are the connected parts of each region where the map is at most
    ``level``; every other region pixel joins the seed it reaches over the lowest boundary without leaving
    its region (a watershed of the map quantised to 256 levels, by a bucket queue). A connected part of a
    region with no seed (boundary everywhere) is one piece."""
    regions = np.asarray(regions)
    if regions.ndim != 2:
        raise InputError(f"regions must be a 2-D mask or label image, got shape {regions.shape}")
    region = regions.astype(np.int32) if regions.dtype == bool else regions.astype(np.int32, copy=False)
    c = np.clip(np.asarray(contours, np.float32), 0.0, 1.0)
    if c.shape != region.shape:
        raise InputError(f"contours of shape {c.shape} do not match the regions' {region.shape}")
    height = np.round(c * 255.0).astype(np.uint8)
    return _cut(np.ascontiguousarray(c), height, np.ascontiguousarray(region), np.float32(level))


@numba.njit(cache=True, nogil=True, inline="always")
def _neighbour(p: int, k: int, h: int, w: int) -> int:
    """The k-th (0..3: up, down, left, right) 4-neighbour of flat pixel ``p`` in an (h, w) image, -1 outside."""
    y, x = p // w, p % w
    if k == 0:
        return p - w if y > 0 else -1
    if k == 1:
        return p + w if y < h - 1 else -1
    if k == 2:
        return p - 1 if x > 0 else -1
    return p + 1 if x < w - 1 else -1


@numba.njit(cache=True, nogil=True)
def _cut(c: np.ndarray, height: np.ndarray, region: np.ndarray, level: np.float32) -> np.ndarray:
    """:func:`cut_by_contours` in one pass: seeds (connected, one region each, numbered in the order found),
    the flood from them, then one piece per unreached connected part of a region."""
    h, w = c.shape
    n = h * w
    out = np.zeros((h, w), np.int32)
    stack = np.empty(n, np.int64)
    label = 0
    for phase in range(2):  # 0: the seeds; 1: the parts no seed reached
        for p in range(n):
            reg = region.flat[p]
            if reg <= 0 or out.flat[p] != 0 or (phase == 0 and c.flat[p] > level):
                continue
            label += 1
            out.flat[p] = label
            top = 0
            stack[0] = p
            while top >= 0:
                q = stack[top]
                top -= 1
                for k in range(4):
                    r = _neighbour(q, k, h, w)
                    if r < 0 or out.flat[r] != 0 or region.flat[r] != reg or (phase == 0 and c.flat[r] > level):
                        continue
                    out.flat[r] = label
                    top += 1
                    stack[top] = r
        if phase == 0:
            _flood(height, region, out)
    return out


@numba.njit(cache=True, nogil=True)
def _flood(height: np.ndarray, region: np.ndarray, seeds: np.ndarray) -> None:
    """Grows ``seeds`` (int32 (H, W), 0 = unlabelled) in place over the pixels of their own ``region``
    value, lowest ``height`` (uint8 (H, W)) first: each pixel takes the label of the seed whose path to it
    has the lowest highest point (the image foresting transform with the max cost)."""
    h, w = height.shape
    n = h * w
    nxt = np.full(n, -1, np.int64)
    head = np.full(256, -1, np.int64)
    tail = np.full(256, -1, np.int64)
    for p in range(n):
        if seeds.flat[p] > 0:
            if tail[0] < 0:
                head[0] = p
            else:
                nxt[tail[0]] = p
            tail[0] = p
    b = 0
    while b < 256:
        p = head[b]
        if p < 0:
            b += 1
            continue
        head[b] = nxt[p]
        if head[b] < 0:
            tail[b] = -1
        lab, reg = seeds.flat[p], region.flat[p]
        for k in range(4):
            q = _neighbour(p, k, h, w)
            if q < 0 or seeds.flat[q] != 0 or region.flat[q] != reg:
                continue
            seeds.flat[q] = lab
            cost = max(b, np.int64(height.flat[q]))
            nxt[q] = -1
            if tail[cost] < 0:
                head[cost] = q
            else:
                nxt[tail[cost]] = q
            tail[cost] = q


def contours_from_labels(segmentations: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A foreground map and a contour map from several segmentations of one frame (each a label image of
    the same (H, W) shape: different segmenters, or one segmenter with different settings).

    Returns ``(foreground, contours)``, float32 (H, W) in [0, 1]: the share of the segmentations that put an
    object at each pixel, and the share that put a boundary there (a labelled pixel with a 4-neighbour of
    another label, background included). Where the segmentations agree the boundaries are sharp; where they
    disagree the map holds every candidate boundary, weighted by how many segmentations drew it."""
    if not len(segmentations):
        raise InputError("contours_from_labels needs at least one label image")
    first = np.asarray(segmentations[0])
    fg = np.zeros(first.shape, np.float32)
    edge = np.zeros(first.shape, np.float32)
    for lab in segmentations:
        lab = np.asarray(lab)
        if lab.shape != first.shape or lab.ndim != 2:
            raise InputError(f"the label images must be 2-D and of one shape, got {first.shape} and {lab.shape}")
        if lab.dtype.kind not in "iu":
            raise InputError(f"label images must hold integers, got {lab.dtype}")
        boundary = np.zeros(lab.shape, bool)
        boundary[1:, :] |= lab[1:, :] != lab[:-1, :]
        boundary[:-1, :] |= lab[:-1, :] != lab[1:, :]
        boundary[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        boundary[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        inside = lab > 0
        fg += inside
        edge += boundary & inside
    n = float(len(segmentations))
    return fg / n, edge / n
