"""Choosing among segmentation hypotheses with the frame before: the user's labels, or coarser objects of a
foreground map, whichever fits the cells being tracked.

A segmenter's labels are one cut through a hierarchy of possible objects. Where a foreground map is given
as well (a probability from a U-Net, cellpose or StarDist, or a smoothed intensity image), thresholding it
at lower levels gives the coarser objects the labels are pieces of: a cell cut into two fragments is one
object at a lower level, and a dim cell the labels missed appears there. Each frame the hierarchy is

- level 0: the user's labels;
- level k = 1..K: the connected components of ``foreground > floor + levels[k-1] * (base - floor)``
  (``levels`` decreasing),
  each object of level k - 1 nested in the component of level k holding most of its pixels.

Where a contour (boundary) map is given too (cells/contours.py), a level -1 comes first: the user's
objects cut by the map's boundaries stronger than ``contour_level``, so that two cells the segmenter
merged can be chosen apart (these pieces are not floored as the user's objects are, and the reference
area never falls below the median of the user's labels, so a map that cuts everywhere cannot shrink the
cells frame after frame).

and a set of non-overlapping objects is chosen from it, exactly, by dynamic programming over the tree: an
object is kept whole or replaced by the best choice among its children. An object's value is

    1 + iou_weight * IoU(object, chosen objects of the frame before) - area_weight * |ln(area / reference)|

(objects under ``min_area`` px cannot be chosen; a coarser object worth less than nothing is left out, while
the user's objects are worth at least a little, so they are replaced but never dropped), with
``reference`` the median area of the objects chosen in the frame before (in the first frame, of the user's
labels). So the fragments of one cell that was whole in the frame before are chosen as that whole cell, a
merged blob of two cells stays split as the labels had it, and a dim cell found only at a lower level is
added. This is a greedy-in-time version of the joint segmentation and linking of ultrack (Bragantini et al.
2024): each frame is decided given the frame before, so it streams.

``base``: 0.5 for a map whose values lie in [0, 1] (a probability), else the Li threshold of the frame's map;
``floor``: 0 for a probability, else the median of the map's values under ``base`` (its background).
Only the pixels inside the coarsest level or the labels are visited after thresholding.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from edgetrack.runtime.cells.contours import DEFAULT_CONTOUR_LEVEL, contour_scale, cut_by_contours
from edgetrack.runtime.detect.filters import gaussian_smooth
from edgetrack.runtime.errors import ConfigError, InputError

__all__ = ["DEFAULT_LEVELS", "SegmentChooser", "hierarchy_levels", "li_threshold"]

DEFAULT_LEVELS: tuple[float, ...] = (0.8, 0.6)
"""Foreground thresholds below the base, as fractions of it (decreasing)."""


def hierarchy_levels(foreground: np.ndarray, levels: Sequence[float]) -> list[np.ndarray]:
    """The components of ``foreground`` (float (H, W)) above ``floor + level * (base - floor)`` for each level:
    int32 label images.

    A map whose values lie in [0, 1] is a probability: ``base`` 0.5, ``floor`` 0. Any other map is an intensity:
    ``base`` its Li threshold and ``floor`` the median of the values under it (the background, so that a camera
    offset does not put the lower levels under the background), both from every 4th pixel of every 4th row."""
    fg = np.asarray(foreground)
    base, floor = _base_and_floor(fg)
    out = []
    for level in levels:
        lab, _ = ndi.label(fg > floor + float(level) * (base - floor))
        out.append(lab.astype(np.int32, copy=False))
    return out


def _base_and_floor(fg: np.ndarray) -> tuple[float, float]:
    """(base, floor) of a foreground map, see :func:`hierarchy_levels`."""
    lo, hi = float(fg.min()), float(fg.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.5, 0.0
    if hi > lo:
        # global statistics: every 4th pixel of every 4th row gives them within a fraction of a count
        sample = np.asarray(fg[::4, ::4], np.float64)
        base = li_threshold(sample)
        below = sample[sample <= base]
        return base, float(np.median(below)) if below.size else lo
    return hi, hi


def li_threshold(values: np.ndarray, tolerance: float | None = None) -> float:
    """Li's minimum cross-entropy threshold of ``values`` (any shape, finite, not all equal), by its fixed-point
    iteration ``t = (m_b - m_f) / (ln m_b - ln m_f)`` (m_b, m_f the means below and above t, the values shifted
    to be positive), started at the mean; in the values' own units."""
    v = np.asarray(values, np.float64).ravel()
    lo = float(v.min())
    v = v - lo + 1.0  # the logarithms need positive values
    tol = float(tolerance) if tolerance is not None else 0.5 * float(np.min(np.diff(np.unique(v[:4096])), initial=1.0))
    t = float(v.mean())
    for _ in range(1000):
        fore, back = v[v > t], v[v <= t]
        if not fore.size or not back.size:
            break
        mf, mb = float(fore.mean()), float(back.mean())
        new = (mb - mf) / (math.log(mb) - math.log(mf))
        if abs(new - t) < tol:
            t = new
            break
        t = new
    return t + lo - 1.0


def _parents(child: np.ndarray, parent: np.ndarray, n_child: int) -> np.ndarray:
    """For each object 1..n_child of ``child``: the object of ``parent`` holding most of its pixels (0 = none)."""
    sel = (child > 0) & (parent > 0)
    out = np.zeros(n_child + 1, np.int64)
    if not sel.any():
        return out
    m = int(parent.max()) + 1
    pairs, counts = _pair_counts(child[sel], parent[sel], n_child + 1, m)
    cc, pp = pairs // m, pairs % m
    order = np.lexsort((-counts, cc))  # by child, most pixels first
    first = np.ones(len(order), bool)
    first[1:] = cc[order][1:] != cc[order][:-1]
    out[cc[order][first]] = pp[order][first]
    return out


def _pair_counts(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs ``a * nb + b`` of two label arrays (one per pixel) and their pixel counts."""
    key = a.astype(np.int64) * nb + b.astype(np.int64)
    if na * nb <= 1 << 24:  # a histogram is far faster than sorting a million pixels
        counts = np.bincount(key, minlength=na * nb)
        pairs = np.flatnonzero(counts)
        return pairs, counts[pairs]
    return np.unique(key, return_counts=True)


def _iou_with(labels: np.ndarray, area: np.ndarray, previous: np.ndarray | None,
              previous_area: np.ndarray) -> np.ndarray:
    """For each object 1..n of ``labels`` (pixel labels, any shape; ``area``: float (n + 1,) its pixel counts):
    its largest IoU with an object of ``previous`` (the same pixels' labels in the frame before, whose whole
    areas are ``previous_area``); float (n + 1,)."""
    iou = np.zeros(len(area))
    if previous is None or len(area) <= 1 or len(previous_area) <= 1:
        return iou
    sel = (labels > 0) & (previous > 0)
    if not sel.any():
        return iou
    m = len(previous_area)
    pairs, inter = _pair_counts(labels[sel], previous[sel], len(area), m)
    a, b = pairs // m, pairs % m
    value = inter / (area[a] + previous_area[b] - inter)
    np.maximum.at(iou, a, value)
    return iou


class SegmentChooser:
    """Chooses, frame by frame, non-overlapping objects among the user's labels and a foreground map's
    coarser components (see the module docstring). State: the objects chosen in the frame before.

    levels: foreground thresholds below the base, fractions of it, decreasing (default
    :data:`DEFAULT_LEVELS`); min_area: px; iou_weight, area_weight: the value's weights; sigma: px, a
    Gaussian smoothing of the map first (0: none; 2 makes a raw fluorescence frame a usable map);
    contour_level: the boundary strength in (0, 1) above which a contour map given to ``push`` separates
    objects (default :data:`~edgetrack.runtime.cells.contours.DEFAULT_CONTOUR_LEVEL`).
    """

    def __init__(self, levels: Sequence[float] = DEFAULT_LEVELS, *, min_area: int = 40,
                 iou_weight: float = 2.0, area_weight: float = 1.0, sigma: float = 0.0,
                 contour_level: float = DEFAULT_CONTOUR_LEVEL) -> None:
        levels = tuple(float(v) for v in levels)
        if not levels or any(not (0 < v < 1) for v in levels) or any(b >= a for a, b in zip(levels, levels[1:])):
            raise ConfigError(f"levels must be decreasing fractions in (0, 1), got {levels!r}")
        if not (isinstance(contour_level, (int, float, np.integer, np.floating)) and 0 < contour_level < 1):
            raise ConfigError(f"contour_level must be a number in (0, 1), got {contour_level!r}")
        self.contour_level = float(contour_level)
        if not (isinstance(min_area, (int, np.integer)) and min_area >= 1):
            raise ConfigError(f"min_area must be a whole number of px >= 1, got {min_area!r}")
        for name, value in (("iou_weight", iou_weight), ("area_weight", area_weight)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ConfigError(f"sigma must be a number of px >= 0, got {sigma!r}")
        self.levels, self.min_area, self.sigma = levels, int(min_area), float(sigma)
        self.iou_weight, self.area_weight = float(iou_weight), float(area_weight)
        self._previous: np.ndarray | None = None
        self._previous_area = np.zeros(1)
        self._reference: float | None = None
        #: per frame: objects kept from the labels, labels replaced by a coarser object, objects added
        self.counts: list[dict[str, int]] = []

    def push(self, labels: np.ndarray, foreground: np.ndarray, contours: np.ndarray | None = None) -> np.ndarray:
        """The chosen objects of the next frame: int32 (H, W), labels 1..n (0 = background).

        labels: the user's label image (H, W) integers; foreground: the map (H, W), finite numbers;
        contours: a boundary map (H, W) of finite numbers, high between cells (a probability in [0, 1] as it
        is, any other map scaled by its percentiles, see :func:`~edgetrack.runtime.cells.contours.contour_scale`),
        or None. It is not smoothed by ``sigma``."""
        labels = np.asarray(labels)
        foreground = np.asarray(foreground)
        if labels.ndim != 2 or foreground.shape != labels.shape:
            raise InputError(f"labels and foreground must be 2-D images of one shape, got {labels.shape} and "
                             f"{foreground.shape}")
        if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
            raise InputError("labels must be an image of non-negative integers")
        if foreground.dtype.kind not in "iuf" or not np.isfinite(foreground).all():
            raise InputError("foreground must hold finite numbers")
        if contours is not None:
            contours = np.asarray(contours)
            if contours.shape != labels.shape:
                raise InputError(f"contours must be a 2-D image of the labels' shape {labels.shape}, got "
                                 f"{contours.shape}")
            if contours.dtype.kind not in "iuf" or not np.isfinite(contours).all():
                raise InputError("contours must hold finite numbers")
        if self.sigma > 0:
            foreground = gaussian_smooth(foreground, self.sigma)
        base_labels, _ = _compact(labels)
        own = [base_labels]
        if contours is not None:  # the user's objects cut by the map's boundaries come first: a merge undone
            contours = contour_scale(contours)
            own.insert(0, cut_by_contours(base_labels, contours, self.contour_level))
        levels = hierarchy_levels(foreground, self.levels)
        # every object lies inside the coarsest level or the user's labels: work on those pixels only
        active = np.flatnonzero((levels[-1] > 0).ravel() | (base_labels > 0).ravel())
        tree = [lv.ravel()[active] for lv in (*own, *levels)]
        counts = [int(t.max()) if t.size else 0 for t in tree]
        areas = [np.bincount(t, minlength=n + 1).astype(np.float64) for t, n in zip(tree, counts)]
        reference = self._reference
        a = areas[len(own) - 1][1:][areas[len(own) - 1][1:] >= self.min_area]  # the user's labels
        if reference is None:
            reference = float(np.median(a)) if a.size else float(self.min_area)
        elif contours is not None and a.size:
            # cut pieces chosen once must not shrink the expected size frame after frame: never below the labels'
            reference = max(reference, float(np.median(a)))
        previous = None if self._previous is None else self._previous.ravel()[active]
        values = []
        for k, (t, n, area) in enumerate(zip(tree, counts, areas)):
            iou = _iou_with(t, area, previous, self._previous_area)
            with np.errstate(divide="ignore"):
                v = 1.0 + self.iou_weight * iou - self.area_weight * np.abs(np.log(np.maximum(area, 1) / reference))
            if k == len(own) - 1:
                v = np.maximum(v, 1e-3)  # the user's objects are never dropped, only replaced by coarser ones
            v[area < self.min_area] = -np.inf
            v[0] = -np.inf
            values.append(v)
        parents = [_parents(tree[k], tree[k + 1], counts[k]) for k in range(len(tree) - 1)]
        chosen = _choose(values, parents)
        flat = np.zeros(len(active), np.int32)
        next_label = 1
        kept = replaced = added = 0
        for k, ids in enumerate(chosen):
            if not len(ids):
                continue
            lut = np.zeros(counts[k] + 1, np.int32)
            lut[ids] = np.arange(next_label, next_label + len(ids), dtype=np.int32)
            next_label += len(ids)
            paint = lut[tree[k]]
            mask = (paint > 0) & (flat == 0)
            flat[mask] = paint[mask]
            if k < len(own):
                kept += len(ids)
            else:
                holds = np.bincount(tree[k][tree[0] > 0], minlength=counts[k] + 1)[ids] > 0
                replaced += int(holds.sum())
                added += int((~holds).sum())
        flat, n_out = _compact(flat)
        out = np.zeros(labels.size, np.int32)
        out[active] = flat
        out = out.reshape(labels.shape)
        self.counts.append({"kept": kept, "coarser": replaced, "added": added})
        self._previous = out
        self._previous_area = np.bincount(flat, minlength=n_out + 1).astype(np.float64)
        if n_out:
            self._reference = float(np.median(self._previous_area[1:]))
        return out


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` renumbered 1..n in order of their old values (0 stays 0); int32 and n."""
    top = int(labels.max()) if labels.size else 0
    present = np.bincount(labels.ravel(), minlength=top + 1) > 0 if top < 1 << 24 else None
    if present is None:
        values, inverse = np.unique(labels, return_inverse=True)
        inverse = inverse.reshape(labels.shape).astype(np.int32)
        if values[0] != 0:
            inverse += 1
        return inverse, int(inverse.max())
    present[0] = False
    lut = np.zeros(top + 1, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[labels], int(present.sum())


def _choose(values: list[np.ndarray], parents: list[np.ndarray]) -> list[np.ndarray]:
    """The best set of non-overlapping objects of the tree: per level, the chosen object ids."""
    n_levels = len(values)
    best = [None] * n_levels  # best value of each object's subtree
    whole = [None] * n_levels  # True where the object itself is chosen over its children
    child_sum = np.zeros(len(values[0]))
    for k in range(n_levels):
        own = values[k]
        b = np.maximum(own, child_sum) if k else own.copy()
        b = np.maximum(b, 0.0)  # choosing nothing in a subtree is worth 0
        b[0] = 0.0
        best[k] = b
        whole[k] = (own >= child_sum) & (own > 0) if k else own > 0
        if k + 1 < n_levels:
            child_sum = np.zeros(len(values[k + 1]))
            np.add.at(child_sum, parents[k][1:], b[1:])
            child_sum[0] = 0.0
    # top-down: an object is chosen when it is whole-chosen and no ancestor was chosen
    chosen: list[np.ndarray] = [np.zeros(0, np.int64)] * n_levels
    blocked = np.zeros(len(values[-1]), bool)
    for k in range(n_levels - 1, -1, -1):
        take = whole[k] & ~blocked
        take[0] = False
        chosen[k] = np.flatnonzero(take)
        if k:
            covered = blocked | take
            blocked = covered[parents[k - 1]]
            blocked[0] = False
    return chosen
