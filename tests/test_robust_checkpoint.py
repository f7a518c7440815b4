"""Crafted checkpoints: every inconsistency is a clear InputError before any kernel sees the arrays.

Before these checks a checkpoint with an edge source out of range crashed the process inside Numba
(SIGSEGV), one with negative sources or a wrong child count gave other tracks without a word, a
header that is a JSON list raised a bare TypeError, and a 3 MB file expanded to 3.2 GB in memory.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from conftest import make_walks
from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.stream import checkpoint as ck
from edgetrack.runtime.stream.checkpoint import check_state, load_checkpoint, save_checkpoint
from edgetrack.runtime.stream.tracker import Tracker


def _frames(n_frames: int = 12, seed: int = 0) -> list[pd.DataFrame]:
    truth = make_walks(n_tracks=10, n_frames=n_frames, step=0.8, size=50.0, seed=seed)
    truth = truth[(truth.index % 7) != 2]
    return [g[["y", "x"]] for _, g in truth.groupby("frame")]


def _tracker() -> tuple[Tracker, list[pd.DataFrame]]:
    frames = _frames()
    tracker = Tracker(window=4, max_gap=2)
    for f in frames[:6]:
        tracker.push(f)
    return tracker, frames


def _write(path, state: dict) -> None:
    header, arrays = ck._flatten(state)
    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)


@pytest.mark.parametrize("options", [dict(window=1, max_gap=1), dict(window=3, max_gap=2, linker="greedy"),
                                     dict(window=5, max_gap=3), dict(window=4, linker="greedy", max_children=2),
                                     dict(window=2, keep_results=False)])
def test_every_real_state_passes_the_checks(options, tmp_path):
    rng = np.random.default_rng(1)
    tracker = Tracker(**options)
    check_state(tracker.checkpoint())
    frame = 0
    for f in _frames(20, seed=3):
        frame += int(rng.choice([1, 1, 1, 2, 5, 40]))  # ordinary steps, gaps and long jumps
        tracker.push(f, frame=frame)
        check_state(tracker.checkpoint())
    save_checkpoint(tracker, tmp_path / "c.npz")
    load_checkpoint(tmp_path / "c.npz")
    tracker.flush()
    check_state(tracker.checkpoint())


def _last(state):  # the newest (undecided) block
    return state["blocks"][-1]


CORRUPTIONS = {
    # name: (mutation of a real state, words the error must contain)
    "edge source far out of range (was SIGSEGV)": (lambda s: _last(s)["edges_in"]["src"].fill(10**9), "edge src"),
    "negative edge source (was silently wrong tracks)": (lambda s: _last(s)["edges_in"]["src"].fill(-5), "edge src"),
    "values with fewer rows than the ids (was SIGSEGV)": (
        lambda s: _last(s).update(values=_last(s)["values"][:3]), "shape"),
    "edge target in another block": (lambda s: _last(s)["edges_in"]["dst"].fill(0), "edge dst"),
    "displacements that do not match the positions": (
        lambda s: (_last(s)["edges_in"]["dy"].fill(0.0), _last(s)["edges_in"]["dist"].fill(0.0)), "dy/dx"),
    "edge dt that does not match the frames": (lambda s: _last(s)["edges_in"]["dt"].__iadd__(1), "dt"),
    "edges out of order": (lambda s: [a.__setitem__(slice(None), a[::-1].copy())
                                      for a in _last(s)["edges_in"].values()], "ordered"),
    "a distance beyond max_distance": (lambda s: (_last(s)["edges_in"]["dist"].fill(1e6)), "dist"),
    "NaN scores": (lambda s: _last(s)["score_in"].fill(np.nan), "NaN"),
    "scores above 1": (lambda s: _last(s)["score_in"].fill(3.0), "scores"),
    "float edges": (lambda s: _last(s)["edges_in"].update(src=_last(s)["edges_in"]["src"].astype(np.float32)),
                    "dtype float32"),
    "a committed parent out of range": (lambda s: s["blocks"][0]["locked_parent"].fill(10**6), "locked_parent"),
    "a decided parent in an undecided frame": (lambda s: _last(s)["locked_parent"].fill(-1), "undecided block"),
    "child counts that do not match the links": (lambda s: s["blocks"][0]["child_count"].fill(0), "child_count"),
    "next_id smaller than the ids in use": (lambda s: s.update(next_id=3), "next_"),
    "a block missing": (lambda s: s["blocks"].pop(1), "blocks"),
    "blocks of the wrong frames": (lambda s: s["blocks"][0].update(frame=s["blocks"][0]["frame"] + 1), "frame"),
    "ids that skip": (lambda s: s["blocks"][2].update(first_id=s["blocks"][2]["first_id"] + 1), "starts at id"),
    "NaN positions": (lambda s: _last(s)["values"].__setitem__((0, 0), np.nan), "NaN"),
    "a frame count as a string": (lambda s: s.update(next_frame="6"), "next_frame must be an integer"),
    "a negative committed count": (lambda s: s.update(n_committed_frames=-1), "n_committed_frames"),
    "more undecided frames than the window": (lambda s: s.update(n_committed_frames=0), "undecided"),
    "an unknown config option": (lambda s: s["config"].update(bogus=1), "bogus"),
    "a config out of range": (lambda s: s["config"].update(max_gap=0), "max_gap"),
    "results with ids beyond next_id": (lambda s: s["results"]["det_id"].__iadd__(10**6), "det_id"),
    "results lengths that do not add up": (lambda s: s["results"]["length"].__iadd__(1), "shape"),
    "results of frames not committed": (lambda s: s["results"]["frame"].__iadd__(50), "results frame"),
    "columns that are not names": (lambda s: s.update(columns=[1, 2]), "columns"),
    "an unknown key": (lambda s: s.update(extra=1), "unknown key"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_crafted_checkpoints_are_refused_by_name(name, tmp_path):
    tracker, _ = _tracker()
    state = tracker.checkpoint()
    mutate, words = CORRUPTIONS[name]
    mutate(state)
    with pytest.raises(InputError, match="corrupt checkpoint") as info:
        Tracker.resume(state)
    assert words.lower() in str(info.value).lower(), str(info.value)
    _write(tmp_path / "c.npz", state)  # the same through a file: the file is named in the message
    with pytest.raises(InputError) as info:
        load_checkpoint(tmp_path / "c.npz")
    assert str(tmp_path / "c.npz") in str(info.value) and words.lower() in str(info.value).lower()


def test_an_unchanged_round_trip_still_resumes_identically(tmp_path):
    tracker, frames = _tracker()
    _write(tmp_path / "c.npz", tracker.checkpoint())
    resumed = load_checkpoint(tmp_path / "c.npz")
    for f in frames[6:]:
        tracker.push(f)
        resumed.push(f)
    pd.testing.assert_frame_equal(resumed.finish(), tracker.finish())


@pytest.mark.parametrize("header, words", [([1, 2], "JSON list"), ("text", "JSON str"), (None, "JSON NoneType")])
def test_a_header_that_is_not_an_object(tmp_path, header, words):
    np.savez(tmp_path / "c.npz", __header__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    with pytest.raises(InputError, match=words):
        load_checkpoint(tmp_path / "c.npz")


def test_header_fields_of_the_wrong_kind(tmp_path):
    tracker, _ = _tracker()
    header, arrays = ck._flatten(tracker.checkpoint())
    for key, value, words in (("block_meta", 5, "block_meta"), ("n_blocks", 99, "n_blocks"),
                              ("has_results", "yes", "has_results")):
        bad = {**header, key: value}
        np.savez(tmp_path / "c.npz", __header__=np.frombuffer(json.dumps(bad).encode(), np.uint8), **arrays)
        with pytest.raises(InputError, match=words):
            load_checkpoint(tmp_path / "c.npz")
    np.savez(tmp_path / "c.npz", __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays,
             stray=np.zeros(3))
    with pytest.raises(InputError, match="unexpected array"):
        load_checkpoint(tmp_path / "c.npz")
    np.savez(tmp_path / "c.npz", __header__=np.frombuffer(b"\xff\xfe", np.uint8))
    with pytest.raises(InputError, match="not JSON"):
        load_checkpoint(tmp_path / "c.npz")
    np.savez(tmp_path / "c.npz", other=np.zeros(2))
    with pytest.raises(InputError, match="no __header__"):
        load_checkpoint(tmp_path / "c.npz")


def _bomb(path, rows: int) -> None:
    """A checkpoint whose one block array is ``rows`` x 2 float64 zeros (deflates about 1000:1)."""
    tracker = Tracker()
    tracker.push(pd.DataFrame({"y": [1.0], "x": [1.0]}))
    header, arrays = ck._flatten(tracker.checkpoint())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.frombuffer(json.dumps(header).encode(), np.uint8))
        z.writestr("__header__.npy", buf.getvalue())
        for key, value in arrays.items():
            buf = io.BytesIO()
            if key == "b0_values":
                np.lib.format.write_array_header_2_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (rows, 2)})
                buf.write(bytes(rows * 16))
            else:
                np.lib.format.write_array(buf, value)
            z.writestr(key + ".npy", buf.getvalue())


def test_a_compression_bomb_is_refused_from_the_member_headers(tmp_path):
    path = tmp_path / "bomb.npz"
    _bomb(path, 2_000_000)  # 32 MB uncompressed, about 40 kB on disk
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(InputError, match="would expand to 30.5 MiB uncompressed"):
        load_checkpoint(path, max_bytes=8 * 2**20)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(InputError, match="block 0 .* has shape"):  # under the cap it is read, then refused
        load_checkpoint(path)
    assert ck.MAX_CHECKPOINT_BYTES >= 2**30


def test_an_array_header_larger_than_its_member_is_refused_before_allocating(tmp_path):
    tracker, _ = _tracker()
    header, arrays = ck._flatten(tracker.checkpoint())
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as z:
        for key, value in {"__header__": np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays}.items():
            buf = io.BytesIO()
            if key == "b0_values":  # declares 10^12 rows (16 TB) in a few bytes
                np.lib.format.write_array_header_2_0(buf, {"descr": "<f8", "fortran_order": False,
                                                           "shape": (10**12, 2)})
            else:
                np.lib.format.write_array(buf, value)
            z.writestr(key + ".npy", buf.getvalue())
    with pytest.raises(InputError, match="declares shape"):
        load_checkpoint(path)


def test_object_arrays_and_truncated_members(tmp_path):
    tracker, _ = _tracker()
    header, arrays = ck._flatten(tracker.checkpoint())
    path = tmp_path / "c.npz"
    with zipfile.ZipFile(path, "w") as z:
        for key, value in {"__header__": np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays}.items():
            buf = io.BytesIO()
            if key == "b0_track_id":
                np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (3,)})
                buf.write(b"\x80\x04N." * 8)
            else:
                np.lib.format.write_array(buf, value)
            z.writestr(key + ".npy", buf.getvalue())
    with pytest.raises(InputError, match="dtype object"):
        load_checkpoint(path)
    good = tmp_path / "good.npz"
    save_checkpoint(tracker, good)
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises((FileReadError, InputError)):
        load_checkpoint(tmp_path / "cut.npz")
