"""Checkpoint and resume: a resumed stream gives exactly what an uninterrupted one gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_walks
from edgetrack.runtime.stream.checkpoint import load_checkpoint, save_checkpoint
from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.stream.tracker import Tracker


def _frames(seed: int = 4) -> list[pd.DataFrame]:
    truth = make_walks(n_tracks=40, n_frames=30, step=1.2, size=90.0, seed=seed)
    truth = truth[(truth.index % 13) != 5]  # some missed detections, so gaps are closed across the checkpoint
    return [g[["y", "x"]].assign(mass=g["y"] * 0 + 1.0) for _, g in truth.groupby("frame")]


@pytest.mark.parametrize("linker", ["lap", "greedy"])
@pytest.mark.parametrize("via_file", [False, True])
def test_resume_equals_uninterrupted(tmp_path, linker, via_file):
    frames = _frames()
    ref = Tracker(linker=linker, window=4)
    ref_updates = [u.to_dataframe() for f in frames for u in ref.push(f)]
    ref_updates += [u.to_dataframe() for u in ref.flush()]
    first = Tracker(linker=linker, window=4)
    updates = [u.to_dataframe() for f in frames[:13] for u in first.push(f)]
    if via_file:
        save_checkpoint(first, tmp_path / "state.npz")
        del first
        second = load_checkpoint(tmp_path / "state.npz")
    else:
        second = Tracker.resume(first.checkpoint())
    updates += [u.to_dataframe() for f in frames[13:] for u in second.push(f)]
    updates += [u.to_dataframe() for u in second.flush()]
    pd.testing.assert_frame_equal(pd.concat(updates, ignore_index=True), pd.concat(ref_updates, ignore_index=True))
    pd.testing.assert_frame_equal(second.results(), ref.results())


def test_resumed_state_is_independent_of_the_original():
    frames = _frames()
    tracker = Tracker()
    for f in frames[:5]:
        tracker.push(f)
    state = tracker.checkpoint()
    copy = Tracker.resume(state)
    for f in frames[5:10]:
        tracker.push(f)
    assert copy.frames_pushed == 5 and tracker.frames_pushed == 10


def test_bad_checkpoints(tmp_path):
    with pytest.raises(InputError, match="not an edgetrack"):
        Tracker.resume({"format": "something else"})
    state = Tracker().checkpoint()
    state["version"] = 99
    with pytest.raises(InputError, match="version"):
        Tracker.resume(state)
    broken = Tracker().checkpoint()
    del broken["next_id"]
    with pytest.raises(InputError, match="corrupt"):
        Tracker.resume(broken)
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    with pytest.raises(FileReadError):
        load_checkpoint(tmp_path / "junk.npz")
    with pytest.raises(FileReadError, match="no such"):
        load_checkpoint(tmp_path / "missing.npz")


def test_checkpoint_of_an_image_stream(small_movie, tmp_path):
    movie, _ = small_movie
    ref = Tracker()
    for f in movie:
        ref.push(f)
    a = Tracker()
    for f in movie[:11]:
        a.push(f)
    save_checkpoint(a, tmp_path / "c.npz")
    b = load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(InputError, match="shape"):
        b.push(np.zeros((7, 7), np.uint16))
    for f in movie[11:]:
        b.push(f)
    pd.testing.assert_frame_equal(b.finish(), ref.finish())
