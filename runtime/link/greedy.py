"""Greedy linker: accept candidate edges from the most to the least probable.

Edges are taken by descending score; ties go to the smaller dt (frames), then the smaller dist
(px, when given), then the smaller src, then the smaller dst, so the result does not depend on
the order of the edge arrays. An edge is accepted when its target has no parent yet and its
source still has a free child slot (``max_children`` counting the committed ``child_count``).
With ``max_children=2`` this is the linker that allows divisions.
"""

from __future__ import annotations

import numba
import numpy as np
from edgetrack.runtime.kernels.sorting import radix_argsort
from edgetrack.runtime.link.components import edge_components, preferred, usable_edges
from edgetrack.runtime.link.problem import UNDECIDED, validate_link_inputs

__all__ = ["link_greedy", "greedy_parents"]

_INSERTION_RUN = 16
_RADIX_FROM = 64  # edges: longer lists are radix-sorted on the score first
_ONE_BITS = 0x3FF0000000000000  # the bit pattern of 1.0 as int64


@numba.njit(cache=True, nogil=True)
def _preference_order(idx, score, dt, dist, src, dst):
    """Sort the edge indices ``idx`` (int64, in place) by preference (see :func:`preferred`).

    Long lists are radix-sorted on the score (exact: the bit patterns of floats in [0, 1]
    order like the floats), then each run of equal scores is sorted by the full comparison.
    Scores must be in [0, 1] (the linkers check this).
    """
    m = idx.shape[0]
    if m <= _RADIX_FROM:
        return _comparison_sort(idx, score, dt, dist, src, dst)
    bits = score.view(np.int64)
    keys = np.empty(m, np.int64)
    for i in range(m):
        keys[i] = _ONE_BITS - bits[idx[i]]
    idx[:] = idx[radix_argsort(keys)]
    lo = 0
    for hi in range(1, m + 1):
        if hi == m or score[idx[hi]] != score[idx[lo]]:
            if hi - lo > 1:
                _comparison_sort(idx[lo:hi], score, dt, dist, src, dst)
            lo = hi
    return idx


@numba.njit(cache=True, nogil=True)
def _comparison_sort(idx, score, dt, dist, src, dst):
    """Merge sort (insertion-sorted runs first) of the edge indices ``idx`` in place by :func:`preferred`."""
    m = idx.shape[0]
    # Insertion sort of short runs, then bottom-up merges.
    for lo in range(0, m, _INSERTION_RUN):
        hi = min(lo + _INSERTION_RUN, m)
        for a in range(lo + 1, hi):
            v = idx[a]
            b = a - 1
            while b >= lo and preferred(v, idx[b], score, dt, dist, src, dst):
                idx[b + 1] = idx[b]
                b -= 1
            idx[b + 1] = v
    tmp = np.empty_like(idx)
    width = _INSERTION_RUN
    a_arr = idx
    b_arr = tmp
    in_tmp = False
    while width < m:
        for lo in range(0, m, 2 * width):
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if preferred(a_arr[j], a_arr[i], score, dt, dist, src, dst):
                    b_arr[k] = a_arr[j]
                    j += 1
                else:
                    b_arr[k] = a_arr[i]
                    i += 1
                k += 1
            while i < mid:
                b_arr[k] = a_arr[i]
                i += 1
                k += 1
            while j < hi:
                b_arr[k] = a_arr[j]
                j += 1
                k += 1
        a_arr, b_arr = b_arr, a_arr
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        idx[:] = a_arr
    return idx


@numba.njit(cache=True, nogil=True)
def greedy_parents(src, dst, dt, score, dist, locked_parent, child_count, max_children, min_score):
    """Greedy acceptance, component by component (components share no parent or child slot,
    so this equals one pass over all edges in preference order, with far smaller sorts)."""
    n = locked_parent.shape[0]
    parent = locked_parent.copy()
    used = child_count.copy()
    grouped, ptr = edge_components(usable_edges(src, dst, score, locked_parent, min_score), src, dst, n)
    for c in range(ptr.shape[0] - 1):
        part = grouped[ptr[c]:ptr[c + 1]]
        if part.shape[0] > 1:
            _preference_order(part, score, dt, dist, src, dst)
        for e in part:
            d = dst[e]
            s = src[e]
            if parent[d] == UNDECIDED and used[s] < max_children:
                parent[d] = s
                used[s] += 1
    for i in range(n):
        if parent[i] == UNDECIDED:
            parent[i] = -1
    return parent


def link_greedy(
    node_frame: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    dt: np.ndarray,
    score: np.ndarray,
    locked_parent: np.ndarray,
    child_count: np.ndarray,
    *,
    max_children: int = 1,
    min_score: float = 1e-6,
    dist: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy linking of a window; returns parent: int64 (n,) (parent index or -1).

    Arguments as in :mod:`edgetrack.runtime.link.registry`: node_frame int64 (n,) frames;
    src/dst/dt int64 (m,); score float64 (m,) in [0, 1]; locked_parent int64 (n,) (UNDECIDED = -2);
    child_count int64 (n,); dist optional float64 (m,) px for tie-breaking. Edges with
    score <= min_score or into a locked node are never used.
    """
    v = validate_link_inputs(
        node_frame, src, dst, dt, score, locked_parent, child_count,
        max_children=max_children, min_score=min_score, dist=dist,
    )
    return greedy_parents(
        v.src, v.dst, v.dt, v.score, v.dist, v.locked_parent, v.child_count,
        int(max_children), float(min_score),
    )
