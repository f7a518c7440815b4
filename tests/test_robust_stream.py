"""Streaming tracker robustness: long jumps between frames cost O(1) and change no result."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from conftest import make_walks
from edgetrack.runtime.stream.pipeline import link_detections
from edgetrack.runtime.stream.tracker import Tracker


def _frames(seed: int = 2) -> list[pd.DataFrame]:
    truth = make_walks(n_tracks=12, n_frames=12, step=1.0, size=60.0, seed=seed)
    truth = truth[(truth.index % 11) != 3]
    return [g[["y", "x"]] for _, g in truth.groupby("frame")]


def _state(tracker: Tracker) -> dict:
    """The checkpoint without the (empty) per-frame results list, which a jump does not keep."""
    state = tracker.checkpoint()
    state.pop("results")
    return state


def _assert_same_state(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k != "blocks"} == {k: v for k, v in b.items() if k != "blocks"}
    assert len(a["blocks"]) == len(b["blocks"])
    for x, y in zip(a["blocks"], b["blocks"]):
        assert x["frame"] == y["frame"] and x["first_id"] == y["first_id"]
        for key in ("values", "locked_parent", "child_count", "track_id", "score_in"):
            np.testing.assert_array_equal(x[key], y[key])
        for key in x["edges_in"]:
            np.testing.assert_array_equal(x["edges_in"][key], y["edges_in"][key])


@pytest.mark.parametrize("window, max_gap", [(1, 1), (3, 2), (5, 3)])
@pytest.mark.parametrize("gap", [1, 2, 4, 7, 8, 9, 30, 500])
def test_a_jump_equals_pushing_every_empty_frame(window, max_gap, gap):
    frames = _frames()
    empty = frames[0].iloc[:0]
    jump = Tracker(window=window, max_gap=max_gap)
    slow = Tracker(window=window, max_gap=max_gap)
    got, ref = [], []
    for t, f in enumerate(frames[:6]):
        got += jump.push(f)
        ref += slow.push(f)
    got += jump.push(frames[6], frame=6 + gap)
    for t in range(6, 6 + gap):  # what the tracker did before: one empty push per skipped frame
        ref += slow.push(empty)
    ref += slow.push(frames[6])
    _assert_same_state(_state(jump), _state(slow))
    for f in frames[7:]:
        got += jump.push(f)
        ref += slow.push(f)
    got += jump.flush()
    ref += slow.flush()
    assert [u.frame for u in got] == [u.frame for u in ref]  # every frame committed, empty ones included
    pd.testing.assert_frame_equal(pd.concat([u.to_dataframe() for u in got], ignore_index=True),
                                  pd.concat([u.to_dataframe() for u in ref], ignore_index=True))
    pd.testing.assert_frame_equal(jump.results(), slow.results())
    assert jump.frames_committed == slow.frames_committed and jump.frames_pushed == slow.frames_pushed


def test_a_jump_of_a_million_frames_is_instant():
    frames = _frames()
    tracker = Tracker(window=4, max_gap=3)
    for f in frames[:5]:
        tracker.push(f)
    start = time.perf_counter()
    updates = tracker.push(frames[5], frame=10**9)  # before: one window solve per skipped frame (days)
    tracker.push(frames[6])
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"a jump of 10^9 frames took {elapsed:.2f} s"
    assert len(tracker._blocks) <= 4 + 3
    assert len(updates) <= Tracker.MAX_EMPTY_UPDATES + 1 and len(tracker._results) <= Tracker.MAX_EMPTY_UPDATES + 10
    reported = [u.frame for u in updates[:-1]]  # the last: the frame the pushed one commits
    assert reported == list(range(reported[0], reported[0] + len(reported))) and updates[-1].frame == 10**9 - 3
    assert tracker.frames_committed == 10**9 + 2 - 3
    tracks = tracker.finish()
    assert set(tracks["frame"]) >= {10**9, 10**9 + 1}


def test_link_detections_with_a_huge_jump_matches_the_two_halves():
    truth = make_walks(n_tracks=6, n_frames=10, seed=5)
    late = truth.assign(frame=truth["frame"] + 10**6)
    both = pd.concat([truth, late], ignore_index=True)[["frame", "y", "x"]]
    start = time.perf_counter()
    tracks = link_detections(both)
    assert time.perf_counter() - start < 10.0
    first = link_detections(truth[["frame", "y", "x"]])
    second = link_detections(late[["frame", "y", "x"]])
    n_first = first["track_id"].max() + 1
    expected = pd.concat([first, second.assign(track_id=second["track_id"] + n_first)], ignore_index=True)
    pd.testing.assert_frame_equal(tracks.reset_index(drop=True), expected)
