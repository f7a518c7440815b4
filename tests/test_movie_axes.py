"""No guessing of dimensions: multi-channel and z-stack movies are refused unless a plane is chosen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

import edgetrack
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.simulate.spots import simulate_movie


@pytest.fixture
def two_channel(tmp_path):
    movie, _ = simulate_movie(n_frames=8, n_spots=15, shape=(64, 64), seed=2)
    other, _ = simulate_movie(n_frames=8, n_spots=15, shape=(64, 64), seed=9)
    stack = np.stack([movie, other], axis=1)  # T, C, Y, X
    path = tmp_path / "tcyx.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TCYX"})
    return path, stack


def test_a_multichannel_tiff_is_refused_with_its_axes(two_channel, tmp_path, capsys):
    path, stack = two_channel
    with pytest.raises(InputError, match=r"TCYX.*2 channel.*--channel 0\.\.1"):
        edgetrack.open_movie(path)
    assert main(["track", str(path), "--out", str(tmp_path / "t.csv")]) == 2
    assert "TCYX" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()


def test_the_chosen_channel_is_tracked(two_channel, tmp_path):
    path, stack = two_channel
    for c in (0, 1):
        movie = edgetrack.open_movie(path, channel=c)
        assert len(movie) == 8 and np.array_equal(movie[3], stack[3, c])
        assert main(["track", str(path), "--channel", str(c), "--out", str(tmp_path / f"c{c}.csv"), "--quiet"]) == 0
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"c{c}.csv"),
                                      pd.read_csv(_tracked(stack[:, c], tmp_path / f"ref{c}.csv")))


def _tracked(frames, out):
    path = out.with_suffix(".tif")
    tifffile.imwrite(path, frames)
    assert main(["track", str(path), "--out", str(out), "--quiet"]) == 0
    return out


def test_a_z_stack_over_time_needs_a_plane_and_unnamed_4d_is_refused(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (4, 3, 2, 32, 32)).astype(np.uint16)
    path = tmp_path / "tzcyx.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(InputError, match=r"2 channel\(s\) and 3 z plane"):
        edgetrack.open_movie(path)
    movie = edgetrack.open_movie(path, channel=1, z=2)
    assert len(movie) == 4 and np.array_equal(movie[1], data[1, 2, 1])
    plain = tmp_path / "qq.tif"
    tifffile.imwrite(plain, data[:, 0])  # no axis names: (4, 2, 32, 32)
    with pytest.raises(InputError, match="cannot tell which axis is time"):
        edgetrack.open_movie(plain)
    single = tmp_path / "tyx.tif"
    tifffile.imwrite(single, data[:, 0, 0])
    assert len(edgetrack.open_movie(single)) == 4
    with pytest.raises(InputError, match="no channel or z axis"):
        edgetrack.open_movie(single, channel=1)
