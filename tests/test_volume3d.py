"""3-D building blocks: the z-stack spot and cell simulators, 3-D spot detection and 3-D cell features."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from edgetrack.runtime.cells.features3d import (
    CELL3D_COLUMNS,
    frame_features_3d,
    movie_features_3d,
)
from edgetrack.runtime.detect.volume import (
    SPOT3D_COLUMNS,
    Detect3DConfig,
    detect_spots_3d,
    detect_spots_3d_table,
)
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.simulate.volumes import (
    TRUTH3D_COLUMNS,
    simulate_cells_3d,
    simulate_movie_3d,
)
from scipy.spatial import cKDTree

VOXEL = np.array([0.3, 0.1, 0.1])  # um, z three times coarser
PSF = np.array([0.4, 0.15, 0.15])  # um


def _score(truth: pd.DataFrame, spots: np.ndarray, shape: tuple[int, int, int], voxel: np.ndarray,
           radius_um: float = 0.3) -> dict:
    """Nearest-neighbour scores of one stack's detections (voxels) against the truth (voxels).

    Truth points outside the volume (listed with ``truth_margin``) are "don't care": a detection
    next to one counts neither way. Returns recall, precision, per-axis RMSE (voxels) of the hits.
    """
    zyx = truth[["z", "y", "x"]].to_numpy()
    inside = np.all((zyx >= -0.5) & (zyx < np.array(shape) - 0.5), axis=1)
    dist, idx = cKDTree(zyx * voxel).query(spots[:, :3] * voxel, distance_upper_bound=radius_um)
    hit = np.isfinite(dist)
    idx = np.where(hit, idx, -1)
    taken = np.zeros(len(zyx), bool)
    tp = 0
    errors = []
    for p in np.argsort(np.where(hit, dist, np.inf), kind="stable"):  # closest pairs first, one-to-one
        t = idx[p]
        if t >= 0 and not taken[t]:
            taken[t] = True
            if inside[t]:
                tp += 1
                errors.append(spots[p, :3] - zyx[t])
    ignored = int((taken & ~inside).sum())
    err = np.array(errors).reshape(-1, 3)
    return {"recall": tp / max(int(inside.sum()), 1), "precision": tp / max(len(spots) - ignored, 1),
            "rmse": np.sqrt((err**2).mean(axis=0)) if len(err) else np.full(3, np.nan)}


# ------------------------------------------------------------------------------------- simulators


def test_spot_movie_is_deterministic_and_fast():
    simulate_movie_3d(n_frames=1, shape=(4, 8, 8), n_spots=1)  # imports
    start = time.perf_counter()
    movie, truth = simulate_movie_3d(n_frames=10, shape=(16, 64, 64), n_spots=20, seed=3)
    elapsed = time.perf_counter() - start
    again, truth2 = simulate_movie_3d(n_frames=10, shape=(16, 64, 64), n_spots=20, seed=3)
    other, _ = simulate_movie_3d(n_frames=10, shape=(16, 64, 64), n_spots=20, seed=4)
    assert movie.shape == (10, 16, 64, 64) and movie.dtype == np.uint16
    assert np.array_equal(movie, again) and not np.array_equal(movie, other)
    pd.testing.assert_frame_equal(truth, truth2)
    assert tuple(truth.columns) == TRUTH3D_COLUMNS
    assert elapsed < 1.0, f"16x64x64 x 10 took {elapsed:.2f} s"
    as_float, _ = simulate_movie_3d(n_frames=2, shape=(16, 64, 64), n_spots=20, seed=3, dtype="float32")
    assert as_float.dtype == np.float32


def test_spot_truth_matches_the_movie_and_the_physics():
    shape = (16, 48, 48)
    movie, truth = simulate_movie_3d(n_frames=30, shape=shape, n_spots=60, voxel_size=VOXEL, D=0.05,
                                     frame_interval=0.1, psf_sigma_um=PSF, snr=10, seed=1)
    zyx = truth[["z", "y", "x"]].to_numpy()
    assert np.all(zyx >= -0.5) and np.all(zyx < np.array(shape) - 0.5)
    assert truth["frame"].between(0, 29).all() and not truth.duplicated(["frame", "track_id"]).any()
    assert (truth["track_id"] == truth["particle"]).all()
    # the voxel under every spot is bright: background 100, peak ~ 10 * sqrt(104) = 102 above it
    at = movie[(truth["frame"].to_numpy(), *np.rint(zyx).astype(int).T)].astype(float)
    assert np.median(at) > 100 + 0.6 * 102
    # steps: std sqrt(2 D dt) = 0.1 um per axis, i.e. 1/3 voxel in z and 1 voxel in y, x
    tr = truth.sort_values(["track_id", "frame"])
    same = (tr["track_id"].diff() == 0) & (tr["frame"].diff() == 1)
    steps = tr[["z", "y", "x"]].diff()[same].to_numpy()
    np.testing.assert_allclose(steps.std(axis=0), 0.1 / VOXEL, rtol=0.1)
    empty, none = simulate_movie_3d(n_frames=2, shape=shape, n_spots=0, background=100.0, read_noise=2.0)
    assert none.empty
    assert abs(empty.mean() - 100) < 0.1 and abs(empty.std() - math.sqrt(104)) < 0.1  # Poisson + read noise


def test_cell_movie_lineage_is_ctc_consistent():
    movie = simulate_cells_3d(n_frames=20, shape=(16, 48, 48), n_cells=5, division_rate=0.15, seed=2)
    again = simulate_cells_3d(n_frames=20, shape=(16, 48, 48), n_cells=5, division_rate=0.15, seed=2)
    assert np.array_equal(movie.labels, again.labels) and np.array_equal(movie.image, again.image)
    assert movie.labels.shape == movie.image.shape == (20, 16, 48, 48)
    lineage = movie.lineage
    assert list(lineage.columns) == ["label", "start", "end", "parent"]
    assert (lineage["parent"] > 0).sum() >= 4, "expected some divisions"
    for row in lineage.itertuples():
        present = [t for t in range(20) if np.any(movie.labels[t] == row.label)]
        assert present == list(range(row.start, row.end + 1)), row
    ends = dict(zip(lineage["label"], lineage["end"]))
    volume = movie.truth.set_index(["frame", "label"])["volume"]
    for row in lineage[lineage["parent"] > 0].itertuples():
        assert ends[row.parent] == row.start - 1
        # half the mother's volume (after its last growth step of 3 %)
        mother = volume[(row.start - 1, row.parent)]
        assert volume[(row.start, row.label)] == pytest.approx(0.5 * mother * 1.03, rel=1e-9)
    # cells are brighter than the background
    assert movie.image[movie.labels > 0].mean() > movie.image[movie.labels == 0].mean() + 100


def test_simulator_options_are_checked():
    with pytest.raises(ConfigError, match="voxel_size"):
        simulate_movie_3d(voxel_size=(0.1, 0.1))
    with pytest.raises(ConfigError, match="shape"):
        simulate_movie_3d(shape=(64, 64))
    with pytest.raises(ConfigError, match="dtype"):
        simulate_movie_3d(dtype="int8")
    with pytest.raises(ConfigError, match="radius_range"):
        simulate_cells_3d(radius_range=(5.0, 2.0))


# -------------------------------------------------------------------------------------- detection


@pytest.fixture(scope="module")
def spot_movie():
    shape = (20, 128, 128)  # 6 x 12.8 x 12.8 um, 0.03 spots per um^3 (benchmarks/bench_detect3d.py: 0.05)
    movie, truth = simulate_movie_3d(n_frames=2, shape=shape, n_spots=30, voxel_size=VOXEL, psf_sigma_um=PSF,
                                     snr=8, seed=7, truth_margin=3.0)
    return shape, movie, truth


def test_detection_finds_the_simulated_spots(spot_movie):
    shape, movie, truth = spot_movie
    config = Detect3DConfig(psf_sigma=tuple(PSF / VOXEL))
    for t in range(movie.shape[0]):
        spots = detect_spots_3d(movie[t], config)
        assert spots.shape[1] == len(SPOT3D_COLUMNS) and spots.dtype == np.float64
        score = _score(truth[truth["frame"] == t], spots, shape, VOXEL)
        assert score["recall"] > 0.9 and score["precision"] > 0.9, score
        assert np.all(score["rmse"][1:] < 0.3) and score["rmse"][0] < 0.4, score
        # features: the PSF is sigma (1.33, 1.5, 1.5) voxels
        assert np.median(spots[:, 4]) == pytest.approx(math.sqrt(2) * 1.5, rel=0.25)
        assert np.median(spots[:, 6]) == pytest.approx(1.33, rel=0.25)
        assert np.all(spots[:, 3] > 0) and np.all(spots[:, 7] >= 0) and np.all(spots[:, 7] < 1)


def test_detection_is_deterministic_sorted_and_dtype_independent(spot_movie):
    _, movie, _ = spot_movie
    config = Detect3DConfig(psf_sigma=tuple(PSF / VOXEL))
    spots = detect_spots_3d(movie[0], config)
    assert np.array_equal(spots, detect_spots_3d(movie[0].copy(), config))
    order = np.lexsort((spots[:, 2], spots[:, 1], spots[:, 0]))
    assert np.array_equal(order, np.arange(len(spots)))
    for dtype in (np.float32, np.float64, np.int32):
        np.testing.assert_allclose(detect_spots_3d(movie[0].astype(dtype), config), spots, rtol=1e-5, atol=1e-4)
    table = detect_spots_3d_table(movie[0], config, frame=5)
    assert list(table.columns) == ["frame", *SPOT3D_COLUMNS] and (table["frame"] == 5).all()
    np.testing.assert_array_equal(table[list(SPOT3D_COLUMNS)].to_numpy(), spots)


def test_detection_handles_anisotropic_voxels():
    # z five times coarser than y, x: the PSF is sigma (0.8, 1.5, 1.5) voxels
    voxel = np.array([0.5, 0.1, 0.1])
    shape = (12, 128, 128)
    movie, truth = simulate_movie_3d(n_frames=1, shape=shape, n_spots=30, voxel_size=voxel, psf_sigma_um=PSF,
                                     snr=8, seed=11, truth_margin=3.0)
    sigma = tuple(PSF / voxel)
    spots = detect_spots_3d(movie[0], Detect3DConfig(psf_sigma=sigma))
    score = _score(truth, spots, shape, voxel, radius_um=0.5)  # one z voxel
    assert score["recall"] > 0.9 and score["precision"] > 0.9, score
    assert np.all(score["rmse"][1:] < 0.3), score
    assert np.median(spots[:, 6]) == pytest.approx(0.8, rel=0.3)  # size_z follows the z sigma
    # an isotropic neighbourhood as wide as the lateral PSF along z too would merge stacked spots:
    # two spots 3 planes apart (1.5 um) are kept apart by the anisotropic one
    pair, _ = simulate_movie_3d(n_frames=1, shape=(12, 32, 32), n_spots=0, seed=1)
    stack = pair[0].astype(np.float32)
    k, i, j = np.indices(stack.shape)
    for z0 in (3.0, 6.0):
        stack += 100 * np.exp(-0.5 * (((k - z0) / 0.8) ** 2 + ((i - 16) / 1.5) ** 2 + ((j - 16) / 1.5) ** 2))
    found = detect_spots_3d(stack, Detect3DConfig(psf_sigma=sigma))
    np.testing.assert_allclose(found[:, :3], [[3, 16, 16], [6, 16, 16]], atol=0.3)


def test_detection_on_pure_noise_is_nearly_empty():
    rng = np.random.default_rng(0)
    noise = rng.poisson(100.0, (24, 128, 128)).astype(np.uint16)
    assert len(detect_spots_3d(noise, Detect3DConfig(psf_sigma=(1.3, 1.5, 1.5)))) <= 1
    assert len(detect_spots_3d(np.full((8, 16, 16), 7.0))) == 0  # flat: no maxima from rounding


def test_detection_rejects_bad_input():
    with pytest.raises(InputError, match="3-D"):
        detect_spots_3d(np.zeros((32, 32)))
    with pytest.raises(InputError, match="3-D"):
        detect_spots_3d(np.zeros((2, 8, 32, 32)))
    stack = np.zeros((4, 16, 16), np.float32)
    stack[2, 3, 5] = np.nan
    with pytest.raises(InputError, match=r"NaN.*z=2, y=3, x=5"):
        detect_spots_3d(stack)
    with pytest.raises(InputError, match="dtype"):
        detect_spots_3d(np.zeros((4, 8, 8), complex))
    with pytest.raises(InputError, match="empty"):
        detect_spots_3d(np.zeros((0, 8, 8)))
    with pytest.raises(ConfigError, match="psf_sigma"):
        Detect3DConfig(psf_sigma=(1.0, 1.5))
    with pytest.raises(ConfigError, match="unknown"):
        Detect3DConfig.from_dict({"psf_sigmas": (1, 1, 1)})
    with pytest.raises(ConfigError, match="Detect3DConfig"):
        detect_spots_3d(np.zeros((4, 8, 8)), config={"psf_sigma": (1, 1, 1)})  # type: ignore[arg-type]
    assert Detect3DConfig(min_separation=[2, 3, 3]).min_separation == (2, 3, 3)  # lists become tuples


# --------------------------------------------------------------------------------- cell features


def _ellipsoid(shape, centre, semi_axes, voxel, angle=0.0):
    """Voxels of a solid ellipsoid (semi-axes in um, rotated by ``angle`` about z), bool (Z, Y, X)."""
    k, i, j = np.indices(shape).astype(float)
    d = np.stack([(k - centre[0]) * voxel[0], (i - centre[1]) * voxel[1], (j - centre[2]) * voxel[2]], axis=-1)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return (((d @ rot) / np.asarray(semi_axes)) ** 2).sum(-1) <= 1.0


def _ellipsoid_area(a, b, c):
    p = 1.6075  # Knud Thomsen's approximation, within ~1 %
    return 4 * math.pi * ((a**p * b**p + a**p * c**p + b**p * c**p) / 3) ** (1 / p)


def test_features3d_of_synthetic_ellipsoids():
    voxel = np.array([1.0, 0.5, 0.5])
    shape = (30, 80, 80)
    labels = np.zeros(shape, np.uint32)
    big = _ellipsoid(shape, (14.2, 40.3, 39.6), (7.0, 10.0, 5.0), voxel, angle=0.6)
    labels[big] = 9
    ball = _ellipsoid(shape, (7.0, 13.0, 13.0), (5.0, 5.0, 5.0), voxel)
    labels[ball & ~big] = 70_000  # labels need not be consecutive
    image = np.where(labels == 9, 5.0, 2.0)
    table = frame_features_3d(labels, image=image, voxel_size=voxel, frame=3)
    assert list(table.columns) == list(CELL3D_COLUMNS)
    assert table["label"].tolist() == [9, 70_000] and (table["frame"] == 3).all()
    for row, axes in zip(table.itertuples(), ((10.0, 7.0, 5.0), (5.0, 5.0, 5.0))):
        volume = 4 / 3 * math.pi * np.prod(axes)
        assert row.volume == pytest.approx(volume, rel=0.03)
        assert row.axis_major >= row.axis_mid >= row.axis_minor
        np.testing.assert_allclose([row.axis_major, row.axis_mid, row.axis_minor], 2 * np.array(axes), rtol=0.04)
        assert row.surface_area == pytest.approx(_ellipsoid_area(*axes), rel=0.06)
    big_row = table.iloc[0]
    np.testing.assert_allclose([big_row.z, big_row.y, big_row.x], [14.2, 40.3, 39.6], atol=0.05)
    assert table["mean_intensity"].tolist() == [5.0, 2.0]
    huge = labels.astype(np.int64)
    huge[labels == 70_000] = 2**40  # compacted before the lookup
    np.testing.assert_array_equal(frame_features_3d(huge, image=image, voxel_size=voxel)["label"], [9, 2**40])
    np.testing.assert_allclose(frame_features_3d(huge, image=image, voxel_size=voxel).iloc[:, 2:], table.iloc[:, 2:])
    # voxel_size 1: voxel units, the plain counts
    unit = frame_features_3d(labels)
    assert unit.loc[0, "volume"] == big.sum() and (unit["mean_intensity"] == 0).all()


def test_features3d_on_simulated_cells_and_bad_input():
    movie = simulate_cells_3d(n_frames=3, shape=(16, 48, 48), n_cells=4, voxel_size=(1.0, 0.5, 0.5), seed=5)
    table = movie_features_3d(movie.labels, movie.image, voxel_size=(1.0, 0.5, 0.5))
    assert table.groupby("frame").size().tolist() == [4, 4, 4]
    total = table.groupby("frame")["volume"].sum().to_numpy()
    np.testing.assert_allclose(total, (movie.labels > 0).reshape(3, -1).sum(axis=1) * 0.25)
    merged = table.merge(movie.truth, on=["frame", "label"], suffixes=("", "_true"))
    # the simulated cells touch (shared voxels go to one of them) and are cut by the stack's faces,
    # so only the centroids of whole cells are compared closely
    assert (merged["volume"] <= merged["volume_true"] * 1.05).all()
    assert np.median(np.abs(merged["z"] - merged["z_true"])) < 1.0
    assert frame_features_3d(np.zeros((4, 4, 4), np.uint8)).empty
    with pytest.raises(InputError, match="3-D"):
        frame_features_3d(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="integer"):
        frame_features_3d(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InputError, match="voxel_size"):
        frame_features_3d(np.ones((4, 4, 4), np.uint8), voxel_size=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="shape"):
        frame_features_3d(np.ones((4, 4, 4), np.uint8), image=np.ones((4, 4, 5)))
    with pytest.raises(InputError, match="counts must match"):
        movie_features_3d(movie.labels, movie.image[:2])
    assert movie_features_3d(np.zeros((0, 4, 4, 4), np.uint8)).empty
