"""Detection kernels that turn maxima into spots: seeding brightest first, deblending crowded spots,
spots hidden in the residual, dropping faint ones, and the final spot table (Numba).
"""

from __future__ import annotations

import numpy as np
from edgetrack.runtime.detect.filters import argsort
from edgetrack.runtime.detect.fitting import (
    fit_pair,
    fit_scratch,
    fit_spot,
    move_rendering,
    pair_scratch,
    render,
    spot_features,
)
from edgetrack.runtime.detect.grid import (
    build_grid,
    cell_of,
    grid_insert,
    grid_remove,
    grid_shape,
)
from edgetrack.runtime.detect.layout import (
    COL_ECC,
    COL_MASS,
    COL_SIGNAL,
    COL_SIZE,
    COL_X,
    COL_Y,
    DEBLEND_TOL,
    N_COLS,
    ST_AMP,
    ST_BG,
    ST_SIG,
    ST_X,
    ST_Y,
)
from numba import njit


@njit(cache=True, nogil=True)
def crowded_flags(ys: np.ndarray, xs: np.ndarray, alive: np.ndarray, seed: np.ndarray, radius: float, h: int,
                  w: int) -> np.ndarray:
    """True for each live spot within ``radius`` px of another spot where one of the two is a
    seed (a seed that is no longer alive still flags its live neighbours); (h, w): the frame shape.
    The spots that can take part are put in a bucket grid of cells of ``radius`` px, so each seed
    looks at its 3 x 3 cells only."""
    n = ys.shape[0]
    flag = np.zeros(n, np.bool_)
    if n == 0:
        return flag
    cell, ncy, ncx = grid_shape(h, w, radius)
    use = np.empty(n, np.bool_)
    for i in range(n):
        use[i] = alive[i] or seed[i]
    head, nxt = build_grid(ys, xs, use, n, cell, ncy, ncx)
    r2 = radius * radius
    # Every flagged pair has a seed in it: visit the seeds' cells only (after the first sweep, the
    # few spots that moved). A live seed is flagged by any neighbour in the grid, a live spot by a
    # seed within radius (the grid holds every seed).
    for i in range(n):
        if not seed[i]:
            continue
        cy, cx = cell_of(ys[i], xs[i], cell, ncy, ncx)
        for gy in range(max(cy - 1, 0), min(cy + 2, ncy)):
            for gx in range(max(cx - 1, 0), min(cx + 2, ncx)):
                j = head[gy * ncx + gx]
                while j >= 0:
                    if j != i and (alive[i] or alive[j]):
                        dy = ys[j] - ys[i]
                        dx = xs[j] - xs[i]
                        if dy * dy + dx * dx < r2:
                            if alive[i]:
                                flag[i] = True
                            if alive[j]:
                                flag[j] = True
                    j = nxt[j]
    return flag


@njit(cache=True, nogil=True)
def deblend(
    img: np.ndarray,
    model: np.ndarray,
    st: np.ndarray,
    alive: np.ndarray,
    partner: np.ndarray,
    seed: np.ndarray,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
    max_sweeps: int,
) -> None:
    """Gauss-Seidel sweeps: refit live spots (rows of ``st``, see :func:`seed_spots`) that have
    a neighbour within 5 sigma against the model of all the others, updating ``model`` as it
    goes. Spots paired in ``partner`` (int64 (n,), the other half of a split blob, -1 none)
    are fitted jointly. The first sweep takes the neighbour pairs with a ``seed`` spot in them
    (``seed``: bool (n,), overwritten; all live spots: every crowded spot), later sweeps those
    with a spot that moved by more than DEBLEND_TOL px; it stops when none moved or after
    ``max_sweeps`` sweeps."""
    n = st.shape[0]
    scratch = fit_scratch(sigma, fit_r, 0.0)
    work = np.empty((2, 2 * render_r + 1), np.float64)
    pair_work = pair_scratch(fit_r, render_r)
    tol2 = DEBLEND_TOL * DEBLEND_TOL
    done = np.zeros(n, np.bool_)
    for _ in range(max_sweeps):
        todo = crowded_flags(st[:, ST_Y], st[:, ST_X], alive, seed, 5.0 * sigma, model.shape[0], model.shape[1])
        for i in range(n):
            seed[i] = False
            done[i] = False
        any_moved = False
        for i in range(n):
            if done[i] or not todo[i]:
                continue
            j = partner[i]
            ok = False
            if j >= 0 and alive[j]:
                ok, y1, x1, a1, y2, x2, a2, bg = fit_pair(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP],
                                                           st[j, ST_Y], st[j, ST_X], st[j, ST_AMP],
                                                           sigma, fit_r, max_iter, render_r, pair_work)
            if ok:
                moved_i = _move(model, st, i, y1, x1, a1, bg, sigma, render_r, work) > tol2
                moved_j = _move(model, st, j, y2, x2, a2, bg, sigma, render_r, work) > tol2
                if moved_i or moved_j:
                    seed[i] = True
                    seed[j] = True
                    any_moved = True
                done[j] = True
                continue
            y, x, a, bg = fit_spot(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP], sigma, fit_r, max_iter,
                                    render_r, scratch)
            if _move(model, st, i, y, x, a, bg, sigma, render_r, work) > tol2:
                seed[i] = True
                any_moved = True
        if not any_moved:
            break


@njit(cache=True, nogil=True)
def _move(
    model: np.ndarray, st: np.ndarray, i: int, y: float, x: float, amp: float, bg: float, sigma: float,
    render_r: int, work: np.ndarray
) -> float:
    """Replace spot i's fit in ``st`` and in ``model``; returns the squared shift (px^2).
    ``work``: float64 (2, 2 render_r + 1) scratch."""
    move_rendering(model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP], y, x, amp, sigma, render_r, work)
    shift2 = (y - st[i, ST_Y]) ** 2 + (x - st[i, ST_X]) ** 2
    st[i, ST_Y] = y
    st[i, ST_X] = x
    st[i, ST_AMP] = amp
    st[i, ST_BG] = bg
    return shift2


@njit(cache=True, nogil=True)
def _parabola_peak(filt: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """Sub-pixel peak of ``filt`` near the maximum (i, j): a parabola through each axis' three
    pixels (offset clipped to +-0.5 px); the start of the position fit."""
    h, w = filt.shape
    y = float(i)
    x = float(j)
    if 0 < i < h - 1:
        lo = float(filt[i - 1, j])
        mid = float(filt[i, j])
        hi = float(filt[i + 1, j])
        curv = lo - 2.0 * mid + hi
        if curv < 0.0:
            y += min(max(0.5 * (lo - hi) / curv, -0.5), 0.5)
    if 0 < j < w - 1:
        lo = float(filt[i, j - 1])
        mid = float(filt[i, j])
        hi = float(filt[i, j + 1])
        curv = lo - 2.0 * mid + hi
        if curv < 0.0:
            x += min(max(0.5 * (lo - hi) / curv, -0.5), 0.5)
    return y, x


@njit(cache=True, nogil=True)
def _add_spot(
    img: np.ndarray,
    model: np.ndarray,
    peak_img: np.ndarray,
    i: int,
    j: int,
    st: np.ndarray,
    k: int,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
    scratch: np.ndarray,
    work: np.ndarray,
) -> None:
    """Fit a new spot from the maximum (i, j) of ``peak_img`` (a band-passed image) against
    ``img - model``, store it in row ``k`` of ``st`` and draw it into ``model``. ``scratch``: that of
    :func:`fit_spot`; ``work``: float64 (2, 2 render_r + 1)."""
    y0, x0 = _parabola_peak(peak_img, i, j)
    y, x, a, bg = fit_spot(img, model, y0, x0, 0.0, sigma, fit_r, max_iter, render_r, scratch)
    st[k, ST_Y] = y
    st[k, ST_X] = x
    st[k, ST_AMP] = a
    st[k, ST_BG] = bg
    st[k, ST_SIG] = peak_img[i, j]
    move_rendering(model, y, x, 0.0, y, x, a, sigma, render_r, work)  # as render(model, y, x, a, ...)


@njit(cache=True, nogil=True)
def _strongest_first(filt: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Order of the maxima (``ys``, ``xs``) by decreasing ``filt`` value, ties in input order."""
    key = np.empty(ys.shape[0], np.float64)
    for s in range(ys.shape[0]):
        key[s] = -filt[ys[s], xs[s]]
    return argsort(key)


@njit(cache=True, nogil=True)
def seed_spots(
    img: np.ndarray,
    model: np.ndarray,
    filt: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    st: np.ndarray,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
) -> int:
    """First fit of the spots at the maxima (``ys``, ``xs``) of the band-passed ``filt``.

    ``model`` (float32 (H, W)) is cleared, then the spots are fitted one after the other,
    brightest first, each against ``img`` minus those already fitted (so a dim spot does not
    absorb its bright neighbour's light), and drawn into ``model``. Rows 0..n-1 of ``st``
    (float64 (m, 5), columns ST_Y, ST_X (px), ST_AMP (peak amplitude, counts), ST_BG (local
    background, counts/px), ST_SIG (``filt`` at the maximum, counts)) receive them; returns n.
    """
    h, w = img.shape
    for i in range(h):
        mrow = model[i]
        for j in range(w):
            mrow[j] = 0.0
    scratch = fit_scratch(sigma, fit_r, 0.0)
    work = np.empty((2, 2 * render_r + 1), np.float64)
    k = 0
    for s in _strongest_first(filt, ys, xs):
        _add_spot(img, model, filt, ys[s], xs[s], st, k, sigma, fit_r, max_iter, render_r, scratch, work)
        k += 1
    return k


@njit(cache=True, nogil=True)
def add_residual_spots(
    img: np.ndarray,
    model: np.ndarray,
    rfilt: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    st: np.ndarray,
    n: int,
    alive: np.ndarray,
    partner: np.ndarray,
    seed: np.ndarray,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
) -> int:
    """Add the spots found as maxima (``ys``, ``xs``) of ``rfilt``, the band-passed residual
    ``img - model``: spots hidden in a brighter neighbour's blob, or two spots fitted as one.

    Strongest first. A maximum within sigma of a live spot is skipped (e.g. the other lobe of a
    pair already split). One within 2.5 sigma of a spot fitted before is taken as the second
    half of a merged pair: that spot restarts from the mirror image of the maximum, with half
    its amplitude, and the two become ``partner`` of each other (fitted jointly by
    :func:`deblend`). New and moved spots are flagged in ``seed``. Spots are appended to ``st``
    from row ``n`` (it must have room for ``len(ys)`` more); returns the new count. The live spots
    are kept in a bucket grid of cells of 2.5 sigma, so each maximum looks at its 3 x 3 cells only.
    """
    h, w = img.shape
    scratch = fit_scratch(sigma, fit_r, 0.0)
    work = np.empty((2, 2 * render_r + 1), np.float64)
    n_old = n
    moved = np.zeros(n_old, np.bool_)
    split2 = (2.5 * sigma) ** 2
    near2 = sigma * sigma
    cell, ncy, ncx = grid_shape(h, w, 2.5 * sigma)  # the split radius, the larger of the two
    head, nxt = build_grid(st[:n, ST_Y], st[:n, ST_X], alive[:n], st.shape[0], cell, ncy, ncx)
    for s in _strongest_first(rfilt, ys, xs):
        cy = float(ys[s])
        cx = float(xs[s])
        best = -1
        best_d2 = split2
        taken = False
        qy, qx = cell_of(cy, cx, cell, ncy, ncx)
        for gy in range(max(qy - 1, 0), min(qy + 2, ncy)):
            for gx in range(max(qx - 1, 0), min(qx + 2, ncx)):
                i = head[gy * ncx + gx]
                while i >= 0 and not taken:  # every spot in the grid is alive
                    d2 = (st[i, ST_Y] - cy) ** 2 + (st[i, ST_X] - cx) ** 2
                    if d2 < near2:
                        taken = True
                    elif i < n_old and not moved[i] and (d2 < best_d2 or (d2 == best_d2 and i < best)):
                        best = i  # the nearest, ties to the lowest index
                        best_d2 = d2
                    i = nxt[i]
        if taken:
            continue
        if best >= 0:
            moved[best] = True
            seed[best] = True
            grid_remove(head, nxt, best, st[best, ST_Y], st[best, ST_X], cell, ncx)
            _move(model, st, best, min(max(2.0 * st[best, ST_Y] - cy, -0.5), h - 0.5),
                  min(max(2.0 * st[best, ST_X] - cx, -0.5), w - 0.5), 0.5 * st[best, ST_AMP], st[best, ST_BG],
                  sigma, render_r, work)
            grid_insert(head, nxt, best, st[best, ST_Y], st[best, ST_X], cell, ncx)
            partner[best] = n
            partner[n] = best
        _add_spot(img, model, rfilt, ys[s], xs[s], st, n, sigma, fit_r, max_iter, render_r, scratch, work)
        seed[n] = True
        if alive[n]:
            grid_insert(head, nxt, n, st[n, ST_Y], st[n, ST_X], cell, ncx)
        n += 1
    return n


@njit(cache=True, nogil=True)
def drop_faint(
    model: np.ndarray,
    st: np.ndarray,
    alive: np.ndarray,
    seed: np.ndarray,
    min_amp: float,
    sigma: float,
    render_r: int,
) -> bool:
    """Drop the live spots with amplitude below ``min_amp`` (counts): clear them from ``alive``,
    remove them from ``model``, and flag exactly them in ``seed``. Returns whether any went."""
    dropped = False
    for i in range(st.shape[0]):
        seed[i] = False
        if alive[i] and st[i, ST_AMP] < min_amp:
            alive[i] = False
            seed[i] = True
            render(model, st[i, ST_Y], st[i, ST_X], -st[i, ST_AMP], sigma, render_r)
            dropped = True
    return dropped


@njit(cache=True, nogil=True)
def spot_table(
    img: np.ndarray, model: np.ndarray, st: np.ndarray, alive: np.ndarray, sigma: float, render_r: int,
    mass_radius: float
) -> np.ndarray:
    """Float64 (m, 6) rows (y, x, mass, size, signal, eccentricity) of the live spots of ``st``,
    in its order; mass, size and eccentricity by :func:`spot_features` against the final
    ``model``."""
    scratch = fit_scratch(sigma, 0, mass_radius)
    m = 0
    for i in range(st.shape[0]):
        if alive[i]:
            m += 1
    out = np.empty((m, N_COLS), np.float64)
    k = 0
    for i in range(st.shape[0]):
        if alive[i]:
            mass, size, ecc = spot_features(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP], st[i, ST_BG],
                                             sigma, render_r, mass_radius, scratch)
            out[k, COL_Y] = st[i, ST_Y]
            out[k, COL_X] = st[i, ST_X]
            out[k, COL_MASS] = mass
            out[k, COL_SIZE] = size
            out[k, COL_SIGNAL] = st[i, ST_SIG]
            out[k, COL_ECC] = ecc
            k += 1
    return out


@njit(cache=True, nogil=True)
def select_spots(spots: np.ndarray, min_mass: float) -> np.ndarray:
    """The rows of ``spots`` (float64 (m, 6), :func:`spot_table`) with mass >= ``min_mass`` (counts),
    sorted by (y, x) (ties keep their order, as ``np.lexsort``): a new C-contiguous array."""
    m = spots.shape[0]
    keep = np.empty(m, np.int64)
    n = 0
    for i in range(m):
        if spots[i, COL_MASS] >= min_mass:
            keep[n] = i
            n += 1
    xs = np.empty(n, np.float64)
    for k in range(n):
        xs[k] = spots[keep[k], COL_X]
    by_x = argsort(xs)  # stable, so sorting by y next keeps x order within equal y
    ys = np.empty(n, np.float64)
    for k in range(n):
        ys[k] = spots[keep[by_x[k]], COL_Y]
    by_y = argsort(ys)
    out = np.empty((n, spots.shape[1]), np.float64)
    for k in range(n):
        src = keep[by_x[by_y[k]]]
        for c in range(spots.shape[1]):
            out[k, c] = spots[src, c]
    return out
