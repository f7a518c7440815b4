"""Linkers by name, and the input checks every linker shares.

Every linker has one signature::

    link(node_frame, src, dst, dt, score, locked_parent, child_count,
         *, max_children=1, min_score=1e-6, dist=None) -> parent

node_frame: int64 (n,) frame of each node (detection) of the window.
src, dst, dt: int64 (m,) candidate edges (node indices; dt = node_frame[dst] - node_frame[src] >= 1 frames).
score: float64 (m,) link probability in [0, 1].
locked_parent: int64 (n,) a committed parent index (>= 0), -1 committed "no parent", or -2 undecided.
child_count: int64 (n,) children already committed to each node.
dist: optional float64 (m,) edge length in px, used only to break ties.
Returns parent: int64 (n,), the parent index of each node or -1; locked entries are unchanged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numba
import numpy as np

from .config import require
from .errors import ConfigError, InputError
from .link_flow import link_flow
from .link_greedy import link_greedy
from .link_ilp import link_ilp
from .link_lap import link_lap
from .link_magik_post import link_magik_post
from . import magik as _magik  # noqa: F401  registers the "magik" scorer (its model loads on first use)
from . import cell_assoc as _cell_assoc  # noqa: F401  registers the "transformer" scorer (loads on first use)

__all__ = ["LINKERS", "get_linker", "validate_link_inputs", "LinkInputs", "UNDECIDED", "NO_PARENT"]

UNDECIDED = -2
NO_PARENT = -1

LINKERS: dict[str, Callable[..., np.ndarray]] = {
    "greedy": link_greedy,
    "lap": link_lap,
    "flow": link_flow,  # exact min-cost flow (link_flow.py)
    "ilp": link_ilp,  # CP-SAT with divisions; max_children=1 goes to the flow (link_ilp.py)
    "magik_post": link_magik_post,
}


def get_linker(name: str) -> Callable[..., np.ndarray]:
    """The linker function registered under ``name`` (see :data:`LINKERS`)."""
    try:
        return LINKERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown linker {name!r}; known linkers are {', '.join(sorted(LINKERS))}") from None


class LinkInputs(NamedTuple):
    """Checked, contiguous linker inputs (int64 / float64); ``dist`` is zeros when not given."""

    node_frame: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    dt: np.ndarray
    score: np.ndarray
    locked_parent: np.ndarray
    child_count: np.ndarray
    dist: np.ndarray


def _int_array(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _float_array(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _find_problem(node_frame, src, dst, dt, score, dist, locked_parent, child_count):
    """(code, index) of the first invalid value, or (0, -1). One pass over edges and nodes."""
    n = node_frame.shape[0]
    for e in range(src.shape[0]):
        s = src[e]
        d = dst[e]
        if s < 0 or s >= n:
            return 1, e
        if d < 0 or d >= n:
            return 2, e
        sc = score[e]
        if not np.isfinite(sc):
            return 3, e
        if sc < 0.0 or sc > 1.0:
            return 4, e
        if node_frame[d] <= node_frame[s]:
            return 5, e
        if dt[e] != node_frame[d] - node_frame[s]:
            return 6, e
        if not np.isfinite(dist[e]) or dist[e] < 0.0:
            return 7, e
    for i in range(n):
        p = locked_parent[i]
        if p < -2 or p >= n:
            return 8, i
        if p >= 0 and node_frame[p] >= node_frame[i]:
            return 9, i
        if child_count[i] < 0:
            return 10, i
    return 0, -1


_PROBLEMS = {
    1: "edge {i}: src index out of range [0, {n})",
    2: "edge {i}: dst index out of range [0, {n})",
    3: "edge {i}: score is NaN or infinite",
    4: "edge {i}: score outside [0, 1]",
    5: "edge {i}: goes backwards or sideways in time (node_frame[dst] <= node_frame[src])",
    6: "edge {i}: dt differs from node_frame[dst] - node_frame[src]",
    7: "edge {i}: dist is NaN, infinite or negative",
    8: "node {i}: locked_parent must be -2 (undecided), -1 (none) or a node index < {n}",
    9: "node {i}: its locked parent is not in an earlier frame",
    10: "node {i}: child_count is negative",
}


def validate_link_inputs(
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
) -> LinkInputs:
    """Check a linker's inputs (see the module docstring) and return them as contiguous arrays.

    Raises InputError for bad data (shapes, lengths, dtypes, NaN or out-of-range scores,
    indices out of range, edges not going forward in time, inconsistent dt) and ConfigError
    for max_children < 1 or min_score outside [0, 1).
    """
    require(
        isinstance(max_children, (int, np.integer)) and not isinstance(max_children, bool) and max_children >= 1,
        f"max_children must be an integer >= 1, got {max_children!r}",
    )
    require(
        isinstance(min_score, (int, float, np.integer, np.floating)) and 0.0 <= min_score < 1.0,
        f"min_score must be in [0, 1), got {min_score!r}",
    )
    nf = _int_array("node_frame", node_frame)
    n = nf.shape[0]
    s = _int_array("src", src)
    m = s.shape[0]
    d = _int_array("dst", dst)
    t = _int_array("dt", dt)
    sc = _float_array("score", score)
    di = np.zeros(m, dtype=np.float64) if dist is None else _float_array("dist", dist)
    for name, arr in (("dst", d), ("dt", t), ("score", sc), ("dist", di)):
        if arr.shape[0] != m:
            raise InputError(f"{name} has {arr.shape[0]} values but src has {m} (edge arrays differ in length)")
    lp = _int_array("locked_parent", locked_parent)
    cc = _int_array("child_count", child_count)
    for name, arr in (("locked_parent", lp), ("child_count", cc)):
        if arr.shape[0] != n:
            raise InputError(f"{name} has {arr.shape[0]} values but node_frame has {n}")
    code, i = _find_problem(nf, s, d, t, sc, di, lp, cc)
    if code:
        raise InputError(_PROBLEMS[code].format(i=i, n=n))
    return LinkInputs(nf, s, d, t, sc, lp, cc, di)
