"""Flow linker: the exact optimum of the window as a min-cost flow (OR-Tools ``SimpleMinCostFlow``).

The objective is the one of :mod:`edgetrack.runtime.link.costs` (link, appearance, disappearance
and division costs, as integers). After pruning and the exact star decisions
(:func:`~edgetrack.runtime.link.costs.prepare`), the remaining edges form a bipartite network:

    S --(cap 1, cost first[j])--> parent j --(cap 1, cost C_e - A)--> child i --(cap 1, cost 0)--> T

plus an arc S -> T of cost 0 that carries the flow of parents left without a child. ``first[j]``
is ``-D`` for a parent with no committed child (its track does not end) or ``+V`` for one with a
committed child (a division). With ``max_children=2`` a parent with no committed child gets a
second arc S -> j of cost ``+V``. One unit of flow through j is one child, and since the second
unit costs more than the first (``V >= -D``), the flow takes them in that order: the minimum-cost
flow is the optimum of the integer objective, divisions included, in polynomial time.

Linking without divisions (``max_children=1``) is this linker's main use: ``linker="ilp"`` with
``max_children=1`` is solved here (see :mod:`edgetrack.runtime.link.ilp`).
"""

from __future__ import annotations

import time

import numpy as np
from edgetrack.runtime.errors import EdgetrackError
from edgetrack.runtime.link.costs import (
    IlpConfig,
    LinkInfo,
    Prepared,
    find_conflicts,
    prepare,
    solution_cost,
    units,
)
from edgetrack.runtime.link.problem import NO_PARENT, UNDECIDED, validate_link_inputs

__all__ = ["link_flow"]


def solve_flow(prep: Prepared, config: IlpConfig) -> np.ndarray:
    """Decide the solver edges of ``prep`` by min-cost flow; returns the completed parent array."""
    from ortools.graph.python import min_cost_flow

    parent = prep.parent.copy()
    m = prep.src.shape[0]
    if m:
        parents, p_node = np.unique(prep.src, return_inverse=True)
        children, c_node = np.unique(prep.dst, return_inverse=True)
        n_p, n_c = parents.shape[0], children.shape[0]
        first = prep.first[parents]
        # a parent with two free slots (no committed child, max_children=2) may take a second child at cost V
        second = prep.cap[parents] >= 2
        n_2 = int(second.sum())
        supply = n_p + n_2
        # flow nodes: 0 = S, 1 = T, then the parents, then the children
        pn = 2 + np.arange(n_p, dtype=np.int64)
        cn = 2 + n_p + np.arange(n_c, dtype=np.int64)
        i64 = np.int64
        starts = np.concatenate([np.zeros(n_p + n_2, i64), pn[p_node], cn, [0]]).astype(i64)
        ends = np.concatenate([pn, pn[second], cn[c_node], np.ones(n_c, i64), [1]]).astype(i64)
        caps = np.concatenate([np.ones(n_p + n_2 + m + n_c, i64), [supply]]).astype(i64)
        costs = np.concatenate([first, np.full(n_2, units(config).V, i64), prep.cost, np.zeros(n_c + 1, i64)])
        flow = min_cost_flow.SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(starts, ends, caps, costs.astype(i64))
        flow.set_nodes_supplies(np.array([0, 1], np.int64), np.array([supply, -supply], np.int64))
        status = flow.solve()
        if status != flow.OPTIMAL:
            raise EdgetrackError(f"min-cost flow failed with status {status} (please report this)")
        used = flow.flows(np.arange(supply, supply + m, dtype=np.int64)) > 0
        parent[prep.dst[used]] = prep.src[used]
    parent[parent == UNDECIDED] = NO_PARENT
    return parent


def link_flow(
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
    config: IlpConfig | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, LinkInfo]:
    """Exact min-cost-flow linking of a window; returns parent: int64 (n,) (parent index or -1).

    Arguments as in :mod:`edgetrack.runtime.link.registry` (node_frame int64 (n,) frames; src/dst/dt int64
    (m,); score float64 (m,) in [0, 1]; locked_parent int64 (n,), UNDECIDED = -2; child_count int64
    (n,)), plus ``config`` (:class:`~edgetrack.runtime.link.costs.IlpConfig`: the costs; the solver
    settings are unused) and ``return_info`` (also return a
    :class:`~edgetrack.runtime.link.costs.LinkInfo`). ``dist`` is accepted for the common signature;
    ties of the integer objective are broken by the canonical edge order (dst, then src), so the
    answer does not depend on the order of the edge arrays. ``max_children`` 1 or 2 (exact either way).
    """
    t0 = time.perf_counter()
    config = config if config is not None else IlpConfig()
    v = validate_link_inputs(node_frame, src, dst, dt, score, locked_parent, child_count,
                             max_children=max_children, min_score=min_score, dist=dist)
    prep = prepare(v, int(max_children), float(min_score), config)
    parent = solve_flow(prep, config)
    if not return_info:
        return parent
    cost = solution_cost(parent, v, int(max_children), config, float(min_score))
    info = LinkInfo("flow" if prep.src.size else "none", "optimal", False, cost, cost, time.perf_counter() - t0,
                    prep.n_edges, int(prep.src.size), find_conflicts(prep, parent, v.child_count))
    return parent, info
