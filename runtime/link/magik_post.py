"""MAGIK's post-processing as a linker: keep links scoring >= 0.5, shortest gap first, then highest score.

Following Pineda et al. (Nat. Mach. Intell. 5, 71-82, 2023), the candidate edges a graph network
classified as links (probability >= ``threshold``, 0.5 by default, and > ``min_score``) are taken
in order of increasing frame gap ``dt``, then decreasing score (then shorter ``dist``, smaller
``src``, smaller ``dst``, so the result does not depend on the order of the edge arrays). An edge
is accepted while its target has no parent and its source has a free child slot; with
``max_children=2`` a source that takes two children is a division.
"""

from __future__ import annotations

import numba
import numpy as np
from edgetrack.runtime.link.problem import UNDECIDED, validate_link_inputs

__all__ = ["link_magik_post", "MAGIK_THRESHOLD"]

#: Score from which an edge counts as a link (the paper's decision threshold).
MAGIK_THRESHOLD = 0.5


@numba.njit(cache=True, nogil=True)
def _accept(order, src, dst, locked_parent, child_count, max_children):
    parent = locked_parent.copy()
    used = child_count.copy()
    for k in range(order.shape[0]):
        e = order[k]
        d = dst[e]
        s = src[e]
        if parent[d] == UNDECIDED and used[s] < max_children:
            parent[d] = s
            used[s] += 1
    for i in range(parent.shape[0]):
        if parent[i] == UNDECIDED:
            parent[i] = -1
    return parent


def link_magik_post(
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
    threshold: float = MAGIK_THRESHOLD,
) -> np.ndarray:
    """Link a window the way MAGIK's post-processing does; returns parent: int64 (n,) (index or -1).

    Arguments as in :mod:`edgetrack.runtime.link.registry` (node_frame int64 (n,) frames, src/dst/dt
    int64 (m,), score float64 (m,) in [0, 1], locked_parent int64 (n,) with UNDECIDED = -2,
    child_count int64 (n,), dist optional float64 (m,) px). Edges scoring below ``threshold``
    or at/below ``min_score``, and edges into locked nodes, are never used.
    """
    v = validate_link_inputs(node_frame, src, dst, dt, score, locked_parent, child_count,
                             max_children=max_children, min_score=min_score, dist=dist)
    usable = (v.score >= float(threshold)) & (v.score > float(min_score)) & (v.locked_parent[v.dst] == UNDECIDED)
    idx = np.flatnonzero(usable)
    order = idx[np.lexsort((v.dst[idx], v.src[idx], v.dist[idx], -v.score[idx], v.dt[idx]))]
    return _accept(np.ascontiguousarray(order, dtype=np.int64), v.src, v.dst, v.locked_parent, v.child_count,
                   int(max_children))
