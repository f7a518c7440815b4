"""Tests of the detection kernels' fast paths against the plain computations they replace
(edgetrack.runtime.detect.residual, filters, fitting, deblend)."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.deblend import crowded_flags, select_spots
from edgetrack.runtime.detect.filters import bandpass, local_maxima
from edgetrack.runtime.detect.fitting import move_rendering, render
from edgetrack.runtime.detect.layout import ST_COLS
from edgetrack.runtime.detect.residual import subtract_spots
from edgetrack.runtime.detect.spots import _plan


def _spots(rng, n, h, w):
    st = np.zeros((n, ST_COLS))
    st[:, 0] = rng.uniform(-0.5, h - 0.5, n)
    st[:, 1] = rng.uniform(-0.5, w - 0.5, n)
    st[:, 2] = rng.uniform(-50.0, 400.0, n)
    # On the borders and in the corners, and one of amplitude 0 (never drawn).
    k = min(n, 6)
    st[:k, 0] = [-0.5, h - 0.5, 0.2, h - 1.2, 3.0, -0.4][:k]
    st[:k, 1] = [w - 0.5, -0.5, 1.0, w - 0.7, -0.5, 2.0][:k]
    st[n - 1, 2] = 0.0
    return st


@pytest.mark.parametrize("sigma, shape, n", [(1.5, (64, 80), 40), (1.5, (9, 30), 5), (1.0, (40, 41), 60),
                                             (2.5, (70, 50), 25), (1.5, (512, 512), 600)])
def test_subtracting_the_spots_from_the_band_pass_equals_band_passing_image_minus_model(sigma, shape, n):
    plan = _plan(DetectConfig(psf_sigma=sigma))
    rng = np.random.default_rng(n)
    h, w = shape
    img = rng.normal(100.0, 5.0, shape).astype(np.float32)
    st = _spots(rng, n, h, w)
    alive = rng.random(n) > 0.2
    model = np.zeros(shape, np.float32)
    for s in np.flatnonzero(alive):
        render(model, st[s, 0], st[s, 1], st[s, 2], sigma, plan.render_r)
    full = np.empty(shape, np.float32)
    bandpass(img, model, True, plan.kernel, plan.box_half, full)
    filt = np.empty(shape, np.float32)
    bandpass(img, img, False, plan.kernel, plan.box_half, filt)
    before = filt.copy()
    subtract_spots(filt, st, alive, sigma, plan.render_r, plan.kernel, plan.box_half)
    # Equal up to float32 rounding of the model and of the filter sums (counts ~ 100-400).
    np.testing.assert_allclose(filt, full, rtol=0, atol=2e-4)
    assert np.abs(filt - before).max() > 1.0  # the spots were there to subtract
    # Far from every live spot the band-pass is left as it was, bit for bit.
    reach = plan.render_r + max(len(plan.kernel) // 2, plan.box_half) + 1
    far = np.ones(shape, bool)
    yy, xx = np.mgrid[:h, :w]
    for s in np.flatnonzero(alive & (st[:, 2] != 0)):
        far &= (np.abs(yy - st[s, 0]) > reach) | (np.abs(xx - st[s, 1]) > reach)
    np.testing.assert_array_equal(filt[far], before[far])


@pytest.mark.parametrize("old, new", [((20.2, 30.4, 150.0), (20.4, 30.1, 140.0)),  # same window
                                      ((20.2, 30.4, 150.0), (21.7, 28.9, 160.0)),  # the window moves
                                      ((0.1, 63.4, 80.0), (-0.5, 63.5, 90.0)),  # at the corner
                                      ((10.0, 10.0, 0.0), (10.2, 9.8, 70.0)),  # a new spot
                                      ((10.0, 10.0, 70.0), (10.2, 9.8, 0.0))])  # a spot removed
def test_moving_a_rendering_in_one_pass_gives_the_same_pixels_as_two_renders(old, new):
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 30.0, (40, 64)).astype(np.float32)
    two = base.copy()
    render(two, old[0], old[1], -old[2], 1.5, 6)
    render(two, new[0], new[1], new[2], 1.5, 6)
    one = base.copy()
    move_rendering(one, *old, *new, 1.5, 6, np.empty((2, 13)))
    np.testing.assert_array_equal(one, two)


def test_select_spots_filters_by_mass_and_sorts_like_lexsort_with_ties():
    rng = np.random.default_rng(2)
    spots = rng.normal(0.0, 1.0, (500, 6))
    spots[:, 0] = rng.integers(0, 20, 500)  # many equal rows
    spots[:, 1] = rng.integers(0, 5, 500)  # and equal (y, x): their order must stay
    spots[7, 2] = np.nan  # a NaN mass is dropped, as by the comparison in numpy
    kept = spots[spots[:, 2] >= -0.3]
    expected = kept[np.lexsort((kept[:, 1], kept[:, 0]))]
    out = select_spots(spots, -0.3)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    assert select_spots(spots[:0], 0.0).shape == (0, 6)


def test_local_maxima_with_ties_and_a_disc_match_a_direct_check():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 6, (70, 90)).astype(np.float32)  # plateaus everywhere: the tie rule decides
    prof = np.zeros((3, 90))
    prof[0] = 1.0
    plan = _plan(DetectConfig())
    ys, xs = local_maxima(img, 1.5, 0.0, prof[:, :70], prof, plan.dy, plan.dx)
    h, w = img.shape
    expected = []
    for i in range(h):
        for j in range(w):
            v = img[i, j]
            if not v > 1.5:
                continue
            ok = True
            for dy, dx in zip(plan.dy, plan.dx):
                y, x = i + dy, j + dx
                if 0 <= y < h and 0 <= x < w:
                    q = img[y, x]
                    if q > v or (q == v and (dy < 0 or (dy == 0 and dx < 0))):
                        ok = False
                        break
            if ok:
                expected.append((i, j))
    assert len(expected) > 20
    np.testing.assert_array_equal(np.stack([ys, xs], axis=1), np.array(expected))


def test_crowded_spot_flags_match_all_pairs():
    rng = np.random.default_rng(4)
    n = 400
    ys = rng.uniform(-0.5, 99.5, n)
    xs = rng.uniform(-0.5, 119.5, n)
    alive = rng.random(n) > 0.1
    for seed_fraction in (1.0, 0.1, 0.0):
        seed = rng.random(n) < seed_fraction
        flag = crowded_flags(ys, xs, alive, seed, 7.5, 100, 120)
        d2 = (ys[:, None] - ys[None, :]) ** 2 + (xs[:, None] - xs[None, :]) ** 2
        close = (d2 < 7.5**2) & ~np.eye(n, dtype=bool) & (alive | seed)[None, :]
        close &= seed[:, None] | seed[None, :]
        expected = alive & close.any(axis=1)
        np.testing.assert_array_equal(flag, expected)


def test_gaussian_smooth_equals_scipy_with_replicated_edges():
    from scipy import ndimage as ndi

    from edgetrack.runtime.detect.filters import gaussian_smooth

    rng = np.random.default_rng(3)
    for shape, sigma in (((64, 90), 2.0), ((33, 17), 1.0), ((128, 128), 3.5)):
        img = rng.normal(100, 10, shape).astype(np.float32)
        img[5:9, 3:12] += 500  # an edge near the border
        ref = ndi.gaussian_filter(img, sigma, mode="nearest", truncate=3.0 * (1 + 1e-9))
        r = int(np.ceil(3 * sigma))
        if r / sigma > 3.0 + 1e-9:  # scipy's radius is int(truncate * sigma + 0.5); ours ceil(3 sigma)
            ref = ndi.gaussian_filter(img, sigma, mode="nearest", radius=r)
        np.testing.assert_allclose(gaussian_smooth(img, sigma), ref, atol=2e-3)
    with pytest.raises(ValueError, match="2-D"):
        gaussian_smooth(np.zeros(5), 1.0)
