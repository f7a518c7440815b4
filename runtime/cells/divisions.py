"""Division consistency: a division is kept only when mother and daughters look like one.

A segmentation error (a nucleus cut in two, a neighbour passing by, a fragment) makes the linker
give an object two children. :func:`check_divisions` works on committed links (one row per object:
``det`` id, ``parent`` det id (-1 none) and ``values`` with columns ``y, x, label`` then
:data:`~edgetrack.runtime.cells.features.CELL_FEATURES`) and keeps a mother M with daughters D1, D2
only when

- each daughter's area is a plausible fraction of M's: ``fraction[0] <= area(D) / area(M) <= fraction[1]``
  (above 1 by default: a segmenter often draws a rounded mitotic mother smaller than her daughters),
- the mother is not still there: no daughter of at least ``still_there[0]`` of M's area lies within
  ``still_there[1]`` equivalent radii of M's centroid,
- the daughters are of similar size: ``min / max >= similarity``,
- they lie on opposite sides of M's centroid: the cosine of the angle between ``D1 - M`` and ``D2 - M``
  is at most ``max_cosine`` (0.3 by default: daughters of a moving mother both lie somewhat ahead; a daughter less than 1 px from M's centroid counts as opposite).

- both daughters persist: each one's run of single-child links lasts at least ``min_daughter_frames``
  frames (a piece of a split nucleus vanishes or "divides" again within a frame or two), unless it
  reaches the last frame of the data.

When a daughter does not persist, its link is cut (the second daughter's when both are brief);
otherwise, when the geometry fails, the weaker child link, the daughter farther from M in units of M's equivalent radius
(the farther one when equal), becomes a new track without parent. A mother with three or more children
keeps the two nearest and the rest start tracks of their own. Every decision looks at a mother and
its children (linked at most ``max_gap`` frames later) and their next ``min_daughter_frames`` frames, so
a live tracker can take it ``max_gap + min_daughter_frames`` frames after the mother's frame is committed.
"""

from __future__ import annotations

import numpy as np

from edgetrack.runtime.cells.features import CELL_FEATURES
from edgetrack.runtime.cells.fragments import children_of
from edgetrack.runtime.errors import ConfigError

__all__ = ["check_divisions", "division_consistent", "run_end"]

_AREA = 3 + CELL_FEATURES.index("area")


def division_consistent(mother: np.ndarray, d1: np.ndarray, d2: np.ndarray, *, fraction: tuple[float, float] = (0.15, 1.3),
                        similarity: float = 0.3, max_cosine: float = 0.3,
                        still_there: tuple[float, float] = (0.8, 0.5)) -> bool:
    """Whether mother -> (d1, d2) is a plausible division (rows ``y, x, label`` + CELL_FEATURES; see the module)."""
    am, a1, a2 = mother[_AREA], d1[_AREA], d2[_AREA]
    if am <= 0 or not all(fraction[0] <= a / am <= fraction[1] for a in (a1, a2)):
        return False
    if min(a1, a2) < similarity * max(a1, a2):
        return False
    u, v = d1[:2] - mother[:2], d2[:2] - mother[:2]
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    reach = still_there[1] * np.sqrt(am / np.pi)
    if any(a >= still_there[0] * am and n < reach for a, n in ((a1, nu), (a2, nv))):
        return False  # the mother is still there, as a large object where she was
    if nu < 1.0 or nv < 1.0:
        return True
    return float(u @ v) / (nu * nv) <= max_cosine


def run_end(frame: np.ndarray, det: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """int64 (n,): the frame where each object's run of single-child links ends (at an object with no
    child or with two or more)."""
    kids = children_of(det, parent)
    end = np.asarray(frame, np.int64).copy()
    for i in np.argsort(-end, kind="stable"):
        k = kids.get(int(i), [])
        if len(k) == 1:
            end[i] = end[k[0]]
    return end


def check_divisions(frame: np.ndarray, det: np.ndarray, parent: np.ndarray, values: np.ndarray, *,
                    fraction: tuple[float, float] = (0.15, 1.3), similarity: float = 0.3, max_cosine: float = 0.3,
                    still_there: tuple[float, float] = (0.8, 0.5), min_daughter_frames: int = 3) -> np.ndarray:
    """The parents with every inconsistent division cut (see the module docstring): int64 (n,).

    frame, det, parent: int64 (n,) (det ids unique, -1 no parent); values: float64 (n, 3 + len(CELL_FEATURES)).
    """
    lo, hi = fraction
    if not (0.0 <= lo <= hi) or not (0.0 <= similarity <= 1.0) or not (-1.0 <= max_cosine <= 1.0) \
            or min_daughter_frames < 1:
        raise ConfigError(f"division checks: need 0 <= fraction[0] <= fraction[1], similarity in [0, 1], "
                          f"max_cosine in [-1, 1] and min_daughter_frames >= 1, got {fraction}, {similarity}, "
                          f"{max_cosine}, {min_daughter_frames}")
    frame = np.asarray(frame, np.int64)
    parent = np.asarray(parent, np.int64).copy()
    values = np.asarray(values, np.float64)
    last = int(frame.max()) if len(frame) else 0
    end = run_end(frame, det, parent)
    for m, kids in children_of(det, parent).items():
        if len(kids) < 2:
            continue
        reach = np.sqrt(values[m, _AREA] / np.pi)
        far = np.hypot(values[kids, 0] - values[m, 0], values[kids, 1] - values[m, 1]) / max(reach, 1e-9)
        order = [kids[k] for k in np.lexsort((np.arange(len(kids)), far))]
        for extra in order[2:]:
            parent[extra] = -1
        d1, d2 = order[0], order[1]
        # a daughter whose run ends (vanishes or divides again) within min_daughter_frames, before the data end
        brief = [d for d in (d2, d1) if end[d] - frame[d] + 1 < min_daughter_frames and end[d] < last]
        if brief:
            parent[brief[0]] = -1
        elif not division_consistent(values[m], values[d1], values[d2], fraction=fraction, similarity=similarity,
                                     max_cosine=max_cosine, still_there=still_there):
            parent[d2] = -1
    return parent
