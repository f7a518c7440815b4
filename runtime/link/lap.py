"""LAP linker: frame-to-frame optimal assignment with gap closing (after Jaqaman et al. 2008).

Target frames are solved in ascending order. For target frame d the sources are the nodes of
earlier frames (within the candidate edges' dt, i.e. max_gap) that still have a free child slot,
counting links committed before the call and those decided earlier in this call; the targets are
the undecided nodes of frame d. A link costs -log(score); leaving a source without a child or a
target without a parent costs u = -log(min_score) / 2 each, so a link is worth making exactly
when its score exceeds min_score. Each frame minimises the total cost of the augmented matrix

    [[C,     death],
     [birth, C^T  ]]      (death, birth: u on the diagonal; C^T block: 0 where C has an edge)

separately for every connected component of the bipartite candidate graph (union-find in Numba):

- a component with one source or one target holds at most one link, its best edge (ties as
  in the greedy linker: smaller dt, dist, src, dst), decided in Numba without a solver;
- a small component (smaller side <= 8 nodes, dynamic programme <= 1024 steps) is solved
  exactly in Numba by dynamic programming over subsets of its smaller side;
- a larger one goes to scipy's ``linear_sum_assignment`` on the equivalent ns x nt matrix of
  gains min(0, -log(score) - 2u) (0 where there is no edge; an assignment to a 0 entry is "no
  link"). Its optimum equals the augmented matrix's minus the constant u (ns + nt), at a
  quarter of the size; the tests check both optima agree.

All three give the optimum of the augmented problem. Only one child per node
(``max_children=1``): divisions need the greedy linker.
"""


from __future__ import annotations

import math

import numba
import numpy as np
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.kernels.sorting import radix_argsort
from edgetrack.runtime.link.components import edge_components, preferred, usable_edges
from edgetrack.runtime.link.problem import UNDECIDED, validate_link_inputs
from scipy.optimize import linear_sum_assignment

# Components whose smaller side has at most this many nodes (and whose dynamic programme is
# at most _DP_MAX_WORK steps) are solved exactly in Numba; larger ones go to scipy.
_DP_MAX_ROWS = 8
_DP_MAX_WORK = 1 << 10

_TINY = float(np.nextafter(0.0, 1.0))

__all__ = ["link_lap"]


@numba.njit(cache=True, nogil=True)
def _by_target_frame(node_frame, src, dst, score, locked_parent, min_score):
    """Usable edges (score > min_score, undecided target) grouped by the target's frame,
    ascending (stable), and the boundaries of each frame's block."""
    usable = usable_edges(src, dst, score, locked_parent, min_score)
    k = usable.shape[0]
    if k == 0:
        return usable, np.zeros(1, np.int64)
    fr = np.empty(k, np.int64)
    for a in range(k):
        fr[a] = node_frame[dst[usable[a]]]
    o = radix_argsort(fr - fr.min())
    order = usable[o]
    n_blocks = 1
    for a in range(1, k):
        if fr[o[a]] != fr[o[a - 1]]:
            n_blocks += 1
    bounds = np.empty(n_blocks + 1, np.int64)
    bounds[0] = 0
    b = 1
    for a in range(1, k):
        if fr[o[a]] != fr[o[a - 1]]:
            bounds[b] = a
            b += 1
    bounds[n_blocks] = k
    return order, bounds


@numba.njit(cache=True, nogil=True)
def _comp_nodes(part, src, dst, n, mark, stamp, srcs, tgts):
    """Distinct sources and targets of one component's edges (in order of appearance) into
    srcs and tgts; returns (ns, nt). ``mark`` (2n) remembers the roles seen under ``stamp``."""
    ns = 0
    nt = 0
    for e in part:
        if mark[src[e]] != stamp:
            mark[src[e]] = stamp
            srcs[ns] = src[e]
            ns += 1
        if mark[n + dst[e]] != stamp:
            mark[n + dst[e]] = stamp
            tgts[nt] = dst[e]
            nt += 1
    return ns, nt


@numba.njit(cache=True, nogil=True)
def _sort_small(a, k):
    """Sort a[:k] in place (insertion sort when k is small)."""
    if k > 32:
        a[:k].sort()
        return
    for i in range(1, k):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@numba.njit(cache=True, nogil=True)
def _best_assignment(gain, a, b, best, choice, rows):
    """Exact minimum-total-gain matching of the small (a, b) gain matrix ``gain[:a, :b]``
    (inf = no edge, finite gains < 0), by dynamic programming over the columns with the set
    of used rows as a bit mask. Fills rows[:b] with the row matched to each column, or -1.
    ``best`` (float64) and ``choice`` (int64) are scratch of at least (b + 1) * 2**a."""
    n_mask = 1 << a
    best[: (b + 1) * n_mask] = np.inf
    best[0] = 0.0
    for j in range(b):
        cur = j * n_mask
        nxt = cur + n_mask
        for mask in range(n_mask):
            v = best[cur + mask]
            if v == np.inf:
                continue
            if v < best[nxt + mask]:
                best[nxt + mask] = v
                choice[nxt + mask] = -1
            for i in range(a):
                g = gain[i, j]
                if (mask >> i) & 1 == 0 and g < np.inf:
                    nm = mask | (1 << i)
                    w = v + g
                    if w < best[nxt + nm]:
                        best[nxt + nm] = w
                        choice[nxt + nm] = i
    last = b * n_mask
    mask = 0
    for k in range(1, n_mask):
        if best[last + k] < best[last + mask]:
            mask = k
    for j in range(b, 0, -1):
        i = choice[j * n_mask + mask]
        rows[j - 1] = i
        if i >= 0:
            mask ^= 1 << i


@numba.njit(cache=True, nogil=True)
def _lap_frame(edges, src, dst, dt, score, dist, parent, used, unlinked_cost):
    """Solve one target frame: decide in place (parent, used) every component that is a star
    or small enough for :func:`_best_assignment`, and return the gain matrices of the others
    for scipy: (mat, mat_ptr, nodes, node_ptr, n_src); component h has n_src[h] sources
    nodes[node_ptr[h]:][:ns] then its targets, and its ns x nt matrix at mat[mat_ptr[h]:]."""
    n = parent.shape[0]
    # Edges whose source still has a free slot (the targets are undecided by construction).
    m = 0
    ok = np.empty(edges.shape[0], np.int64)
    for e in edges:
        if used[src[e]] < 1 and parent[dst[e]] == UNDECIDED:
            ok[m] = e
            m += 1
    grouped, ptr = edge_components(ok[:m], src, dst, n)
    n_comp = ptr.shape[0] - 1
    mark = np.full(2 * n, -1, np.int64)
    pos = np.empty(2 * n, np.int64)
    srcs = np.empty(m, np.int64)
    tgts = np.empty(m, np.int64)
    big = np.empty(n_comp, np.int64)
    n_big = 0
    mat_size = 0
    node_size = 0
    # Scratch of the dynamic programme: (b + 1) 2^a <= work / a + 2^a, a b <= work / 2^a.
    best = np.empty(_DP_MAX_WORK + (1 << _DP_MAX_ROWS), np.float64)
    choice = np.empty(_DP_MAX_WORK + (1 << _DP_MAX_ROWS), np.int64)
    gain = np.empty((_DP_MAX_ROWS, _DP_MAX_WORK // 2), np.float64)
    rows = np.empty(_DP_MAX_WORK // 2, np.int64)
    for c in range(n_comp):
        c0 = ptr[c]
        c1 = ptr[c + 1]
        ns, nt = _comp_nodes(grouped[c0:c1], src, dst, n, mark, c, srcs, tgts)
        if ns == 1 or nt == 1:
            # A star holds at most one link: its best edge (each beats leaving both unlinked).
            best_e = grouped[c0]
            for a in range(c0 + 1, c1):
                e = grouped[a]
                if preferred(e, best_e, score, dt, dist, src, dst):
                    best_e = e
            if -math.log(score[best_e]) < 2.0 * unlinked_cost:
                parent[dst[best_e]] = src[best_e]
                used[src[best_e]] += 1
            continue
        rows_are_src = ns <= nt
        na = ns if rows_are_src else nt
        nb = nt if rows_are_src else ns
        if na > _DP_MAX_ROWS or nb * na * (1 << na) > _DP_MAX_WORK:
            big[n_big] = c
            n_big += 1
            mat_size += ns * nt
            node_size += ns + nt
            continue
        _sort_small(srcs, ns)
        _sort_small(tgts, nt)
        for i in range(ns):
            pos[srcs[i]] = i
        for j in range(nt):
            pos[n + tgts[j]] = j
        gain[:na, :nb] = np.inf
        for a in range(c0, c1):
            e = grouped[a]
            i = pos[src[e]]
            j = pos[n + dst[e]]
            g = -math.log(score[e]) - 2.0 * unlinked_cost
            if g >= 0.0:  # not worth a link (score within rounding of min_score)
                continue
            if not rows_are_src:
                i, j = j, i
            if g < gain[i, j]:
                gain[i, j] = g
        _best_assignment(gain, na, nb, best, choice, rows)
        for j in range(nb):
            i = rows[j]
            if i >= 0:
                s = srcs[i] if rows_are_src else srcs[j]
                t = tgts[j] if rows_are_src else tgts[i]
                parent[t] = s
                used[s] += 1

    # Gain matrices of the large components, for scipy (see the module docstring).
    mat = np.zeros(mat_size, np.float64)
    mat_ptr = np.zeros(n_big + 1, np.int64)
    nodes = np.empty(node_size, np.int64)
    node_ptr = np.zeros(n_big + 1, np.int64)
    n_src = np.empty(n_big, np.int64)
    for h in range(n_big):
        c = big[h]
        ns, nt = _comp_nodes(grouped[ptr[c]:ptr[c + 1]], src, dst, n, mark, n_comp + c, srcs, tgts)
        _sort_small(srcs, ns)
        _sort_small(tgts, nt)
        base = node_ptr[h]
        for i in range(ns):
            nodes[base + i] = srcs[i]
            pos[srcs[i]] = i
        for j in range(nt):
            nodes[base + ns + j] = tgts[j]
            pos[n + tgts[j]] = j
        off = mat_ptr[h]
        for a in range(ptr[c], ptr[c + 1]):
            e = grouped[a]
            g = -math.log(score[e]) - 2.0 * unlinked_cost
            at = off + pos[src[e]] * nt + pos[n + dst[e]]
            if g < mat[at]:
                mat[at] = g
        n_src[h] = ns
        mat_ptr[h + 1] = off + ns * nt
        node_ptr[h + 1] = base + ns + nt
    return mat, mat_ptr, nodes, node_ptr, n_src


@numba.njit(cache=True, nogil=True)
def _apply(cols, mat, mat_ptr, nodes, node_ptr, n_src, parent, used):
    """Commit the solved large components: source row i matched to target column cols[i]
    (-1 none) is a link when that entry has a negative gain (an edge worth taking)."""
    for h in range(n_src.shape[0]):
        base = node_ptr[h]
        ns = n_src[h]
        nt = node_ptr[h + 1] - base - ns
        for i in range(ns):
            j = cols[base + i]
            if j >= 0 and mat[mat_ptr[h] + i * nt + j] < 0.0:
                s = nodes[base + i]
                parent[nodes[base + ns + j]] = s
                used[s] += 1


@numba.njit(cache=True, nogil=True)
def _undecided_to_none(parent):
    for i in range(parent.shape[0]):
        if parent[i] == UNDECIDED:
            parent[i] = -1
    return parent


def link_lap(
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
    """Optimal frame-by-frame assignment of a window; returns parent: int64 (n,) (index or -1).

    Arguments as in :mod:`edgetrack.runtime.link.registry`: node_frame int64 (n,) frames;
    src/dst/dt int64 (m,); score float64 (m,) in [0, 1]; locked_parent int64 (n,) (UNDECIDED = -2);
    child_count int64 (n,); dist optional float64 (m,) px, for tie-breaking only.
    Only ``max_children=1``; use the 'greedy' linker for divisions.
    """
    if max_children != 1:
        raise ConfigError(
            f"the 'lap' linker allows one child per node (max_children=1), got {max_children!r}; "
            "use the 'greedy' linker for divisions"
        )
    v = validate_link_inputs(
        node_frame, src, dst, dt, score, locked_parent, child_count,
        max_children=max_children, min_score=min_score, dist=dist,
    )
    # min_score = 0: every positive score is worth a link; the smallest positive double stands in.
    unlinked_cost = -math.log(max(float(min_score), _TINY)) / 2.0
    parent = v.locked_parent.copy()
    used = v.child_count.copy()
    order, bounds = _by_target_frame(v.node_frame, v.src, v.dst, v.score, v.locked_parent, float(min_score))
    for b in range(bounds.shape[0] - 1):
        mat, mat_ptr, nodes, node_ptr, n_src = _lap_frame(
            order[bounds[b]:bounds[b + 1]], v.src, v.dst, v.dt, v.score, v.dist, parent, used, unlinked_cost
        )
        if n_src.shape[0] == 0:
            continue
        cols = np.full(nodes.shape[0], -1, dtype=np.int64)
        for h in range(n_src.shape[0]):
            ns = int(n_src[h])
            nt = int(node_ptr[h + 1] - node_ptr[h]) - ns
            rows, col = linear_sum_assignment(mat[mat_ptr[h]:mat_ptr[h + 1]].reshape(ns, nt))
            cols[node_ptr[h] + rows] = col
        _apply(cols, mat, mat_ptr, nodes, node_ptr, n_src, parent, used)
    return _undecided_to_none(parent)
