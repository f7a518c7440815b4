"""ILP linker: the window's optimum with divisions, as a CP-SAT integer program (OR-Tools).

The objective is the one of :mod:`edgetrack.runtime.link.costs`: link costs from the edge scores,
appearance, disappearance and division costs, all integers. After pruning and the exact star
decisions (:func:`~edgetrack.runtime.link.costs.prepare`), the model holds, for the remaining edges:

- a binary variable ``x_e`` per edge (the link is made);
- at most one parent per detection: ``sum(x_e into i) <= 1`` (merges are never made);
- for a parent j with two free child slots (no committed child, ``max_children=2``) and two or
  more edges, two binary node variables: ``has_child_j`` and ``divides_j`` with
  ``sum(x_e out of j) = has_child_j + divides_j`` and ``divides_j -> has_child_j``;
  other parents get ``sum(x_e out of j) <= 1``;
- the objective ``sum (C_e - A) x_e - D has_child_j + V divides_j`` (the appearance term of a
  detection, ``A (1 - sum x_e into i)``, is folded into its edges' costs; a parent with one free
  slot has its ``-D`` or ``+V`` folded in the same way), which differs from
  :func:`~edgetrack.runtime.link.costs.link_cost` by a constant.

Components of the candidate graph share no constraint, so they are solved as separate models,
grouped in batches of about 1000 edges, smallest first. CP-SAT runs with the LP relaxation at every
node (``linearization_level=2``), one worker and a fixed seed (``deterministic``), a warm start from
the greedy linker (``hint_greedy``: the greedy algorithm of
:mod:`~edgetrack.runtime.link.greedy` on the same edges, cheapest first, one child per parent, then
second children where a division pays), and the time limit ``time_limit`` for the whole call (model
building included; the solver stops at its next check, so a call can overrun it by a fraction of a
second on large windows). When the limit is hit, each batch keeps
the best solution found, and batches without one (or not reached) keep the greedy answer; the call
returns with an :class:`~edgetrack.runtime.link.costs.IlpTimeoutWarning`: the linker never stalls
a stream.

Without divisions (``max_children=1``) the same objective is a min-cost flow, solved exactly and
far faster by :func:`~edgetrack.runtime.link.flow.link_flow`; ``link_ilp`` dispatches there unless
``flow_without_divisions=False``. (With divisions the objective is a flow too, a convex cost on the
second child, and ``link_flow`` accepts ``max_children=2``; the ILP is the formulation that stays
valid when constraints outside the network structure are added.)
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from edgetrack.runtime.link.components import edge_components
from edgetrack.runtime.link.costs import (
    IlpConfig,
    IlpTimeoutWarning,
    LinkInfo,
    Prepared,
    find_conflicts,
    prepare,
    solution_cost,
    units,
)
from edgetrack.runtime.link.flow import solve_flow
from edgetrack.runtime.link.greedy import greedy_parents
from edgetrack.runtime.link.problem import NO_PARENT, UNDECIDED, validate_link_inputs

__all__ = ["link_ilp", "IlpConfig", "IlpTimeoutWarning", "LinkInfo"]

# Independent components are solved in batches of about this many edges, smallest first, so that
# a time-out leaves only the last (largest) batches to the greedy answer.
_BATCH_EDGES = 1000


def _greedy_part(prep: Prepared, max_children: int, child_count: np.ndarray, config: IlpConfig) -> np.ndarray:
    """The greedy answer on the solver edges of ``prep`` (the warm start and the time-out fallback).

    The greedy algorithm of :mod:`~edgetrack.runtime.link.greedy` (cheapest edge first) gives every
    parent at most one child; with ``max_children=2`` a second greedy pass then adds second children
    along the edges where a division lowers the cost (``C_e - A + V < 0``). Returns int64 (n,): parent
    indices, -1 where the greedy made no link (decided nodes: -1, they are not the solver's).
    """
    m = prep.src.shape[0]
    undecided = np.where(prep.parent == UNDECIDED, UNDECIDED, NO_PARENT).astype(np.int64)
    # a score in (0, 1] that falls as the cost rises: the greedy takes the cheapest edge first
    order = np.exp(-(prep.cost - prep.cost.min()) / (float(np.ptp(prep.cost)) + 1.0)) if m else np.zeros(0)
    ones, zeros = np.ones(m, np.int64), np.zeros(m)
    first = greedy_parents(prep.src, prep.dst, ones, order, zeros, undecided, child_count, 1, -1.0)
    if max_children < 2:
        return first
    second = prep.cost + units(config).V < 0
    if not second.any():
        return first
    locked = np.where(first >= 0, first, undecided)
    children = child_count + np.bincount(first[first >= 0], minlength=child_count.shape[0])
    out = greedy_parents(prep.src[second], prep.dst[second], ones[second], order[second], zeros[second], locked,
                  children, max_children, -1.0)
    out[prep.parent != UNDECIDED] = -1
    return out


def _two_slot(prep: Prepared, n: int) -> np.ndarray:
    """bool (n,): parents modelled with has_child / divides variables (two free slots, >= 2 edges)."""
    out_degree = np.bincount(prep.src, minlength=n)
    return (prep.cap >= 2) & (out_degree >= 2)


def _model_value(prep: Prepared, parent: np.ndarray, config: IlpConfig) -> int:
    """The CP-SAT objective of ``parent`` (see :func:`_solve_cpsat`), for the solver edges only."""
    D, V = units(config).D, units(config).V
    n = parent.shape[0]
    chosen = parent[prep.dst] == prep.src
    k = np.bincount(prep.src[chosen], minlength=n)
    two = _two_slot(prep, n)
    one = ~two
    return (int(prep.cost[chosen].sum()) + int((prep.first[one] * k[one]).sum())
            - D * int(np.count_nonzero(two & (k >= 1))) + V * int(np.count_nonzero(two & (k >= 2))))


def _batches(prep: Prepared, n: int) -> list[np.ndarray]:
    """The solver edges grouped by connected component into batches of about ``_BATCH_EDGES`` edges,
    smallest components first (edge indices ascending within a batch)."""
    m = prep.src.shape[0]
    grouped, ptr = edge_components(np.arange(m, dtype=np.int64), prep.src, prep.dst, n)
    sizes = np.diff(ptr)
    batches: list[np.ndarray] = []
    current: list[np.ndarray] = []
    count = 0
    for c in np.argsort(sizes, kind="stable").tolist():
        current.append(grouped[ptr[c]:ptr[c + 1]])
        count += int(sizes[c])
        if count >= _BATCH_EDGES:
            batches.append(np.sort(np.concatenate(current)))
            current, count = [], 0
    if current:
        batches.append(np.sort(np.concatenate(current)))
    return batches


def _solve_batch(edges: np.ndarray, prep: Prepared, two: np.ndarray, greedy: np.ndarray, config: IlpConfig,
                 remaining: float) -> tuple[np.ndarray, str, int | None]:
    """CP-SAT on the solver edges ``edges`` (whole components) of ``prep``.

    Returns (chosen, status, bound): bool per edge, "optimal", "feasible" or "fallback" (the greedy
    answer: no solution in ``remaining`` seconds), and a lower bound of the batch's model objective or None.
    """
    from ortools.sat.python import cp_model

    D, V = units(config).D, units(config).V
    src, dst = prep.src[edges], prep.dst[edges]
    m = src.shape[0]
    greedy_chosen = greedy[dst] == src
    greedy_children = np.bincount(src[greedy_chosen], minlength=prep.parent.shape[0])
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{e}") for e in range(m)]
    coeffs = prep.cost[edges].copy()
    node_vars: list = []
    node_coeffs: list[int] = []
    node_hints: list[int] = []
    # at most one parent per child (edges into one child are consecutive: canonical order)
    bounds = np.r_[np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]]), m].tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a > 1:
            model.add_at_most_one(x[a:b])
    # children per parent
    by_src = np.argsort(src, kind="stable")
    s_sorted = src[by_src]
    bounds = np.r_[np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]]), m].tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        out = by_src[a:b].tolist()
        j = int(s_sorted[a])
        if two[j]:
            has_child = model.new_bool_var(f"c{j}")
            divides = model.new_bool_var(f"d{j}")
            model.add(sum(x[e] for e in out) == has_child + divides)
            model.add_implication(divides, has_child)
            node_vars += [has_child, divides]
            node_coeffs += [-D, V]
            node_hints += [int(greedy_children[j] >= 1), int(greedy_children[j] >= 2)]
        else:
            if b - a > 1:
                model.add_at_most_one([x[e] for e in out])
            coeffs[out] += prep.first[j]
    if config.hint_greedy:  # the whole greedy solution as the hint (written to the proto in one go)
        hint = model.proto.solution_hint
        hint.vars.extend([v.index for v in x + node_vars])
        hint.values.extend(greedy_chosen.astype(np.int64).tolist() + node_hints)
    model.minimize(cp_model.LinearExpr.weighted_sum(x + node_vars, coeffs.tolist() + node_coeffs))

    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = remaining
    params.linearization_level = 2  # the LP relaxation is (nearly) integral here: use it everywhere
    params.cp_model_probing_level = 0  # probing and symmetry detection cost more than they save here
    params.symmetry_level = 0
    params.random_seed = int(config.seed)
    params.num_workers = 1 if config.deterministic else 0
    status = solver.solve(model)
    bound = int(np.ceil(solver.best_objective_bound - 1e-9)) if np.isfinite(solver.best_objective_bound) else None
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return greedy_chosen, "fallback", bound
    chosen = np.fromiter((solver.boolean_value(v) for v in x), dtype=bool, count=m)
    return chosen, "optimal" if status == cp_model.OPTIMAL else "feasible", bound


def _solve_cpsat(prep: Prepared, max_children: int, child_count: np.ndarray, config: IlpConfig,
                 deadline: float) -> tuple[np.ndarray, str, int | None]:
    """CP-SAT on the solver edges of ``prep``, batch by batch (components are independent), until
    ``deadline``; batches left when it passes get the greedy answer.

    Returns (parent, status, bound): status "optimal" (every batch), "fallback" (no batch got a
    CP-SAT solution: the greedy answer) or "feasible" (otherwise), and a lower bound of the model
    objective (:func:`_model_value`) or None.
    """
    n = prep.parent.shape[0]
    greedy = _greedy_part(prep, max_children, child_count, config)
    two = _two_slot(prep, n)
    chosen = greedy[prep.dst] == prep.src
    statuses = []
    bound: int | None = 0
    for edges in _batches(prep, n):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            statuses.append("fallback")
            bound = None
            continue
        chosen[edges], status, batch_bound = _solve_batch(edges, prep, two, greedy, config, remaining)
        statuses.append(status)
        bound = None if bound is None or batch_bound is None else bound + batch_bound
    if all(s == "optimal" for s in statuses):
        status = "optimal"
    elif all(s == "fallback" for s in statuses):
        status = "fallback"
    else:
        status = "feasible"
    parent = prep.parent.copy()
    parent[prep.dst[chosen]] = prep.src[chosen]
    parent[parent == UNDECIDED] = NO_PARENT
    return parent, status, bound


def link_ilp(
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
    """Globally optimal linking of a window (divisions with ``max_children=2``); returns parent int64 (n,).

    Arguments as in :mod:`edgetrack.runtime.link.registry` (node_frame int64 (n,) frames; src/dst/dt int64
    (m,); score float64 (m,) in [0, 1]; locked_parent int64 (n,), UNDECIDED = -2; child_count int64
    (n,)), plus ``config`` (:class:`~edgetrack.runtime.link.costs.IlpConfig`, the costs and solver
    settings) and ``return_info`` (also return a :class:`~edgetrack.runtime.link.costs.LinkInfo`:
    solver, status, time-out flag, objective, bound, conflicts). ``dist`` is accepted for the common
    signature; ties are broken by the canonical edge order (dst, then src).

    ``max_children=1`` is solved as a min-cost flow (same optimum) unless
    ``config.flow_without_divisions`` is False. On a time-out an
    :class:`~edgetrack.runtime.link.costs.IlpTimeoutWarning` is issued and the best feasible answer
    (or the greedy one) is returned.
    """
    t0 = time.perf_counter()
    config = config if config is not None else IlpConfig()
    v = validate_link_inputs(node_frame, src, dst, dt, score, locked_parent, child_count,
                             max_children=max_children, min_score=min_score, dist=dist)
    max_children = int(max_children)
    prep = prepare(v, max_children, float(min_score), config)
    if prep.src.size == 0:
        parent, solver, status, bound = solve_flow(prep, config), "none", "optimal", None
    elif max_children == 1 and config.flow_without_divisions:
        parent, solver, status, bound = solve_flow(prep, config), "flow", "optimal", None
    else:
        parent, status, bound = _solve_cpsat(prep, max_children, v.child_count, config, t0 + config.time_limit)
        solver = "cp-sat"
    timed_out = status != "optimal"
    if not (return_info or timed_out):
        return parent
    cost = solution_cost(parent, v, max_children, config, float(min_score))
    if status == "optimal":
        bound_total = cost
    elif bound is None:
        bound_total = None
    else:
        # the model objective and the full cost differ by a constant (cost of the answer - its model value)
        bound_total = min(cost, cost - (_model_value(prep, parent, config) - bound))
    info = LinkInfo(solver, status, timed_out, cost, bound_total, time.perf_counter() - t0, prep.n_edges,
                    int(prep.src.size), find_conflicts(prep, parent, v.child_count))
    if timed_out:
        what = ("returning the best solution found (the greedy answer where none was)" if status == "feasible"
                else "no solution found in time, returning the greedy answer")
        warnings.warn(IlpTimeoutWarning(f"ILP linker: time limit of {config.time_limit:g} s reached; {what}", info),
                      stacklevel=2)
    return (parent, info) if return_info else parent
