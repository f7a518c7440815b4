"""The pieces of the tracker's sliding window: a frame's block of detections, the cap on
candidate parents, and the size of the largest linking sub-problem."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from edgetrack.runtime.graph.candidates import CandidateEdges
from edgetrack.runtime.link.components import largest_component
from edgetrack.runtime.link.problem import UNDECIDED

__all__ = ["Block", "cap_candidates", "largest_frame_component"]


@dataclasses.dataclass
class Block:
    """The detections of one frame inside the window (ids are stream-wide)."""

    frame: int
    first_id: int
    values: np.ndarray  # float64 (n, F): y, x, features
    locked_parent: np.ndarray  # int64 (n,) global id, -1 none, UNDECIDED
    child_count: np.ndarray  # int64 (n,)
    track_id: np.ndarray  # int64 (n,), -1 until committed
    edges_in: CandidateEdges  # edges whose dst is in this block; src/dst global ids
    score_in: np.ndarray  # float64 (m,)
    motion: np.ndarray  # float64 (n, 2 + d): each detection's track motion (stream/motion.py), zeros until committed

    @property
    def n(self) -> int:
        return self.values.shape[0]


def cap_candidates(edges: CandidateEdges, score: np.ndarray, first_new: int, n_new: int,
                    k: int) -> tuple[CandidateEdges, np.ndarray]:
    """Keep at most ``k`` candidate parents per new detection: the best scored (then the nearest)."""
    if len(edges.src) <= k:
        return edges, score
    counts = np.bincount(edges.dst - first_new, minlength=n_new)
    if counts.max() <= k:
        return edges, score
    order = np.lexsort((edges.dist, -score, edges.dst))  # by target, best first
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[edges.dst[order] - first_new]
    keep = np.sort(order[rank < k])  # back to (dst, src) order
    return CandidateEdges(*(a[keep] for a in edges)), score[keep]


def largest_frame_component(node_frame: np.ndarray, src: np.ndarray, dst: np.ndarray,
                             locked: np.ndarray) -> int:
    """Size of the largest connected component of the per-target-frame assignment problems.

    A source takes part in each target frame's problem separately, so it counts once per target
    frame; only edges into undecided detections count. Union-find in Numba (microseconds).
    """
    if len(src) == 0:
        return 0
    return int(_largest_component_kernel(node_frame, src, dst, locked))


@numba.njit(cache=True, nogil=True)
def _largest_component_kernel(node_frame, src, dst, locked):
    n = node_frame.shape[0]
    fmin = node_frame.min()
    nf = node_frame.max() - fmin + 1
    roles_src = np.empty(src.shape[0], np.int64)  # a source's role in each target frame: its own vertex
    roles_dst = np.empty(src.shape[0], np.int64)
    k = 0
    for e in range(src.shape[0]):
        d = dst[e]
        if locked[d] != UNDECIDED:
            continue
        roles_src[k] = n + src[e] * nf + (node_frame[d] - fmin)
        roles_dst[k] = d
        k += 1
    return largest_component(roles_src[:k], roles_dst[:k], n + n * nf)
