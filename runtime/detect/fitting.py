"""Detection kernels that fit spots: Gaussian rendering, the per-spot Newton fit, the joint fit of a
pair, and the spot features (Numba).
"""

from __future__ import annotations

import numpy as np
from edgetrack.runtime.detect.layout import STEP_TOL
from numba import njit


@njit(cache=True, nogil=True)
def _gauss_axis(
    start: int, n: int, centre: float, inv2s2: float, q: float, wgt: np.ndarray, dist: np.ndarray
) -> tuple[float, float, float, float, float]:
    """1-D unit-peak Gaussian weights over pixels start..start+n-1; returns their sums
    (sum g, sum g d, sum g^2, sum g d^2, sum g^2 d), d = pixel - centre.

    Two exponentials instead of n: g(d + 1) = g(d) * r(d) with r(d) = exp(-(2 d + 1) c)
    and r(d + 1) = r(d) * q, c = 1 / (2 sigma^2) = ``inv2s2``, ``q`` = exp(-2 c) (the caller's).
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    sdd = 0.0
    s2d = 0.0
    d = float(start) - centre
    g = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    for k in range(n):
        wgt[k] = g
        dist[k] = d
        s0 += g
        s1 += g * d
        s2 += g * g
        sdd += g * d * d
        s2d += g * g * d
        g *= r
        r *= q
        d += 1.0
    return s0, s1, s2, sdd, s2d


@njit(cache=True, nogil=True)
def _own_axis(start: int, n: int, centre: float, inv2s2: float, q: float, lo: int, hi: int,
              out: np.ndarray) -> None:
    """1-D Gaussian profile of a rendered spot over pixels start..start+n-1 (0 outside [lo, hi));
    ``q`` = exp(-2 inv2s2), as in :func:`_gauss_axis`."""
    d = float(start) - centre
    g = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    for k in range(n):
        p = start + k
        out[k] = g if lo <= p < hi else 0.0
        g *= r
        r *= q


@njit(cache=True, nogil=True)
def _mask_axis(start: int, n: int, lo: int, hi: int, src: np.ndarray, out: np.ndarray) -> None:
    """``out[k] = src[k]`` for the pixels start + k in [lo, hi), else 0: the :func:`_own_axis` profile of a
    spot from the :func:`_gauss_axis` weights at the same centre (the same recurrence, so the same
    values) without its exponentials."""
    for k in range(n):
        p = start + k
        out[k] = src[k] if lo <= p < hi else 0.0


@njit(cache=True, nogil=True)
def render_window(h: int, w: int, y: float, x: float, radius: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the pixel rows y0..y1-1 and columns x0..x1-1 that :func:`render` draws in."""
    cy = min(max(int(np.floor(y + 0.5)), 0), h - 1)
    cx = min(max(int(np.floor(x + 0.5)), 0), w - 1)
    return max(cy - radius, 0), min(cy + radius + 1, h), max(cx - radius, 0), min(cx + radius + 1, w)


@njit(cache=True, nogil=True)
def render_profile(start: int, n: int, centre: float, inv2s2: float, q: float, scale: float,
                   out: np.ndarray) -> None:
    """``scale`` times the 1-D unit-peak Gaussian that :func:`render` draws along one axis, over pixels
    start..start+n-1 into ``out[:n]`` (``inv2s2`` = 1 / (2 sigma^2), ``q`` = exp(-2 inv2s2))."""
    d = float(start) - centre
    g = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    for k in range(n):
        out[k] = scale * g
        g *= r
        r *= q


@njit(cache=True, nogil=True)
def _render_rows(model: np.ndarray, y0: int, y1: int, x0: int, x1: int, y: float, inv2s2: float, q: float,
                 gx: np.ndarray) -> None:
    """Add the rows y0..y1-1 of a spot at row ``y``: ``gy * gx`` (``gx``: its columns x0..x1-1)."""
    d = float(y0) - y
    gy = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    nx = x1 - x0
    for yy in range(y0, y1):
        row = model[yy, x0:x1]
        for k in range(nx):
            row[k] += np.float32(gy * gx[k])
        gy *= r
        r *= q


@njit(cache=True, nogil=True)
def render(model: np.ndarray, y: float, x: float, amp: float, sigma: float, radius: int) -> None:
    """Add ``amp`` times a unit-peak Gaussian at (y, x) to ``model`` within ``radius`` px of
    the nearest pixel (``amp`` < 0 removes a spot rendered with the same arguments).

    The Gaussian along each axis comes from the recurrence of :func:`_gauss_axis` (three
    exponentials per axis instead of one per pixel, the same profile :func:`_own_axis` gives)."""
    if amp == 0.0:
        return
    h, w = model.shape
    inv2s2 = 0.5 / (sigma * sigma)
    q = np.exp(-2.0 * inv2s2)
    y0, y1, x0, x1 = render_window(h, w, y, x, radius)
    gx = np.empty(x1 - x0, np.float64)
    render_profile(x0, x1 - x0, x, inv2s2, q, amp, gx)
    _render_rows(model, y0, y1, x0, x1, y, inv2s2, q, gx)


@njit(cache=True, nogil=True)
def move_rendering(model: np.ndarray, y_old: float, x_old: float, amp_old: float, y: float, x: float,
                   amp: float, sigma: float, radius: int, work: np.ndarray) -> None:
    """``render(model, y_old, x_old, -amp_old, ...)`` then ``render(model, y, x, amp, ...)``, with the
    same float32 results pixel by pixel, in one pass over the window when the two share it (a spot
    that moved less than about half a pixel). ``work``: float64 (2, m), m >= 2 * radius + 1."""
    h, w = model.shape
    inv2s2 = 0.5 / (sigma * sigma)
    q = np.exp(-2.0 * inv2s2)
    wo = render_window(h, w, y_old, x_old, radius)
    wn = render_window(h, w, y, x, radius)
    if amp_old == 0.0 or amp == 0.0 or wo != wn:
        if amp_old != 0.0:
            render_profile(wo[2], wo[3] - wo[2], x_old, inv2s2, q, -amp_old, work[0])
            _render_rows(model, wo[0], wo[1], wo[2], wo[3], y_old, inv2s2, q, work[0])
        if amp != 0.0:
            render_profile(wn[2], wn[3] - wn[2], x, inv2s2, q, amp, work[1])
            _render_rows(model, wn[0], wn[1], wn[2], wn[3], y, inv2s2, q, work[1])
        return
    y0, y1, x0, x1 = wn
    nx = x1 - x0
    gxo = work[0, :nx]
    gxn = work[1, :nx]
    render_profile(x0, nx, x_old, inv2s2, q, -amp_old, gxo)
    render_profile(x0, nx, x, inv2s2, q, amp, gxn)
    d = float(y0) - y_old
    go = np.exp(-d * d * inv2s2)
    ro = np.exp(-(2.0 * d + 1.0) * inv2s2)
    d = float(y0) - y
    gn = np.exp(-d * d * inv2s2)
    rn = np.exp(-(2.0 * d + 1.0) * inv2s2)
    for yy in range(y0, y1):
        row = model[yy, x0:x1]
        for k in range(nx):
            row[k] = (row[k] + np.float32(go * gxo[k])) + np.float32(gn * gxn[k])
        go *= ro
        ro *= q
        gn *= rn
        rn *= q


@njit(cache=True, nogil=True)
def fit_scratch(sigma: float, fit_r: int, mass_radius: float) -> np.ndarray:
    """Work space of :func:`fit_spot` and :func:`spot_features`."""
    return np.empty((6, 2 * max(fit_r, int(np.ceil(3.0 * sigma)), int(np.ceil(mass_radius))) + 1), np.float64)


@njit(cache=True, nogil=True)
def fit_spot(
    img: np.ndarray,
    model: np.ndarray,
    y_start: float,
    x_start: float,
    amp_old: float,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
    scratch: np.ndarray,
) -> tuple[float, float, float, float]:
    """Fit one spot on ``img - model + own``, ``own`` being its previous rendering (``amp_old`` at
    (``y_start``, ``x_start``); 0 for a new spot), i.e. with every other spot subtracted.

    In a (2R+1)^2 window (R = ``fit_r`` px) on the nearest pixel, the data are fitted by least
    squares as ``A g + b`` (``g``: unit-peak Gaussian of width ``sigma`` at the current centre, ``b``:
    local background); the centre then moves to where the least-squares gradient vanishes, by the
    centroid of ``(data - b) g`` corrected for the window edge, the step scaled by
    (s^2 + s_w^2) / s_w^2 = 2 (Newton's step for a Gaussian spot). The window re-centres on the
    nearest pixel as the centre moves.

    Returns (y, x, A, b): px, px, counts (peak above b), counts per px.
    ``scratch``: float64 (6, m) work space, m >= 2 * fit_r + 1.
    """
    h, w = img.shape
    wy = scratch[0]
    wx = scratch[1]
    dyv = scratch[2]
    dxv = scratch[3]
    oy = scratch[4]
    ox = scratch[5]
    inv2s2 = 0.5 / (sigma * sigma)
    q = np.exp(-2.0 * inv2s2)
    # The window the old rendering covers (as in render).
    ry = min(max(int(np.floor(y_start + 0.5)), 0), h - 1)
    rx = min(max(int(np.floor(x_start + 0.5)), 0), w - 1)
    yc = y_start
    xc = x_start
    b = 0.0
    amp = 0.0
    own_y0 = -1  # the fit window the old rendering's profiles oy, ox were last computed for
    own_ny = -1
    own_x0 = -1
    own_nx = -1
    for it in range(max_iter + 1):
        cy = min(max(int(np.floor(yc + 0.5)), 0), h - 1)
        cx = min(max(int(np.floor(xc + 0.5)), 0), w - 1)
        y0 = max(cy - fit_r, 0)
        x0 = max(cx - fit_r, 0)
        ny = min(cy + fit_r + 1, h) - y0
        nx = min(cx + fit_r + 1, w) - x0
        gy0, gy1, gy2, _, gy2d = _gauss_axis(y0, ny, yc, inv2s2, q, wy, dyv)
        gx0, gx1, gx2, _, gx2d = _gauss_axis(x0, nx, xc, inv2s2, q, wx, dxv)
        if amp_old != 0.0:
            # The old rendering does not move: its profiles change only with the window.
            # While the centre has not moved (the first pass), the weights are that profile.
            if y0 != own_y0 or ny != own_ny:
                if yc == y_start:
                    _mask_axis(y0, ny, ry - render_r, ry + render_r + 1, wy, oy)
                else:
                    _own_axis(y0, ny, y_start, inv2s2, q, ry - render_r, ry + render_r + 1, oy)
                own_y0 = y0
                own_ny = ny
            if x0 != own_x0 or nx != own_nx:
                if xc == x_start:
                    _mask_axis(x0, nx, rx - render_r, rx + render_r + 1, wx, ox)
                else:
                    _own_axis(x0, nx, x_start, inv2s2, q, rx - render_r, rx + render_r + 1, ox)
                own_x0 = x0
                own_nx = nx
        else:
            for k in range(ny):
                oy[k] = 0.0
            for k in range(nx):
                ox[k] = 0.0
        # Data sums: plain, weighted and weighted first moments.
        si = 0.0
        swi = 0.0
        swy = 0.0
        swx = 0.0
        for ky in range(ny):
            irow = img[y0 + ky, x0:x0 + nx]
            mrow = model[y0 + ky, x0:x0 + nx]
            own = amp_old * oy[ky]
            r0 = 0.0
            rw0 = 0.0
            rwx = 0.0
            for kx in range(nx):
                a = float(irow[kx]) - float(mrow[kx]) + own * ox[kx]
                t = a * wx[kx]
                r0 += a
                rw0 += t
                rwx += t * dxv[kx]
            g = wy[ky]
            si += r0
            swi += g * rw0
            swy += g * dyv[ky] * rw0
            swx += g * rwx
        # Least squares data ~ A g + b over the window: a 2x2 linear system.
        sw = gy0 * gx0
        sww = gy2 * gx2
        npx = float(ny * nx)
        det = sww * npx - sw * sw
        if det > 1e-9 * sww * npx:
            b = (sww * si - sw * swi) / det
            amp = (npx * swi - sw * si) / det
        else:
            b = si / npx
            amp = 0.0
        s0 = swi - b * sw
        if it == max_iter or s0 <= 0.0:
            break
        # Gradient of the least-squares cost in y: sum((data - b - A g) g dy). The A g^2 dy
        # term vanishes in a symmetric window and removes the inward pull at image edges.
        sy = swy - b * gy1 * gx0 - amp * gy2d * gx2
        sx = swx - b * gx1 * gy0 - amp * gx2d * gy2
        stepy = min(max(2.0 * sy / s0, -1.0), 1.0)
        stepx = min(max(2.0 * sx / s0, -1.0), 1.0)
        yc = min(max(yc + stepy, -0.5), h - 0.5)
        xc = min(max(xc + stepx, -0.5), w - 0.5)
        if abs(stepy) < STEP_TOL and abs(stepx) < STEP_TOL:
            break  # the amplitude and background of this pass stand (moved < STEP_TOL)
    return yc, xc, amp, b


@njit(cache=True, nogil=True)
def _solve(a: np.ndarray, b: np.ndarray) -> bool:
    """Solve a x = b in place (x into b; a is destroyed) by Gaussian elimination with partial
    pivoting; False when a is singular."""
    n = b.shape[0]
    for c in range(n):
        piv = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[piv, c]):
                piv = r
        if a[piv, c] == 0.0:
            return False
        if piv != c:
            for k in range(n):
                t = a[c, k]
                a[c, k] = a[piv, k]
                a[piv, k] = t
            t = b[c]
            b[c] = b[piv]
            b[piv] = t
        for r in range(c + 1, n):
            f = a[r, c] / a[c, c]
            if f != 0.0:
                for k in range(c, n):
                    a[r, k] -= f * a[c, k]
                b[r] -= f * b[c]
    for c in range(n - 1, -1, -1):
        t = b[c]
        for k in range(c + 1, n):
            t -= a[c, k] * b[k]
        b[c] = t / a[c, c]
    return True


@njit(cache=True, nogil=True)
def _pair_factors(
    start: int, n: int, c1: float, c2: float, inv2s2: float, q: float, out: np.ndarray, offset_first: bool
) -> None:
    """The five distinct 1-D factors of :func:`fit_pair` over pixels start..start+n-1: with
    ``offset_first`` (y) g1 d1, g1, g2 d2, g2, 1, else (x) g1, g1 d1, g2, g2 d2, 1; d = pixel -
    centre, g the unit-peak Gaussian (by the recurrence of :func:`_gauss_axis`)."""
    d1 = float(start) - c1
    d2 = float(start) - c2
    g1 = np.exp(-d1 * d1 * inv2s2)
    g2 = np.exp(-d2 * d2 * inv2s2)
    r1 = np.exp(-(2.0 * d1 + 1.0) * inv2s2)
    r2 = np.exp(-(2.0 * d2 + 1.0) * inv2s2)
    a = 0 if offset_first else 1
    for k in range(n):
        out[a, k] = g1 * d1
        out[1 - a, k] = g1
        out[2 + a, k] = g2 * d2
        out[3 - a, k] = g2
        out[4, k] = 1.0
        g1 *= r1
        r1 *= q
        g2 *= r2
        r2 *= q
        d1 += 1.0
        d2 += 1.0


@njit(cache=True, nogil=True)
def pair_scratch(fit_r: int, render_r: int) -> np.ndarray:
    """Work space of :func:`fit_pair`: float64 (42, 2 (fit_r + render_r) + 4)."""
    return np.empty((42, 2 * (fit_r + render_r) + 4), np.float64)


@njit(cache=True, nogil=True)
def fit_pair(
    img: np.ndarray,
    model: np.ndarray,
    y1: float,
    x1: float,
    a1: float,
    y2: float,
    x2: float,
    a2: float,
    sigma: float,
    fit_r: int,
    max_iter: int,
    render_r: int,
    work: np.ndarray,
) -> tuple[bool, float, float, float, float, float, float, float]:
    """Joint least-squares fit of two overlapping spots, drawn in ``model`` as ``a1`` at (y1, x1)
    and ``a2`` at (y2, x2), on ``img`` minus every other spot: ``A1 g1 + A2 g2 + b`` over the
    union of their (2 fit_r + 1)^2 windows, by damped Gauss-Newton.

    Fitting the two one at a time converges slowly when they overlap (their positions and
    amplitudes trade off); the joint step does not. All the Gram sums are separable in y and
    x, so a pass over the pixels only accumulates five data sums per row.
    Returns (ok, y1, x1, A1, y2, x2, A2, b) in px and counts; ok is False (and the rest is
    the input) when no step could be made: the two are too far apart for one window, or the
    system is singular. ``work``: the scratch of :func:`pair_scratch` (overwritten).
    """
    h, w = img.shape
    inv_s2 = 1.0 / (sigma * sigma)
    inv2s2 = 0.5 * inv_s2
    # Old renderings (added back: the data are img - model + own1 + own2).
    r1y = min(max(int(np.floor(y1 + 0.5)), 0), h - 1)
    r1x = min(max(int(np.floor(x1 + 0.5)), 0), w - 1)
    r2y = min(max(int(np.floor(y2 + 0.5)), 0), h - 1)
    r2x = min(max(int(np.floor(x2 + 0.5)), 0), w - 1)
    oy1, ox1, oa1 = y1, x1, a1
    oy2, ox2, oa2 = y2, x2, a2
    m = 2 * (fit_r + render_r) + 4
    # Every Jacobian column is a product of a y factor and an x factor. Columns: 0 y1, 1 x1,
    # 2 A1, 3 y2, 4 x2, 5 A2, 6 b. Distinct y factors: g1 dy1, g1, g2 dy2, g2, 1; distinct x
    # factors: g1, g1 dx1, g2, g2 dx2, 1 (unscaled; the scales A/sigma^2 come in later).
    yi = (0, 1, 1, 2, 3, 3, 4)
    xi = (0, 1, 0, 2, 3, 2, 4)
    fy = work[0:5]
    fx = work[5:10]
    gy = work[10:15, :5]  # Gram matrices of the factors
    gx = work[15:20, :5]
    rows = work[20:25]  # per-row data sums against the x factors
    # The old renderings along each axis, over their whole windows (computed once).
    nr = 2 * render_r + 1
    own = work[25:29, :nr]
    q = np.exp(-2.0 * inv2s2)
    _own_axis(r1y - render_r, nr, oy1, inv2s2, q, r1y - render_r, r1y + render_r + 1, own[0])
    _own_axis(r1x - render_r, nr, ox1, inv2s2, q, r1x - render_r, r1x + render_r + 1, own[1])
    _own_axis(r2y - render_r, nr, oy2, inv2s2, q, r2y - render_r, r2y + render_r + 1, own[2])
    _own_axis(r2x - render_r, nr, ox2, inv2s2, q, r2x - render_r, r2x + render_r + 1, own[3])
    wy = work[29:31]
    wx = work[31:33]
    jtj = work[33:40, :7]
    rhs = work[40, :7]
    scale = work[41, :7]
    b = 0.0
    ok = False
    for it in range(max_iter + 1):
        c1y = min(max(int(np.floor(y1 + 0.5)), 0), h - 1)
        c1x = min(max(int(np.floor(x1 + 0.5)), 0), w - 1)
        c2y = min(max(int(np.floor(y2 + 0.5)), 0), h - 1)
        c2x = min(max(int(np.floor(x2 + 0.5)), 0), w - 1)
        y0 = max(min(c1y, c2y) - fit_r, 0)
        x0 = max(min(c1x, c2x) - fit_r, 0)
        ny = min(max(c1y, c2y) + fit_r + 1, h) - y0
        nx = min(max(c1x, c2x) + fit_r + 1, w) - x0
        if ny > m or nx > m:
            break  # the two drifted apart: leave them to the single-spot fits
        _pair_factors(y0, ny, y1, y2, inv2s2, q, fy, True)
        _pair_factors(x0, nx, x1, x2, inv2s2, q, fx, False)
        # Old renderings over this window (0 outside their own windows).
        for k in range(ny):
            i1 = y0 + k - (r1y - render_r)
            i2 = y0 + k - (r2y - render_r)
            wy[0, k] = oa1 * own[0, i1] if 0 <= i1 < nr else 0.0
            wy[1, k] = oa2 * own[2, i2] if 0 <= i2 < nr else 0.0
        for k in range(nx):
            i1 = x0 + k - (r1x - render_r)
            i2 = x0 + k - (r2x - render_r)
            wx[0, k] = own[1, i1] if 0 <= i1 < nr else 0.0
            wx[1, k] = own[3, i2] if 0 <= i2 < nr else 0.0
        # Data sums per row against the x factors (the data: img - model + both old spots).
        for ky in range(ny):
            irow = img[y0 + ky, x0:x0 + nx]
            mrow = model[y0 + ky, x0:x0 + nx]
            w1 = wy[0, ky]
            w2 = wy[1, ky]
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            t4 = 0.0
            for kx in range(nx):
                d = float(irow[kx]) - float(mrow[kx]) + w1 * wx[0, kx] + w2 * wx[1, kx]
                t0 += d * fx[0, kx]
                t1 += d * fx[1, kx]
                t2 += d * fx[2, kx]
                t3 += d * fx[3, kx]
                t4 += d
            rows[0, ky] = t0
            rows[1, ky] = t1
            rows[2, ky] = t2
            rows[3, ky] = t3
            rows[4, ky] = t4
        for f1 in range(5):
            for f2 in range(f1, 5):
                sy = 0.0
                for k in range(ny):
                    sy += fy[f1, k] * fy[f2, k]
                sx = 0.0
                for k in range(nx):
                    sx += fx[f1, k] * fx[f2, k]
                gy[f1, f2] = sy
                gy[f2, f1] = sy
                gx[f1, f2] = sx
                gx[f2, f1] = sx
        scale[0] = a1 * inv_s2
        scale[1] = a1 * inv_s2
        scale[2] = 1.0
        scale[3] = a2 * inv_s2
        scale[4] = a2 * inv_s2
        scale[5] = 1.0
        scale[6] = 1.0
        for c in range(7):
            sd = 0.0
            for k in range(ny):
                sd += fy[yi[c], k] * rows[xi[c], k]
            rhs[c] = scale[c] * sd
            for c2 in range(c, 7):
                jtj[c, c2] = scale[c] * scale[c2] * gy[yi[c], yi[c2]] * gx[xi[c], xi[c2]]
                jtj[c2, c] = jtj[c, c2]
        # Residual side: J^T (d - A1 g1 - A2 g2 - b); columns 2, 5, 6 are g1, g2 and 1.
        for c in range(7):
            rhs[c] -= jtj[c, 2] * a1 + jtj[c, 5] * a2 + jtj[c, 6] * b
        if it == max_iter:
            break
        for c in range(7):
            jtj[c, c] *= 1.0 + 1e-6
        if not _solve(jtj, rhs):
            break
        ok = True
        dy1 = min(max(rhs[0], -1.0), 1.0)
        dx1 = min(max(rhs[1], -1.0), 1.0)
        dy2 = min(max(rhs[3], -1.0), 1.0)
        dx2 = min(max(rhs[4], -1.0), 1.0)
        y1 = min(max(y1 + dy1, -0.5), h - 0.5)
        x1 = min(max(x1 + dx1, -0.5), w - 0.5)
        y2 = min(max(y2 + dy2, -0.5), h - 0.5)
        x2 = min(max(x2 + dx2, -0.5), w - 0.5)
        a1 += rhs[2]
        a2 += rhs[5]
        b += rhs[6]
        if a1 <= 0.0 or a2 <= 0.0:
            break  # one of them is not there: the amplitude cut drops it
        if max(abs(dy1), abs(dx1), abs(dy2), abs(dx2)) < STEP_TOL:
            break
    if not ok:
        return False, oy1, ox1, oa1, oy2, ox2, oa2, 0.0
    return True, y1, x1, a1, y2, x2, a2, b


@njit(cache=True, nogil=True)
def spot_features(
    img: np.ndarray,
    model: np.ndarray,
    yc: float,
    xc: float,
    amp: float,
    b: float,
    sigma: float,
    render_r: int,
    mass_radius: float,
    scratch: np.ndarray,
) -> tuple[float, float, float]:
    """Mass, size and eccentricity of a fitted spot, rendered in ``model`` as ``amp`` at (yc, xc),
    from ``img - (model - own) - b`` (the other spots and the background removed).

    Mass: sum over the disc of ``mass_radius`` px (counts). Size and eccentricity: from the
    Gaussian-weighted (width ``sigma``) second moments over a window of radius
    max(ceil(3 sigma), ceil(mass_radius)), wide enough for the weights to vanish.
    ``scratch``: float64 (6, m) work space, m >= 2 * max(ceil(3 sigma), ceil(mass_radius)) + 1.
    """
    h, w = img.shape
    wy = scratch[0]
    wx = scratch[1]
    dyv = scratch[2]
    dxv = scratch[3]
    oy = scratch[4]
    ox = scratch[5]
    inv2s2 = 0.5 / (sigma * sigma)
    s2 = sigma * sigma
    rf = max(int(np.ceil(3.0 * sigma)), int(np.ceil(mass_radius)))
    rm2 = mass_radius * mass_radius
    cy = min(max(int(np.floor(yc + 0.5)), 0), h - 1)
    cx = min(max(int(np.floor(xc + 0.5)), 0), w - 1)
    y0 = max(cy - rf, 0)
    x0 = max(cx - rf, 0)
    ny = min(cy + rf + 1, h) - y0
    nx = min(cx + rf + 1, w) - x0
    q = np.exp(-2.0 * inv2s2)
    _gauss_axis(y0, ny, yc, inv2s2, q, wy, dyv)
    _gauss_axis(x0, nx, xc, inv2s2, q, wx, dxv)
    _mask_axis(y0, ny, cy - render_r, cy + render_r + 1, wy, oy)
    _mask_axis(x0, nx, cx - render_r, cx + render_r + 1, wx, ox)
    mass = 0.0
    s0 = 0.0
    syy = 0.0
    sxx = 0.0
    sxy = 0.0
    for ky in range(ny):
        irow = img[y0 + ky, x0:x0 + nx]
        mrow = model[y0 + ky, x0:x0 + nx]
        own = amp * oy[ky]
        d = dyv[ky]
        r0 = 0.0
        rwx = 0.0
        rwxx = 0.0
        for kx in range(nx):
            a = float(irow[kx]) - float(mrow[kx]) + own * ox[kx] - b
            # A select, not a branch (it mispredicts at the disc's edge); mass starts at +0.0, so
            # adding 0.0 outside the disc changes no bit.
            mass += a if d * d + dxv[kx] * dxv[kx] <= rm2 else 0.0
            t = a * wx[kx]
            r0 += t
            rwx += t * dxv[kx]
            rwxx += t * dxv[kx] * dxv[kx]
        g = wy[ky]
        s0 += g * r0
        syy += g * d * d * r0
        sxx += g * rwxx
        sxy += g * d * rwx
    # The second moments of (spot x weight) are those of a Gaussian of covariance
    # P = (C^-1 + I / s_w^2)^-1; invert per principal axis for the spot covariance C.
    size = 0.0
    ecc = 0.0
    if s0 > 0.0:
        pyy = syy / s0
        pxx = sxx / s0
        pxy = sxy / s0
        tr = 0.5 * (pyy + pxx)
        disc = np.sqrt(max(0.25 * (pyy - pxx) * (pyy - pxx) + pxy * pxy, 0.0))
        p1 = min(max(tr + disc, 1e-3 * s2), 0.8 * s2)
        p2 = min(max(tr - disc, 1e-3 * s2), 0.8 * s2)
        c1 = p1 * s2 / (s2 - p1)
        c2 = p2 * s2 / (s2 - p2)
        size = np.sqrt(c1 + c2)
        ecc = np.sqrt(max(1.0 - c2 / c1, 0.0))  # < 1 because c2 > 0
    return mass, size, ecc
