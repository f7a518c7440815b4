"""Live tracking inside a pycromanager (Micro-Manager) acquisition.

pycromanager calls an *image processor* ``image_process_fn(image, metadata)`` from its own
processing thread for every image it acquires, and stores or displays whatever the function
returns. :class:`MicroManagerTracker` is such a function: it hands each image to a streaming
:class:`~edgetrack.runtime.stream.tracker.Tracker` and returns ``(image, metadata)`` untouched (the very
same objects), so saving and display go on as without it::

    from pycromanager import Acquisition, multi_d_acquisition_events
    from edgetrack.runtime.live.micromanager import MicroManagerTracker

    tracker = MicroManagerTracker(max_distance=5.0, select={"channel": "GFP"})
    with Acquisition(directory="D:/data", name="cells", image_process_fn=tracker) as acq:
        acq.acquire(multi_d_acquisition_events(num_time_points=1000))
        ...  # meanwhile, from any thread: tracker.tracks() -> DataFrame of committed points
    tracks = tracker.finish()

What it reads from the metadata (the keys pycromanager's acquisition engines write):

- ``Axes``: a dict such as ``{"time": 12, "channel": "GFP", "z": 0, "position": 1}``. ``time`` is the
  frame index; every other combination of axis values (a channel, a z plane, a stage position) is a
  separate stream with its own Tracker. ``select`` keeps only some values (``{"channel": "GFP",
  "z": 0}``); images of other channels or planes are passed on untracked. Without a ``time`` axis the
  images of a stream are numbered in arrival order.
- ``ElapsedTime-ms`` (acquisition clock) becomes a ``time_s`` column of :meth:`tracks`;
  ``PixelSize_um`` is kept as :attr:`pixel_size_um`.

By default (``queue_size=16``) tracking runs in a worker thread per stream, so the acquisition is
never slowed: images wait in a bounded queue and, when tracking falls behind by more than
``queue_size`` images, the newest image is not tracked (counted in :meth:`stats`; the tracker sees an
empty frame there). ``queue_size=0`` tracks inside the processor call instead (nothing is dropped,
the acquisition waits). An image that cannot be tracked (wrong shape, RGB, out of order) is recorded
in :attr:`errors` and still passed on: tracking never aborts an acquisition.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable, Mapping

import numpy as np
import pandas as pd

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.live.feeder import LiveTracker, updates_to_dataframe
from edgetrack.runtime.stream.tracker import Tracker, TrackUpdate
from edgetrack.runtime.stream.config import TrackerConfig

StreamKey = tuple  # sorted ((axis, value), ...) of the non-time axes of a stream


class MicroManagerTracker:
    """A pycromanager ``image_process_fn`` that tracks every acquired image and passes it on untouched.

    config / options: :class:`~edgetrack.runtime.stream.config.TrackerConfig` (px, frames).
    detect: spot detection options (:class:`~edgetrack.runtime.detect.config.DetectConfig` or dict).
    select: axis values to track, e.g. ``{"channel": "GFP", "z": 0}``; other images pass untracked.
    queue_size: images waiting per stream in the worker thread; 0 = track in the processor call.
    history: committed frames kept per stream for :meth:`tracks` (None = all).
    on_update: called with ``(stream_key, updates)`` whenever frames are committed (a worker thread).
    """

    def __init__(self, config: TrackerConfig | dict | None = None, *, detect: DetectConfig | dict | None = None,
                 select: Mapping[str, Any] | None = None, queue_size: int = 16, history: int | None = None,
                 on_update: Callable[[StreamKey, list[TrackUpdate]], None] | None = None, **options: Any) -> None:
        if int(queue_size) != queue_size or queue_size < 0:
            raise InputError(f"queue_size must be an integer >= 0, got {queue_size}")
        # build one tracker now so that bad options fail here, not on the first image
        # committed points are kept by the LiveTracker (``history``), not a second time by the Tracker
        self._make = lambda: Tracker(config, detect=detect, **{**options, "keep_results": False})
        self.config = self._make().config
        LiveTracker(self._make(), queue_size=0, history=history)  # validates the history option
        self.select = dict(select or {})
        self.queue_size = int(queue_size)
        self.history = history
        self._on_update = on_update
        self._lock = threading.Lock()
        self._streams: dict[StreamKey, LiveTracker] = {}
        self._counters: dict[StreamKey, int] = {}
        self._times: dict[StreamKey, dict[int, float]] = {}
        self.pixel_size_um: float | None = None
        self.images_seen = 0
        self.images_skipped = 0  # not selected
        self.errors: list[tuple[StreamKey, int | None, str]] = []
        self._finished = False

    # ------------------------------------------------------------------ the processor
    def __call__(self, image: np.ndarray, metadata: dict) -> tuple[np.ndarray, dict]:
        """pycromanager's image processor entry: track ``image``, return ``(image, metadata)`` untouched."""
        try:
            self._track(image, metadata)
        except EdgetrackError as exc:
            with self._lock:
                self.errors.append((self._key(metadata), _time_index(metadata), str(exc)))
        return image, metadata

    def _track(self, image: np.ndarray, metadata: Mapping) -> None:
        with self._lock:
            self.images_seen += 1
            if self._finished:
                raise InputError("image arrived after finish(); it was not tracked")
            axes = _axes(metadata)
            if not self._selected(axes):
                self.images_skipped += 1
                return
            key = self._key(metadata)
            live = self._streams.get(key)
            if live is None:
                live = self._streams[key] = self._new_stream(key)
                self._times[key] = {}
            frame = _time_index(metadata)
            if frame is None:
                frame = self._counters.get(key, 0)
            self._counters[key] = frame + 1
            if self.pixel_size_um is None:
                self.pixel_size_um = _positive_float(metadata.get("PixelSize_um"))
            elapsed = _float_or_none(metadata.get("ElapsedTime-ms"))
        pixels = np.asarray(image)
        if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
            raise InputError(f"frame {frame}: RGB images are not tracked (PixelType {metadata.get('PixelType')!r})")
        if live.queue_size > 0:
            pixels = pixels.copy()  # the acquisition owns the image; it may be reused once we return
        accepted = live.submit(pixels, frame=frame)
        if accepted and elapsed is not None:
            with self._lock:
                times = self._times[key]
                times[frame] = elapsed / 1000.0
                if self.history is not None and len(times) > 2 * self.history:
                    for old in sorted(times)[: len(times) - self.history]:
                        del times[old]

    def _new_stream(self, key: StreamKey) -> LiveTracker:
        callback = None
        if self._on_update is not None:
            user = self._on_update

            def callback(updates: list[TrackUpdate], _key: StreamKey = key) -> None:
                user(_key, updates)

        def on_error(frame: int, exc: Exception, _key: StreamKey = key) -> None:
            with self._lock:
                self.errors.append((_key, frame, str(exc)))

        return LiveTracker(self._make(), queue_size=self.queue_size, history=self.history,
                           on_update=callback, on_error=on_error)

    def _selected(self, axes: Mapping[str, Any]) -> bool:
        return all(name not in axes or _same(axes[name], value) for name, value in self.select.items())

    def _key(self, metadata: Mapping) -> StreamKey:
        axes = _axes(metadata)
        return tuple(sorted(((str(k), _plain(v)) for k, v in axes.items() if k != "time"), key=lambda kv: kv[0]))

    # ------------------------------------------------------------------ results
    @property
    def streams(self) -> list[StreamKey]:
        """The keys of the streams seen so far (``()`` for a plain time-lapse)."""
        with self._lock:
            return list(self._streams)

    def tracks(self, stream: StreamKey | Mapping[str, Any] | None = None, last: int | None = None) -> pd.DataFrame:
        """Committed track points so far (thread-safe), as a DataFrame sorted by frame.

        stream: which stream (a key from :attr:`streams` or a dict of axis values); None = the only one,
        or all of them with a ``stream`` column when there are several. last: only the last frames.
        Columns: frame, y, x, track_id[, parent_track_id], features, and ``time_s`` (acquisition clock,
        seconds) where the metadata had ``ElapsedTime-ms``.
        """
        with self._lock:
            streams = dict(self._streams)
            times = {k: dict(v) for k, v in self._times.items()}
        if stream is not None:
            key = tuple(sorted((str(k), _plain(v)) for k, v in stream.items())) if isinstance(stream, Mapping) \
                else tuple(stream)
            if key not in streams:
                raise InputError(f"no stream {dict(key)}; streams seen: {[dict(k) for k in streams] or 'none'}")
            return self._stream_table(streams[key], times.get(key, {}), last)
        if not streams:
            return updates_to_dataframe([])
        if len(streams) == 1:
            (key, live), = streams.items()
            return self._stream_table(live, times.get(key, {}), last)
        parts = []
        for key, live in streams.items():
            table = self._stream_table(live, times.get(key, {}), last)
            table.insert(0, "stream", ",".join(f"{k}={v}" for k, v in key))
            parts.append(table)
        return pd.concat(parts, ignore_index=True)

    @staticmethod
    def _stream_table(live: LiveTracker, times: dict[int, float], last: int | None) -> pd.DataFrame:
        table = live.tracks(last=last)
        if times and len(table):
            table["time_s"] = table["frame"].map(times).astype(np.float64)
        return table

    def stats(self) -> dict[str, Any]:
        """Counters: images seen / not selected, and per stream received, dropped, tracked, committed."""
        with self._lock:
            streams = dict(self._streams)
            out: dict[str, Any] = {"images": self.images_seen, "not_selected": self.images_skipped,
                                   "errors": len(self.errors)}
        out["streams"] = {",".join(f"{k}={v}" for k, v in key) or "-": live.stats() for key, live in streams.items()}
        return out

    def finish(self, timeout: float | None = 60.0) -> pd.DataFrame:
        """Track what is still queued, commit every stream to the end and return :meth:`tracks`.

        Call it after the acquisition has completed (images arriving later are not tracked).
        """
        with self._lock:
            self._finished = True
            streams = list(self._streams.values())
        for live in streams:
            live.finish(timeout)
        return self.tracks()


def _axes(metadata: Mapping) -> Mapping[str, Any]:
    axes = metadata.get("Axes") if isinstance(metadata, Mapping) else None
    return axes if isinstance(axes, Mapping) else {}


def _time_index(metadata: Mapping) -> int | None:
    value = _axes(metadata).get("time")
    if value is None:
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise InputError(f"metadata Axes['time'] must be an integer frame index, got {value!r}") from None
    if index < 0 or index != value:
        raise InputError(f"metadata Axes['time'] must be an integer >= 0, got {value!r}")
    return index


def _plain(value: Any) -> Hashable:
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, Hashable) else repr(value)


def _same(a: Any, b: Any) -> bool:
    return _plain(a) == _plain(b)


def _float_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _positive_float(value: Any) -> float | None:
    out = _float_or_none(value)
    return out if out is not None and out > 0 else None
