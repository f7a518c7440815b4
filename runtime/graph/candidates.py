"""Candidate graph: every pair of detections that could be the same object a few frames apart.

An edge goes from an earlier detection ``src`` to a later detection ``dst`` when
``1 <= frame[dst] - frame[src] <= max_gap`` (frames) and their distance is at most
``max_distance`` (px, the bound is inclusive: ``dist <= max_distance``).

The search uses a cell list (cells of side ``max_distance``): both the earlier and the later
detections are radix-sorted by (frame, cell), and every later detection looks only at the 3 x 3
cells around its own in each of the ``max_gap`` earlier frames, through scan positions that only
move forward, so the cost is O(N max_gap + N k) for N detections with k neighbours each, never
O(N^2). The same Numba kernel serves the offline graph (:func:`build_graph`) and the
streaming one (:func:`edges_into_frame`), so both give the same edges.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import numba
import numpy as np

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.graph.defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MAX_GAP
from edgetrack.runtime.kernels.sorting import radix_argsort

__all__ = [
    "GraphConfig",
    "CandidateEdges",
    "empty_edges",
    "concat_edges",
    "edges_into_frame",
    "build_graph",
]

# Cells are a hair wider than max_distance so that rounding in (coordinate - origin) / cell can
# never put two points at distance exactly max_distance two cells apart.
_CELL_WIDENING = 1.0 + 1e-9
# Largest number of cells the int64 cell keys may address (with a margin below 2**63).
_MAX_CELLS = 4.0e18


@dataclasses.dataclass(frozen=True)
class GraphConfig(StageConfig):
    """Options of the candidate graph.

    max_distance: px, the largest displacement between two linked detections (inclusive).
    max_gap: frames, edges go from frame t to frames t+1 .. t+max_gap (1 = no gap closing).
    """

    max_distance: float = DEFAULT_MAX_DISTANCE
    max_gap: int = DEFAULT_MAX_GAP

    def validate(self) -> None:
        _check_params(self.max_distance, self.max_gap)


class CandidateEdges(NamedTuple):
    """Candidate edges, ``m`` of them, ordered by (dst, src).

    src: int64 (m,) index of the earlier detection.
    dst: int64 (m,) index of the later detection.
    dt: int64 (m,) frame[dst] - frame[src], 1 .. max_gap (frames).
    dy: float64 (m,) y[dst] - y[src] (px).
    dx: float64 (m,) x[dst] - x[src] (px).
    dist: float64 (m,) sqrt(dy^2 + dx^2) (px), <= max_distance.
    """

    src: np.ndarray
    dst: np.ndarray
    dt: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    dist: np.ndarray


def empty_edges() -> CandidateEdges:
    """An edge set with no edges (all six arrays of length 0, int64 / float64)."""
    i = np.empty(0, dtype=np.int64)
    f = np.empty(0, dtype=np.float64)
    return CandidateEdges(i, i.copy(), i.copy(), f, f.copy(), f.copy())


def concat_edges(parts: Sequence[CandidateEdges]) -> CandidateEdges:
    """Concatenate edge sets field by field, in the order given (no re-sorting, no de-duplication)."""
    parts = list(parts)
    if not parts:
        return empty_edges()
    fields = []
    for k in range(len(CandidateEdges._fields)):
        dtype = np.int64 if k < 3 else np.float64  # src, dst, dt are integers
        fields.append(np.concatenate([np.asarray(p[k], dtype=dtype) for p in parts]))
    lengths = {len(f) for f in fields}
    if len(lengths) != 1:
        raise InputError("concat_edges: the parts' fields have different lengths")
    return CandidateEdges(*fields)


def _check_params(max_distance: float, max_gap: int) -> None:
    require(
        isinstance(max_distance, (int, float, np.integer, np.floating))
        and math.isfinite(max_distance)
        and max_distance > 0,
        f"max_distance must be a finite number of pixels > 0, got {max_distance!r}",
    )
    require(
        isinstance(max_gap, (int, np.integer)) and not isinstance(max_gap, bool) and max_gap >= 1,
        f"max_gap must be an integer number of frames >= 1, got {max_gap!r}",
    )


def _coords(name: str, values: np.ndarray, n: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} values but {n} were expected (lengths differ)")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def _frames(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains NaN or infinite values")
        if not np.array_equal(arr, np.round(arr)):
            raise InputError(f"{name} must hold integer frame numbers")
        return np.ascontiguousarray(arr, dtype=np.int64)
    raise InputError(f"{name} must hold integer frame numbers, got dtype {arr.dtype}")


@numba.njit(cache=True, nogil=True)
def _lower_bound(a: np.ndarray, lo: int, hi: int, value: int) -> int:
    """First position p in [lo, hi) with a[p] >= value (a sorted ascending there), else hi."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _order_by_frame_and_cell(frame, cell, n_cells):
    """Stable permutation sorting points by (frame, cell), both ascending."""
    n = frame.shape[0]
    if n == 0:
        return np.arange(0)
    fmin = frame.min()
    f_span = frame.max() - fmin + 1
    if f_span < _MAX_CELLS / n_cells:
        return radix_argsort((frame - fmin) * n_cells + cell)
    by_cell = radix_argsort(cell)
    return by_cell[radix_argsort(frame[by_cell] - fmin)]


@numba.njit(cache=True, nogil=True)
def _sorted_points(frame, y, x, y0, x0, inv, nxp, n_cells):
    """Points sorted by (frame, cell): (order, cell, frame, y, x), the last four in that order.

    Cell of a point: row (y - y0) * inv and column (x - x0) * inv, both counted from 1, as
    row * nxp + column.
    """
    n = y.shape[0]
    cell = np.empty(n, np.int64)
    for i in range(n):
        cell[i] = (np.int64((y[i] - y0) * inv) + 1) * nxp + np.int64((x[i] - x0) * inv) + 1
    order = _order_by_frame_and_cell(frame, cell, n_cells)
    return order, cell[order], frame[order], y[order], x[order]


@numba.njit(cache=True, nogil=True)
def _scan_queries(q_frame, q_y, q_x, q_cell, s_cell, s_y, s_x, r_order, seg_frame, seg_start, nxp, max_distance,
                  max_gap, found, q_first):
    """The neighbours of every query (sorted by (frame, cell)) among the sorted reference points: their
    positions in the reference arrays into ``found``, query qi's at found[q_first[qi]:q_first[qi + 1]],
    ordered by original reference index. Returns how many there are; when that exceeds ``found``'s
    length, only the count is meaningful (the caller retries with a buffer of that size)."""
    n_qry = q_y.shape[0]
    n_seg = seg_frame.shape[0]
    cap = found.shape[0]
    md2 = max_distance * max_distance * (1.0 + 1e-9)
    m = 0
    # Scan pointers per earlier frame segment in the window and cell row (3 rows).
    ptr = np.empty(3 * max_gap, np.int64)
    seg_end = np.empty(max_gap, np.int64)
    n_win = 0
    for qi in range(n_qry):
        qf = q_frame[qi]
        if qi == 0 or qf != q_frame[qi - 1]:
            s_lo = _lower_bound(seg_frame, 0, n_seg, qf - max_gap)
            s_hi = _lower_bound(seg_frame, s_lo, n_seg, qf)
            n_win = s_hi - s_lo
            for w in range(n_win):
                seg_end[w] = seg_start[s_lo + w + 1]
                for r in range(3):
                    ptr[3 * w + r] = seg_start[s_lo + w]
        qy = q_y[qi]
        qx = q_x[qi]
        kq = q_cell[qi]
        q_first[qi] = m
        for w in range(n_win):
            a1 = seg_end[w]
            for r in range(3):
                k_lo = kq + (r - 1) * nxp - 1
                p = ptr[3 * w + r]
                while p < a1 and s_cell[p] < k_lo:
                    p += 1
                ptr[3 * w + r] = p
                k_hi = k_lo + 2
                while p < a1 and s_cell[p] <= k_hi:
                    ddy = qy - s_y[p]
                    ddx = qx - s_x[p]
                    d2 = ddy * ddy + ddx * ddx
                    if d2 <= md2 and math.sqrt(d2) <= max_distance:
                        if m < cap:
                            found[m] = p
                        m += 1
                    p += 1
        if m > cap:
            continue  # counting only from here on
        # Order this query's neighbours by original reference index (insertion sort: few).
        lo = q_first[qi]
        for a in range(lo + 1, m):
            v = found[a]
            ov = r_order[v]
            b = a - 1
            while b >= lo and r_order[found[b]] > ov:
                found[b + 1] = found[b]
                b -= 1
            found[b + 1] = v
    q_first[n_qry] = m
    return m


@numba.njit(cache=True, nogil=True)
def _neighbour_edges(ref_frame, ref_y, ref_x, qry_frame, qry_y, qry_x, max_distance, max_gap, same):
    """Edges from reference points (earlier) to query points (later), ordered by (query, ref).

    ``same`` says the query arrays are the reference arrays (offline graph: sorted once).
    Returns (status, src, dst, dt, dy, dx, dist) with src indexing the reference arrays and dst
    the query arrays; status is 0, or -1 when the coordinates span too many cells.
    Both sets are sorted by (frame, cell); queries are visited in that order, so the scan
    position in each earlier frame's cell rows only moves forward (no binary searches).
    """
    n_ref = ref_y.shape[0]
    n_qry = qry_y.shape[0]
    e_i = np.empty(0, np.int64)
    e_f = np.empty(0, np.float64)
    if n_ref == 0 or n_qry == 0:
        return 0, e_i, e_i, e_i, e_f, e_f, e_f

    y0 = min(ref_y.min(), qry_y.min())
    x0 = min(ref_x.min(), qry_x.min())
    y1 = max(ref_y.max(), qry_y.max())
    x1 = max(ref_x.max(), qry_x.max())
    inv = 1.0 / (max_distance * _CELL_WIDENING)
    # Cells indexed from 1 so that the neighbours (index - 1) of every cell stay >= 0.
    span_x = (x1 - x0) * inv + 3.0
    span_y = (y1 - y0) * inv + 3.0
    if span_x * span_y >= _MAX_CELLS:
        return -1, e_i, e_i, e_i, e_f, e_f, e_f
    nxp = np.int64(span_x)
    n_cells = nxp * np.int64(span_y)

    r_order, s_cell, s_frame, s_y, s_x = _sorted_points(ref_frame, ref_y, ref_x, y0, x0, inv, nxp, n_cells)
    if same:
        q_order, q_cell, q_frame, q_y, q_x = r_order, s_cell, s_frame, s_y, s_x
    else:
        q_order, q_cell, q_frame, q_y, q_x = _sorted_points(qry_frame, qry_y, qry_x, y0, x0, inv, nxp, n_cells)

    # Segments of equal frame in the sorted reference points.
    n_seg = 1
    for i in range(1, n_ref):
        if s_frame[i] != s_frame[i - 1]:
            n_seg += 1
    seg_frame = np.empty(n_seg, np.int64)
    seg_start = np.empty(n_seg + 1, np.int64)
    seg_frame[0] = s_frame[0]
    seg_start[0] = 0
    k = 1
    for i in range(1, n_ref):
        if s_frame[i] != s_frame[i - 1]:
            seg_frame[k] = s_frame[i]
            seg_start[k] = i
            k += 1
    seg_start[n_seg] = n_ref

    # Per query (in sorted order): its neighbours as positions in the sorted reference arrays. The scan
    # stores into a buffer it never replaces (no reference counting in the hot loop); in the rare case
    # that the buffer was too small it runs once more with one of the exact size.
    q_first = np.empty(n_qry + 1, np.int64)
    found = np.empty(16 + 4 * n_qry, np.int64)
    m = _scan_queries(q_frame, q_y, q_x, q_cell, s_cell, s_y, s_x, r_order, seg_frame, seg_start, nxp,
                      max_distance, max_gap, found, q_first)
    if m > found.shape[0]:
        found = np.empty(m, np.int64)
        m = _scan_queries(q_frame, q_y, q_x, q_cell, s_cell, s_y, s_x, r_order, seg_frame, seg_start, nxp,
                          max_distance, max_gap, found, q_first)

    # Gather in query index order: edges ordered by (dst, src).
    q_rank = np.empty(n_qry, np.int64)
    for qi in range(n_qry):
        q_rank[q_order[qi]] = qi
    out_src = np.empty(m, np.int64)
    out_dst = np.empty(m, np.int64)
    out_dt = np.empty(m, np.int64)
    out_dy = np.empty(m, np.float64)
    out_dx = np.empty(m, np.float64)
    out_d = np.empty(m, np.float64)
    o = 0
    for j in range(n_qry):
        qi = q_rank[j]
        qf = q_frame[qi]
        qy = q_y[qi]
        qx = q_x[qi]
        for a in range(q_first[qi], q_first[qi + 1]):
            p = found[a]
            ddy = qy - s_y[p]
            ddx = qx - s_x[p]
            out_src[o] = r_order[p]
            out_dst[o] = j
            out_dt[o] = qf - s_frame[p]
            out_dy[o] = ddy
            out_dx[o] = ddx
            out_d[o] = math.sqrt(ddy * ddy + ddx * ddx)
            o += 1
    return 0, out_src, out_dst, out_dt, out_dy, out_dx, out_d


def _run_kernel(ref_frame, ref_y, ref_x, qry_frame, qry_y, qry_x, max_distance, max_gap, same=False):
    status, *fields = _neighbour_edges(
        ref_frame, ref_y, ref_x, qry_frame, qry_y, qry_x, float(max_distance), int(max_gap), same
    )
    if status != 0:
        raise InputError(
            "the detections' coordinates span too large an area for a cell list of "
            f"max_distance={max_distance} px (check the coordinates' units)"
        )
    return fields


def edges_into_frame(
    past_frame: np.ndarray,
    past_y: np.ndarray,
    past_x: np.ndarray,
    new_y: np.ndarray,
    new_x: np.ndarray,
    new_frame: int,
    max_distance: float,
    max_gap: int,
    past_offset: int = 0,
    new_offset: int = 0,
) -> CandidateEdges:
    """Candidate edges from past detections into the detections of one new frame (streaming).

    past_frame: int (p,) frame of each past detection; past_y, past_x: float (p,) px.
    new_y, new_x: float (q,) px, all detections of frame ``new_frame``.
    Only past detections with frame in [new_frame - max_gap, new_frame - 1] are linked; others
    are ignored. ``src = past_offset + index into the past arrays``, ``dst = new_offset + index
    into the new arrays``. The result is ordered by (dst, src); ``dist <= max_distance`` (px).
    """
    _check_params(max_distance, max_gap)
    pf = _frames("past_frame", past_frame)
    py = _coords("past_y", past_y, pf.shape[0])
    px = _coords("past_x", past_x, pf.shape[0])
    ny = _coords("new_y", new_y, None)
    nx = _coords("new_x", new_x, ny.shape[0])
    if isinstance(new_frame, bool) or not isinstance(new_frame, (int, np.integer)):
        raise InputError(f"new_frame must be an integer frame number, got {new_frame!r}")
    qf = np.full(ny.shape[0], int(new_frame), dtype=np.int64)
    src, dst, dt, dy, dx, dist = _run_kernel(pf, py, px, qf, ny, nx, max_distance, max_gap)
    if past_offset:
        src += int(past_offset)
    if new_offset:
        dst += int(new_offset)
    return CandidateEdges(src, dst, dt, dy, dx, dist)


def build_graph(
    frame: np.ndarray, y: np.ndarray, x: np.ndarray, max_distance: float, max_gap: int
) -> CandidateEdges:
    """Candidate edges between all detections (offline).

    frame: int (n,) frame of each detection (rows in any order); y, x: float (n,) px.
    Returns edges whose src/dst index these arrays, ordered by (dst, src): the same edges as
    :func:`edges_into_frame` called frame by frame.
    """
    _check_params(max_distance, max_gap)
    f = _frames("frame", frame)
    yy = _coords("y", y, f.shape[0])
    xx = _coords("x", x, f.shape[0])
    return CandidateEdges(*_run_kernel(f, yy, xx, f, yy, xx, max_distance, max_gap, same=True))
