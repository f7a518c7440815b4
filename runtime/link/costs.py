"""The cost model of the global linkers ('flow' and 'ilp'): one integer objective over a window.

A solution gives every undecided detection a parent or none (see :mod:`edgetrack.runtime.link.registry`
for the arrays). Its cost, in integer units of ``1 / cost_scale`` nats, is the sum of

- ``C_e`` for every link made (edge ``e``): ``-ln p`` (``edge_cost="log"``) or ``-ln(p / (1 - p))``
  (``edge_cost="logit"``, with ``p`` capped at ``1 - 1e-12``), where ``p`` is the edge's score;
- ``A`` (``appearance_cost``) for every undecided detection left without a parent (a track start);
- ``D`` (``disappearance_cost``) for every detection with no child at all, counting the children
  committed before (``child_count``) (a track end);
- ``V`` (``division_cost``) for every detection whose second child is made in this call (a division).

Each of the four terms is rounded to an integer separately (``round(cost_scale * value)``), so
every solver minimises exactly the same integer objective and :func:`link_cost` recomputes it.

A link is worth making only where it lowers the cost: an edge into a childless parent must have
``C_e < A + D``, a second child ``C_e < A - V``. Edges that cannot pass this test, that score at or
below ``min_score``, that lead into a locked detection or leave a detection without a free child
slot are removed before solving. The remaining edges fall into connected components (the parent
and child roles of detections linked by edges); a component with a single parent or a single
child is a "star" and is solved exactly here, the rest go to a solver. :func:`prepare` does all of
this; :mod:`edgetrack.runtime.link.flow` and :mod:`edgetrack.runtime.link.ilp` solve what remains.

Merges are never made (a detection has at most one parent). Where two or more parents have the
same detection as their best edge and one of them ends up with no child, the detection is
reported as a conflict (:func:`find_conflicts`): a likely merge that was refused.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numba
import numpy as np
from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.link.components import edge_components, preferred
from edgetrack.runtime.link.problem import UNDECIDED, validate_link_inputs

__all__ = ["IlpConfig", "IlpTimeoutWarning", "LinkInfo", "link_cost", "edge_costs"]

_LOGIT_CAP = 1.0 - 1e-12  # scores are capped here for the logit cost (p = 1 would cost -inf)


@dataclasses.dataclass(frozen=True)
class IlpConfig(StageConfig):
    """Costs and solver settings of the 'flow' and 'ilp' linkers (costs in nats, times in seconds).

    edge_cost: "log" (a link costs -ln p) or "logit" (-ln(p / (1 - p))), p the edge's score.
    appearance_cost: cost of an undecided detection without a parent (a track start), nats >= 0.
    disappearance_cost: cost of a detection without any child (a track end), nats >= 0.
    division_cost: extra cost of a second child (a division), nats >= 0. A division replaces a
        track start, so it is made only where the second daughter's edge costs less than
        ``appearance_cost - division_cost``.
    cost_scale: integer cost units per nat (the objective is an integer; 1000 = 0.001 nat steps).
    time_limit: wall-clock seconds one 'ilp' call may take, model building included; then the best
        solution found is returned (or the greedy one) with an :class:`IlpTimeoutWarning`.
    deterministic: CP-SAT on one worker with a fixed seed (same input, same answer, unless the
        time limit cuts the search); False uses every core.
    seed: CP-SAT random seed.
    hint_greedy: start CP-SAT from the greedy solution (a warm start, a complete solution hint).
    flow_without_divisions: 'ilp' with max_children=1 is solved as a min-cost flow (exact, much
        faster; the same optimum); False forces CP-SAT (for checks).
    """

    edge_cost: str = "log"
    appearance_cost: float = 3.0
    disappearance_cost: float = 3.0
    division_cost: float = 1.0
    cost_scale: float = 1000.0
    time_limit: float = 1.0
    deterministic: bool = True
    seed: int = 0
    hint_greedy: bool = True
    flow_without_divisions: bool = True

    def validate(self) -> None:
        require(self.edge_cost in ("log", "logit"), f"edge_cost must be 'log' or 'logit', got {self.edge_cost!r}")
        for name in ("appearance_cost", "disappearance_cost", "division_cost"):
            value = getattr(self, name)
            require(_is_number(value) and 0.0 <= value < math.inf, f"{name} must be a finite number >= 0 nats, got {value!r}")
        require(_is_number(self.cost_scale) and 1.0 <= self.cost_scale <= 1e6,
                f"cost_scale must be in [1, 1e6] integer units per nat, got {self.cost_scale!r}")
        require(_is_number(self.time_limit) and 0.0 < self.time_limit < math.inf,
                f"time_limit must be a finite number of seconds > 0, got {self.time_limit!r}")
        for name in ("deterministic", "hint_greedy", "flow_without_divisions"):
            require(isinstance(getattr(self, name), bool), f"{name} must be True or False, got {getattr(self, name)!r}")
        require(isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**31,
                f"seed must be an integer in [0, 2**31), got {self.seed!r}")

    def units(self, nats: float) -> int:
        """``nats`` in integer cost units (rounded)."""
        return int(round(float(nats) * self.cost_scale))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class IlpTimeoutWarning(UserWarning):
    """The ILP solver hit its time limit: the answer is feasible but may not be optimal.

    ``info`` holds the :class:`LinkInfo` of the call (``status`` "feasible" or "fallback").
    """

    def __init__(self, message: str, info: "LinkInfo | None" = None) -> None:
        super().__init__(message)
        self.info = info


@dataclasses.dataclass(frozen=True)
class LinkInfo:
    """What a 'flow' or 'ilp' call did (returned with ``return_info=True``).

    solver: "flow", "cp-sat", or "none" (nothing left for a solver: stars only).
    status: "optimal"; "feasible" (time limit hit, best solution found returned); "fallback" (no
        solution in time, the greedy answer returned).
    timed_out: True for "feasible" and "fallback".
    cost: integer objective of the returned answer (see :func:`link_cost`; units 1/cost_scale nats).
    bound: a proven lower bound of the objective (equal to ``cost`` when optimal; None if unknown).
    seconds: wall-clock time of the call.
    n_edges: edges left after pruning; n_solver_edges: those the solver had to decide.
    conflicts: int64 (k,) detections two or more parents wanted (best edge) where one of those
        parents was left without a child (refused merges).
    """

    solver: str
    status: str
    timed_out: bool
    cost: int
    bound: int | None
    seconds: float
    n_edges: int
    n_solver_edges: int
    conflicts: np.ndarray


def edge_costs(score: np.ndarray, config: IlpConfig) -> np.ndarray:
    """float64 (m,) link costs in nats of scores in (0, 1] (see the module docstring)."""
    p = np.asarray(score, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if config.edge_cost == "log":
            return -np.log(p)
        q = np.minimum(p, _LOGIT_CAP)
        return -np.log(q) + np.log1p(-q)


class Prepared(NamedTuple):
    """A window after pruning and star solving (see :func:`prepare`).

    parent: int64 (n,) locked parents and star decisions; -2 elsewhere (for the solver, or no parent).
    src, dst: int64 (k,) edges left for the solver (canonical order: by dst, then src).
    cost: int64 (k,) ``C_e - A`` of those edges (the link replaces a track start).
    first: int64 (n,) change of cost of a node's first new child: ``-D`` (no committed child) or
        ``+V`` (one committed child and max_children=2).
    cap: int64 (n,) free child slots.
    n_edges: edges after pruning, before star solving.
    usable_src, usable_dst, usable_score, usable_dt, usable_dist: the edges passing the min_score,
        locked and free-slot tests, before the cost test (for :func:`find_conflicts`).
    """

    parent: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    cost: np.ndarray
    first: np.ndarray
    cap: np.ndarray
    n_edges: int
    usable_src: np.ndarray
    usable_dst: np.ndarray
    usable_score: np.ndarray
    usable_dt: np.ndarray
    usable_dist: np.ndarray


class Units(NamedTuple):
    """The objective's integer terms: appearance A, disappearance D, division V."""

    A: int
    D: int
    V: int


def units(config: IlpConfig) -> Units:
    """The appearance, disappearance and division costs of ``config`` in integer units."""
    return Units(config.units(config.appearance_cost), config.units(config.disappearance_cost),
                 config.units(config.division_cost))


def integer_edge_costs(score: np.ndarray, config: IlpConfig) -> np.ndarray:
    """int64 (m,) ``round(cost_scale * C_e)`` of scores in (0, 1] (at most 745 nats each: no overflow)."""
    return np.rint(edge_costs(score, config) * config.cost_scale).astype(np.int64)


def prepare(v, max_children: int, min_score: float, config: IlpConfig) -> Prepared:
    """Prune the validated inputs ``v`` (:class:`~edgetrack.runtime.link.problem.LinkInputs`) and solve the stars."""
    A, D, V = units(config)
    n = v.node_frame.shape[0]
    cap = np.maximum(max_children - v.child_count, 0)
    first = np.where(v.child_count == 0, -D, V).astype(np.int64)
    usable = (v.score > min_score) & (v.locked_parent[v.dst] == UNDECIDED) & (cap[v.src] > 0) if v.src.size else np.zeros(0, bool)
    u_src, u_dst, u_score = v.src[usable], v.dst[usable], v.score[usable]
    u_dt, u_dist = v.dt[usable], v.dist[usable]
    cost = integer_edge_costs(u_score, config) - A
    keep = cost + first[u_src] < 0
    src, dst, cost = u_src[keep], u_dst[keep], cost[keep]
    # canonical order (dst, src, cost); a repeated (src, dst) pair keeps its cheapest edge
    order = np.lexsort((cost, src, dst))
    src, dst, cost = src[order], dst[order], cost[order]
    if src.size > 1:
        new = np.r_[True, (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])]
        src, dst, cost = src[new], dst[new], cost[new]
    parent = v.locked_parent.copy()
    hard = _solve_stars(src, dst, cost, first, cap, V, parent, n)
    return Prepared(parent, src[hard], dst[hard], cost[hard], first, cap, int(src.size),
                    u_src, u_dst, u_score, u_dt, u_dist)


@numba.njit(cache=True, nogil=True)
def _solve_stars(src, dst, cost, first, cap, V, parent, n):
    """Decide every component with one parent or one child exactly (in place in ``parent``);
    return a bool mask of the edges in the other components."""
    m = src.shape[0]
    hard = np.zeros(m, np.bool_)
    if m == 0:
        return hard
    grouped, ptr = edge_components(np.arange(m), src, dst, n)
    for c in range(ptr.shape[0] - 1):
        part = grouped[ptr[c]:ptr[c + 1]]
        one_src = True
        one_dst = True
        for e in part:
            if src[e] != src[part[0]]:
                one_src = False
            if dst[e] != dst[part[0]]:
                one_dst = False
        if one_dst:
            # one child: its cheapest parent (first-child cost included), ties to the earlier edge
            best = part[0]
            for e in part[1:]:
                if cost[e] + first[src[e]] < cost[best] + first[src[best]]:
                    best = e
            if cost[best] + first[src[best]] < 0:
                parent[dst[best]] = src[best]
        elif one_src:
            # one parent: its cheapest child, and a second one where a division pays
            s = src[part[0]]
            b1 = -1
            b2 = -1
            for e in part:
                if b1 < 0 or cost[e] < cost[b1]:
                    b2 = b1
                    b1 = e
                elif b2 < 0 or cost[e] < cost[b2]:
                    b2 = e
            if cost[b1] + first[s] < 0:
                parent[dst[b1]] = s
                if cap[s] >= 2 and b2 >= 0 and cost[b2] + V < 0:
                    parent[dst[b2]] = s
        else:
            for e in part:
                hard[e] = True
    return hard


def solution_cost(parent: np.ndarray, v, max_children: int, config: IlpConfig, min_score: float = 0.0) -> int:
    """Integer objective of ``parent`` for the validated inputs ``v`` (checks it is a valid answer:
    links only along edges scoring above ``min_score``)."""
    A, D, V = units(config)
    n = v.node_frame.shape[0]
    parent = np.asarray(parent)
    if parent.shape != (n,) or parent.dtype.kind not in "iu":
        raise InputError(f"parent must be an integer array of shape ({n},), got {parent.dtype} {parent.shape}")
    parent = parent.astype(np.int64)
    locked = v.locked_parent != UNDECIDED
    if np.any(parent[locked] != v.locked_parent[locked]):
        i = int(np.flatnonzero(parent[locked] != v.locked_parent[locked])[0])
        raise InputError(f"parent changes the locked parent of node {int(np.flatnonzero(locked)[i])}")
    if np.any((parent < -1) | (parent >= n)):
        raise InputError("parent holds values outside -1 .. n-1")
    undecided = np.flatnonzero(~locked)
    linked = undecided[parent[undecided] >= 0]
    total = A * int(undecided.size - linked.size)
    if linked.size:
        # the cheapest usable edge of each linked (parent, child) pair
        ok = v.score > min_score
        c = integer_edge_costs(v.score[ok], config)
        pair = v.src[ok] * n + v.dst[ok]
        order = np.lexsort((c, pair))
        pair_sorted = pair[order]
        want = parent[linked] * n + linked
        at = np.searchsorted(pair_sorted, want)
        found = at < pair_sorted.size
        found[found] = pair_sorted[at[found]] == want[found]
        if not found.all():
            i = int(linked[np.flatnonzero(~found)[0]])
            raise InputError(f"node {i}: its parent {int(parent[i])} is not joined to it by a candidate edge "
                             f"scoring above min_score={min_score:g}")
        total += int(c[order[at]].sum())
    new_children = np.bincount(parent[linked], minlength=n) if linked.size else np.zeros(n, np.int64)
    children = v.child_count + new_children
    if np.any(children[new_children > 0] > max_children):
        i = int(np.flatnonzero((children > max_children) & (new_children > 0))[0])
        raise InputError(f"node {i} gets {int(children[i])} children, more than max_children={max_children}")
    total += D * int(np.count_nonzero(children == 0))
    total += V * int(np.count_nonzero((new_children > 0) & (children == 2)))
    return total


def link_cost(
    node_frame: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    dt: np.ndarray,
    score: np.ndarray,
    locked_parent: np.ndarray,
    child_count: np.ndarray,
    parent: np.ndarray,
    *,
    max_children: int = 1,
    min_score: float = 1e-6,
    config: IlpConfig | None = None,
) -> int:
    """The integer objective (units of ``1 / config.cost_scale`` nats) of a linking ``parent``.

    Arguments as for a linker (:mod:`edgetrack.runtime.link.registry`) plus ``parent`` int64 (n,), the
    answer to evaluate. Every term of the module docstring is counted, constants included, so
    answers for the same window compare directly (e.g. a streaming result against the offline
    optimum on the whole movie). Raises InputError when ``parent`` is not a valid answer (changes a
    locked parent, uses a pair with no candidate edge, exceeds max_children).
    """
    config = config if config is not None else IlpConfig()
    v = validate_link_inputs(node_frame, src, dst, dt, score, locked_parent, child_count,
                             max_children=max_children, min_score=min_score)
    return solution_cost(parent, v, max_children, config, float(min_score))


@numba.njit(cache=True, nogil=True)
def _best_targets(src, dst, dt, score, dist, n):
    """Each source's most probable edge's target (-1 where it has none); ties as in the greedy linker."""
    best = np.full(n, -1, np.int64)
    best_e = np.full(n, -1, np.int64)
    for e in range(src.shape[0]):
        s = src[e]
        if best_e[s] < 0 or preferred(e, best_e[s], score, dt, dist, src, dst):
            best_e[s] = e
            best[s] = dst[e]
    return best


def find_conflicts(prep: Prepared, parent: np.ndarray, child_count: np.ndarray) -> np.ndarray:
    """int64 (k,) detections wanted by two or more parents (their best usable edge) where at
    least one of those parents got no child at all: merges the linker refused. Sorted."""
    n = parent.shape[0]
    if prep.usable_src.size == 0:
        return np.zeros(0, np.int64)
    best = _best_targets(prep.usable_src, prep.usable_dst, prep.usable_dt, prep.usable_score, prep.usable_dist, n)
    wanting = np.flatnonzero(best >= 0)
    counts = np.bincount(best[wanting], minlength=n)
    linked = parent[parent >= 0]
    children = child_count + (np.bincount(linked, minlength=n) if linked.size else 0)
    loser = wanting[(children[wanting] == 0) & (counts[best[wanting]] >= 2)]
    return np.unique(best[loser]).astype(np.int64)
