"""Cells from 3-D label masks (issue 20): track_cells(ndim=3), CTC 3-D results, the CLI, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from edgetrack.runtime.cells.tracker import (
    CELL3D_TRACK_COLUMNS,
    CellTracker,
    default_max_distance_3d,
    track_cells,
)
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.io.masks import (
    ctc_result,
    open_masks,
    read_ctc_result,
    write_ctc_result,
)
from edgetrack.runtime.metrics.ctc import ctc_scores
from edgetrack.runtime.simulate.volumes import simulate_cells_3d

VOXEL = (1.0, 0.5, 0.5)


@pytest.fixture(scope="module")
def movie():
    return simulate_cells_3d(n_frames=12, shape=(16, 64, 64), n_cells=6, voxel_size=VOXEL, division_rate=0.15,
                             seed=1)


def test_track_cells_3d_matches_the_simulated_lineage(movie):
    assert (movie.lineage["parent"] > 0).sum() >= 4  # the movie has divisions
    tracks = track_cells(movie.labels, ndim=3, voxel_size=VOXEL)
    assert tuple(tracks.columns) == CELL3D_TRACK_COLUMNS
    assert len(tracks) == sum(len(np.unique(m)) - 1 for m in movie.labels)
    assert (tracks["parent_track_id"] >= 0).sum() >= 4
    res, lineage = ctc_result(tracks, movie.labels)
    assert res.shape == movie.labels.shape
    scores = ctc_scores(movie.labels, movie.lineage, res, lineage)
    assert scores["TRA"] > 0.95
    assert scores["division_f1"] > 0.8


def test_ctc_scores_3d_ground_truth_against_itself(movie):
    scores = ctc_scores(movie.labels, movie.lineage, movie.labels, movie.lineage)
    assert scores["TRA"] == 1.0 and scores["division_f1"] == 1.0


def test_write_ctc_result_3d_round_trip(movie, tmp_path):
    tracks = track_cells(movie.labels, ndim=3, voxel_size=VOXEL)
    out = write_ctc_result(tracks, movie.labels, tmp_path / "res")
    assert tifffile.imread(out / "mask000.tif").shape == movie.labels.shape[1:]
    masks, lineage = read_ctc_result(out)
    assert masks.frame_shape == movie.labels.shape[1:]
    expected, expected_lineage = ctc_result(tracks, movie.labels)
    np.testing.assert_array_equal(np.stack(list(masks)), expected)
    pd.testing.assert_frame_equal(lineage, expected_lineage)


def test_default_max_distance_3d_is_the_sphere_diameter_in_xy_px():
    ball = np.zeros((1, 21, 41, 41), np.uint8)
    k, i, j = np.ogrid[-10:11, -20:21, -20:21]
    ball[0][(k * 2.0) ** 2 + i ** 2 + j ** 2 <= 15.0 ** 2] = 1  # radius 15 px with z voxels of 2 px
    tracker = CellTracker(ndim=3, voxel_size=(0.2, 0.1, 0.1))
    tracker.push(ball[0])
    assert tracker.max_distance == pytest.approx(30.0, rel=0.03)
    assert default_max_distance_3d(np.array([np.pi / 6 * 8.0])) == pytest.approx(2.0)


def test_cli_masks_ndim_3_csv_and_ctc(movie, tmp_path):
    stack = tmp_path / "labels.tif"
    tifffile.imwrite(stack, movie.labels, imagej=True, metadata={"axes": "TZYX"})
    assert main(["track", "--masks", str(stack), "--ndim", "3", "--voxel-size", *map(str, VOXEL),
                 "--format", "ctc", "--out", str(tmp_path / "res"), "--quiet"]) == 0
    assert ctc_scores(movie.labels, movie.lineage, tmp_path / "res", tmp_path / "res")["TRA"] > 0.95
    np.save(tmp_path / "labels.npy", movie.labels)
    assert main(["track", "--masks", str(tmp_path / "labels.npy"), "--ndim", "3", "--voxel-size", *map(str, VOXEL),
                 "--out", str(tmp_path / "tracks.csv"), "--quiet"]) == 0
    csv = pd.read_csv(tmp_path / "tracks.csv")
    direct = track_cells(movie.labels, ndim=3, voxel_size=VOXEL)
    assert tuple(csv.columns) == CELL3D_TRACK_COLUMNS
    np.testing.assert_array_equal(csv["track_id"], direct["track_id"])
    np.testing.assert_allclose(csv[["z", "y", "x", "volume"]], direct[["z", "y", "x", "volume"]])


def test_2d_masks_with_ndim_3_are_refused_clearly(tmp_path):
    masks2d = np.zeros((4, 32, 32), np.uint16)
    masks2d[:, 5:10, 5:10] = 1
    with pytest.raises(InputError, match=r"ndim=3 needs \(T, Z, Y, X\)"):
        track_cells(masks2d, ndim=3)
    tifffile.imwrite(tmp_path / "flat.tif", masks2d, photometric="minisblack")
    with pytest.raises(InputError, match="Z"):
        track_cells(tmp_path / "flat.tif", ndim=3)
    assert main(["track", "--masks", str(tmp_path / "flat.tif"), "--ndim", "3", "--out",
                 str(tmp_path / "t.csv"), "--quiet"]) != 0
    with pytest.raises(InputError, match="use ndim=3"):
        track_cells(np.zeros((2, 3, 8, 8), np.uint16), ndim=2)


def test_3d_options_are_checked():
    with pytest.raises(ConfigError, match="voxel_size"):
        CellTracker(ndim=3, voxel_size=(1.0, 0.0, 0.5))
    with pytest.raises(ConfigError, match="ndim=3"):
        CellTracker(voxel_size=VOXEL)
    with pytest.raises(ConfigError, match="check_divisions"):
        CellTracker(ndim=3, check_divisions=True)
    with pytest.raises(ConfigError, match="ndim"):
        CellTracker(ndim=4)
    assert open_masks(np.zeros((2, 3, 8, 8), np.uint16)).frame_shape == (3, 8, 8)
