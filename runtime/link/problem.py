"""The linking problem every linker solves, its checks, and the result every linker returns.

A window's problem (:class:`LinkProblem`), all arrays contiguous::

    node_frame: int64 (n,) frame of each node (detection) of the window.
    src, dst, dt: int64 (m,) candidate edges (node indices; dt = node_frame[dst] - node_frame[src] >= 1 frames).
    score: float64 (m,) link probability in [0, 1].
    locked_parent: int64 (n,) a committed parent index (>= 0), NO_PARENT (-1) committed "no parent",
        or UNDECIDED (-2).
    child_count: int64 (n,) children already committed to each node.
    dist: float64 (m,) edge length in px, used only to break ties (zeros when unknown).
    max_children: 1 (one-to-one) or 2 (divisions); min_score: edges scoring at or below it are never used.

The answer (:class:`LinkResult`): ``parent`` int64 (n,), the parent index of each node or -1; locked
entries are unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numba
import numpy as np
from edgetrack.runtime.config import require
from edgetrack.runtime.errors import InputError

__all__ = ["UNDECIDED", "NO_PARENT", "LinkInputs", "LinkProblem", "LinkResult", "validate_link_inputs"]

UNDECIDED = -2  # a node whose parent the linker still has to decide
NO_PARENT = -1  # a node decided to start a track


class LinkResult(NamedTuple):
    """What a linker returns for one window.

    parent: int64 (n,) parent index of each node or -1. timed_out: the solver stopped at its time
    limit (the best solution found is used). conflicts: int64 (k,) nodes that several parents competed
    for (only the global linkers report them; empty otherwise).
    """

    parent: np.ndarray
    timed_out: bool = False
    conflicts: np.ndarray = np.zeros(0, np.int64)


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


@dataclasses.dataclass(frozen=True)
class LinkProblem:
    """One window's linking problem (the arrays are described in the module docstring).

    Build it with :meth:`from_arrays`, which checks every value; linkers then trust it.
    """

    inputs: LinkInputs
    max_children: int = 1
    min_score: float = 1e-6

    @classmethod
    def from_arrays(cls, node_frame: np.ndarray, src: np.ndarray, dst: np.ndarray, dt: np.ndarray,
                    score: np.ndarray, locked_parent: np.ndarray, child_count: np.ndarray, *,
                    max_children: int = 1, min_score: float = 1e-6, dist: np.ndarray | None = None) -> "LinkProblem":
        """Check the arrays (:func:`validate_link_inputs`) and wrap them."""
        inputs = validate_link_inputs(node_frame, src, dst, dt, score, locked_parent, child_count,
                                      max_children=max_children, min_score=min_score, dist=dist)
        return cls(inputs, int(max_children), float(min_score))

    @property
    def n_nodes(self) -> int:
        return int(self.inputs.node_frame.shape[0])
