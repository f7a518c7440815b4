"""The band-passed residual of a frame, ``bandpass(img - model)``, from the band-passed frame and the
fitted spots, without filtering the frame again (Numba).

The band-pass of :func:`~edgetrack.runtime.detect.filters.bandpass` is linear, edges included
(replicating the edge pixels of ``img - model`` is replicating those of each term), so
``bandpass(img - model) = bandpass(img) - sum over spots of bandpass(spot)``. A spot is drawn by
:func:`~edgetrack.runtime.detect.fitting.render` as ``A u(y) v(x)`` in a (2 render_r + 1)^2
window: separable, and so is the filter (smoothing taps along each axis, a square box, each axis
edge-replicated on its own). The band-pass of a spot is then ``A (Ku Kv - Bu Bv / area)``, ``Ku``
and ``Bu`` the 1-D smoothing and box sums of ``u``, nonzero only within ``max(R, b)`` px of the
window: a few hundred pixels per spot instead of a pass over the whole frame.

The result equals the full band-pass of ``img - model`` up to float rounding (float32 model pixels
against exact products; about 1e-6 of the spot amplitude).
"""

from __future__ import annotations

import numpy as np
from edgetrack.runtime.detect.fitting import render_profile, render_window
from edgetrack.runtime.detect.layout import ST_AMP, ST_X, ST_Y
from numba import njit


@njit(cache=True, nogil=True)
def _filter_axis(prof: np.ndarray, p0: int, n: int, size: int, o0: int, o1: int, kernel: np.ndarray,
                 box_half: int, ext: np.ndarray, smooth: np.ndarray, box: np.ndarray) -> None:
    """Smoothing and box sums along one axis of a profile ``prof[:n]`` that sits at pixels
    p0..p0+n-1 of a line of ``size`` px (0 elsewhere, edges replicated), for the output pixels
    o0..o1-1, into ``smooth[:o1 - o0]`` and ``box[:o1 - o0]`` (the box sum, not its mean).
    ``ext``: float64 scratch of length >= o1 - o0 + 2 max(R, b); ``smooth``, ``box``: >= o1 - o0."""
    r = kernel.shape[0] // 2
    reach = max(r, box_half)
    e0 = o0 - reach
    ne = o1 - o0 + 2 * reach
    if e0 >= 0 and e0 + ne <= size:
        # Away from the edges: the profile padded with zeros.
        for k in range(ne):
            ext[k] = 0.0
        off = p0 - e0
        for k in range(n):
            ext[off + k] = prof[k]
    else:
        for k in range(ne):
            p = min(max(e0 + k, 0), size - 1)
            ext[k] = prof[p - p0] if p0 <= p < p0 + n else 0.0
    no = o1 - o0
    _smooth(ext, kernel, reach - r, smooth, no)
    # The box as a running sum.
    t = 0.0
    for k in range(reach - box_half, reach + box_half):
        t += ext[k]
    for i in range(no):
        t += ext[i + reach + box_half]
        box[i] = t
        t -= ext[i + reach - box_half]


@njit(cache=True, nogil=True)
def _smooth(ext: np.ndarray, kernel: np.ndarray, offset: int, out: np.ndarray, n: int) -> None:
    """``out[i] = sum_k kernel[k] ext[offset + i + k]`` for i < n, tap by tap (independent sums that vectorise)."""
    for i in range(n):
        out[i] = 0.0
    for k in range(kernel.shape[0]):
        g = kernel[k]
        src = ext[offset + k:offset + k + n]
        for i in range(n):
            out[i] += g * src[i]


@njit(cache=True, nogil=True)
def subtract_spots(filt: np.ndarray, st: np.ndarray, alive: np.ndarray, sigma: float, render_r: int,
                   kernel: np.ndarray, box_half: int) -> None:
    """Turn ``filt`` = ``bandpass(img)`` into ``bandpass(img - model)`` in place, from the spots of ``st``.

    ``filt``: float32 (H, W), counts. ``st``: float64 (n, ST_COLS) spot state (y, x px, peak amplitude
    counts, see :func:`~edgetrack.runtime.detect.deblend.seed_spots`); ``alive``: bool (n,), the spots
    drawn in ``model``, each by ``render(model, y, x, amp, sigma, render_r)``. ``kernel``, ``box_half``:
    the band-pass's smoothing taps and box half-width, as given to
    :func:`~edgetrack.runtime.detect.filters.bandpass`. Pixels farther than ``render_r + max(R, b)``
    px from every spot are left as they are.
    """
    h, w = filt.shape
    r = kernel.shape[0] // 2
    reach = max(r, box_half)
    inv_area = 1.0 / float((2 * box_half + 1) * (2 * box_half + 1))
    kern = kernel.astype(np.float64)
    inv2s2 = 0.5 / (sigma * sigma)
    q = np.exp(-2.0 * inv2s2)
    m = 2 * render_r + 1
    u = np.empty(m, np.float64)
    v = np.empty(m, np.float64)
    nout = m + 2 * reach
    size = nout + 2 * reach
    ext = np.empty(size, np.float64)
    ku = np.empty(size, np.float64)
    bu = np.empty(size, np.float64)
    kv = np.empty(size, np.float64)
    bv = np.empty(size, np.float64)
    kv32 = np.empty(size, np.float32)
    bv32 = np.empty(size, np.float32)
    for s in range(st.shape[0]):
        amp = st[s, ST_AMP]
        if not alive[s] or amp == 0.0:
            continue
        y = st[s, ST_Y]
        x = st[s, ST_X]
        y0, y1, x0, x1 = render_window(h, w, y, x, render_r)
        render_profile(y0, y1 - y0, y, inv2s2, q, 1.0, u)
        render_profile(x0, x1 - x0, x, inv2s2, q, amp, v)
        oy0 = max(y0 - reach, 0)
        oy1 = min(y1 + reach, h)
        ox0 = max(x0 - reach, 0)
        ox1 = min(x1 + reach, w)
        _filter_axis(u, y0, y1 - y0, h, oy0, oy1, kern, box_half, ext, ku, bu)
        _filter_axis(v, x0, x1 - x0, w, ox0, ox1, kern, box_half, ext, kv, bv)
        nx = ox1 - ox0
        for k in range(nx):
            kv32[k] = np.float32(kv[k])
            bv32[k] = np.float32(bv[k] * inv_area)
        for i in range(oy1 - oy0):
            row = filt[oy0 + i, ox0:ox1]
            a = np.float32(ku[i])
            c = np.float32(bu[i])
            for j in range(nx):
                row[j] -= a * kv32[j] - c * bv32[j]
