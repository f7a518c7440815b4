"""Stitching track fragments with each track's own motion (edgetrack.runtime.stream.stitch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import edgetrack
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.stream.pipeline import link_detections
from edgetrack.runtime.stream.stitch import stitch_tracks, track_step_sigma


def _walk(start, steps, frame0=0, rng=None):
    p = np.asarray(start, float) + np.cumsum(np.vstack([[0, 0], steps]), axis=0)
    return pd.DataFrame({"frame": frame0 + np.arange(len(p)), "y": p[:, 0], "x": p[:, 1]})


def test_a_fast_particle_broken_by_one_long_step_is_one_track_again():
    rng = np.random.default_rng(0)
    steps = np.where(np.arange(19)[:, None] % 2 == 0, [2.5, -2.5], [2.5, 2.5])  # fast: 2.5 px per axis per frame
    steps[9] = [7.0, 7.0]  # one step of 9.9 px, beyond max_distance 6
    fast = _walk([50, 50], steps)
    slow = _walk([150, 150], rng.normal(0, 0.3, (19, 2)))
    slow.loc[slow["frame"] >= 10, ["y", "x"]] += 9.0  # a slow one jumping as far: not its own motion
    tracks = link_detections(pd.concat([fast, slow], ignore_index=True), max_distance=6.0)
    assert tracks["track_id"].nunique() == 4, "both broke at the long step"
    stitched = stitch_tracks(tracks, tracker_max_distance=6.0)
    ids = stitched.groupby(stitched["x"] < 100)["track_id"].nunique()
    assert ids[True] == 1, "the fast particle is joined"
    assert ids[False] == 2, "the slow one's jump is far beyond its motion: left apart"
    assert stitched.loc[stitched["x"] < 100, "stitched"].eq(1).all()
    sigma = track_step_sigma(tracks)
    assert sigma.max() > 2.0 and sigma.min() < 0.5


def test_an_ambiguous_join_is_left_alone():
    # one fragment ends at (50, 50) in frame 5; two start 8 px away in frame 6: which one is it?
    rows = [{"frame": f, "y": 50.0 - 3 * (5 - f), "x": 50.0, "track_id": 0} for f in range(6)]
    rows += [{"frame": f, "y": 58.0 + 3 * (f - 6), "x": 50.0 + dx, "track_id": t}
             for t, dx in ((1, -1.0), (2, 1.0)) for f in range(6, 12)]
    tracks = pd.DataFrame(rows)
    assert stitch_tracks(tracks)["track_id"].nunique() == 3
    assert stitch_tracks(tracks, unambiguous=False)["track_id"].nunique() == 2


def test_divisions_are_left_alone_and_options_checked():
    tracks = pd.DataFrame({"frame": [0, 1, 2, 3, 4, 5], "y": [0.0, 4, 8, 20, 24, 28], "x": [0.0] * 6,
                           "track_id": [0, 0, 0, 1, 1, 1], "parent_track_id": [-1, -1, -1, 0, -1, -1]})
    assert stitch_tracks(tracks)["track_id"].tolist() == tracks["track_id"].tolist()
    for bad in ({"max_frames": 0}, {"gate": -1.0}, {"min_sigma": 0}):
        with pytest.raises(ConfigError):
            stitch_tracks(tracks, **bad)


def test_track_stitch_in_the_api_and_the_cli(tmp_path):
    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, truth = simulate_movie(n_frames=30, shape=(96, 96), n_spots=12, D_range=(4.0, 8.0), snr=10, seed=4)
    plain = edgetrack.track(movie)
    joined = edgetrack.track(movie, stitch=True)
    assert joined["track_id"].nunique() < plain["track_id"].nunique()
    np.save(tmp_path / "m.npy", movie)
    assert main(["track", str(tmp_path / "m.npy"), "--stitch", "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["track_id"].nunique() == joined["track_id"].nunique()
    with pytest.raises(ConfigError, match="stitch"):
        edgetrack.track(np.zeros((2, 4, 8, 8)), ndim=3, stitch=True)
