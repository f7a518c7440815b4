"""The pycromanager image processor, driven the way pycromanager drives it (no microscope, no mocks of edgetrack).

``FakeAcquisition`` reproduces the call pattern of pycromanager's acquisition engines (read from its
source: ``_run_image_processor`` / ``ImageProcessor._process``): one processing thread receives each
image as raw pixels plus a metadata dict, reshapes the pixels with the ``Height``/``Width`` tags,
calls ``image_process_fn(image, metadata)`` (or ``(image, metadata, event_queue)`` when the function
takes three parameters, decided from its signature), and forwards what it returns to storage: an
``(image, metadata)`` pair, a list of pairs, or None (the image was intercepted).
"""

from __future__ import annotations

import inspect
import queue
import threading
import time

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.live.micromanager import MicroManagerTracker
from edgetrack.runtime.stream.tracker import Tracker


class FakeAcquisition:
    def __init__(self, image_process_fn) -> None:
        self.fn = image_process_fn
        self.n_params = len(inspect.signature(image_process_fn).parameters)
        assert self.n_params in (2, 3), "pycromanager accepts processors of 2 or 3 parameters"
        self.inbox: queue.Queue = queue.Queue()
        self.stored: list[tuple[np.ndarray, dict]] = []
        self.event_queue: queue.Queue = queue.Queue()
        self.exception: BaseException | None = None
        self.thread = threading.Thread(target=self._process)
        self.thread.start()

    def _process(self) -> None:
        while True:
            message = self.inbox.get()
            if message is None:
                return
            pixels, metadata = message
            image = np.frombuffer(pixels, dtype=np.uint16 if metadata["PixelType"] == "GRAY16" else np.uint8)
            image = image.reshape(metadata["Height"], metadata["Width"])
            try:
                args = (image, metadata) if self.n_params == 2 else (image, metadata, self.event_queue)
                result = self.fn(*args)
            except BaseException as exc:  # pycromanager aborts the acquisition on a processor exception
                self.exception = exc
                return
            if result is None:
                continue
            for pair in result if isinstance(result, list) else [result]:
                self.stored.append(pair)

    def camera(self, frame: np.ndarray, axes: dict, elapsed_ms: float) -> None:
        metadata = {"Axes": dict(axes), "Width": int(frame.shape[1]), "Height": int(frame.shape[0]),
                    "PixelType": "GRAY16" if frame.dtype == np.uint16 else "GRAY8", "BitDepth": 16,
                    "PixelSize_um": 0.108, "ElapsedTime-ms": elapsed_ms, "Exposure": 10.0,
                    "ImageNumber": str(axes.get("time", 0)), "Camera": "Camera"}
        self.inbox.put((frame.tobytes(), metadata))

    def finish(self, timeout: float = 30.0) -> None:
        self.inbox.put(None)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "image processor did not finish in time"
        if self.exception is not None:
            raise self.exception


def reference_tracks(movie: np.ndarray, **options) -> pd.DataFrame:
    tracker = Tracker(**options)
    for frame in movie:
        tracker.push(frame)
    return tracker.finish()


@pytest.mark.parametrize("queue_size", [0, 64])
def test_timelapse_tracks_match_direct_tracking_and_images_pass_untouched(small_movie, queue_size):
    movie, _ = small_movie
    processor = MicroManagerTracker(max_distance=5.0, queue_size=queue_size)
    acq = FakeAcquisition(processor)
    for t, frame in enumerate(movie):
        acq.camera(frame, {"time": t}, elapsed_ms=100.0 * t)
    acq.finish()
    tracks = processor.finish()
    expected = reference_tracks(movie, max_distance=5.0)
    pd.testing.assert_frame_equal(tracks.drop(columns="time_s"), expected)
    np.testing.assert_allclose(tracks["time_s"], tracks["frame"] * 0.1)
    assert processor.pixel_size_um == pytest.approx(0.108)
    assert processor.stats()["streams"]["-"]["dropped"] == 0
    # every image reached storage unchanged, with its metadata object
    assert len(acq.stored) == len(movie)
    for t, (image, metadata) in enumerate(acq.stored):
        assert metadata["Axes"]["time"] == t
        np.testing.assert_array_equal(image, movie[t])


def test_three_parameter_processor_and_identity():
    processor = MicroManagerTracker(queue_size=0)
    image = np.zeros((32, 32), np.uint16)
    metadata = {"Axes": {"time": 0}}
    out_image, out_metadata = processor(image, metadata)
    assert out_image is image and out_metadata is metadata

    events = []

    def with_queue(image, metadata, event_queue):  # a user's 3-parameter processor wrapping ours
        events.append(event_queue)
        return processor(image, metadata)

    acq = FakeAcquisition(with_queue)
    acq.camera(np.ones((32, 32), np.uint16), {"time": 1}, 0.0)
    acq.finish()
    assert events and len(acq.stored) == 1


def test_channels_positions_and_select(small_movie):
    movie, _ = small_movie
    movie = movie[:12]
    processor = MicroManagerTracker(max_distance=5.0, queue_size=0, select={"channel": "GFP"})
    acq = FakeAcquisition(processor)
    for t, frame in enumerate(movie):
        for position in (0, 1):
            for channel in ("GFP", "BF"):
                image = frame if position == 0 else np.ascontiguousarray(frame[::-1])
                if channel == "BF":
                    image = np.full_like(frame, 100)
                acq.camera(image, {"time": t, "channel": channel, "position": position}, 50.0 * t)
    acq.finish()
    processor.finish()
    assert len(acq.stored) == len(movie) * 4  # everything passed on, tracked or not
    assert sorted(processor.streams) == [(("channel", "GFP"), ("position", 0)), (("channel", "GFP"), ("position", 1))]
    assert processor.stats()["not_selected"] == len(movie) * 2
    both = processor.tracks()
    assert set(both["stream"]) == {"channel=GFP,position=0", "channel=GFP,position=1"}
    pos0 = processor.tracks(stream={"channel": "GFP", "position": 0})
    expected = reference_tracks(movie, max_distance=5.0)
    pd.testing.assert_frame_equal(pos0.drop(columns="time_s"), expected)
    pos1 = processor.tracks(stream={"channel": "GFP", "position": 1})
    flipped = reference_tracks(np.ascontiguousarray(movie[:, ::-1]), max_distance=5.0)
    pd.testing.assert_frame_equal(pos1.drop(columns="time_s"), flipped)
    with pytest.raises(Exception, match="no stream"):
        processor.tracks(stream={"channel": "RFP"})


def test_bad_images_are_recorded_and_passed_on(small_movie):
    movie, _ = small_movie
    processor = MicroManagerTracker(queue_size=4)
    acq = FakeAcquisition(processor)
    acq.camera(movie[0], {"time": 0}, 0.0)
    acq.camera(movie[1][:64], {"time": 1}, 10.0)  # wrong shape
    acq.camera(movie[2], {"time": 2}, 20.0)
    acq.camera(movie[3], {"time": 2}, 30.0)  # time index repeated: out of order
    acq.camera(movie[4], {"time": 4}, 40.0)
    acq.finish()
    tracks = processor.finish()
    assert len(acq.stored) == 5  # never aborts the acquisition
    messages = [m for _, _, m in processor.errors]
    assert any("shape" in m for m in messages) and any("must increase" in m for m in messages)
    assert set(tracks["frame"]) <= {0, 2, 4} and {0, 2, 4} <= set(tracks["frame"])
    # an image after finish() is passed on and reported, not tracked
    image = movie[5]
    assert processor(image, {"Axes": {"time": 5}})[0] is image
    assert "after finish" in processor.errors[-1][2]


def test_tracks_readable_while_acquiring(small_movie):
    movie, _ = small_movie
    processor = MicroManagerTracker(max_distance=5.0, queue_size=64)
    acq = FakeAcquisition(processor)
    seen = []
    for t, frame in enumerate(movie):
        acq.camera(frame, {"time": t}, 0.0)
        snapshot = processor.tracks()
        if len(snapshot):
            assert snapshot["frame"].is_monotonic_increasing
        seen.append(snapshot["frame"].nunique() if len(snapshot) else 0)
    acq.finish()
    processor.finish()
    assert seen == sorted(seen)  # committed frames only ever grow
    assert processor.tracks()["frame"].nunique() == len(movie)
    assert len(processor.tracks(last=5)["frame"].unique()) == 5


def test_back_pressure_drops_newest_and_keeps_frame_numbers(small_movie):
    movie, _ = small_movie
    release = threading.Event()

    def slow_consumer(key, updates):
        release.wait(10.0)  # the worker is stuck on the first commit until released

    processor = MicroManagerTracker(max_distance=5.0, queue_size=2, window=1, on_update=slow_consumer)
    start = time.perf_counter()
    for t in range(10):
        image = movie[t]
        assert processor(image, {"Axes": {"time": t}})[0] is image
    elapsed = time.perf_counter() - start
    release.set()
    tracks = processor.finish()
    stats = processor.stats()["streams"]["-"]
    # accepted at most: 2 queued + 1 being detected + 2 handed to linking + 1 being linked
    assert stats["received"] == 10 and stats["dropped"] >= 4
    assert stats["tracked"] + stats["dropped"] == 10
    assert elapsed < 5.0  # the acquisition thread was never blocked by tracking
    kept = sorted(set(range(10)) - set(processor._streams[()].dropped))
    assert set(tracks["frame"]) == set(kept)


def test_bad_options_fail_early():
    with pytest.raises(Exception, match="unknown option"):
        MicroManagerTracker(max_distanse=3.0)
    with pytest.raises(Exception, match="queue_size"):
        MicroManagerTracker(queue_size=-1)


def test_example_script_in_simulation_mode(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "pycromanager_live.py"
    spec = importlib.util.spec_from_file_location("pycromanager_live_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "live.csv"
    assert module.main(["--simulate", "--frames", "15", "--interval", "0.01", "--out", str(out)]) == 0
    tracks = pd.read_csv(out)
    assert {"frame", "y", "x", "track_id", "time_s"} <= set(tracks.columns)
    assert tracks["frame"].max() >= 10
