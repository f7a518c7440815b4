"""Spots in 3-D end to end: z-stacks in, tracks with z out (Tracker, edgetrack.track, the CLI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

import edgetrack
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.io.stacks import open_stacks
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.volumes import simulate_movie_3d
from edgetrack.runtime.stream.pipeline import link_detections
from edgetrack.runtime.stream.tracker import Tracker

VOXEL = (0.3, 0.1, 0.1)  # um: z steps three times the pixel size
Z_SCALE = VOXEL[0] / VOXEL[2]
PSF = (0.4 / 0.3, 1.5, 1.5)  # voxels


@pytest.fixture(scope="module")
def movie3d():
    return simulate_movie_3d(n_frames=12, shape=(16, 64, 64), n_spots=20, voxel_size=VOXEL, D=0.03, seed=5)


def _scaled(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(z=table["z"] * Z_SCALE)  # match in (y, x) px units


def test_tracker_follows_spots_in_3d(movie3d):
    movie, truth = movie3d
    runs = []
    for _ in range(2):
        tracker = Tracker(ndim=3, z_scale=Z_SCALE, max_distance=5.0, detect={"psf_sigma": PSF})
        for stack in movie:
            tracker.push(stack)
        runs.append(tracker.finish())
    pd.testing.assert_frame_equal(runs[0], runs[1])  # deterministic
    tracks = runs[0]
    assert {"z", "y", "x", "track_id"} <= set(tracks.columns)
    scores = link_metrics(_scaled(truth), _scaled(tracks), max_distance=2.0)
    assert scores["f1"] > 0.85 and scores["detection_recall"] > 0.85, scores


@pytest.mark.parametrize("linker", ["greedy", "lap", "flow", "ilp"])
def test_spots_apart_in_z_are_not_confused(linker):
    """Two particles cross at the same (y, x) but 4 planes apart in z: linked in 3-D they keep their tracks."""
    rows = []
    for t in range(8):
        rows.append({"frame": t, "z": 2.0, "y": 20.0, "x": 10.0 + t})
        rows.append({"frame": t, "z": 6.0, "y": 20.0, "x": 17.0 - t})
    table = pd.DataFrame(rows)
    tracks = link_detections(table, ndim=3, z_scale=Z_SCALE, max_distance=3.0, linker=linker)
    assert tracks["track_id"].nunique() == 2
    assert tracks.groupby("track_id")["z"].nunique().eq(1).all(), "each track stays in its plane"
    flat = link_detections(table, max_distance=3.0)  # in 2-D, z is just a feature: the tracks swap planes
    assert flat.groupby("track_id")["z"].nunique().gt(1).any()


def test_track_api_reads_stacks_and_their_voxel_size(movie3d, tmp_path):
    movie, _ = movie3d
    path = tmp_path / "stacks.ome.tif"
    tifffile.imwrite(path, movie, metadata={"axes": "TZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1,
                                            "PhysicalSizeZ": 0.3})
    stacks = open_stacks(path)
    assert len(stacks) == 12 and stacks.stack_shape == (16, 64, 64) and stacks.voxel_size_um == VOXEL
    from_file = edgetrack.track(path, ndim=3, detect={"psf_sigma": PSF}, max_distance=5.0)
    from_array = edgetrack.track(movie, ndim=3, voxel_size=VOXEL, detect={"psf_sigma": PSF}, max_distance=5.0)
    pd.testing.assert_frame_equal(from_file, from_array)
    assert list(from_file.columns[:5]) == ["frame", "z", "y", "x", "track_id"]
    np.testing.assert_allclose(from_file["z_um"], from_file["z"] * 0.3)
    with pytest.raises(InputError, match="--ndim 3"):
        edgetrack.track(path)  # 2-D tracking of a z-stack movie is refused and says how to track it in 3-D


def test_cli_ndim_3(movie3d, tmp_path, capsys):
    movie, _ = movie3d
    np.save(tmp_path / "stacks.npy", movie)
    out = tmp_path / "tracks.csv"
    assert main(["track", str(tmp_path / "stacks.npy"), "--ndim", "3", "--voxel-size", "0.3", "0.1", "0.1",
                 "--psf-sigma-z", str(PSF[0]), "--max-distance", "5", "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out)
    expected = edgetrack.track(movie, ndim=3, voxel_size=VOXEL, detect={"psf_sigma": PSF}, max_distance=5.0)
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-9)
    assert main(["track", str(tmp_path / "stacks.npy"), "--ndim", "3", "--checkpoint-every", "5",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert main(["track", str(tmp_path / "stacks.npy"), "--voxel-size", "0.3", "0.1", "0.1",
                 "--out", str(tmp_path / "y.csv")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-every does not go with --ndim 3" in err and "go with --ndim 3" in err


def test_3d_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="distance scorer"):
        Tracker(ndim=3, scorer="magik")
    with pytest.raises(ConfigError, match="ndim"):
        Tracker(ndim=4)
    with pytest.raises(ConfigError, match="z_scale"):
        Tracker(ndim=3, z_scale=0)
    with pytest.raises(InputError, match="z, y, x|z"):
        link_detections(pd.DataFrame({"frame": [0, 1], "y": [1.0, 2.0], "x": [1.0, 2.0]}), ndim=3)
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((5, 8, 8), np.uint16))
    with pytest.raises(InputError, match="Z"):
        open_stacks(tmp_path / "flat.tif")
    tifffile.imwrite(tmp_path / "two.tif", np.zeros((2, 4, 2, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "TZCYX"})
    with pytest.raises(InputError, match="channel"):
        open_stacks(tmp_path / "two.tif")
    assert open_stacks(tmp_path / "two.tif", channel=1).stack_shape == (4, 8, 8)
    with pytest.raises(InputError, match="stack"):
        Tracker(ndim=3).push(np.zeros((8, 8)))


def test_a_3d_tracker_checkpoint_resumes_identically(movie3d, tmp_path):
    from edgetrack.runtime.stream.checkpoint import load_checkpoint, save_checkpoint

    movie, _ = movie3d
    whole = Tracker(ndim=3, z_scale=Z_SCALE, max_distance=5.0, detect={"psf_sigma": PSF})
    part = Tracker(ndim=3, z_scale=Z_SCALE, max_distance=5.0, detect={"psf_sigma": PSF})
    for stack in movie[:5]:
        whole.push(stack)
        part.push(stack)
    save_checkpoint(part, tmp_path / "ck.npz")
    resumed = load_checkpoint(tmp_path / "ck.npz")
    assert resumed.config.ndim == 3 and resumed.config.z_scale == Z_SCALE
    for stack in movie[5:]:
        whole.push(stack)
        resumed.push(stack)
    pd.testing.assert_frame_equal(whole.finish(), resumed.finish())


def test_plot_3d_tracks_over_the_maximum_projection(movie3d, tmp_path):
    pytest.importorskip("matplotlib", reason="edgetrack plot needs matplotlib (the plot extra)")
    movie, _ = movie3d
    path = tmp_path / "stacks.ome.tif"
    tifffile.imwrite(path, movie, metadata={"axes": "TZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1,
                                            "PhysicalSizeZ": 0.3})
    edgetrack.track(path, ndim=3, detect={"psf_sigma": PSF}, max_distance=5.0).to_csv(tmp_path / "t.csv", index=False)
    assert main(["plot", str(tmp_path / "t.csv"), "--movie", str(path), "--color-by", "z",
                 "--out", str(tmp_path / "p.png"), "--quiet"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    from edgetrack.runtime.io.stacks import max_projection

    projected = max_projection(open_stacks(path))
    np.testing.assert_array_equal(projected[3], movie[3].max(axis=0))


def test_napari_reads_3d_tracks_as_3d(movie3d, tmp_path):
    pytest.importorskip("napari", reason="the napari plugin needs napari (the napari extra)")
    from edgetrack.runtime.napari_plugin.readers import read_tracks

    movie, _ = movie3d
    tracks = edgetrack.track(movie, ndim=3, voxel_size=VOXEL, detect={"psf_sigma": PSF}, max_distance=5.0)
    tracks.to_csv(tmp_path / "t.csv", index=False)
    (data, meta, kind), *_ = read_tracks(str(tmp_path / "t.csv"))
    assert kind == "tracks" and np.asarray(data).shape == (len(tracks), 5)  # track_id, t, z, y, x
