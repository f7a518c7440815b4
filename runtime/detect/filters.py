"""Detection kernels, first passes over the frame: the band-pass filter, the robust noise estimate and
the local maxima (Numba; float32 2-D C-contiguous images indexed [row, column]).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _clamp(i: int, n: int) -> int:
    if i < 0:
        return 0
    if i >= n:
        return n - 1
    return i


@njit(cache=True, nogil=True)
def _symmetric_taps(src: np.ndarray, off: int, kernel: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = sum_k kernel[k] * src[off - r + k + j]`` for every j of ``out`` (float32), the kernel
    symmetric (2r+1 taps, ``kernel[r - d] == kernel[r + d]``): the centre tap plus, per distance d, one
    product with the sum of the two pixels at +-d; three distances per pass over the row, so the output is
    read and written once per three distances (the passes are what cost, not the arithmetic)."""
    w = out.shape[0]
    r = kernel.shape[0] // 2
    gc = kernel[r]
    c = src[off:off + w]
    d = 1
    if r >= 3:
        g1 = kernel[r - 1]
        g2 = kernel[r - 2]
        g3 = kernel[r - 3]
        a1 = src[off - 1:off - 1 + w]
        b1 = src[off + 1:off + 1 + w]
        a2 = src[off - 2:off - 2 + w]
        b2 = src[off + 2:off + 2 + w]
        a3 = src[off - 3:off - 3 + w]
        b3 = src[off + 3:off + 3 + w]
        for j in range(w):
            out[j] = gc * c[j] + g1 * (a1[j] + b1[j]) + g2 * (a2[j] + b2[j]) + g3 * (a3[j] + b3[j])
        d = 4
    else:
        for j in range(w):
            out[j] = gc * c[j]
    while d + 2 <= r:
        g1 = kernel[r - d]
        g2 = kernel[r - d - 1]
        g3 = kernel[r - d - 2]
        a1 = src[off - d:off - d + w]
        b1 = src[off + d:off + d + w]
        a2 = src[off - d - 1:off - d - 1 + w]
        b2 = src[off + d + 1:off + d + 1 + w]
        a3 = src[off - d - 2:off - d - 2 + w]
        b3 = src[off + d + 2:off + d + 2 + w]
        for j in range(w):
            out[j] += g1 * (a1[j] + b1[j]) + g2 * (a2[j] + b2[j]) + g3 * (a3[j] + b3[j])
        d += 3
    while d <= r:
        g1 = kernel[r - d]
        a1 = src[off - d:off - d + w]
        b1 = src[off + d:off + d + w]
        for j in range(w):
            out[j] += g1 * (a1[j] + b1[j])
        d += 1


@njit(cache=True, nogil=True)
def _box_sum(buf: np.ndarray, pairs: np.ndarray, pad: int, b: int, out: np.ndarray) -> None:
    """``out[j]`` = the sum of ``buf[pad + j - b .. pad + j + b]`` for every j of ``out`` (float32): the sums
    of neighbouring pairs first (b pairs and the last pixel make a box), three pairs per pass over the row.
    ``pairs``: float32 scratch of length ``len(buf) - 1``."""
    w = out.shape[0]
    for j in range(buf.shape[0] - 1):
        pairs[j] = buf[j] + buf[j + 1]
    last = buf[pad + b:pad + b + w]
    k = 0
    if b >= 3:
        s0 = pairs[pad - b:pad - b + w]
        s1 = pairs[pad - b + 2:pad - b + 2 + w]
        s2 = pairs[pad - b + 4:pad - b + 4 + w]
        for j in range(w):
            out[j] = last[j] + s0[j] + s1[j] + s2[j]
        k = 3
    else:
        for j in range(w):
            out[j] = last[j]
    while k + 3 <= b:
        s0 = pairs[pad - b + 2 * k:pad - b + 2 * k + w]
        s1 = pairs[pad - b + 2 * k + 2:pad - b + 2 * k + 2 + w]
        s2 = pairs[pad - b + 2 * k + 4:pad - b + 2 * k + 4 + w]
        for j in range(w):
            out[j] += s0[j] + s1[j] + s2[j]
        k += 3
    while k < b:
        s0 = pairs[pad - b + 2 * k:pad - b + 2 * k + w]
        for j in range(w):
            out[j] += s0[j]
        k += 1


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
    ``buf``: float32 scratch of length W + 2 max(R, b); ``pair``: float32, one shorter."""
    w = img.shape[1]
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
    _symmetric_taps(buf, pad, kernel, smooth_out)
    _box_sum(buf, pair, pad, box_half, box_out)


@njit(cache=True, nogil=True)
def bandpass(
    img: np.ndarray, sub: np.ndarray, use_sub: bool, kernel: np.ndarray, box_half: int, out: np.ndarray
) -> None:
    """Gaussian-smoothed image minus its local box mean, edges replicated, written to ``out``.

    ``img``: float32 (H, W) counts; with ``use_sub`` the input is ``img - sub`` (``sub`` float32
    (H, W), e.g. a model of the spots already found). ``kernel``: float32 (2R+1,) normalised,
    symmetric 1-D smoothing taps (a sampled Gaussian). ``box_half``: half-width b (px) of the
    (2b+1)^2 background box. ``out``: float32 (H, W), receives ``smooth(input) - boxmean(input)``
    in counts (~0 on a flat background). Rows pass through small ring buffers, so no frame-sized
    temporary is made.
    """
    h, w = img.shape
    r = kernel.shape[0] // 2
    p = max(r, box_half + 1)
    n_ring = 2 * p + 2
    ring_s = np.empty((n_ring, w), np.float32)
    ring_b = np.empty((n_ring, w), np.float32)
    buf = np.empty(w + 2 * max(r, box_half), np.float32)
    pair = np.empty(buf.shape[0] - 1, np.float32)
    acc = np.zeros(w, np.float64)
    inv_area = 1.0 / float((2 * box_half + 1) * (2 * box_half + 1))
    gc = kernel[r]
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
        # The vertical taps as the horizontal ones (symmetric pairs, three distances per pass), the
        # first pass starting from minus the box mean.
        orow = out[i]
        c = ring_s[(i + p) % n_ring]
        d = 1
        if r >= 2:
            g1 = kernel[r - 1]
            g2 = kernel[r - 2]
            a1 = ring_s[(i - 1 + p) % n_ring]
            b1 = ring_s[(i + 1 + p) % n_ring]
            a2 = ring_s[(i - 2 + p) % n_ring]
            b2 = ring_s[(i + 2 + p) % n_ring]
            for j in range(w):
                orow[j] = np.float32(-acc[j] * inv_area) + (gc * c[j] + g1 * (a1[j] + b1[j]) + g2 * (a2[j] + b2[j]))
            d = 3
        else:
            for j in range(w):
                orow[j] = np.float32(-acc[j] * inv_area) + gc * c[j]
        while d + 2 <= r:
            g1 = kernel[r - d]
            g2 = kernel[r - d - 1]
            g3 = kernel[r - d - 2]
            a1 = ring_s[(i - d + p) % n_ring]
            b1 = ring_s[(i + d + p) % n_ring]
            a2 = ring_s[(i - d - 1 + p) % n_ring]
            b2 = ring_s[(i + d + 1 + p) % n_ring]
            a3 = ring_s[(i - d - 2 + p) % n_ring]
            b3 = ring_s[(i + d + 2 + p) % n_ring]
            for j in range(w):
                orow[j] += g1 * (a1[j] + b1[j]) + g2 * (a2[j] + b2[j]) + g3 * (a3[j] + b3[j])
            d += 3
        while d <= r:
            g1 = kernel[r - d]
            a1 = ring_s[(i - d + p) % n_ring]
            b1 = ring_s[(i + d + p) % n_ring]
            for j in range(w):
                orow[j] += g1 * (a1[j] + b1[j])
            d += 1
        add = ring_b[(i + box_half + 1 + p) % n_ring]
        rem = ring_b[(i - box_half + p) % n_ring]
        for j in range(w):
            acc[j] += add[j] - rem[j]


def gaussian_smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (H, W) smoothed by a Gaussian of ``sigma`` px (taps out to 3 sigma, edges replicated):
    float32 (H, W). The band-pass kernel with a one-pixel box, plus the image back (no frame-sized
    temporaries beyond the output; several times faster than scipy.ndimage.gaussian_filter)."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"gaussian_smooth takes a 2-D image, got shape {img.shape}")
    s = float(sigma)
    r = max(1, int(np.ceil(3.0 * s)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / s) ** 2)
    kernel = np.ascontiguousarray(g / g.sum(), dtype=np.float32)
    out = np.empty_like(img)
    bandpass(img, img, False, kernel, 0, out)  # smooth(img) - img (the box of one pixel is the pixel)
    out += img
    return out


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
def argsort(keys: np.ndarray) -> np.ndarray:
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
def _scan_maxima(filt, base, excess, prof_y, prof_x, dy, dx, ys, xs):
    """The maxima of :func:`local_maxima` in raster order into ``ys``, ``xs`` (as many as fit); returns
    how many there are (more than fit: only the count is meaningful)."""
    h, w = filt.shape
    cap = ys.shape[0]
    n = 0
    low = np.float32(base + excess)  # the lowest threshold anywhere (v >= 1)
    m = dy.shape[0]
    above = np.empty(w, np.int64)
    # Row candidates as bytes, read 8 at a time (most words are 0); padded to whole words with False.
    mask = np.zeros(8 * ((w + 7) // 8), np.bool_)
    words = mask.view(np.uint64)
    for i in range(h):
        row = filt[i]
        # First the maxima along the row above the lowest threshold (left neighbour smaller,
        # right one not larger: the tie rule), in loops that vectorise.
        mask[0] = (row[0] > low) and (w == 1 or row[0] >= row[1])
        mask[w - 1] = (row[w - 1] > low) and (w == 1 or row[w - 1] > row[w - 2])
        left = row[0:w - 2]
        mid = row[1:w - 1]
        right = row[2:w]
        inner = mask[1:w - 1]
        for j in range(w - 2):
            inner[j] = (mid[j] > low) & (mid[j] > left[j]) & (mid[j] >= right[j])
        # And the column neighbours, by the same tie rule (the disc holds all four neighbours).
        cand = mask[:w]
        if i > 0:
            up = filt[i - 1]
            for j in range(w):
                cand[j] = cand[j] & (row[j] > up[j])
        if i < h - 1:
            down = filt[i + 1]
            for j in range(w):
                cand[j] = cand[j] & (row[j] >= down[j])
        na = 0
        for q in range(words.shape[0]):
            if words[q] != 0:
                for j in range(8 * q, 8 * q + 8):
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
                if n < cap:
                    ys[n] = i
                    xs[n] = j
                n += 1
    return n


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

    The scan writes into buffers it never replaces (no reference counting in the per-pixel loop);
    a frame with more maxima than they hold is scanned once more with buffers of the exact size.
    """
    ys = np.empty(4096, np.int64)
    xs = np.empty(4096, np.int64)
    n = _scan_maxima(filt, base, excess, prof_y, prof_x, dy, dx, ys, xs)
    if n > ys.shape[0]:
        ys = np.empty(n, np.int64)
        xs = np.empty(n, np.int64)
        _scan_maxima(filt, base, excess, prof_y, prof_x, dy, dx, ys, xs)
    return ys[:n].copy(), xs[:n].copy()
