"""A bucket grid over the spots of one frame, so that neighbour searches look at a few spots instead
of all of them (Numba).

Cells are squares of side ``cell`` px over the frame (coordinates from -0.5 to H - 0.5 as everywhere in
detection); each cell holds a singly linked list of spot indices (``head`` per cell, ``nxt`` per spot,
-1 ends a list). Two points less than ``cell`` apart always lie in the same or in adjacent cells, so a
search within a radius r <= cell visits the 3 x 3 cells around the query. Spots can move (remove, then
insert again) and be added while the grid is in use.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Cells a hair wider than the search radius: rounding in (coordinate + 0.5) / cell can never put two
# points closer than the radius two cells apart.
_WIDEN = 1.0 + 1e-9


@njit(cache=True, nogil=True)
def grid_shape(h: int, w: int, radius: float) -> tuple[float, int, int]:
    """(cell side in px, rows of cells, columns of cells) for searches within ``radius`` px of (h, w) frames."""
    cell = max(radius, 1.0) * _WIDEN
    return cell, int(h / cell) + 1, int(w / cell) + 1


@njit(cache=True, nogil=True)
def cell_of(y: float, x: float, cell: float, ncy: int, ncx: int) -> tuple[int, int]:
    """(row, column) of the cell holding the point (y, x) px; points off the frame go to the border cells."""
    cy = int(np.floor((y + 0.5) / cell))
    cx = int(np.floor((x + 0.5) / cell))
    return min(max(cy, 0), ncy - 1), min(max(cx, 0), ncx - 1)


@njit(cache=True, nogil=True)
def grid_insert(head: np.ndarray, nxt: np.ndarray, i: int, y: float, x: float, cell: float, ncx: int) -> None:
    """Put spot ``i`` at (y, x) px into the grid (at the front of its cell's list)."""
    cy, cx = cell_of(y, x, cell, head.shape[0] // ncx, ncx)
    c = cy * ncx + cx
    nxt[i] = head[c]
    head[c] = i


@njit(cache=True, nogil=True)
def grid_remove(head: np.ndarray, nxt: np.ndarray, i: int, y: float, x: float, cell: float, ncx: int) -> None:
    """Take spot ``i``, inserted at (y, x) px, out of the grid."""
    cy, cx = cell_of(y, x, cell, head.shape[0] // ncx, ncx)
    c = cy * ncx + cx
    if head[c] == i:
        head[c] = nxt[i]
    else:
        k = head[c]
        while k >= 0 and nxt[k] != i:
            k = nxt[k]
        if k >= 0:
            nxt[k] = nxt[i]
    nxt[i] = -1


@njit(cache=True, nogil=True)
def build_grid(ys: np.ndarray, xs: np.ndarray, use: np.ndarray, capacity: int, cell: float, ncy: int,
               ncx: int) -> tuple[np.ndarray, np.ndarray]:
    """(head, nxt) of a grid holding the spots ``i`` with ``use[i]`` at (ys[i], xs[i]) px; ``nxt`` has room
    for ``capacity`` spots (>= len(ys)), so spots can be added later."""
    head = np.full(ncy * ncx, -1, np.int64)
    nxt = np.full(capacity, -1, np.int64)
    for i in range(ys.shape[0]):
        if use[i]:
            grid_insert(head, nxt, i, ys[i], xs[i], cell, ncx)
    return head, nxt
