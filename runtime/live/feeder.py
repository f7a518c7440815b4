"""Feeding a :class:`~edgetrack.runtime.stream.tracker.Tracker` from acquisition threads, with bounded memory.

:class:`LiveTracker` is what the pycromanager image processor and each ``edgetrack serve`` session
use. Frames (2-D images) or detection tables are *submitted* with their frame index from whatever
thread delivers them; two worker threads detect and link them (the detection of the next frame
overlaps with the linking of the current one) and keep the committed track points, which any thread
can read with :meth:`LiveTracker.tracks`.

Back-pressure: with ``queue_size > 0`` at most ``queue_size`` submitted frames wait for the workers.
When the queue is full the *incoming* frame is dropped (tail drop): :meth:`LiveTracker.submit`
returns ``False`` at once, the drop is counted and reported through ``on_drop``, and the tracker
later sees that frame index as an empty frame (so ``max_gap`` can bridge an isolated drop). Memory
is therefore bounded by ``queue_size + 2`` frames (plus the detections of 2 more and the tracker's
window), however fast frames come.
With ``queue_size = 0`` each frame is tracked in the submitting thread before ``submit`` returns
(nothing is ever dropped; the caller is slowed instead).

Frame indices must increase (gaps are allowed, up to ``max_skip`` frames at a time). Bad input
(wrong shape or dtype, NaN, missing columns, frames out of order) raises an
:class:`~edgetrack.runtime.errors.InputError` in :meth:`submit`, before anything is queued, so a
rejected frame never disturbs what was committed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.stream.tracker import Tracker, TrackUpdate
from edgetrack.runtime.stream.updates import points_frame

#: Column order of :meth:`LiveTracker.tracks` before the feature columns.
TRACK_COLUMNS = ("frame", "y", "x", "track_id")

_STOP = object()


def updates_to_dataframe(updates: list[TrackUpdate], divisions: bool = False) -> pd.DataFrame:
    """Concatenate committed updates into one table: frame, y, x, track_id[, parent_track_id], features."""
    updates = [u for u in updates]
    if not updates:
        return pd.DataFrame({c: np.zeros(0, np.int64 if c in ("frame", "track_id") else np.float64)
                             for c in TRACK_COLUMNS})
    columns = updates[-1].columns
    frame = np.concatenate([np.full(len(u), u.frame, np.int64) for u in updates])
    values = np.concatenate([u.values for u in updates])
    track = np.concatenate([u.track_id for u in updates])
    parent = np.concatenate([u.parent_track_id for u in updates]) if divisions else None
    return points_frame(frame, columns, values, track, parent)


def check_spots_table(table: pd.DataFrame, columns: tuple[str, ...] | None, frame: int) -> tuple[str, ...]:
    """Validate the detections of one frame before they reach the tracker; returns their column tuple.

    ``y`` and ``x`` must be present, numeric and finite; the numeric columns must be those of the
    earlier frames (``columns``, None for the first frame).
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"detections of frame {frame}: expected a DataFrame, got {type(table).__name__}")
    missing = [c for c in ("y", "x") if c not in table.columns]
    if missing:
        raise InputError(f"detections of frame {frame}: missing column(s) {', '.join(missing)}")
    for name in ("y", "x"):
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise InputError(f"detections of frame {frame}: column '{name}' is not numeric")
        values = table[name].to_numpy(dtype=np.float64)
        if values.size and not np.isfinite(values).all():
            raise InputError(f"detections of frame {frame}: NaN or inf in column '{name}'")
    features = tuple(c for c in table.columns if c not in ("frame", "y", "x", "track_id", "parent_track_id", "particle")
                     and pd.api.types.is_numeric_dtype(table[c]))
    found = ("y", "x", *features)
    if columns is not None and not set(columns) <= set(found):
        absent = [c for c in columns if c not in found]
        raise InputError(f"detections of frame {frame}: missing column(s) {', '.join(absent)} present in earlier frames")
    return columns if columns is not None else found


class LiveTracker:
    """A :class:`Tracker` fed from other threads; committed tracks readable from any thread.

    tracker: the tracker to feed (its options decide detection and linking); build it with
        ``keep_results=False`` for long streams (the committed points are kept here, up to ``history``).
    queue_size: frames that may wait for the worker threads; 0 = track in the calling thread.
    history: committed frames kept for :meth:`tracks` (None = all; memory then grows with the stream).
    max_skip: largest jump forward in frame index accepted at once, frames (skipped frames are empty).
    on_update: called with each list of newly committed :class:`TrackUpdate` (linking thread).
    on_drop: called with the index of each frame dropped because the queue was full (submitting thread).
    on_error: called with (frame, exception) when tracking a queued frame failed (a worker thread).
    """

    def __init__(self, tracker: Tracker, *, queue_size: int = 8, history: int | None = None, max_skip: int = 1000,
                 on_update: Callable[[list[TrackUpdate]], None] | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 on_error: Callable[[int, Exception], None] | None = None) -> None:
        if int(queue_size) != queue_size or queue_size < 0:
            raise InputError(f"queue_size must be an integer >= 0, got {queue_size}")
        if history is not None and (int(history) != history or history < 1):
            raise InputError(f"history must be None or an integer >= 1 frames, got {history}")
        if int(max_skip) != max_skip or max_skip < 1:
            raise InputError(f"max_skip must be an integer >= 1 frames, got {max_skip}")
        self.tracker = tracker
        self.queue_size = int(queue_size)
        self.max_skip = int(max_skip)
        self._on_update = on_update
        self._on_drop = on_drop
        self._on_error = on_error
        self._submit_lock = threading.Lock()  # ordering checks and counters of submit()
        self._track_lock = threading.Lock()  # the Tracker itself
        self._store_lock = threading.Lock()  # committed updates
        self._committed: deque[TrackUpdate] = deque(maxlen=history)
        self._next = 0  # smallest frame index the next submit may have
        self._shape: tuple[int, ...] | None = None
        self._columns: tuple[str, ...] | None = None
        self._kind: str | None = None  # "image" or "table"
        self._closed = False
        self._finished = threading.Event()
        self.frames_received = 0
        self.frames_dropped = 0
        self.frames_tracked = 0
        self.frames_committed = 0
        self.dropped: deque[int] = deque(maxlen=10000)  # indices of the most recent dropped frames
        self.errors: deque[tuple[int, str]] = deque(maxlen=1000)
        self._queue: queue.Queue | None = None
        self._threads: list[threading.Thread] = []
        if self.queue_size > 0:
            # two stages: detection of frame t + 1 overlaps with the linking of frame t (the Numba
            # kernels release the GIL); the hand-over between them holds at most 2 detected frames
            self._queue = queue.Queue(maxsize=self.queue_size)
            self._detected: queue.Queue = queue.Queue(maxsize=2)
            self._threads = [threading.Thread(target=self._detect_stage, name="edgetrack-live-detect", daemon=True),
                             threading.Thread(target=self._link_stage, name="edgetrack-live-link", daemon=True)]
            for thread in self._threads:
                thread.start()

    # ------------------------------------------------------------------ submitting
    def submit(self, item: np.ndarray | pd.DataFrame, frame: int | None = None) -> bool:
        """Hand over the next frame (a 2-D image) or its detections (``y, x`` [+ features]).

        frame: its index (None = one after the previous submit); must increase.
        Returns True when the frame was tracked or queued, False when it was dropped (queue full).
        Raises :class:`InputError` for bad input; nothing is queued then.
        """
        with self._submit_lock:
            if self._closed:
                raise InputError("this live tracker has finished; no more frames are accepted")
            index = self._next if frame is None else _as_index(frame)
            if index < self._next:
                last = self._next - 1
                raise InputError(f"frame {index} arrived after frame {last}: frame indices must increase")
            if index - self._next >= self.max_skip:
                raise InputError(f"frame {index} skips {index - self._next} frames after frame {self._next - 1} "
                                 f"(at most {self.max_skip - 1} may be skipped at once)")
            item = self._checked(item, index)
            self._next = index + 1
            self.frames_received += 1
            if self._queue is None:
                # synchronous: track here, in order, before returning
                self._process(index, item, raise_errors=True)
                return True
            try:
                self._queue.put_nowait((index, item))
            except queue.Full:
                self.frames_dropped += 1
                self.dropped.append(index)
                dropped = True
            else:
                dropped = False
        if dropped:
            if self._on_drop is not None:
                self._on_drop(index)
            return False
        return True

    def _checked(self, item: np.ndarray | pd.DataFrame, index: int) -> np.ndarray | pd.DataFrame:
        if isinstance(item, pd.DataFrame):
            if self._kind == "image":
                raise InputError(f"frame {index}: a detection table in a stream of images (do not mix them)")
            self._columns = check_spots_table(item, self._columns, index)
            self._kind = "table"
            return item
        image = np.asarray(item)
        if self._kind == "table":
            raise InputError(f"frame {index}: an image in a stream of detection tables (do not mix them)")
        if image.dtype.kind not in "iuf":
            raise InputError(f"frame {index}: pixels must be integers or floats, got dtype {image.dtype}")
        if image.ndim != 2 or image.size == 0:
            raise InputError(f"frame {index}: expected a non-empty 2-D image (rows, columns), got shape {image.shape}")
        if self._shape is not None and image.shape != self._shape:
            raise InputError(f"frame {index} has shape {image.shape}, but earlier frames had {self._shape}")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise InputError(f"frame {index}: NaN or inf pixels")
        self._shape = image.shape
        self._kind = "image"
        return image

    # ------------------------------------------------------------------ tracking
    def _detect_stage(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is _STOP:
                self._detected.put(_STOP)
                return
            index, item = job
            if isinstance(item, np.ndarray):
                try:
                    item = (self.tracker.detect(item), item.shape)  # also validates the frame
                except EdgetrackError as exc:
                    self._failed(index, exc)
                    continue
            self._detected.put((index, item))

    def _link_stage(self) -> None:
        while True:
            job = self._detected.get()
            if job is _STOP:
                return
            index, item = job
            try:
                with self._track_lock:
                    if isinstance(item, pd.DataFrame):
                        updates = self.tracker.push(item, frame=index)
                    else:
                        spots, shape = item
                        updates = self.tracker.push_spots(spots, frame_shape=shape, frame=index)
                    self.frames_tracked += 1
            except EdgetrackError as exc:
                self._failed(index, exc)
                continue
            self._deliver(updates)

    def _failed(self, index: int, exc: EdgetrackError) -> None:
        self.errors.append((index, str(exc)))
        if self._on_error is not None:
            self._on_error(index, exc)

    def _process(self, index: int, item: np.ndarray | pd.DataFrame, raise_errors: bool) -> None:
        """Track one frame in the calling thread (``queue_size = 0``)."""
        try:
            with self._track_lock:
                if isinstance(item, pd.DataFrame):
                    updates = self.tracker.push(item, frame=index)
                else:
                    spots = self.tracker.detect(item)  # validates the frame before the tracker moves on
                    updates = self.tracker.push_spots(spots, frame_shape=item.shape, frame=index)
                self.frames_tracked += 1
        except EdgetrackError as exc:
            self.errors.append((index, str(exc)))
            if raise_errors:
                raise
            if self._on_error is not None:
                self._on_error(index, exc)
            return
        self._deliver(updates)

    def _deliver(self, updates: list[TrackUpdate]) -> None:
        if not updates:
            return
        with self._store_lock:
            self._committed.extend(updates)
            self.frames_committed += len(updates)
        if self._on_update is not None:
            self._on_update(updates)

    def finish(self, timeout: float | None = None) -> list[TrackUpdate]:
        """Track every queued frame, commit the rest of the window, and stop accepting frames.

        Returns the updates committed by the final flush (they are also passed to ``on_update``).
        ``timeout`` bounds the wait for the workers, seconds (None = as long as it takes); frames still
        queued after it are abandoned (counted in :attr:`frames_dropped`).
        """
        with self._submit_lock:
            if self._closed:
                self._finished.wait(timeout)
                return []
            self._closed = True
        if self._threads and self._queue is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass  # still full at the deadline: handled below
            for thread in self._threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in self._threads):
                # out of time: abandon the frames still waiting; the stages exit at the stop marker
                abandoned = 0
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is not _STOP:
                        abandoned += 1
                self._queue.put_nowait(_STOP)
                self.frames_dropped += abandoned
                for thread in self._threads:
                    thread.join()
        with self._track_lock:
            updates = self.tracker.flush()
        self._deliver(updates)
        self._finished.set()
        return updates

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def queued(self) -> int:
        """Frames waiting to be detected or linked now."""
        return self._queue.qsize() + self._detected.qsize() if self._queue is not None else 0

    # ------------------------------------------------------------------ reading results
    def tracks(self, last: int | None = None) -> pd.DataFrame:
        """The committed track points kept so far (thread-safe snapshot), sorted by frame.

        last: only the most recent ``last`` committed frames. Columns: frame, y, x, track_id
        [, parent_track_id where divisions are on], then the feature columns (px, counts).
        """
        with self._store_lock:
            updates = list(self._committed)
        if last is not None:
            updates = updates[-int(last):] if last > 0 else []
        return updates_to_dataframe(updates, divisions=self.tracker.config.max_children > 1)

    def latest(self) -> TrackUpdate | None:
        """The most recently committed frame, or None."""
        with self._store_lock:
            return self._committed[-1] if self._committed else None

    def stats(self) -> dict[str, int]:
        """Counters: frames received, dropped, tracked, committed, queued, errors."""
        return {"received": self.frames_received, "dropped": self.frames_dropped, "tracked": self.frames_tracked,
                "committed": self.frames_committed, "queued": self.queued, "errors": len(self.errors)}


def _as_index(frame: object) -> int:
    if isinstance(frame, (bool, np.bool_)) or not isinstance(frame, (int, np.integer)):
        try:
            value = float(frame)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"frame index must be an integer, got {frame!r}") from None
        if value != int(value):
            raise InputError(f"frame index must be an integer, got {frame!r}")
        frame = int(value)
    index = int(frame)
    if index < 0:
        raise InputError(f"frame index must be >= 0, got {index}")
    return index
