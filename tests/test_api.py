"""The public API at the top: ``import edgetrack`` and its functions, trackpy's names in and out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import edgetrack
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.spots import simulate_movie


@pytest.fixture(scope="module")
def movie():
    return simulate_movie(n_frames=15, n_spots=30, shape=(96, 96), seed=3)


def test_help_lists_every_public_name():
    for name in ("locate", "link", "track", "Tracker", "track_cells", "analyze", "open_movie", "__version__"):
        assert name in edgetrack.__all__ and name in dir(edgetrack)
        assert name in edgetrack.__doc__
    assert edgetrack.__version__ == edgetrack.runtime.__version__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgetrack.nope


def test_locate_one_frame_and_a_stack(movie):
    frames, truth = movie
    one = edgetrack.locate(frames[0])
    assert list(one.columns[:3]) == ["frame", "y", "x"] and (one["frame"] == 0).all()
    stack = edgetrack.locate(frames)
    assert set(stack["frame"]) == set(range(len(frames)))
    assert len(one) == (stack["frame"] == 0).sum()
    with pytest.raises(InputError, match="shape"):
        edgetrack.locate(frames[0, 0])
    with pytest.raises(ConfigError, match="not both"):
        edgetrack.locate(frames[0], 6, psf_sigma=1.5)


def test_link_works_as_trackpy_link_and_writes_trackpy_names(movie):
    tp = pytest.importorskip("trackpy")
    frames, truth = movie
    detections = edgetrack.locate(frames)
    ours = edgetrack.link(detections, 5, memory=1)
    assert link_metrics(truth, ours)["f1"] > 0.9
    named = edgetrack.link(detections, 5, memory=1, names="trackpy")
    assert "particle" in named and "ecc" in named and "track_id" not in named
    np.testing.assert_array_equal(named["particle"].to_numpy(), ours["track_id"].to_numpy())
    # trackpy's own tools run on the output
    assert len(tp.filter_stubs(named, 3)) > 0
    assert len(tp.emsd(named, 0.1, 10)) > 0
    assert tp.compute_drift(named).shape[1] == 2
    # trackpy's output goes back in: particle is read as the track id (and re-linked from scratch)
    again = edgetrack.link(named, 5, memory=1)
    np.testing.assert_array_equal(again["track_id"].to_numpy(), ours["track_id"].to_numpy())
    with pytest.raises(ConfigError, match="memory"):
        edgetrack.link(detections, 5, memory=-1)


def test_track_a_movie_equals_locate_then_link_in_the_stream(movie, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    frames, truth = movie
    tracks = edgetrack.track(frames)
    assert link_metrics(truth, tracks)["f1"] > 0.9
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames)
    from_file = edgetrack.track(path)
    pd.testing.assert_frame_equal(from_file, tracks)
    assert len(edgetrack.open_movie(path)) == len(frames)
    with pytest.raises(InputError):
        edgetrack.track(frames[0])


def test_analyze_accepts_trackpy_particle(movie):
    frames, truth = movie
    named = edgetrack.link(edgetrack.locate(frames), 5, names="trackpy")
    result = edgetrack.analyze(named)
    assert set(result.frames["track_id"]) <= set(named["particle"])
    assert len(result.frames) == len(named)


def test_tracker_and_track_cells_are_the_real_ones():
    from edgetrack.runtime.cells.tracker import track_cells
    from edgetrack.runtime.stream.tracker import Tracker

    assert edgetrack.Tracker is Tracker and edgetrack.track_cells is track_cells
    masks = np.zeros((3, 32, 32), np.int32)
    masks[:, 5:10, 5:10] = 1
    masks[:, 20:26, 20:26] = 2
    tracks = edgetrack.track_cells(masks)
    assert tracks["track_id"].nunique() == 2 and len(tracks) == 6
