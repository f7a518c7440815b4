"""``edgetrack serve``: a failure inside one session (any exception, in any stage) ends that session alone.

Faults are injected where a session's frames go through the pipeline (detection, candidate graph,
linking, writing the CSV, building the tracker from HELLO). Each time the failing client gets a fatal
ERROR naming the stage and the cause, every frame it sent gets exactly one outcome, its file under
``--out-dir`` is complete (no ``.part`` left), and a client served at the same time gets tracks
identical to an offline run.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

import edgetrack.runtime.live.serve as serve_module
import edgetrack.runtime.stream.tracker as tracker_module
from edgetrack.runtime.live.client import ServerError, TrackClient
from edgetrack.runtime.live.serve import TrackServer
from edgetrack.runtime.stream.tracker import Tracker
from edgetrack.runtime.stream.writer import UpdateWriter

POINT_COLUMNS = ["frame", "y", "x", "track_id", "mass", "size", "signal", "eccentricity"]
VICTIM_FRAME = 600  # the victim's last frame index (a skip ahead): faults trigger on it only
MARK = 65535  # pixel (0, 0) of the victim's marked frame


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "xdg"))


def offline(frames) -> pd.DataFrame:
    tracker = Tracker(max_distance=5.0)
    for image in frames:
        tracker.push(image)
    return tracker.finish()


def outcomes(client: TrackClient, sent: list[int], accepted: int) -> None:
    """Every frame the server accepted (the first ``accepted`` sent; those sent after the failure are refused)
    has exactly one outcome: tracked (an UPDATE, never DROPPED) or DROPPED."""
    assert 0 < accepted <= len(sent)
    sent = sent[:accepted]
    updated = [u.frame for u in client.updates]
    assert len(updated) == len(set(updated)), "a frame was committed twice"
    dropped = client.dropped
    assert len(dropped) == len(set(dropped)), "a frame was dropped twice"
    for frame in sent:
        assert (frame in dropped) != (frame in updated and frame not in dropped), frame


def inject(kind: str, monkeypatch) -> str:
    """Make the victim's session fail in stage ``kind``; returns the text its ERROR must contain."""
    if kind == "detect":
        real = tracker_module.detect_spots_array

        def detect(image, config):
            if image.size and image.flat[0] == MARK:
                raise RuntimeError("detector crashed on purpose")
            return real(image, config)

        monkeypatch.setattr(tracker_module, "detect_spots_array", detect)
        return "detector crashed on purpose"
    if kind == "graph":
        real_edges = tracker_module.edges_into_frame

        def edges(*args, **kwargs):
            if args[5] >= VICTIM_FRAME:  # t, the frame the edges go into
                raise MemoryError("candidate graph too large on purpose")
            return real_edges(*args, **kwargs)

        monkeypatch.setattr(tracker_module, "edges_into_frame", edges)
        return "candidate graph too large on purpose"
    if kind == "link":
        real_get = tracker_module.get_linker

        class Faulty:
            def __init__(self, inner):
                self.inner = inner
                self.calls = 0

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def __call__(self, problem, options=None):
                self.calls += 1
                if self.calls > 3:
                    raise OverflowError("linker overflow on purpose")
                return self.inner(problem, options)

        monkeypatch.setattr(tracker_module, "get_linker", lambda name: Faulty(real_get(name)))
        return "linker overflow on purpose"
    if kind == "write":
        real_write = UpdateWriter.write
        state = {"failed": False}

        def torn_emit(text):
            # the disk fills up halfway through a chunk: half of it reached the file
            writer = state["writer"]
            writer.handle.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

        def write(self, updates):
            if "victim" in str(getattr(self.handle, "name", "")) and not state["failed"] \
                    and any(u.frame >= 3 for u in updates):
                state["failed"] = True  # the disk is full once, then has room again
                state["writer"], chunk, self.chunk = self, self.chunk, 1
                self._emit = torn_emit
                try:
                    return real_write(self, updates)
                finally:
                    del self._emit
                    self.chunk = chunk
            return real_write(self, updates)

        monkeypatch.setattr(UpdateWriter, "write", write)
        return "No space left on device"
    raise AssertionError(kind)


@pytest.mark.parametrize("stage", ["detect", "graph", "link", "write"])
def test_a_failing_stage_ends_that_session_alone(stage, small_movie, tmp_path):
    movie, _ = small_movie
    fault = pytest.MonkeyPatch()
    expected = offline(movie)
    out = tmp_path / "out"
    with TrackServer(port=0, queue_frames=64, out_dir=str(out)) as server:
        port = server.address[1]
        bystander = TrackClient(port, name="bystander", tracker={"max_distance": 5.0}, max_in_flight=8)
        for image in movie[:15]:
            bystander.send_frame(image)
        expected_text = inject(stage, fault)  # after the bystander's tracker was built
        victim = TrackClient(port, name="victim", tracker={"max_distance": 5.0})
        sent = [victim.send_frame(image) for image in movie[:6]]
        marked = movie[6].copy()
        marked.flat[0] = MARK
        if stage in ("detect", "graph"):
            sent.append(victim.send_frame(marked, frame=VICTIM_FRAME))
        else:
            sent.extend(victim.send_frame(image) for image in movie[6:12])
        assert victim.closed.wait(20.0), "the failing session must end, not hang"
        failures = [e for e in victim.errors if e.code == "session_failed"]
        assert len(failures) == 1 and failures[0].fatal
        message = failures[0].message
        assert f"stage {stage}" in message and expected_text in message, message
        assert victim.updates, "what was committed before the failure reached the client"
        victim.close()
        # the bystander was served throughout, with the results of an offline run
        for image in movie[15:]:
            bystander.send_frame(image)
        assert bystander.end()["frames_dropped"] == 0
        pd.testing.assert_frame_equal(bystander.tracks()[POINT_COLUMNS], expected[POINT_COLUMNS])
        bystander.close()
        # and the server goes on serving new clients
        fault.undo()
        with TrackClient(port, name="after", tracker={"max_distance": 5.0}, max_in_flight=8) as after:
            for image in movie[:5]:
                after.send_frame(image)
            assert after.end()["frames_committed"] == 5
        deadline = time.monotonic() + 10
        while len(server.finished_sessions) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = next(s for s in server.finished_sessions if s["name"] == "victim")
    outcomes(victim, sent, summary["frames_received"])
    assert summary["status"] == "failed" and expected_text in summary["error"]
    assert not list(out.glob("*.part")) and not list(out.glob(".*.part")), "no half-written file is left"
    written = pd.read_csv(summary["file"])  # complete: every committed point of the victim
    committed = [u for u in victim.updates if len(u)]
    assert sorted(written["frame"].unique()) == [u.frame for u in committed]
    assert len(written) == sum(len(u) for u in committed)
    index = pd.read_csv(server.index_path)
    assert index.set_index("name").loc["victim", "status"] == "failed"


def test_write_failure_that_persists_leaves_no_part_file(small_movie, tmp_path, monkeypatch):
    movie, _ = small_movie
    out = tmp_path / "out"

    def full_disk(self, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(UpdateWriter, "_emit", full_disk)  # every write to the file fails
    with TrackServer(port=0, queue_frames=64, out_dir=str(out)) as server:
        client = TrackClient(server.address[1], name="full", tracker={"max_distance": 5.0})
        sent = [client.send_frame(image) for image in movie[:8]]
        ended = client.end()  # the file is first written at the end (chunks of 2,000 rows): that fails
        assert ended["file"] is None and "No space left on device" in ended["file_error"], ended
        assert ended["frames_committed"] == 8 and len(client.updates) == 8, "the client still has every frame"
        client.close()
        deadline = time.monotonic() + 10
        while not server.finished_sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        summary = server.finished_sessions[0]
        outcomes(client, sent, summary["frames_received"])
    assert summary["file"] is None and "could not be completed" in summary["file_error"]
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_unexpected_exception_while_building_the_session(small_movie, monkeypatch):
    movie, _ = small_movie
    with TrackServer(port=0) as server:
        port = server.address[1]
        real = serve_module.Tracker

        def exploding(*args, **kwargs):
            raise OverflowError("cannot convert float infinity to integer")

        monkeypatch.setattr(serve_module, "Tracker", exploding)
        with pytest.raises(ServerError, match="OverflowError: cannot convert float infinity"):
            TrackClient(port)
        monkeypatch.setattr(serve_module, "Tracker", real)
        with TrackClient(port, tracker={"max_distance": 5.0}, max_in_flight=8) as client:
            for image in movie[:4]:
                client.send_frame(image)
            assert client.end()["frames_committed"] == 4


def test_huge_max_distance_in_hello_is_a_clear_error(small_movie):
    movie, _ = small_movie
    with TrackServer(port=0) as server:
        with pytest.raises(Exception, match="max_distance"):
            TrackClient(server.address[1], tracker={"max_distance": 1e200})
        # larger than the frame: refused on the first FRAME, the session is not started wrongly
        with TrackClient(server.address[1], tracker={"max_distance": 500.0}) as client:
            client.send_frame(movie[0])
            deadline = time.monotonic() + 10
            while not client.errors and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.errors[0].code == "bad_config" and "larger than the frame" in client.errors[0].message
            assert not client.errors[0].fatal


def test_stage_names_follow_the_tracker_methods():
    """A failure's stage is read from the Tracker methods on its traceback: a renamed method must not
    silently turn every failure into the default stage."""
    from edgetrack.runtime.live import feeder
    from edgetrack.runtime.stream.tracker import Tracker

    missing = sorted(name for name in feeder._STAGE_OF_METHOD if not hasattr(Tracker, name))
    assert not missing, f"feeder's stage table names Tracker methods that do not exist: {missing}"
