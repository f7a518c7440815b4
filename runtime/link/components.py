"""Kernels every linker shares: the preference order of edges, the usable edges, and the
independent sub-problems (connected components) of a window's candidate graph (Numba)."""

from __future__ import annotations

import numba
import numpy as np

from edgetrack.runtime.link.problem import UNDECIDED

__all__ = ["preferred", "usable_edges", "edge_components", "largest_component"]


@numba.njit(cache=True, nogil=True, inline="always")
def preferred(a, b, score, dt, dist, src, dst):
    """True when edge a is preferred to edge b (score desc, dt, dist, src, dst asc)."""
    if score[a] != score[b]:
        return score[a] > score[b]
    if dt[a] != dt[b]:
        return dt[a] < dt[b]
    if dist[a] != dist[b]:
        return dist[a] < dist[b]
    if src[a] != src[b]:
        return src[a] < src[b]
    return dst[a] < dst[b]


@numba.njit(cache=True, nogil=True)
def usable_edges(src, dst, score, locked_parent, min_score):
    """Indices of the edges a linker may use: score > min_score and an undecided target."""
    m = src.shape[0]
    idx = np.empty(m, np.int64)
    k = 0
    for e in range(m):
        if score[e] > min_score and locked_parent[dst[e]] == UNDECIDED:
            idx[k] = e
            k += 1
    return idx[:k]


@numba.njit(cache=True, nogil=True, inline="always")
def _root(uf, a):
    while uf[a] != a:
        uf[a] = uf[uf[a]]
        a = uf[a]
    return a


@numba.njit(cache=True, nogil=True)
def edge_components(edges, src, dst, n):
    """Group the edge indices ``edges`` by connected component (union-find).

    The vertices are node roles: node i as a parent (i) and as a child (n + i), so the roles'
    resources (a child slot, a parent) are shared only within a component. Returns
    (grouped, ptr): component c holds grouped[ptr[c]:ptr[c + 1]], components numbered in order
    of first appearance, edges in their given order within a component.
    """
    m = edges.shape[0]
    uf = np.arange(2 * n)
    for e in edges:
        ra = _root(uf, src[e])
        rb = _root(uf, n + dst[e])
        if ra != rb:
            if ra < rb:
                uf[rb] = ra
            else:
                uf[ra] = rb
    comp_of_root = np.full(2 * n, -1, np.int64)
    edge_comp = np.empty(m, np.int64)
    n_comp = 0
    for a in range(m):
        r = _root(uf, src[edges[a]])
        if comp_of_root[r] < 0:
            comp_of_root[r] = n_comp
            n_comp += 1
        edge_comp[a] = comp_of_root[r]
    ptr = np.zeros(n_comp + 1, np.int64)
    for a in range(m):
        ptr[edge_comp[a] + 1] += 1
    for c in range(n_comp):
        ptr[c + 1] += ptr[c]
    fill = ptr[:-1].copy()
    grouped = np.empty(m, np.int64)
    for a in range(m):
        c = edge_comp[a]
        grouped[fill[c]] = edges[a]
        fill[c] += 1
    return grouped, ptr


@numba.njit(cache=True, nogil=True)
def largest_component(a, b, size):
    """Vertices in the largest connected component of the graph of the edges (a[e], b[e]), vertices in
    [0, size) (e.g. node roles: node i as a parent i, as a child n + i); only vertices some edge touches
    count. 0 without edges."""
    uf = np.arange(size)
    used = np.zeros(size, np.bool_)
    for e in range(a.shape[0]):
        used[a[e]] = True
        used[b[e]] = True
        ra = _root(uf, a[e])
        rb = _root(uf, b[e])
        if ra != rb:
            uf[ra] = rb
    count = np.zeros(size, np.int64)
    best = 0
    for i in range(size):
        if used[i]:
            r = _root(uf, i)
            count[r] += 1
            best = max(best, count[r])
    return best
