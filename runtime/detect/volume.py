"""Spot detection in one z-stack (Z, Y, X): sub-voxel positions and features, anisotropic voxels (Numba).

Pipeline per stack (every length is per axis (z, y, x), in voxels, so a z step coarser than the
pixel is just a smaller sigma along z):

1. band-pass: separable Gaussian smoothing at ``psf_sigma`` (the matched filter of a Gaussian spot)
   minus the mean of a ``(2bz+1) x (2by+1) x (2bx+1)`` box (the local background), edges replicated,
   float32;
2. threshold: ``snr_threshold`` times a robust noise std of the band-passed stack (1.4826 times the
   median absolute deviation of a voxel subsample, each sample scaled by the filter's noise gain at
   its position) above its median; the threshold rises near the faces of the stack, where the
   replicated edges make the filtered noise larger (the same correction as the 2-D detector, with
   three factors); or an absolute ``threshold``;
3. local maxima over the ellipsoid of semi-axes ``min_separation`` (ties go to the first voxel in
   raster order, so a plateau gives one maximum);
4. refinement: a Gauss-Newton least-squares fit of a Gaussian (fixed width: ``psf_sigma`` widened
   by the voxel, variance ``sigma^2 + 1/12``; free amplitude, centre and constant background,
   started from the box mean) to the stack, in a window of ``ceil(2 sigma)`` voxels around the current centre, until a
   step is below 0.005 voxel. The model only covers voxels inside the stack, so spots cut by a
   face are not pulled inwards, and a spot whose centre is fitted outside the stack (its light
   reaches in) is dropped;
5. features: ``mass``, ``size``, ``signal``, ``size_z``, ``eccentricity`` (:data:`SPOT3D_COLUMNS`).

Crowded spots (closer than about 2 sigma) are not deblended, unlike the 2-D detector.
Coordinates are voxels, ``z`` = plane, ``y`` = row, ``x`` = column, voxel centres at integer values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.config import StageConfig, is_int, is_real, require
from edgetrack.runtime.detect.inputs import checked_image
from edgetrack.runtime.errors import ConfigError
from numba import njit

__all__ = ["SPOT3D_COLUMNS", "Detect3DConfig", "check_stack", "detect_spots_3d", "detect_spots_3d_table"]

SPOT3D_COLUMNS: tuple[str, ...] = ("z", "y", "x", "mass", "size", "signal", "size_z", "eccentricity")
"""Columns of the array returned by :func:`detect_spots_3d`, in order (see its docstring for units)."""

_SAMPLES_FOR_NOISE = 16_384  # voxels sampled for the noise estimate (MAD to ~1%)
_STEP_TOL = 0.005  # voxels; the fit stops once a step is smaller along every axis
_OPTIONAL_TRIPLES = ("min_separation", "background_radius", "mass_radius")


def _as_triple(value: Any, name: str) -> Any:
    """A sequence of three numbers becomes a tuple (so the config stays hashable); None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ConfigError(f"Detect3DConfig.{name} must be three numbers (z, y, x), got {value!r}")
    return tuple(value)


def _triple_ok(value: Any, low: float, high: float = math.inf) -> bool:
    return len(value) == 3 and all(is_real(v) and math.isfinite(float(v)) and low <= v <= high for v in value)


@dataclasses.dataclass(frozen=True)
class Detect3DConfig(StageConfig):
    """Options of the 3-D spot detector. Lengths are (z, y, x) triples in voxels, intensities in
    counts of the input stack.

    psf_sigma: expected Gaussian sigma of a spot per axis (voxels); with anisotropic voxels the z
        value is the physical sigma over the z step (e.g. 0.4 um / 0.3 um = 1.33). Sets the
        smoothing, the refinement weights and the default window sizes.
    threshold: absolute threshold on the band-passed stack (counts); ``None`` uses
        ``snr_threshold`` times the noise estimated on each stack.
    snr_threshold: multiples of the robust noise std of the band-passed stack. The default 5.0
        gives almost no false spots in a 32x256x256 stack of pure noise (see
        benchmarks/bench_detect3d.py).
    min_separation: semi-axes (voxels) of the ellipsoid in which a maximum must be the largest;
        ``None`` = ``max(1, 2 * psf_sigma)`` per axis.
    background_radius: half-widths (voxels) of the box whose mean is the local background;
        ``None`` = ``ceil(4 * psf_sigma)`` per axis.
    mass_radius: semi-axes (voxels) of the ellipsoid summed for the mass; ``None`` = ``3 * psf_sigma``.
    refine_iterations: maximum Gauss-Newton steps per spot (0: the voxel of the maximum).
    min_mass: spots with a smaller mass (counts) are dropped (the default 0 drops spots whose
        background-subtracted mass came out negative).
    max_spots: keep only the ``max_spots`` spots with the largest mass (``None``: all).
    """

    psf_sigma: tuple[float, float, float] = (1.3, 1.5, 1.5)
    threshold: float | None = None
    snr_threshold: float = 5.0
    min_separation: tuple[float, float, float] | None = None
    background_radius: tuple[float, float, float] | None = None
    mass_radius: tuple[float, float, float] | None = None
    refine_iterations: int = 10
    min_mass: float = 0.0
    max_spots: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "psf_sigma", _as_triple(self.psf_sigma, "psf_sigma"))
        for name in _OPTIONAL_TRIPLES:
            object.__setattr__(self, name, _as_triple(getattr(self, name), name))
        super().__post_init__()

    def validate(self) -> None:
        require(_triple_ok(self.psf_sigma, 0.3, 50.0),
                f"psf_sigma must be three numbers in [0.3, 50] voxels (z, y, x), got {self.psf_sigma!r}")
        require(self.threshold is None or (is_real(self.threshold) and math.isfinite(float(self.threshold))),
                f"threshold must be a finite number or None, got {self.threshold!r}")
        require(is_real(self.snr_threshold) and 0.0 < self.snr_threshold < math.inf,
                f"snr_threshold must be a finite number > 0, got {self.snr_threshold!r}")
        require(self.min_separation is None or _triple_ok(self.min_separation, 0.5, 100.0),
                f"min_separation must be three numbers in [0.5, 100] voxels or None, got {self.min_separation!r}")
        require(self.background_radius is None or _triple_ok(self.background_radius, 1.0, 100.0),
                f"background_radius must be three numbers in [1, 100] voxels or None, got {self.background_radius!r}")
        require(self.mass_radius is None or (_triple_ok(self.mass_radius, 0.0, 100.0) and min(self.mass_radius) > 0),
                f"mass_radius must be three numbers in (0, 100] voxels or None, got {self.mass_radius!r}")
        require(is_int(self.refine_iterations) and 0 <= self.refine_iterations <= 100,
                f"refine_iterations must be an integer in [0, 100], got {self.refine_iterations!r}")
        require(is_real(self.min_mass) and math.isfinite(float(self.min_mass)),
                f"min_mass must be a finite number, got {self.min_mass!r}")
        require(self.max_spots is None or (is_int(self.max_spots) and self.max_spots >= 0),
                f"max_spots must be a non-negative integer or None, got {self.max_spots!r}")


# ------------------------------------------------------------------------------------------ kernels


@njit(cache=True, nogil=True)
def _clip_index(i: int, n: int) -> int:
    return 0 if i < 0 else (n - 1 if i >= n else i)


@njit(cache=True, nogil=True)
def _pass_last_axis(src: np.ndarray, smooth: np.ndarray, box: np.ndarray, kernel: np.ndarray, b: int) -> None:
    """Along axis 1 of the (N, M) float32 ``src``, edges replicated: Gaussian taps ``kernel`` into
    ``smooth`` and the (2b+1)-voxel box sum into ``box`` (both float32 (N, M))."""
    n_lines, m = src.shape
    r = kernel.shape[0] // 2
    pad = max(r, b + 1)
    buf = np.empty(m + 2 * pad, np.float32)
    for n in range(n_lines):
        row = src[n]
        for j in range(m):
            buf[pad + j] = row[j]
        for j in range(pad):
            buf[j] = row[0]
            buf[pad + m + j] = row[m - 1]
        out = smooth[n]
        for j in range(m):
            out[j] = 0.0
        for t in range(2 * r + 1):
            g = kernel[t]
            seg = buf[pad - r + t:pad - r + t + m]
            for j in range(m):
                out[j] += g * seg[j]
        acc = 0.0
        for t in range(pad - b, pad + b + 1):
            acc += buf[t]
        out = box[n]
        for j in range(m):
            out[j] = acc
            acc += buf[pad + j + b + 1] - buf[pad + j - b]


@njit(cache=True, nogil=True)
def _pass_first_axis(src_s: np.ndarray, src_b: np.ndarray, smooth: np.ndarray, box: np.ndarray,
                     kernel: np.ndarray, b: int) -> None:
    """Along axis 0 of (N, M) float32 arrays, edges replicated: Gaussian taps of ``src_s`` into
    ``smooth`` and the (2b+1)-line box sum of ``src_b`` into ``box``; inner loops run along M."""
    n_lines, m = src_s.shape
    r = kernel.shape[0] // 2
    for n in range(n_lines):
        out = smooth[n]
        for j in range(m):
            out[j] = 0.0
        for t in range(2 * r + 1):
            g = kernel[t]
            line = src_s[_clip_index(n - r + t, n_lines)]
            for j in range(m):
                out[j] += g * line[j]
    acc = np.zeros(m, np.float64)
    for u in range(-b, b + 1):
        line = src_b[_clip_index(u, n_lines)]
        for j in range(m):
            acc[j] += line[j]
    for n in range(n_lines):
        out = box[n]
        add = src_b[_clip_index(n + b + 1, n_lines)]
        rem = src_b[_clip_index(n - b, n_lines)]
        for j in range(m):
            out[j] = acc[j]
            acc[j] += add[j] - rem[j]


@njit(cache=True, nogil=True)
def bandpass_3d(img: np.ndarray, kz: np.ndarray, ky: np.ndarray, kx: np.ndarray, bz: int, by: int, bx: int,
                out: np.ndarray, background: np.ndarray, s1: np.ndarray, b2: np.ndarray) -> None:
    """Separable band-pass of a float32 (Z, Y, X) C-contiguous stack, edges replicated.

    kz, ky, kx: float32 normalised Gaussian taps per axis; bz, by, bx: half-widths of the box.
    Writes ``out`` = smoothed - box mean (counts, ~0 on a flat background) and ``background`` =
    the box mean (the local background, counts); ``s1``, ``b2``: float32 (Z, Y, X) scratch.
    """
    nz, ny, nx = img.shape
    _pass_last_axis(img.reshape(nz * ny, nx), s1.reshape(nz * ny, nx), background.reshape(nz * ny, nx), kx, bx)
    for k in range(nz):
        _pass_first_axis(s1[k], background[k], out[k], b2[k], ky, by)
    flat = nz, ny * nx
    _pass_first_axis(out.reshape(flat), b2.reshape(flat), s1.reshape(flat), background.reshape(flat), kz, bz)
    inv = np.float32(1.0 / ((2 * bz + 1) * (2 * by + 1) * (2 * bx + 1)))
    s = s1.reshape(nz * ny * nx)
    bg = background.reshape(nz * ny * nx)
    o = out.reshape(nz * ny * nx)
    for q in range(o.shape[0]):
        bg[q] *= inv
        o[q] = s[q] - bg[q]


@njit(cache=True, nogil=True)
def local_maxima_3d(filt: np.ndarray, base: float, excess: float, prof_z: np.ndarray, prof_y: np.ndarray,
                    prof_x: np.ndarray, inv_interior: float, offsets: np.ndarray) -> np.ndarray:
    """Voxels above their threshold that no other voxel of the neighbourhood ``offsets`` beats.

    The threshold at (z, y, x) is ``base + excess * sqrt(max(v, 1))`` with ``v = (a_z a_y a_x -
    2 c_z c_y c_x + e_z e_y e_x) * inv_interior`` from the rows (a, c, e) of the per-axis noise
    profiles (3, n). offsets: int64 (m, 3) (dz, dy, dx), the origin excluded. A neighbour beats a
    voxel when it is larger, or equal and earlier in raster order. Returns int64 (n, 3) in raster order.
    """
    nz, ny, nx = filt.shape
    low = np.float32(base + excess)
    cap = 1024
    found = np.empty((cap, 3), np.int64)
    n = 0
    m = offsets.shape[0]
    for k in range(nz):
        for i in range(ny):
            row = filt[k, i]
            for j in range(nx):
                v = row[j]
                if not v > low:
                    continue
                if (j > 0 and row[j - 1] >= v) or (j < nx - 1 and row[j + 1] > v):
                    continue
                var = (prof_z[0, k] * prof_y[0, i] * prof_x[0, j] - 2.0 * prof_z[1, k] * prof_y[1, i] * prof_x[1, j]
                       + prof_z[2, k] * prof_y[2, i] * prof_x[2, j]) * inv_interior
                if var > 1.0 and not v > base + excess * np.sqrt(var):
                    continue
                ok = True
                for q in range(m):
                    kk = k + offsets[q, 0]
                    ii = i + offsets[q, 1]
                    jj = j + offsets[q, 2]
                    if kk < 0 or kk >= nz or ii < 0 or ii >= ny or jj < 0 or jj >= nx:
                        continue
                    w = filt[kk, ii, jj]
                    if w > v or (w == v and (offsets[q, 0] < 0 or (offsets[q, 0] == 0 and (
                            offsets[q, 1] < 0 or (offsets[q, 1] == 0 and offsets[q, 2] < 0))))):
                        ok = False
                        break
                if ok:
                    if n == cap:
                        cap *= 2
                        grown = np.empty((cap, 3), np.int64)
                        grown[:n] = found[:n]
                        found = grown
                    found[n, 0] = k
                    found[n, 1] = i
                    found[n, 2] = j
                    n += 1
    return found[:n].copy()


@njit(cache=True, nogil=True)
def _window_sums(img: np.ndarray, bg: float, est: np.ndarray, sigma: np.ndarray, half: np.ndarray,
                 wz: np.ndarray, wy: np.ndarray, wx: np.ndarray, sums: np.ndarray) -> None:
    """Gaussian-weighted sums around ``est`` (z, y, x) of ``img - bg`` over the window of half-widths
    ``half`` centred on the nearest voxel, inside the stack. ``sums`` (8,): S, S_z, S_y, S_x (first
    moments about est), S_zz, S_yy, S_xx, S_yx. wz, wy, wx: float64 scratch of length 2 * half + 1."""
    nz, ny, nx = img.shape
    c0 = int(np.rint(est[0]))
    c1 = int(np.rint(est[1]))
    c2 = int(np.rint(est[2]))
    for t in range(2 * half[0] + 1):
        d = c0 - half[0] + t - est[0]
        wz[t] = np.exp(-0.5 * (d / sigma[0]) ** 2)
    for t in range(2 * half[1] + 1):
        d = c1 - half[1] + t - est[1]
        wy[t] = np.exp(-0.5 * (d / sigma[1]) ** 2)
    for t in range(2 * half[2] + 1):
        d = c2 - half[2] + t - est[2]
        wx[t] = np.exp(-0.5 * (d / sigma[2]) ** 2)
    for q in range(sums.shape[0]):
        sums[q] = 0.0
    for tz in range(2 * half[0] + 1):
        k = c0 - half[0] + tz
        if k < 0 or k >= nz:
            continue
        dz = k - est[0]
        for ty in range(2 * half[1] + 1):
            i = c1 - half[1] + ty
            if i < 0 or i >= ny:
                continue
            dy = i - est[1]
            wzy = wz[tz] * wy[ty]
            for tx in range(2 * half[2] + 1):
                j = c2 - half[2] + tx
                if j < 0 or j >= nx:
                    continue
                dx = j - est[2]
                val = img[k, i, j] - bg
                wv = wzy * wx[tx] * val
                sums[0] += wv
                sums[1] += wv * dz
                sums[2] += wv * dy
                sums[3] += wv * dx
                sums[4] += wv * dz * dz
                sums[5] += wv * dy * dy
                sums[6] += wv * dx * dx
                sums[7] += wv * dy * dx


@njit(cache=True, nogil=True)
def _ellipsoid_mass(img: np.ndarray, bg: float, est: np.ndarray, radius: np.ndarray) -> float:
    """Sum of ``img - bg`` over the voxels whose centres lie in the ellipsoid ``radius`` around ``est``."""
    nz, ny, nx = img.shape
    total = 0.0
    k0 = max(0, int(np.ceil(est[0] - radius[0])))
    k1 = min(nz - 1, int(np.floor(est[0] + radius[0])))
    for k in range(k0, k1 + 1):
        fz = ((k - est[0]) / radius[0]) ** 2
        ry = radius[1] * np.sqrt(max(1.0 - fz, 0.0))
        i0 = max(0, int(np.ceil(est[1] - ry)))
        i1 = min(ny - 1, int(np.floor(est[1] + ry)))
        for i in range(i0, i1 + 1):
            fzy = fz + ((i - est[1]) / radius[1]) ** 2
            rx = radius[2] * np.sqrt(max(1.0 - fzy, 0.0))
            j0 = max(0, int(np.ceil(est[2] - rx)))
            j1 = min(nx - 1, int(np.floor(est[2] + rx)))
            for j in range(j0, j1 + 1):
                total += img[k, i, j] - bg
    return total


@njit(cache=True, nogil=True)
def _spot_covariance(sums: np.ndarray, sigma: np.ndarray) -> tuple[float, float, float, float]:
    """The spot's (var_z, var_y, var_x, cov_yx), voxels^2, from its Gaussian-weighted moments.

    Under weights of covariance W a Gaussian spot of covariance C has the weighted covariance
    M = (C^-1 + W^-1)^-1, so C = (M^-1 - W^-1)^-1: along z per axis, laterally as a 2x2 block
    (per axis, without the cross term, where the block is not positive definite).
    """
    if not sums[0] > 0.0:
        return 0.0, 0.0, 0.0, 0.0
    out = np.zeros(3)
    for a in range(3):
        w2 = sigma[a] * sigma[a]
        m = min(max(sums[4 + a] / sums[0], 1e-6), 0.95 * w2)
        out[a] = m * w2 / (w2 - m)
    myy = sums[5] / sums[0]
    mxx = sums[6] / sums[0]
    mxy = sums[7] / sums[0]
    det = myy * mxx - mxy * mxy
    if det > 0.0:
        # P = M^-1 - W^-1, then C = P^-1
        pyy = mxx / det - 1.0 / (sigma[1] * sigma[1])
        pxx = myy / det - 1.0 / (sigma[2] * sigma[2])
        pxy = -mxy / det
        pdet = pyy * pxx - pxy * pxy
        if pyy > 0.0 and pxx > 0.0 and pdet > 0.0:
            return out[0], pxx / pdet, pyy / pdet, -pxy / pdet
    return out[0], out[1], out[2], 0.0


@njit(cache=True, nogil=True)
def _fit_step(img: np.ndarray, bg: float, est: np.ndarray, amp: float, sigma2: np.ndarray, fit_half: np.ndarray,
              gz: np.ndarray, gy: np.ndarray, gx: np.ndarray, step: np.ndarray) -> bool:
    """One Gauss-Newton step of the least-squares fit of ``bg + amp * exp(-sum_a (p_a - c_a)^2 / (2 sigma2_a))``
    to ``img`` over the window of half-widths ``fit_half`` around the nearest voxel of ``est``
    (clipped at the faces of the stack; the model only sees voxels that exist, so a spot cut by a
    face is not pulled inwards). Writes (d_amp, d_z, d_y, d_x, d_bg) into ``step``; False if singular."""
    nz, ny, nx = img.shape
    c = np.empty(3, np.int64)
    for a in range(3):
        c[a] = int(np.rint(est[a]))
    for t in range(2 * fit_half[0] + 1):
        gz[t] = np.exp(-0.5 * (c[0] - fit_half[0] + t - est[0]) ** 2 / sigma2[0])
    for t in range(2 * fit_half[1] + 1):
        gy[t] = np.exp(-0.5 * (c[1] - fit_half[1] + t - est[1]) ** 2 / sigma2[1])
    for t in range(2 * fit_half[2] + 1):
        gx[t] = np.exp(-0.5 * (c[2] - fit_half[2] + t - est[2]) ** 2 / sigma2[2])
    h = np.zeros((5, 5))
    r = np.zeros(5)
    jac = np.empty(5)
    jac[4] = 1.0
    for tz in range(2 * fit_half[0] + 1):
        k = c[0] - fit_half[0] + tz
        if k < 0 or k >= nz:
            continue
        uz = (k - est[0]) / sigma2[0]
        for ty in range(2 * fit_half[1] + 1):
            i = c[1] - fit_half[1] + ty
            if i < 0 or i >= ny:
                continue
            uy = (i - est[1]) / sigma2[1]
            gzy = gz[tz] * gy[ty]
            for tx in range(2 * fit_half[2] + 1):
                j = c[2] - fit_half[2] + tx
                if j < 0 or j >= nx:
                    continue
                g = gzy * gx[tx]
                ag = amp * g
                res = img[k, i, j] - bg - ag
                jac[0] = g
                jac[1] = ag * uz
                jac[2] = ag * uy
                jac[3] = ag * (j - est[2]) / sigma2[2]
                for u in range(5):
                    r[u] += jac[u] * res
                    for v in range(u, 5):
                        h[u, v] += jac[u] * jac[v]
    # Cholesky solve of the 5x5 normal equations (h is symmetric, upper triangle filled)
    low = np.zeros((5, 5))
    for u in range(5):
        for v in range(u + 1):
            acc = h[v, u]
            for q in range(v):
                acc -= low[u, q] * low[v, q]
            if u == v:
                if not acc > 1e-12 * (h[u, u] + 1e-300):
                    return False
                low[u, u] = math.sqrt(acc)
            else:
                low[u, v] = acc / low[v, v]
    y = np.empty(5)
    for u in range(5):
        acc = r[u]
        for q in range(u):
            acc -= low[u, q] * y[q]
        y[u] = acc / low[u, u]
    for u in range(4, -1, -1):
        acc = y[u]
        for q in range(u + 1, 5):
            acc -= low[q, u] * step[q]
        step[u] = acc / low[u, u]
    return True


@njit(cache=True, nogil=True)
def refine_spots_3d(img: np.ndarray, filt: np.ndarray, background: np.ndarray, peaks: np.ndarray,
                    sigma: np.ndarray, half: np.ndarray, fit_half: np.ndarray, mass_radius: np.ndarray,
                    iterations: int) -> np.ndarray:
    """Sub-voxel positions and features of the spots at the voxels ``peaks`` (int64 (n, 3)).

    img, filt, background: float32 (Z, Y, X): the stack, its band-pass and its local background.
    sigma: float64 (3,) PSF sigma (voxels); the fitted Gaussian has variance ``sigma^2 + 1/12``
    (the voxel-integrated PSF). half: int64 (3,) half-widths of the window of the moments;
    fit_half: int64 (3,) of the fit window; mass_radius: float64 (3,). A fitted centre may leave
    the window by at most one voxel and the stack by at most ``sigma`` along each axis.
    Returns float64 (n, len(SPOT3D_COLUMNS)).
    """
    nz, ny, nx = img.shape
    n = peaks.shape[0]
    out = np.empty((n, 8), np.float64)
    wz = np.empty(2 * half[0] + 1, np.float64)
    wy = np.empty(2 * half[1] + 1, np.float64)
    wx = np.empty(2 * half[2] + 1, np.float64)
    gz = np.empty(2 * fit_half[0] + 1, np.float64)
    gy = np.empty(2 * fit_half[1] + 1, np.float64)
    gx = np.empty(2 * fit_half[2] + 1, np.float64)
    sums = np.empty(8, np.float64)
    est = np.empty(3, np.float64)
    step = np.empty(5, np.float64)
    sigma2 = np.empty(3, np.float64)
    lower = np.empty(3, np.float64)
    upper = np.empty(3, np.float64)
    size = np.array([nz, ny, nx], np.float64)
    for a in range(3):
        sigma2[a] = sigma[a] * sigma[a] + 1.0 / 12.0
        lower[a] = -0.5 - sigma[a]
        upper[a] = size[a] - 0.5 + sigma[a]
    for p in range(n):
        k, i, j = peaks[p, 0], peaks[p, 1], peaks[p, 2]
        bg = float(background[k, i, j])  # the fit's start; features use the box mean
        local = bg
        est[0] = k
        est[1] = i
        est[2] = j
        amp = max(float(img[k, i, j]) - bg, 1e-3)
        for _ in range(iterations):
            if not _fit_step(img, bg, est, amp, sigma2, fit_half, gz, gy, gx, step):
                break
            amp = max(amp + step[0], 1e-3 * amp)
            bg += step[4]
            moved = False
            for a in range(3):
                new = est[a] + min(max(step[1 + a], -1.0), 1.0)
                new = min(max(new, peaks[p, a] - fit_half[a] - 1.0), peaks[p, a] + fit_half[a] + 1.0)
                new = min(max(new, lower[a]), upper[a])
                if abs(new - est[a]) >= _STEP_TOL:
                    moved = True
                est[a] = new
            if not moved:
                break
        _window_sums(img, local, est, sigma, half, wz, wy, wx, sums)
        out[p, 0] = est[0]
        out[p, 1] = est[1]
        out[p, 2] = est[2]
        out[p, 3] = _ellipsoid_mass(img, local, est, mass_radius)
        var_z, var_y, var_x, cov_yx = _spot_covariance(sums, sigma)
        out[p, 4] = math.sqrt(var_y + var_x)
        out[p, 5] = filt[k, i, j]
        out[p, 6] = math.sqrt(var_z)
        half_trace = 0.5 * (var_y + var_x)
        root = math.sqrt(max(0.25 * (var_y - var_x) ** 2 + cov_yx * cov_yx, 0.0))
        l1 = half_trace + root
        l2 = max(half_trace - root, 0.0)
        out[p, 7] = math.sqrt(max(1.0 - l2 / l1, 0.0)) if l1 > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------- plan


@dataclasses.dataclass(frozen=True)
class _Plan:
    kernels: tuple[np.ndarray, np.ndarray, np.ndarray]  # float32 Gaussian taps per axis
    box_half: tuple[int, int, int]
    offsets: np.ndarray  # int64 (m, 3), the maximum-finding neighbourhood
    sigma: np.ndarray  # float64 (3,)
    half: np.ndarray  # int64 (3,), window of the moments (size, eccentricity)
    fit_half: np.ndarray  # int64 (3,), window of the position fit
    mass_radius: np.ndarray  # float64 (3,)


@functools.lru_cache(maxsize=32)
def _plan(config: Detect3DConfig) -> _Plan:
    sigma = np.array(config.psf_sigma, np.float64)
    kernels = []
    for s in sigma:
        r = max(1, math.ceil(3.0 * s))
        g = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
        kernels.append(np.ascontiguousarray(g / g.sum(), dtype=np.float32))
    box = config.background_radius if config.background_radius is not None else tuple(4.0 * sigma)
    box_half = tuple(math.ceil(v) for v in box)
    sep = np.array(config.min_separation if config.min_separation is not None else np.maximum(1.0, 2.0 * sigma))
    rs = np.floor(sep).astype(int)
    grid = np.mgrid[-rs[0]:rs[0] + 1, -rs[1]:rs[1] + 1, -rs[2]:rs[2] + 1].reshape(3, -1).T
    norm = ((grid / sep) ** 2).sum(axis=1)
    keep = (norm <= 1.0) & np.any(grid != 0, axis=1)
    order = np.argsort(norm[keep], kind="stable")  # nearest first: most voxels fail early
    offsets = np.ascontiguousarray(grid[keep][order], dtype=np.int64)
    half = np.array([max(1, math.ceil(3.0 * s)) for s in sigma], np.int64)
    fit_half = np.array([max(1, math.ceil(2.0 * s)) for s in sigma], np.int64)
    mass = np.array(config.mass_radius if config.mass_radius is not None else 3.0 * sigma, np.float64)
    return _Plan(tuple(kernels), box_half, offsets, sigma, half, fit_half, mass)


@functools.lru_cache(maxsize=128)
def _axis_noise(kernel_bytes: bytes, b: int, n: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Noise terms of the band-pass along one axis of ``n`` voxels: float64 (3, n) rows a = sum G^2,
    c = sum G B, e = sum B^2 per output voxel (edges replicated), and their interior values."""
    kernel = np.frombuffer(kernel_bytes, np.float32).astype(np.float64)
    r = kernel.shape[0] // 2
    taps = np.arange(-r, r + 1)
    box_taps = np.arange(-b, b + 1)
    width = 2 * b + 1
    interior = (float(kernel @ kernel), float(kernel[np.abs(taps) <= b].sum()) / width, 1.0 / width)
    out = np.empty((3, n))
    out[0], out[1], out[2] = interior
    edge = max(r, b)
    for p in sorted(set(range(min(edge, n))) | set(range(max(n - edge, 0), n))):
        g = np.bincount(np.clip(p + taps, 0, n - 1), weights=kernel, minlength=n)
        bx = np.bincount(np.clip(p + box_taps, 0, n - 1), minlength=n) / width
        out[:, p] = (g @ g, g @ bx, bx @ bx)
    return out, interior


def _noise_profiles(plan: _Plan, shape: tuple[int, int, int]) -> tuple[list[np.ndarray], float]:
    """The per-axis profiles and 1 / (interior variance factor) of the band-pass on ``shape``."""
    profiles, interiors = [], []
    for kernel, b, n in zip(plan.kernels, plan.box_half, shape):
        prof, interior = _axis_noise(kernel.tobytes(), b, n)
        profiles.append(prof)
        interiors.append(interior)
    (az, cz, ez), (ay, cy, ey), (ax, cx, ex) = interiors
    return profiles, 1.0 / (az * ay * ax - 2.0 * cz * cy * cx + ez * ey * ex)


def _threshold(img: np.ndarray, filt: np.ndarray, cfg: Detect3DConfig, profiles: list[np.ndarray],
               inv_interior: float) -> tuple[float, float]:
    """(base, excess) of the threshold ``base + excess * noise_factor(z, y, x)`` (counts)."""
    if cfg.threshold is not None:
        return float(cfg.threshold), 0.0
    nz, ny, nx = filt.shape
    # Every 4th voxel along x (the band-passed noise is nearly uncorrelated at that lag), rows and
    # planes spaced to give about _SAMPLES_FOR_NOISE voxels.
    sx = min(4, nx)
    rows = max(1, (nz * ny * ((nx + sx - 1) // sx)) // _SAMPLES_FOR_NOISE)
    sz = max(1, min(nz, round(math.sqrt(rows))))
    sy = max(1, rows // sz)
    sample = filt[::sz, ::sy, ::sx].astype(np.float64)
    pz, py, px = (prof[:, ::step] for prof, step in zip(profiles, (sz, sy, sx)))
    var = (np.einsum("k,i,j->kij", pz[0], py[0], px[0]) - 2.0 * np.einsum("k,i,j->kij", pz[1], py[1], px[1])
           + np.einsum("k,i,j->kij", pz[2], py[2], px[2])) * inv_interior
    scaled = sample / np.sqrt(np.maximum(var, 1e-12))
    med = float(np.median(scaled))
    noise = 1.4826 * float(np.median(np.abs(scaled - med)))
    if noise <= 0.0:
        noise = float(scaled.std())
    scale = float(np.abs(img[::sz, ::sy, ::sx]).max())
    # A floor keeps flat stacks (noise 0) from turning float rounding into maxima.
    return med, max(cfg.snr_threshold * noise, 1e-5 * max(scale, 1.0))


class _Workspace(threading.local):
    """Per-thread float32 buffers for one stack shape (reused while the shape stays the same)."""

    shape: tuple[int, ...] | None = None
    buffers: tuple[np.ndarray, ...] = ()

    def get(self, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        if self.shape != shape:
            self.buffers = tuple(np.empty(shape, np.float32) for _ in range(5))
            self.shape = shape
        return self.buffers


_WORKSPACE = _Workspace()


# ---------------------------------------------------------------------------------------------- API


def check_stack(stack: object, name: str = "stack") -> np.ndarray:
    """Validate one z-stack: a 3-D (Z, Y, X), non-empty array of integers or floats with finite values
    (returned unconverted). Raises :class:`InputError` naming the problem (dimensions, dtype, the
    count and first position of NaN / inf voxels)."""
    return checked_image(stack, "zyx", name, "voxel", "planes, rows, columns", float16=False)


def detect_spots_3d(stack: np.ndarray, config: Detect3DConfig | None = None) -> np.ndarray:
    """Detect spots in one z-stack; the per-stack hot path (no pandas).

    ``stack``: (Z, Y, X) integer or float array of counts (any real dtype; converted to float32).
    Returns float64 (n, 8), C-contiguous, columns :data:`SPOT3D_COLUMNS`: ``z, y, x`` (voxels,
    sub-voxel), ``mass`` (counts in the ellipsoid of ``mass_radius`` minus the local background),
    ``size`` (lateral radius of gyration of the spot, voxels: sqrt(sy^2 + sx^2), sqrt(2) sigma for a
    round Gaussian), ``signal`` (band-passed stack at the voxel where the spot was found, counts),
    ``size_z`` (the spot's std along z, voxels), ``eccentricity`` (lateral, in [0, 1), 0 = round).
    Rows sorted by (z, y, x). Raises :class:`InputError` for a stack that is not 3-D, empty, not
    numeric, or has NaN / inf voxels.
    """
    cfg = config if config is not None else Detect3DConfig()
    if not isinstance(cfg, Detect3DConfig):
        raise ConfigError(f"config must be a Detect3DConfig, got {type(cfg).__name__}")
    arr = check_stack(stack)
    plan = _plan(cfg)
    shape = tuple(int(v) for v in arr.shape)
    image, filt, background, s1, b2 = _WORKSPACE.get(shape)
    if arr.dtype == np.float32 and arr.flags.c_contiguous:
        image = arr
    else:
        np.copyto(image, arr, casting="unsafe")
    kz, ky, kx = plan.kernels
    bandpass_3d(image, kz, ky, kx, *plan.box_half, filt, background, s1, b2)
    profiles, inv_interior = _noise_profiles(plan, shape)  # type: ignore[arg-type]
    base, excess = _threshold(image, filt, cfg, profiles, inv_interior)
    peaks = local_maxima_3d(filt, base, excess, *profiles, inv_interior, plan.offsets)
    spots = refine_spots_3d(image, filt, background, peaks, plan.sigma, plan.half, plan.fit_half,
                            plan.mass_radius, cfg.refine_iterations)
    # a centre fitted outside the stack is a spot outside it whose light reaches in: dropped
    inside = np.all((spots[:, :3] >= -0.5) & (spots[:, :3] < np.array(shape, np.float64) - 0.5), axis=1)
    spots = spots[inside & (spots[:, 3] >= cfg.min_mass)]
    if cfg.max_spots is not None and spots.shape[0] > cfg.max_spots:
        spots = spots[np.argsort(-spots[:, 3], kind="stable")[: cfg.max_spots]]
    order = np.lexsort((spots[:, 2], spots[:, 1], spots[:, 0]))
    return np.ascontiguousarray(spots[order])


def detect_spots_3d_table(stack: np.ndarray, config: Detect3DConfig | None = None, frame: int = 0) -> pd.DataFrame:
    """Detect spots in one z-stack; a DataFrame with columns ``frame`` (int64, = ``frame``) and
    :data:`SPOT3D_COLUMNS` (see :func:`detect_spots_3d` for units)."""
    spots = detect_spots_3d(stack, config)
    data: dict[str, np.ndarray] = {"frame": np.full(spots.shape[0], int(frame), np.int64)}
    for k, name in enumerate(SPOT3D_COLUMNS):
        data[name] = spots[:, k]
    return pd.DataFrame(data)
