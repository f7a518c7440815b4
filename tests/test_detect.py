"""Tests of the spot detector (edgetrack.runtime.detect.spots)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from edgetrack.runtime.detect.spots import SPOT_FEATURES, check_frame, detect_movie, detect_spots, detect_spots_array

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.errors import ConfigError, InputError

SIGMA = 1.5
COLUMNS = ["frame", *SPOT_FEATURES]


def render(shape, points, amplitude=200.0, background=100.0, sigma=SIGMA):
    """Noise-free image: Gaussian spots (peak ``amplitude`` counts) on a flat background."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.full(shape, background, dtype=np.float64)
    amps = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (len(points),))
    for (y, x), a in zip(points, amps):
        img += a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2.0 * sigma**2))
    return img


def matched_distances(truth_yx: np.ndarray, det_yx: np.ndarray, max_distance: float = 2.0) -> np.ndarray:
    """Distances of a one-to-one matching (most pairs, then least total distance) within max_distance."""
    if len(truth_yx) == 0 or len(det_yx) == 0:
        return np.empty(0)
    dist = cKDTree(truth_yx).sparse_distance_matrix(cKDTree(det_yx), max_distance, output_type="coo_matrix")
    big = 1e6
    cost = np.full((len(truth_yx), len(det_yx)), big)
    cost[dist.row, dist.col] = dist.data
    rows, cols = linear_sum_assignment(cost)
    d = cost[rows, cols]
    return d[d < big]


POINTS = [(20.3, 20.7), (40.1, 15.45), (30.5, 45.5), (50.9, 50.2), (12.0, 55.25), (47.62, 31.18)]


def test_noise_free_positions_within_a_tenth_of_a_pixel():
    img = render((64, 64), POINTS)
    spots = detect_spots_array(img)
    assert spots.shape == (len(POINTS), len(SPOT_FEATURES))
    d = matched_distances(np.array(POINTS), spots[:, :2])
    assert len(d) == len(POINTS)
    assert d.max() < 0.1
    # Features of a round Gaussian: size = sqrt(2) sigma, eccentricity ~ 0, mass ~ the flux in
    # the disc of 3 sigma (2 pi sigma^2 A (1 - exp(-4.5))).
    np.testing.assert_allclose(spots[:, 3], np.sqrt(2.0) * SIGMA, rtol=0.02)
    assert np.all(spots[:, 5] < 0.1)
    expected_mass = 2 * np.pi * SIGMA**2 * 200.0 * (1 - np.exp(-4.5))
    np.testing.assert_allclose(spots[:, 2], expected_mass, rtol=0.05)
    assert np.all(spots[:, 4] > 0)


def test_noisy_positions_and_subpixel_accuracy():
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(6, 90, 25), rng.uniform(6, 90, 25)])
    pts = pts[np.min(np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(25) * 99, axis=1) > 8]
    img = rng.poisson(render((96, 96), pts, amplitude=300.0)).astype(np.uint16)
    spots = detect_spots_array(img)
    d = matched_distances(pts, spots[:, :2])
    assert len(d) == len(pts) and len(spots) == len(pts)
    assert np.sqrt(np.mean(d**2)) < 0.1


def test_spots_at_the_image_edge_are_not_pulled_inwards():
    pts = [(0.2, 30.3), (62.6, 3.3), (31.0, 0.0), (20.0, 63.4)]
    spots = detect_spots_array(render((64, 64), pts))
    d = matched_distances(np.array(pts), spots[:, :2])
    assert len(d) == len(pts)
    assert d.max() < 0.05


@pytest.mark.parametrize("separation", [2.5, 3.0, 4.0])
def test_close_pair_is_split_and_localised(separation):
    # Closer than ~4.2 px the two spots make one blob after the detection filter.
    pts = [(20.2, 20.1), (20.2 + 0.6 * separation, 20.1 + 0.8 * separation)]
    img = render((40, 40), pts)
    assert len(detect_spots_array(img, DetectConfig(deblend_sweeps=0, threshold=5.0))) == 1
    spots = detect_spots_array(img, DetectConfig(threshold=5.0))
    d = matched_distances(np.array(pts), spots[:, :2])
    assert len(spots) == 2 and len(d) == 2
    assert d.max() < 0.02


def test_dim_spot_next_to_bright_one_is_found():
    pts = [(30.0, 30.0), (30.4, 35.6)]
    img = render((60, 60), pts, amplitude=[400.0, 60.0])
    spots = detect_spots_array(img, DetectConfig(threshold=5.0))
    d = matched_distances(np.array(pts), spots[:, :2])
    assert len(spots) == 2 and len(d) == 2
    assert d.max() < 0.1


def test_recall_and_precision_on_a_simulated_movie(small_movie):
    movie, truth = small_movie
    n_truth = n_det = n_match = 0
    dist = []
    for t in range(8):
        spots = detect_spots_array(movie[t], DetectConfig(psf_sigma=1.5))
        tyx = truth.loc[truth["frame"] == t, ["y", "x"]].to_numpy()
        d = matched_distances(tyx, spots[:, :2])
        n_truth += len(tyx)
        n_det += len(spots)
        n_match += len(d)
        dist.append(d)
    assert n_match / n_truth >= 0.95
    assert n_match / n_det >= 0.95
    assert np.sqrt(np.mean(np.concatenate(dist) ** 2)) < 0.3


def test_deterministic_and_thread_safe(small_movie):
    movie, _ = small_movie
    first = [detect_spots_array(movie[t]) for t in range(4)]
    again = [detect_spots_array(movie[t]) for t in range(4)]
    results: dict[int, np.ndarray] = {}

    def work(t: int) -> None:
        results[t] = detect_spots_array(movie[t])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(4):
        np.testing.assert_array_equal(first[t], again[t])
        np.testing.assert_array_equal(first[t], results[t])


def test_output_layout_and_order(small_movie):
    movie, _ = small_movie
    spots = detect_spots_array(movie[0])
    assert spots.dtype == np.float64 and spots.flags.c_contiguous
    assert spots.shape[1] == len(SPOT_FEATURES) == 6
    order = np.lexsort((spots[:, 1], spots[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(spots)))
    assert np.all((spots[:, 5] >= 0) & (spots[:, 5] < 1))
    assert np.all(spots[:, 3] > 0)


def test_flat_noise_frame_gives_no_spots_with_the_right_columns():
    rng = np.random.default_rng(5)
    frame = rng.poisson(100.0, size=(96, 96)).astype(np.uint16)
    df = detect_spots(frame, frame_index=7)
    assert list(df.columns) == COLUMNS
    assert len(df) == 0
    assert detect_spots_array(frame).shape == (0, len(SPOT_FEATURES))


@pytest.mark.parametrize("value", [0, 65535])
def test_constant_frames_do_not_crash(value):
    frame = np.full((50, 70), value, dtype=np.uint16)
    spots = detect_spots_array(frame)
    assert spots.shape == (0, len(SPOT_FEATURES))


def test_saturated_spots_do_not_crash():
    img = np.clip(render((64, 64), POINTS, amplitude=1e5), 0, 65535).astype(np.uint16)
    spots = detect_spots_array(img)
    assert np.isfinite(spots).all()
    assert len(matched_distances(np.array(POINTS), spots[:, :2])) == len(POINTS)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (3, 3), (7, 200)])
def test_tiny_and_thin_frames(shape):
    rng = np.random.default_rng(0)
    frame = rng.poisson(100.0, size=shape).astype(np.uint16)
    spots = detect_spots_array(frame)
    assert spots.shape[1] == len(SPOT_FEATURES) and np.isfinite(spots).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((5, 5, 5)), "2-D"),
        (np.zeros(25), "2-D"),
        (np.zeros((0, 5)), "empty"),
        (np.zeros((5, 0), dtype=np.uint16), "empty"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype"),
        (np.zeros((4, 4), dtype=bool), "dtype"),
        (np.zeros((4, 4), dtype=complex), "dtype"),
        (np.zeros((4, 4), dtype=object), "dtype"),
    ],
)
def test_bad_frames_raise_input_error(bad, message):
    with pytest.raises(InputError, match=message):
        detect_spots_array(bad)
    with pytest.raises(InputError):
        check_frame(bad)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_named(bad_value):
    frame = np.zeros((10, 12), dtype=np.float32)
    frame[3, 4] = bad_value
    frame[8, 1] = bad_value
    with pytest.raises(InputError, match=r"2 non-finite.*y=3, x=4"):
        detect_spots_array(frame)


def test_float64_beyond_float32_range_is_rejected():
    frame = np.zeros((8, 8))
    frame[2, 2] = 1e300
    with pytest.raises(InputError, match="float32"):
        detect_spots_array(frame)


def test_integer_and_float_dtypes_give_the_same_answer():
    rng = np.random.default_rng(2)
    counts = rng.poisson(render((64, 64), POINTS, amplitude=150.0))
    reference = detect_spots_array(counts.astype(np.uint16))
    assert len(reference) == len(POINTS)
    for dtype in (np.int32, np.int64, np.uint32, np.float32, np.float64, ">u2"):
        np.testing.assert_array_equal(detect_spots_array(counts.astype(dtype)), reference)
    # Non-contiguous views and nested lists too.
    wide = np.zeros((64, 128), dtype=np.uint16)
    wide[:, ::2] = counts
    np.testing.assert_array_equal(detect_spots_array(wide[:, ::2]), reference)
    np.testing.assert_array_equal(detect_spots_array(counts.tolist()), reference)


def test_check_frame_returns_float32_contiguous_without_copying_when_possible():
    f32 = np.ones((4, 5), dtype=np.float32)
    assert check_frame(f32) is f32
    out = check_frame(np.ones((4, 5), dtype=np.uint16)[:, ::-1])
    assert out.dtype == np.float32 and out.flags.c_contiguous


def test_detect_movie_and_dataframe_api(small_movie):
    movie, _ = small_movie
    df = detect_movie(movie[:3])
    assert list(df.columns) == COLUMNS
    assert df["frame"].dtype == np.int64
    assert sorted(df["frame"].unique()) == [0, 1, 2]
    one = detect_spots(movie[1], frame_index=1)
    pd.testing.assert_frame_equal(df[df["frame"] == 1].reset_index(drop=True), one)
    with pytest.raises(InputError, match="3-D"):
        detect_movie(movie[0])
    bad = movie[:2].astype(np.float32)
    bad[1, 5, 5] = np.nan
    with pytest.raises(InputError, match="frame 1"):
        detect_movie(bad)


def test_threshold_min_mass_and_max_spots():
    amps = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    img = render((64, 64), POINTS, amplitude=amps)
    all_spots = detect_spots_array(img, DetectConfig(threshold=5.0))
    assert len(all_spots) == 6
    top2 = detect_spots_array(img, DetectConfig(threshold=5.0, max_spots=2))
    d = matched_distances(np.array(POINTS[-2:]), top2[:, :2])
    assert len(top2) == 2 and len(d) == 2
    heavy = detect_spots_array(img, DetectConfig(threshold=5.0, min_mass=float(np.median(all_spots[:, 2]))))
    assert 0 < len(heavy) < 6 and np.all(heavy[:, 2] >= np.median(all_spots[:, 2]))
    # An absolute threshold above the dimmer spots' band-passed peaks drops them.
    strict = detect_spots_array(img, DetectConfig(threshold=float(np.sort(all_spots[:, 4])[2]) + 1e-3))
    assert len(strict) == 3


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown"):
        DetectConfig.from_dict({"psf_sigmaa": 1.0})
    for bad in (
        {"psf_sigma": 0.0},
        {"psf_sigma": float("nan")},
        {"snr_threshold": -1.0},
        {"min_separation": 0.5},
        {"max_spots": -1},
        {"max_spots": 2.5},
        {"refine_iterations": -1},
        {"deblend_sweeps": True},
        {"threshold": float("inf")},
        {"fit_radius": 0.0},
    ):
        with pytest.raises(ConfigError):
            DetectConfig(**bad)
    cfg = DetectConfig.from_dict({"psf_sigma": 2.0, "max_spots": 10})
    assert cfg.psf_sigma == 2.0 and cfg.max_spots == 10


def test_other_psf_widths():
    for sigma in (1.0, 2.5):
        pts = [(20.3, 22.7), (45.6, 40.2)]
        img = render((70, 70), pts, sigma=sigma)
        spots = detect_spots_array(img, DetectConfig(psf_sigma=sigma))
        d = matched_distances(np.array(pts), spots[:, :2])
        assert len(spots) == 2 and len(d) == 2 and d.max() < 0.05
        np.testing.assert_allclose(spots[:, 3], np.sqrt(2.0) * sigma, rtol=0.03)
