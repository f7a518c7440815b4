"""Each track's own motion in the linker (``motion="adaptive"``, runtime/stream/motion.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import edgetrack
from conftest import make_walks
from edgetrack.runtime.cli.app import main
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.spots import simulate_movie
from edgetrack.runtime.stream import motion
from edgetrack.runtime.stream.checkpoint import load_checkpoint, save_checkpoint
from edgetrack.runtime.stream.tracker import Tracker


def test_a_steady_drift_is_learnt_and_predicted():
    state = motion.empty_state(1, 2)
    for _ in range(60):
        state = motion.propagate(state, np.array([[0.0, 4.0]]), np.array([1]), sigma0=2.0)
    w, q, vy, vx = state[0]
    assert w == pytest.approx(1.0 / (1.0 - motion.DECAY), rel=0.05)
    assert q < 0.05 and vy == pytest.approx(0.0) and vx == pytest.approx(4.0)
    on, off = motion.link_scores(np.repeat(state, 2, axis=0), np.array([[0.0, 4.0], [0.0, 0.0]]), np.array([1, 1]),
                                 sigma0=2.0, gap_penalty=0.5)
    assert on > 0.9 and off < 1e-6  # the predicted step, not the old position
    # over a gap of two frames the drift is predicted twice, with the gap penalty once
    two = motion.link_scores(state, np.array([[0.0, 8.0]]), np.array([2]), sigma0=2.0, gap_penalty=0.5)
    assert two == pytest.approx(0.5 * on, rel=0.05)


def test_a_random_walk_predicts_little_drift_and_learns_its_step():
    rng = np.random.default_rng(0)
    state = motion.empty_state(1, 2)
    for _ in range(400):
        state = motion.propagate(state, rng.normal(0.0, 3.0, (1, 2)), np.array([1]), sigma0=1.0)
    assert 4.0 < state[0, 1] < 16.0  # the mean squared step per axis, 9 px^2
    assert 0.0 <= motion.link_scores(state, np.array([[3.0, 3.0]]), np.array([1]), 1.0, 0.5)[0] <= 1.0
    # a fast walker's long step scores far better with its own model than with the plain 1 px one
    fresh = motion.empty_state(1, 2)
    delta = np.array([[4.0, -3.0]])
    assert motion.link_scores(state, delta, np.array([1]), 1.0, 0.5)[0] > 100 * motion.link_scores(
        fresh, delta, np.array([1]), 1.0, 0.5)[0]


def test_scores_are_probabilities_for_any_state():
    rng = np.random.default_rng(1)
    for d in (2, 3):
        state = np.column_stack([rng.uniform(0, 10, 500), rng.uniform(0, 50, 500), rng.normal(0, 5, (500, d))])
        s = motion.link_scores(state, rng.normal(0, 5, (500, d)), rng.integers(1, 4, 500), 2.0, 0.5)
        assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()


def _drifter_and_a_decoy() -> list[pd.DataFrame]:
    """One particle drifting 4 px/frame along x; in frame 8 a decoy appears 1.5 px from where it was."""
    frames = []
    for t in range(14):
        rows = [(50.0, 10.0 + 4.0 * t)]
        if t == 8:
            rows.append((51.5, 10.0 + 4.0 * 7))
        frames.append(pd.DataFrame(rows, columns=["y", "x"]))
    return frames


@pytest.mark.parametrize("linker", ["lap", "greedy"])
def test_a_drifting_track_is_not_taken_by_a_decoy(linker):
    frames = _drifter_and_a_decoy()
    plain = edgetrack.Tracker(linker=linker, max_distance=6.0)
    for f in frames:
        plain.push(f)
    adaptive = edgetrack.Tracker(linker=linker, max_distance=6.0, motion="adaptive")
    for f in frames:
        adaptive.push(f)
    a, p = adaptive.finish(), plain.finish()
    drifter = lambda t: t[(t["y"] == 50.0)]  # noqa: E731
    assert drifter(a)["track_id"].nunique() == 1  # one track from the first frame to the last
    assert drifter(p)["track_id"].nunique() == 2  # the plain step model jumps onto the decoy


def test_adaptive_tracks_fast_and_directed_particles_better():
    f1 = {}
    for mode in ("none", "adaptive"):
        scores = []
        for seed in (1, 2):
            movie, truth = simulate_movie(n_frames=40, shape=(200, 200), n_spots=50, snr=10.0, seed=seed,
                                          motion_fractions=(0.5, 0.5, 0.0), speed=4.0)
            scores.append(link_metrics(truth, edgetrack.track(movie, max_distance=10.0, motion=mode))["f1"])
        f1[mode] = float(np.mean(scores))
    assert f1["adaptive"] > f1["none"] + 0.002, f1


@pytest.mark.parametrize("via_file", [False, True])
def test_resume_with_motion_equals_uninterrupted(tmp_path, via_file):
    truth = make_walks(n_tracks=30, n_frames=30, step=1.5, size=80.0, seed=3)
    frames = [g[["y", "x"]] for _, g in truth.groupby("frame")]
    ref = Tracker(motion="adaptive", window=3)
    for f in frames:
        ref.push(f)
    first = Tracker(motion="adaptive", window=3)
    for f in frames[:12]:
        first.push(f)
    assert any(b.motion[:, 0].max() > 1 for b in first._blocks if b.n)  # states are carried
    if via_file:
        save_checkpoint(first, tmp_path / "s.npz")
        second = load_checkpoint(tmp_path / "s.npz")
    else:
        second = Tracker.resume(first.checkpoint())
    for f in frames[12:]:
        second.push(f)
    pd.testing.assert_frame_equal(second.finish(), ref.finish())


def test_checkpoints_from_before_the_motion_state_still_load(tmp_path):
    frames = [g[["y", "x"]] for _, g in make_walks(n_tracks=10, n_frames=10, step=1.0, size=50.0, seed=1).groupby("frame")]
    tracker = Tracker()
    for f in frames[:6]:
        tracker.push(f)
    state = tracker.checkpoint()
    for b in state["blocks"]:
        del b["motion"]
    resumed = Tracker.resume(state)
    for f in frames[6:]:
        resumed.push(f)
        tracker.push(f)
    pd.testing.assert_frame_equal(resumed.finish(), tracker.finish())
    bad = Tracker(motion="adaptive")
    for f in frames[:6]:
        bad.push(f)
    state = bad.checkpoint()
    state["blocks"][0]["motion"][:, 1] = -1.0
    with pytest.raises(InputError, match="motion"):
        Tracker.resume(state)


def test_motion_options_are_checked():
    with pytest.raises(ConfigError, match="motion must be"):
        Tracker(motion="kalman")
    with pytest.raises(ConfigError, match="distance scorer"):
        Tracker(motion="adaptive", scorer="magik")


def test_motion_from_the_command_line(tmp_path):
    movie, _ = simulate_movie(n_frames=12, shape=(96, 96), n_spots=15, seed=2)
    np.save(tmp_path / "m.npy", movie)
    assert main(["track", str(tmp_path / "m.npy"), "--motion", "adaptive", "--max-distance", "9",
                 "--out", str(tmp_path / "t.csv"), "--quiet"]) == 0
    tracks = pd.read_csv(tmp_path / "t.csv")
    expected = edgetrack.track(movie, motion="adaptive", max_distance=9.0)
    assert len(tracks) == len(expected) and tracks["track_id"].nunique() == expected["track_id"].nunique()


def test_adaptive_motion_in_3d_learns_a_drift_along_z_and_survives_a_checkpoint():
    frames = [pd.DataFrame({"y": [20.0], "x": [20.0], "z": [2.0 + 1.5 * t]}) for t in range(12)]
    frames[8] = pd.concat([frames[8], pd.DataFrame({"y": [20.0], "x": [21.0], "z": [2.0 + 1.5 * 7]})])  # a decoy
    ref = Tracker(ndim=3, z_scale=2.0, motion="adaptive")
    for f in frames:
        ref.push(f)
    first = Tracker(ndim=3, z_scale=2.0, motion="adaptive")
    for f in frames[:6]:
        first.push(f)
    state = first.checkpoint()
    assert state["blocks"][0]["motion"].shape[1] == 5  # w, q, and a velocity per coordinate (z, y, x)
    second = Tracker.resume(state)
    for f in frames[6:]:
        second.push(f)
    a, b = ref.finish(), second.finish()
    pd.testing.assert_frame_equal(a, b)
    assert a[a["x"] == 20.0]["track_id"].nunique() == 1  # 3 px per frame along z (z_scale 2) predicted
