"""Numba kernels of the phenomenological simulators: the loops that depend on positions.

All positions are px, arrays are C-contiguous float64 (positions) or int64 (indices), one row per
particle. A box side ``L <= 0`` means "no box".
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "fold_into_box",
    "integrate_reflecting",
    "near_any_point",
    "confinement_step",
    "dimer_step",
    "label_filter_segments",
]


@numba.njit(cache=True, nogil=True, inline="always")
def _fold(v: float, L: float) -> float:
    """Position after reflecting walls at 0 and L (repeated reflections fold the line)."""
    if L <= 0.0 or (0.0 <= v <= L):
        return v
    m = v % (2.0 * L)
    return 2.0 * L - m if m > L else m


@numba.njit(cache=True, nogil=True)
def fold_into_box(pos: np.ndarray, L: np.ndarray) -> None:
    """In place: reflect every coordinate of ``pos`` (N, D) into ``[0, L[i]]``."""
    for i in range(pos.shape[0]):
        for d in range(pos.shape[1]):
            pos[i, d] = _fold(pos[i, d], L[i])


@numba.njit(cache=True, nogil=True)
def integrate_reflecting(start: np.ndarray, steps: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Positions (N, T, D) from ``start`` (N, D) and ``steps`` (N, T-1, D), walls at 0 and ``L`` (N,)."""
    n, t1, dims = steps.shape
    out = np.empty((n, t1 + 1, dims))
    for i in range(n):
        for d in range(dims):
            x = start[i, d]
            out[i, 0, d] = x
            for t in range(t1):
                x = _fold(x + steps[i, t, d], L[i])
                out[i, t + 1, d] = x
    return out


@numba.njit(cache=True, nogil=True)
def near_any_point(
    query: np.ndarray,
    query_group: np.ndarray,
    query_r: np.ndarray,
    cell_start: np.ndarray,
    points: np.ndarray,
    cell: float,
    ncell: int,
) -> np.ndarray:
    """For each query (M, 2), whether a point of its group lies closer than ``query_r``.

    ``points`` (K, 2) are sorted by cell key (group * ncell + row) * ncell + col, cells of side
    ``cell`` >= every radius; ``cell_start[key] : cell_start[key + 1]`` are the points of a cell.
    Only the 3 x 3 cells around a query are searched.
    """
    m = query.shape[0]
    out = np.zeros(m, dtype=np.bool_)
    for i in range(m):
        cy = min(int(query[i, 0] // cell), ncell - 1)
        cx = min(int(query[i, 1] // cell), ncell - 1)
        r2 = query_r[i] * query_r[i]
        found = False
        for yy in range(max(cy - 1, 0), min(cy + 2, ncell)):
            for xx in range(max(cx - 1, 0), min(cx + 2, ncell)):
                key = (query_group[i] * ncell + yy) * ncell + xx
                for k in range(cell_start[key], cell_start[key + 1]):
                    ey = points[k, 0] - query[i, 0]
                    ex = points[k, 1] - query[i, 1]
                    if ey * ey + ex * ex < r2:
                        found = True
                        break
                if found:
                    break
            if found:
                break
        out[i] = found
    return out


@numba.njit(cache=True, nogil=True)
def _containing_circle(p0: float, p1: float, centers: np.ndarray, count: int, r: float) -> int:
    """Index of the nearest circle whose centre is closer than ``r`` to (p0, p1), or -1."""
    best = -1
    best_d2 = r * r
    for c in range(count):
        e0 = centers[c, 0] - p0
        e1 = centers[c, 1] - p1
        d2 = e0 * e0 + e1 * e1
        if d2 < best_d2:
            best_d2 = d2
            best = c
    return best


@numba.njit(cache=True, nogil=True)
def _reflect_inside_circle(
    p0: float, p1: float, q0: float, q1: float, c0: float, c1: float, r: float
) -> tuple[float, float]:
    """End point of the move p -> q (p inside, q outside) with specular reflection on the circle."""
    for _ in range(64):
        d0 = q0 - p0
        d1 = q1 - p1
        f0 = p0 - c0
        f1 = p1 - c1
        a = d0 * d0 + d1 * d1
        if a == 0.0:
            break
        b = f0 * d0 + f1 * d1
        cc = f0 * f0 + f1 * f1 - r * r
        disc = b * b - a * cc
        s = (-b + np.sqrt(disc if disc > 0.0 else 0.0)) / a  # exit point along the move
        x0 = p0 + s * d0
        x1 = p1 + s * d1
        n0 = x0 - c0
        n1 = x1 - c1
        nn = np.sqrt(n0 * n0 + n1 * n1)
        n0 /= nn
        n1 /= nn
        v0 = q0 - x0
        v1 = q1 - x1
        dot = v0 * n0 + v1 * n1
        q0 = x0 + v0 - 2.0 * dot * n0
        q1 = x1 + v1 - 2.0 * dot * n1
        e0 = q0 - c0
        e1 = q1 - c1
        if e0 * e0 + e1 * e1 <= r * r:
            return q0, q1
        p0 = x0
        p1 = x1
    # numerically stuck on the rim: pull the point just inside
    e0 = q0 - c0
    e1 = q1 - c1
    scale = r * (1.0 - 1e-9) / max(np.sqrt(e0 * e0 + e1 * e1), 1e-300)
    return c0 + e0 * scale, c1 + e1 * scale


@numba.njit(cache=True, nogil=True)
def confinement_step(
    pos_prev: np.ndarray,
    step: np.ndarray,
    state_prev: np.ndarray,
    comp_prev: np.ndarray,
    centers: np.ndarray,
    n_centers: np.ndarray,
    group: np.ndarray,
    r: np.ndarray,
    trans: np.ndarray,
    coin: np.ndarray,
    L: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of transient confinement for N particles.

    ``state`` 1 = inside compartment ``comp`` (index into ``centers[group]``), 0 = outside.
    A confined particle that steps over its compartment's rim leaves with probability
    ``trans`` (``coin < trans``) and is reflected back otherwise; a free particle that steps
    into a compartment becomes confined there. Walls of the box reflect afterwards.
    Returns new positions (N, 2), states (N,) int8 and compartments (N,) int64.
    """
    n = pos_prev.shape[0]
    pos = np.empty_like(pos_prev)
    state = np.empty_like(state_prev)
    comp = np.empty_like(comp_prev)
    for i in range(n):
        g = group[i]
        q0 = pos_prev[i, 0] + step[i, 0]
        q1 = pos_prev[i, 1] + step[i, 1]
        s = state_prev[i]
        c = comp_prev[i]
        if s == 1:
            c0 = centers[g, c, 0]
            c1 = centers[g, c, 1]
            e0 = q0 - c0
            e1 = q1 - c1
            if e0 * e0 + e1 * e1 > r[i] * r[i]:
                if coin[i] < trans[i]:
                    c = _containing_circle(q0, q1, centers[g], n_centers[g], r[i])
                    s = 1 if c >= 0 else 0
                else:
                    q0, q1 = _reflect_inside_circle(
                        pos_prev[i, 0], pos_prev[i, 1], q0, q1, c0, c1, r[i]
                    )
        else:
            c = _containing_circle(q0, q1, centers[g], n_centers[g], r[i])
            s = 1 if c >= 0 else 0
        pos[i, 0] = _fold(q0, L[i])
        pos[i, 1] = _fold(q1, L[i])
        state[i] = s
        comp[i] = c if s == 1 else -1
    return pos, state, comp


@numba.njit(cache=True, nogil=True)
def dimer_step(
    pos_prev: np.ndarray,
    partner: np.ndarray,
    group_start: np.ndarray,
    radius: np.ndarray,
    p_unbind: np.ndarray,
    p_bind: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of stochastic dimerisation in every group (experiment).

    ``partner[i]`` is the index of i's partner or -1. First every dimer splits with probability
    ``p_unbind``; then, in index order, each free particle that did not just split binds, with
    probability ``p_bind`` per candidate, to the first free candidate (in index order, not just
    split) closer than twice the particle radius at the previous frame.
    Returns the new partners (N,) and whether each particle split this frame (N,) bool.
    """
    new = partner.copy()
    split = np.zeros(partner.size, dtype=np.bool_)
    for g in range(group_start.size - 1):
        lo = group_start[g]
        hi = group_start[g + 1]
        for i in range(lo, hi):
            j = new[i]
            if j > i and rng.random() < p_unbind[g]:
                new[i] = -1
                new[j] = -1
                split[i] = True
                split[j] = True
        d2max = 4.0 * radius[g] * radius[g]
        for i in range(lo, hi):
            if new[i] >= 0 or split[i]:
                continue
            for j in range(lo, hi):
                if j == i or new[j] >= 0 or split[j]:
                    continue
                e0 = pos_prev[j, 0] - pos_prev[i, 0]
                e1 = pos_prev[j, 1] - pos_prev[i, 1]
                d2 = e0 * e0 + e1 * e1
                if d2 < d2max and d2 > 0.0:
                    if rng.random() < p_bind[g]:
                        new[i] = j
                        new[j] = i
                        break
    return new, split


@numba.njit(cache=True, nogil=True)
def _mode_filter(d: np.ndarray, width: int, n_values: int) -> np.ndarray:
    """Running mode over the window d[i - width//2 : i + width//2 + 1] cut at both ends;
    ties go to the smallest value."""
    half = width // 2
    out = np.empty_like(d)
    counts = np.zeros(n_values, dtype=np.int64)
    for i in range(d.size):
        counts[:] = 0
        for j in range(max(i - half, 0), min(i + half + 1, d.size)):
            counts[d[j]] += 1
        best = 0
        for v in range(1, n_values):
            if counts[v] > counts[best]:
                best = v
        out[i] = best
    return out


@numba.njit(cache=True, nogil=True)
def _enforce_min_length(d: np.ndarray, min_seg: int) -> np.ndarray:
    """Merge every run shorter than ``min_seg`` into the run before it (the first run into the
    run after it), scanning from the start."""
    n = d.size
    out = d.copy()
    # runs of equal values
    starts = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if i == 0 or d[i] != d[i - 1]:
            starts[k] = i
            k += 1
    ends = np.empty(k, dtype=np.int64)  # exclusive
    for j in range(k - 1):
        ends[j] = starts[j + 1]
    ends[k - 1] = n
    kept_val = np.empty(k, dtype=np.int64)
    kept_start = np.empty(k, dtype=np.int64)
    kept_end = np.empty(k, dtype=np.int64)
    m = 0
    pending = -1  # start of a leading run too short to stand alone
    for j in range(k):
        s = starts[j] if pending < 0 else pending
        e = ends[j]
        v = d[starts[j]]
        if e - s < min_seg:
            if m > 0:
                kept_end[m - 1] = e
                continue
            if j < k - 1:
                pending = s
                continue
        pending = -1
        kept_val[m] = v
        kept_start[m] = s
        kept_end[m] = e
        m += 1
    for j in range(m):
        for i in range(kept_start[j], kept_end[j]):
            out[i] = kept_val[j]
    return out


@numba.njit(cache=True, nogil=True)
def label_filter_segments(
    values: np.ndarray, offsets: np.ndarray, width: int, min_seg: int
) -> np.ndarray:
    """Apply the 2nd AnDi Challenge label filter to each segment of a flat label column.

    Segment k is ``values[offsets[k]:offsets[k+1]]`` (float64). A segment with changes is
    smoothed by one running mode of ``width`` frames (values ranked by first appearance, ties
    to the earliest), then runs shorter than ``min_seg`` frames are merged into their
    neighbour. Returns the filtered column.
    """
    out = values.copy()
    for k in range(offsets.size - 1):
        seg = values[offsets[k] : offsets[k + 1]]
        n = seg.size
        if n < 2:
            continue
        # ranks by first appearance
        uniq = np.empty(n, dtype=np.float64)
        d = np.empty(n, dtype=np.int64)
        nu = 0
        for i in range(n):
            r = -1
            for j in range(nu):
                if uniq[j] == seg[i]:
                    r = j
                    break
            if r < 0:
                uniq[nu] = seg[i]
                r = nu
                nu += 1
            d[i] = r
        if nu < 2:
            continue
        f = _enforce_min_length(_mode_filter(d, width, nu), min_seg)
        for i in range(n):
            out[offsets[k] + i] = uniq[f[i]]
    return out
