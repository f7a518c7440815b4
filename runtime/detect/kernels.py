"""Numba kernels of the spot detector (:mod:`edgetrack.runtime.detect.spots`).

All images are float32, 2-D, C-contiguous, indexed ``[row, column]`` (``y``, ``x``) with pixel
centres at integer coordinates. Every kernel is single-threaded, releases the GIL and is cached
on disk, so a streaming tracker can run detection in a worker thread and start up fast.

Kernels in pipeline order (called one by one from ``detect._fit_frame``, which keeps each
compiled unit small): :func:`bandpass`, :func:`robust_noise`, :func:`local_maxima`,
:func:`seed_spots`, :func:`deblend`, :func:`add_residual_spots`, :func:`drop_faint`,
:func:`spot_table`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Column order of the feature array returned by :func:`spot_table`.
COL_Y, COL_X, COL_MASS, COL_SIZE, COL_SIGNAL, COL_ECC = 0, 1, 2, 3, 4, 5
N_COLS = 6
# Columns of the working spot state (float64 (n, ST_COLS)) passed between the fitting kernels.
ST_Y, ST_X, ST_AMP, ST_BG, ST_SIG = 0, 1, 2, 3, 4
ST_COLS = 5
STEP_TOL = 0.005  # px; refinement stops once a step is smaller in both y and x
DEBLEND_TOL = 0.005  # px; deblending refits the neighbours of spots that moved more


@njit(cache=True, nogil=True)
def _clamp(i: int, n: int) -> int:
    if i < 0:
        return 0
    if i >= n:
        return n - 1
    return i


@njit(cache=True, nogil=True)
def _row_pass(
    img: np.ndarray,
    sub: np.ndarray,
    use_sub: bool,
    row_index: int,
    kernel: np.ndarray,
    box_half: int,
    buf: np.ndarray,
    pair: np.ndarray,
    smooth_out: np.ndarray,
    box_out: np.ndarray,
) -> None:
    """Horizontal pass of one row (``img - sub`` when ``use_sub``), edges replicated: the
    smoothing taps into ``smooth_out`` and the (2b+1)-px box sum into ``box_out``.
    ``buf``, ``pair``: float32 scratch of length W + 2 max(R, b)."""
    w = img.shape[1]
    r = kernel.shape[0] // 2
    pad = (buf.shape[0] - w) // 2
    row = img[row_index]
    mid = buf[pad:pad + w]
    if use_sub:
        srow = sub[row_index]
        for j in range(w):
            mid[j] = row[j] - srow[j]
    else:
        for j in range(w):
            mid[j] = row[j]
    first = mid[0]
    last = mid[w - 1]
    for j in range(pad):
        buf[j] = first
        buf[pad + w + j] = last
    # Inner loops index slices with the loop counter only: Numba then drops its
    # negative-index checks and the loops vectorise.
    for j in range(w):
        smooth_out[j] = 0.0
        box_out[j] = 0.0
    # Taps in groups of four: one read-modify-write of the output per group.
    n_taps = 2 * r + 1
    k = 0
    while k + 4 <= n_taps:
        g0 = kernel[k]
        g1 = kernel[k + 1]
        g2 = kernel[k + 2]
        g3 = kernel[k + 3]
        s0 = buf[pad - r + k:pad - r + k + w]
        s1 = buf[pad - r + k + 1:pad - r + k + 1 + w]
        s2 = buf[pad - r + k + 2:pad - r + k + 2 + w]
        s3 = buf[pad - r + k + 3:pad - r + k + 3 + w]
        for j in range(w):
            smooth_out[j] += g0 * s0[j] + g1 * s1[j] + g2 * s2[j] + g3 * s3[j]
        k += 4
    while k < n_taps:
        g = kernel[k]
        src = buf[pad - r + k:pad - r + k + w]
        for j in range(w):
            smooth_out[j] += g * src[j]
        k += 1
    # Box sum from pair sums: b + 1 passes instead of 2b + 1.
    n_pair = w + 2 * pad - 1
    pairs = pair[:n_pair]
    for j in range(n_pair):
        pairs[j] = buf[j] + buf[j + 1]
    k = 0
    while k + 3 <= box_half:
        s0 = pairs[pad - box_half + 2 * k:pad - box_half + 2 * k + w]
        s1 = pairs[pad - box_half + 2 * k + 2:pad - box_half + 2 * k + 2 + w]
        s2 = pairs[pad - box_half + 2 * k + 4:pad - box_half + 2 * k + 4 + w]
        for j in range(w):
            box_out[j] += s0[j] + s1[j] + s2[j]
        k += 3
    while k < box_half:
        src = pairs[pad - box_half + 2 * k:pad - box_half + 2 * k + w]
        for j in range(w):
            box_out[j] += src[j]
        k += 1
    src = buf[pad + box_half:pad + box_half + w]
    for j in range(w):
        box_out[j] += src[j]


@njit(cache=True, nogil=True)
def bandpass(
    img: np.ndarray, sub: np.ndarray, use_sub: bool, kernel: np.ndarray, box_half: int, out: np.ndarray
) -> None:
    """Gaussian-smoothed image minus its local box mean, edges replicated, written to ``out``.

    ``img``: float32 (H, W) counts; with ``use_sub`` the input is ``img - sub`` (``sub`` float32
    (H, W), e.g. a model of the spots already found). ``kernel``: float32 (2R+1,) normalised 1-D
    smoothing taps. ``box_half``: half-width b (px) of the (2b+1)^2 background box. ``out``:
    float32 (H, W), receives ``smooth(input) - boxmean(input)`` in counts (~0 on a flat
    background). Rows pass through small ring buffers, so no frame-sized temporary is made.
    """
    h, w = img.shape
    r = kernel.shape[0] // 2
    p = max(r, box_half + 1)
    n_ring = 2 * p + 2
    ring_s = np.empty((n_ring, w), np.float32)
    ring_b = np.empty((n_ring, w), np.float32)
    buf = np.empty(w + 2 * max(r, box_half), np.float32)
    line = np.empty(w, np.float32)
    pair = np.empty(buf.shape[0], np.float32)
    acc = np.zeros(w, np.float64)
    inv_area = 1.0 / float((2 * box_half + 1) * (2 * box_half + 1))
    # Unclamped row u (-p <= u < h + p) lives in ring slot (u + p) % n_ring.
    next_u = -p
    for i in range(h):
        while next_u <= i + p:
            slot = (next_u + p) % n_ring
            _row_pass(img, sub, use_sub, _clamp(next_u, h), kernel, box_half, buf, pair, ring_s[slot], ring_b[slot])
            next_u += 1
        if i == 0:
            for u in range(-box_half, box_half + 1):
                src = ring_b[(u + p) % n_ring]
                for j in range(w):
                    acc[j] += src[j]
        for j in range(w):
            line[j] = np.float32(-acc[j] * inv_area)
        n_taps = 2 * r + 1
        k = 0
        while k + 4 <= n_taps:
            g0 = kernel[k]
            g1 = kernel[k + 1]
            g2 = kernel[k + 2]
            g3 = kernel[k + 3]
            s0 = ring_s[(i - r + k + p) % n_ring]
            s1 = ring_s[(i - r + k + 1 + p) % n_ring]
            s2 = ring_s[(i - r + k + 2 + p) % n_ring]
            s3 = ring_s[(i - r + k + 3 + p) % n_ring]
            for j in range(w):
                line[j] += g0 * s0[j] + g1 * s1[j] + g2 * s2[j] + g3 * s3[j]
            k += 4
        while k < n_taps:
            g = kernel[k]
            src = ring_s[(i - r + k + p) % n_ring]
            for j in range(w):
                line[j] += g * src[j]
            k += 1
        orow = out[i]
        for j in range(w):
            orow[j] = line[j]
        add = ring_b[(i + box_half + 1 + p) % n_ring]
        rem = ring_b[(i - box_half + p) % n_ring]
        for j in range(w):
            acc[j] += add[j] - rem[j]


@njit(cache=True, nogil=True)
def _select(a: np.ndarray, k: int) -> float:
    """The k-th smallest value of ``a`` (float64 (n,), reordered in place): quickselect."""
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(cache=True, nogil=True)
def _median(a: np.ndarray) -> float:
    """Median of float64 ``a`` (n >= 1; reordered in place)."""
    n = a.shape[0]
    upper = _select(a, n // 2)
    if n % 2 == 1:
        return upper
    lower = a[0]
    for k in range(1, n // 2):  # the lower half now holds the n // 2 smallest values
        lower = max(lower, a[k])
    return 0.5 * (lower + upper)


@njit(cache=True, nogil=True)
def _argsort(keys: np.ndarray) -> np.ndarray:
    """Stable ascending argsort of float64 ``keys`` (bottom-up merge sort): int64 (n,)."""
    n = keys.shape[0]
    idx = np.empty(n, np.int64)
    tmp = np.empty(n, np.int64)
    for i in range(n):
        idx[i] = i
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            for k in range(lo, hi):
                if i < mid and (j >= hi or keys[idx[i]] <= keys[idx[j]]):
                    tmp[k] = idx[i]
                    i += 1
                else:
                    tmp[k] = idx[j]
                    j += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@njit(cache=True, nogil=True)
def robust_noise(img: np.ndarray, filt: np.ndarray, step_y: int, step_x: int) -> tuple[float, float, float]:
    """Noise statistics from the pixels on a grid of ``step_y`` rows by ``step_x`` columns.

    Returns the median and robust std (1.4826 * MAD) of ``filt`` (the std of the sample when
    the MAD is zero, e.g. mostly flat frames) and the largest ``|img|`` on the grid (counts).
    Whole rows are sampled at a short column step, so the reads stream through memory.
    """
    h, w = filt.shape
    ny = (h + step_y - 1) // step_y
    nx = (w + step_x - 1) // step_x
    sample = np.empty(ny * nx, np.float64)
    n = 0
    scale = 0.0
    for i in range(0, h, step_y):
        frow = filt[i]
        irow = img[i]
        for j in range(0, w, step_x):
            sample[n] = frow[j]
            scale = max(scale, abs(float(irow[j])))
            n += 1
    sample = sample[:n]
    med = _median(sample.copy())
    dev = np.empty(n, np.float64)
    for k in range(n):
        dev[k] = abs(sample[k] - med)
    sigma = 1.4826 * _median(dev)
    if sigma <= 0.0:
        mean = 0.0
        for k in range(n):
            mean += sample[k]
        mean /= n
        var = 0.0
        for k in range(n):
            var += (sample[k] - mean) ** 2
        sigma = np.sqrt(var / n)
    return med, sigma, scale


@njit(cache=True, nogil=True)
def local_maxima(
    filt: np.ndarray,
    base: float,
    excess: float,
    prof_y: np.ndarray,
    prof_x: np.ndarray,
    dy: np.ndarray,
    dx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels above their threshold that no other pixel in the window (offsets ``dy``, ``dx``) beats.

    The threshold at (y, x) is ``base + excess * sqrt(max(v, 1))``, ``v`` the noise variance
    of the band-passed image there relative to the interior (it grows near the edges, where the
    filters see fewer distinct pixels): ``v = a_y a_x - 2 c_y c_x + e_y e_x`` from the rows
    (a, c, e) of ``prof_y`` (3, H) and ``prof_x`` (3, W). A neighbour beats a pixel when it is
    larger, or equal and earlier in raster order, so plateaus give exactly one maximum.
    Returns int64 arrays (rows, cols) in raster order.
    """
    h, w = filt.shape
    cap = 1024
    ys = np.empty(cap, np.int64)
    xs = np.empty(cap, np.int64)
    n = 0
    low = np.float32(base + excess)  # the lowest threshold anywhere (v >= 1)
    m = dy.shape[0]
    above = np.empty(w, np.int64)
    mask = np.zeros(w, np.bool_)
    for i in range(h):
        row = filt[i]
        # First the maxima along the row above the lowest threshold (left neighbour smaller,
        # right one not larger: the tie rule), in a loop that vectorises.
        mask[0] = (row[0] > low) and (w == 1 or row[0] >= row[1])
        mask[w - 1] = (row[w - 1] > low) and (w == 1 or row[w - 1] > row[w - 2])
        left = row[0:w - 2]
        mid = row[1:w - 1]
        right = row[2:w]
        inner = mask[1:w - 1]
        for j in range(w - 2):
            inner[j] = (mid[j] > low) & (mid[j] > left[j]) & (mid[j] >= right[j])
        na = 0
        for j in range(w):
            if mask[j]:
                above[na] = j
                na += 1
        for a in range(na):
            j = above[a]
            v = row[j]
            var = (prof_y[0, i] * prof_x[0, j] - 2.0 * prof_y[1, i] * prof_x[1, j]
                   + prof_y[2, i] * prof_x[2, j])
            if var > 1.0 and not v > base + excess * np.sqrt(var):
                continue
            ok = True
            for k in range(m):
                yy = i + dy[k]
                xx = j + dx[k]
                if yy < 0 or yy >= h or xx < 0 or xx >= w:
                    continue
                q = filt[yy, xx]
                if q > v or (q == v and (dy[k] < 0 or (dy[k] == 0 and dx[k] < 0))):
                    ok = False
                    break
            if ok:
                if n == cap:
                    cap *= 2
                    ys2 = np.empty(cap, np.int64)
                    xs2 = np.empty(cap, np.int64)
                    for k in range(n):
                        ys2[k] = ys[k]
                        xs2[k] = xs[k]
                    ys = ys2
                    xs = xs2
                ys[n] = i
                xs[n] = j
                n += 1
    out_y = np.empty(n, np.int64)
    out_x = np.empty(n, np.int64)
    for k in range(n):
        out_y[k] = ys[k]
        out_x[k] = xs[k]
    return out_y, out_x


@njit(cache=True, nogil=True)
def _gauss_axis(
    start: int, n: int, centre: float, inv2s2: float, wgt: np.ndarray, dist: np.ndarray
) -> tuple[float, float, float, float, float]:
    """1-D unit-peak Gaussian weights over pixels start..start+n-1; returns their sums
    (sum g, sum g d, sum g^2, sum g d^2, sum g^2 d), d = pixel - centre.

    Three exponentials instead of n: g(d + 1) = g(d) * r(d) with r(d) = exp(-(2 d + 1) c)
    and r(d + 1) = r(d) * exp(-2 c), c = 1 / (2 sigma^2).
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    sdd = 0.0
    s2d = 0.0
    d = float(start) - centre
    g = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    q = np.exp(-2.0 * inv2s2)
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
def _own_axis(start: int, n: int, centre: float, inv2s2: float, lo: int, hi: int, out: np.ndarray) -> None:
    """1-D Gaussian profile of a rendered spot over pixels start..start+n-1 (0 outside [lo, hi))."""
    d = float(start) - centre
    g = np.exp(-d * d * inv2s2)
    r = np.exp(-(2.0 * d + 1.0) * inv2s2)
    q = np.exp(-2.0 * inv2s2)
    for k in range(n):
        p = start + k
        out[k] = g if lo <= p < hi else 0.0
        g *= r
        r *= q


@njit(cache=True, nogil=True)
def _render(model: np.ndarray, y: float, x: float, amp: float, sigma: float, radius: int) -> None:
    """Add ``amp`` times a unit-peak Gaussian at (y, x) to ``model`` within ``radius`` px of
    the nearest pixel (``amp`` < 0 removes a spot rendered with the same arguments)."""
    if amp == 0.0:
        return
    h, w = model.shape
    inv2s2 = 0.5 / (sigma * sigma)
    cy = min(max(int(np.floor(y + 0.5)), 0), h - 1)
    cx = min(max(int(np.floor(x + 0.5)), 0), w - 1)
    x0 = max(cx - radius, 0)
    x1 = min(cx + radius + 1, w)
    gx = np.empty(x1 - x0, np.float64)
    for k in range(x1 - x0):
        d = float(x0 + k) - x
        gx[k] = amp * np.exp(-d * d * inv2s2)
    for yy in range(max(cy - radius, 0), min(cy + radius + 1, h)):
        d = float(yy) - y
        gy = np.exp(-d * d * inv2s2)
        row = model[yy, x0:x1]
        for k in range(x1 - x0):
            row[k] += np.float32(gy * gx[k])


@njit(cache=True, nogil=True)
def _scratch(sigma: float, fit_r: int, mass_radius: float) -> np.ndarray:
    """Work space of :func:`_fit_spot` and :func:`_spot_features`."""
    return np.empty((6, 2 * max(fit_r, int(np.ceil(3.0 * sigma)), int(np.ceil(mass_radius))) + 1), np.float64)


@njit(cache=True, nogil=True)
def _fit_spot(
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
    # The window the old rendering covers (as in _render).
    ry = min(max(int(np.floor(y_start + 0.5)), 0), h - 1)
    rx = min(max(int(np.floor(x_start + 0.5)), 0), w - 1)
    yc = y_start
    xc = x_start
    b = 0.0
    amp = 0.0
    for it in range(max_iter + 1):
        cy = min(max(int(np.floor(yc + 0.5)), 0), h - 1)
        cx = min(max(int(np.floor(xc + 0.5)), 0), w - 1)
        y0 = max(cy - fit_r, 0)
        x0 = max(cx - fit_r, 0)
        ny = min(cy + fit_r + 1, h) - y0
        nx = min(cx + fit_r + 1, w) - x0
        gy0, gy1, gy2, _, gy2d = _gauss_axis(y0, ny, yc, inv2s2, wy, dyv)
        gx0, gx1, gx2, _, gx2d = _gauss_axis(x0, nx, xc, inv2s2, wx, dxv)
        if amp_old != 0.0:
            _own_axis(y0, ny, y_start, inv2s2, ry - render_r, ry + render_r + 1, oy)
            _own_axis(x0, nx, x_start, inv2s2, rx - render_r, rx + render_r + 1, ox)
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
    """The five distinct 1-D factors of :func:`_fit_pair` over pixels start..start+n-1: with
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
def _fit_pair(
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
) -> tuple[bool, float, float, float, float, float, float, float]:
    """Joint least-squares fit of two overlapping spots, drawn in ``model`` as ``a1`` at (y1, x1)
    and ``a2`` at (y2, x2), on ``img`` minus every other spot: ``A1 g1 + A2 g2 + b`` over the
    union of their (2 fit_r + 1)^2 windows, by damped Gauss-Newton.

    Fitting the two one at a time converges slowly when they overlap (their positions and
    amplitudes trade off); the joint step does not. All the Gram sums are separable in y and
    x, so a pass over the pixels only accumulates five data sums per row.
    Returns (ok, y1, x1, A1, y2, x2, A2, b) in px and counts; ok is False (and the rest is
    the input) when no step could be made: the two are too far apart for one window, or the
    system is singular.
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
    yi = np.array([0, 1, 1, 2, 3, 3, 4])
    xi = np.array([0, 1, 0, 2, 3, 2, 4])
    fy = np.empty((5, m), np.float64)
    fx = np.empty((5, m), np.float64)
    gy = np.empty((5, 5), np.float64)  # Gram matrices of the factors
    gx = np.empty((5, 5), np.float64)
    rows = np.empty((5, m), np.float64)  # per-row data sums against the x factors
    # The old renderings along each axis, over their whole windows (computed once).
    nr = 2 * render_r + 1
    own = np.empty((4, nr), np.float64)
    _own_axis(r1y - render_r, nr, oy1, inv2s2, r1y - render_r, r1y + render_r + 1, own[0])
    _own_axis(r1x - render_r, nr, ox1, inv2s2, r1x - render_r, r1x + render_r + 1, own[1])
    _own_axis(r2y - render_r, nr, oy2, inv2s2, r2y - render_r, r2y + render_r + 1, own[2])
    _own_axis(r2x - render_r, nr, ox2, inv2s2, r2x - render_r, r2x + render_r + 1, own[3])
    wy = np.empty((2, m), np.float64)
    wx = np.empty((2, m), np.float64)
    jtj = np.empty((7, 7), np.float64)
    rhs = np.empty(7, np.float64)
    scale = np.empty(7, np.float64)
    q = np.exp(-2.0 * inv2s2)
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
def _spot_features(
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
    _gauss_axis(y0, ny, yc, inv2s2, wy, dyv)
    _gauss_axis(x0, nx, xc, inv2s2, wx, dxv)
    _own_axis(y0, ny, yc, inv2s2, cy - render_r, cy + render_r + 1, oy)
    _own_axis(x0, nx, xc, inv2s2, cx - render_r, cx + render_r + 1, ox)
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
            if d * d + dxv[kx] * dxv[kx] <= rm2:
                mass += a
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


@njit(cache=True, nogil=True)
def _near(ys: np.ndarray, xs: np.ndarray, alive: np.ndarray, seed: np.ndarray, radius: float) -> np.ndarray:
    """True for each live spot within ``radius`` px of another spot where one of the two is a
    seed (a seed that is no longer alive still flags its live neighbours)."""
    n = ys.shape[0]
    flag = np.zeros(n, np.bool_)
    if n == 0:
        return flag
    # Spots in order of their pixel row (a counting sort): a candidate neighbour further down
    # than radius + 1 px ends the scan, since rows only grow along the order.
    lo = int(np.floor(ys[0]))
    hi = lo
    for i in range(n):
        r = int(np.floor(ys[i]))
        lo = min(lo, r)
        hi = max(hi, r)
    start = np.zeros(hi - lo + 2, np.int64)
    for i in range(n):
        start[int(np.floor(ys[i])) - lo + 1] += 1
    for k in range(1, hi - lo + 2):
        start[k] += start[k - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        k = int(np.floor(ys[i])) - lo
        order[start[k]] = i
        start[k] += 1
    r2 = radius * radius
    reach = radius + 1.0
    for a in range(n):
        i = order[a]
        if not (alive[i] or seed[i]):
            continue
        for c in range(a + 1, n):
            j = order[c]
            dy = ys[j] - ys[i]
            if dy >= reach:
                break
            if not (seed[i] or seed[j]) or not (alive[j] or seed[j]):
                continue
            dx = xs[j] - xs[i]
            if dy * dy + dx * dx < r2:
                if alive[i]:
                    flag[i] = True
                if alive[j]:
                    flag[j] = True
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
    scratch = _scratch(sigma, fit_r, 0.0)
    tol2 = DEBLEND_TOL * DEBLEND_TOL
    done = np.zeros(n, np.bool_)
    for _ in range(max_sweeps):
        todo = _near(st[:, ST_Y], st[:, ST_X], alive, seed, 5.0 * sigma)
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
                ok, y1, x1, a1, y2, x2, a2, bg = _fit_pair(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP],
                                                           st[j, ST_Y], st[j, ST_X], st[j, ST_AMP],
                                                           sigma, fit_r, max_iter, render_r)
            if ok:
                moved_i = _move(model, st, i, y1, x1, a1, bg, sigma, render_r) > tol2
                moved_j = _move(model, st, j, y2, x2, a2, bg, sigma, render_r) > tol2
                if moved_i or moved_j:
                    seed[i] = True
                    seed[j] = True
                    any_moved = True
                done[j] = True
                continue
            y, x, a, bg = _fit_spot(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP], sigma, fit_r, max_iter,
                                    render_r, scratch)
            if _move(model, st, i, y, x, a, bg, sigma, render_r) > tol2:
                seed[i] = True
                any_moved = True
        if not any_moved:
            break


@njit(cache=True, nogil=True)
def _move(
    model: np.ndarray, st: np.ndarray, i: int, y: float, x: float, amp: float, bg: float, sigma: float,
    render_r: int
) -> float:
    """Replace spot i's fit in ``st`` and in ``model``; returns the squared shift (px^2)."""
    _render(model, st[i, ST_Y], st[i, ST_X], -st[i, ST_AMP], sigma, render_r)
    _render(model, y, x, amp, sigma, render_r)
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
) -> None:
    """Fit a new spot from the maximum (i, j) of ``peak_img`` (a band-passed image) against
    ``img - model``, store it in row ``k`` of ``st`` and draw it into ``model``."""
    y0, x0 = _parabola_peak(peak_img, i, j)
    y, x, a, bg = _fit_spot(img, model, y0, x0, 0.0, sigma, fit_r, max_iter, render_r, scratch)
    st[k, ST_Y] = y
    st[k, ST_X] = x
    st[k, ST_AMP] = a
    st[k, ST_BG] = bg
    st[k, ST_SIG] = peak_img[i, j]
    _render(model, y, x, a, sigma, render_r)


@njit(cache=True, nogil=True)
def _strongest_first(filt: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Order of the maxima (``ys``, ``xs``) by decreasing ``filt`` value, ties in input order."""
    key = np.empty(ys.shape[0], np.float64)
    for s in range(ys.shape[0]):
        key[s] = -filt[ys[s], xs[s]]
    return _argsort(key)


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
    scratch = _scratch(sigma, fit_r, 0.0)
    k = 0
    for s in _strongest_first(filt, ys, xs):
        _add_spot(img, model, filt, ys[s], xs[s], st, k, sigma, fit_r, max_iter, render_r, scratch)
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
    from row ``n`` (it must have room for ``len(ys)`` more); returns the new count.
    """
    h, w = img.shape
    scratch = _scratch(sigma, fit_r, 0.0)
    n_old = n
    moved = np.zeros(n_old, np.bool_)
    split2 = (2.5 * sigma) ** 2
    near2 = sigma * sigma
    for s in _strongest_first(rfilt, ys, xs):
        cy = float(ys[s])
        cx = float(xs[s])
        best = -1
        best_d2 = split2
        taken = False
        for i in range(n):
            d2 = (st[i, ST_Y] - cy) ** 2 + (st[i, ST_X] - cx) ** 2
            if alive[i] and d2 < near2:
                taken = True
                break
            if i < n_old and alive[i] and not moved[i] and d2 < best_d2:
                best = i
                best_d2 = d2
        if taken:
            continue
        if best >= 0:
            moved[best] = True
            seed[best] = True
            _move(model, st, best, min(max(2.0 * st[best, ST_Y] - cy, -0.5), h - 0.5),
                  min(max(2.0 * st[best, ST_X] - cx, -0.5), w - 0.5), 0.5 * st[best, ST_AMP], st[best, ST_BG],
                  sigma, render_r)
            partner[best] = n
            partner[n] = best
        _add_spot(img, model, rfilt, ys[s], xs[s], st, n, sigma, fit_r, max_iter, render_r, scratch)
        seed[n] = True
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
            _render(model, st[i, ST_Y], st[i, ST_X], -st[i, ST_AMP], sigma, render_r)
            dropped = True
    return dropped


@njit(cache=True, nogil=True)
def spot_table(
    img: np.ndarray, model: np.ndarray, st: np.ndarray, alive: np.ndarray, sigma: float, render_r: int,
    mass_radius: float
) -> np.ndarray:
    """Float64 (m, 6) rows (y, x, mass, size, signal, eccentricity) of the live spots of ``st``,
    in its order; mass, size and eccentricity by :func:`_spot_features` against the final
    ``model``."""
    scratch = _scratch(sigma, 0, mass_radius)
    m = 0
    for i in range(st.shape[0]):
        if alive[i]:
            m += 1
    out = np.empty((m, N_COLS), np.float64)
    k = 0
    for i in range(st.shape[0]):
        if alive[i]:
            mass, size, ecc = _spot_features(img, model, st[i, ST_Y], st[i, ST_X], st[i, ST_AMP], st[i, ST_BG],
                                             sigma, render_r, mass_radius, scratch)
            out[k, COL_Y] = st[i, ST_Y]
            out[k, COL_X] = st[i, ST_X]
            out[k, COL_MASS] = mass
            out[k, COL_SIZE] = size
            out[k, COL_SIGNAL] = st[i, ST_SIG]
            out[k, COL_ECC] = ecc
            k += 1
    return out
