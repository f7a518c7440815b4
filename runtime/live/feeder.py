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

Outcomes: every accepted frame ends either *tracked* (it is in the committed updates) or *dropped*
(``on_dropped(frame, reason)``: the queue was full, its detection failed, it was abandoned at a
finish timeout, or the live tracker failed); :meth:`finish` also commits the frames accepted after
the last tracked one, so no accepted index is left without its (possibly empty) update.

Failures: an :class:`~edgetrack.runtime.errors.EdgetrackError` while tracking a queued frame drops
that frame (``on_error``) and the stream goes on. Any other exception (a bug, ``MemoryError``, a
disk that is full in ``on_update``) *fails* the live tracker: ``on_failure(stage, frame, exc)`` is
called once, nothing more is tracked, :meth:`submit` raises :class:`LiveTrackerFailed`, and
:meth:`abort` reports the frames that were never committed as dropped.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.stream.tracker import Tracker, TrackUpdate
from edgetrack.runtime.stream.updates import points_frame

#: Column order of :meth:`LiveTracker.tracks` before the feature columns.
TRACK_COLUMNS = ("frame", "y", "x", "track_id")

_STOP = object()

#: Where a failure happened, from the innermost edgetrack module (or Tracker method) on its traceback.
_STAGE_OF_PACKAGE = {"detect": "detect", "graph": "graph", "associate": "score", "link": "link", "io": "write"}
_STAGE_OF_METHOD = {"detect": "detect", "_detect_checked": "detect", "_values_from_image": "detect",
                    "_add": "graph", "_skip_to": "graph", "_solve_and_commit": "link", "_commit_block": "link",
                    "_score_window": "score", "flush": "link"}


class LiveTrackerFailed(EdgetrackError):
    """The live tracker failed (an unexpected exception in a stage); it accepts no more frames."""


def window_bytes(rows: int, width: int, max_candidates: int) -> int:
    """Estimated memory, bytes, that the tracker's window holds for one frame of ``rows`` spots with
    ``width`` columns (the spot table, its bookkeeping and up to 16 candidate edges per spot)."""
    return int(rows) * ((int(width) + 4) * 8 + min(int(max_candidates), 16) * 64)


class _Lease:
    """Memory held for one submitted item; ``release()`` (idempotent) gives it back (see ``submit``).
    ``absorb()`` takes the lease over instead: the caller then accounts for its ``nbytes`` itself."""

    __slots__ = ("_release", "nbytes")

    def __init__(self, release: Callable[[], None] | None, nbytes: int = 0) -> None:
        self._release = release
        self.nbytes = int(nbytes)

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def absorb(self) -> int:
        """End the lease without calling its release; returns the bytes it held (0 if already ended)."""
        if self._release is None:
            return 0
        self._release = None
        return self.nbytes


def failure_stage(exc: BaseException, default: str) -> str:
    """The pipeline stage an exception came from: detect, graph, score, link, write, or ``default``."""
    stage = default
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = frame.f_globals.get("__name__", "")
        parts = module.split(".")
        if parts[:2] != ["edgetrack", "runtime"] or len(parts) < 3:
            continue
        if parts[2] in _STAGE_OF_PACKAGE:
            stage = _STAGE_OF_PACKAGE[parts[2]]
        elif module == "edgetrack.runtime.stream.tracker":
            stage = _STAGE_OF_METHOD.get(frame.f_code.co_name, stage)
    return stage


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of an exception, with the innermost place it was raised (file:line in function)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = list(traceback.walk_tb(exc.__traceback__))
    if frames:
        frame, line = frames[-1]
        text += f" (in {frame.f_code.co_name}, {frame.f_code.co_filename.rsplit('/', 1)[-1]}:{line})"
    return text


def candidate_pairs(y: np.ndarray, x: np.ndarray, max_distance: float) -> int:
    """About how many pairs of these points lie within ``max_distance`` of each other (cell-list count, O(n log n)).

    Used to refuse a frame whose candidate graph would be huge (points far denser than ``max_distance``
    allows) before it is built. Counts pairs in neighbouring cells of side ``max_distance`` (an upper bound).
    """
    n = len(y)
    if n < 2:
        return 0
    cy = np.floor(np.asarray(y, np.float64) / max_distance).astype(np.int64)
    cx = np.floor(np.asarray(x, np.float64) / max_distance).astype(np.int64)
    cy -= cy.min() - 1
    cx -= cx.min() - 1
    width = int(cx.max()) + 2
    keys, counts = np.unique(cy * width + cx, return_counts=True)
    total = 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near = keys + dy * width + dx
            pos = np.clip(np.searchsorted(keys, near), 0, len(keys) - 1)
            found = keys[pos] == near
            total += int((counts[found] * counts[pos[found]]).sum())
    return total


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
    earlier frames (``columns``, None for the first frame): a column that appears or disappears later
    is refused, never silently dropped.
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
    if columns is not None and set(columns) != set(found):
        absent = [c for c in columns if c not in found]
        extra = [c for c in found if c not in columns]
        problems = ([f"missing column(s) {', '.join(absent)} present in earlier frames"] if absent else []) + \
                   ([f"new column(s) {', '.join(extra)} absent from earlier frames"] if extra else [])
        raise InputError(f"detections of frame {frame}: {'; '.join(problems)} (the columns of a stream "
                         f"may not change: {', '.join(columns)})")
    return columns if columns is not None else found


class LiveTracker:
    """A :class:`Tracker` fed from other threads; committed tracks readable from any thread.

    tracker: the tracker to feed (its options decide detection and linking); build it with
        ``keep_results=False`` for long streams (the committed points are kept here, up to ``history``).
    queue_size: frames that may wait for the worker threads; 0 = track in the calling thread.
    history: committed frames kept for :meth:`tracks` (None = all; memory then grows with the stream).
    max_skip: largest jump forward in frame index accepted at once, frames (skipped frames are empty).
    max_rows: most detections one frame may have (a submitted table, or what detection found); None = no limit.
    max_pairs: most candidate pairs (detections within ``max_distance`` of each other, estimated by a cell
        count) one frame may have before its candidate graph is built; None = no limit.
    on_update: called with each list of newly committed :class:`TrackUpdate` (linking thread).
    on_drop: called with the index of each frame dropped (submitting or worker thread).
    on_dropped: like ``on_drop`` with the reason as a second argument (``queue_full``, ``tracking_failed``,
        ``too_many_detections``, ``abandoned``, ``failed``); given, it is called instead of ``on_drop``.
    on_error: called with (frame, exception) when tracking a queued frame failed (a worker thread).
    on_failure: called once with (stage, frame or None, exception) when an unexpected exception fails
        the live tracker (a worker thread); stage is detect, graph, score, link, write or deliver.
    on_memory: called with the change (bytes, + or -) of the estimated memory held by the tracker's window.
    """

    def __init__(self, tracker: Tracker, *, queue_size: int = 8, history: int | None = None, max_skip: int = 1000,
                 max_rows: int | None = None, max_pairs: int | None = None,
                 on_update: Callable[[list[TrackUpdate]], None] | None = None,
                 on_drop: Callable[[int], None] | None = None,
                 on_dropped: Callable[[int, str], None] | None = None,
                 on_error: Callable[[int, Exception], None] | None = None,
                 on_failure: Callable[[str, int | None, BaseException], None] | None = None,
                 on_memory: Callable[[int], None] | None = None) -> None:
        if int(queue_size) != queue_size or queue_size < 0:
            raise InputError(f"queue_size must be an integer >= 0, got {queue_size}")
        if history is not None and (int(history) != history or history < 1):
            raise InputError(f"history must be None or an integer >= 1 frames, got {history}")
        if int(max_skip) != max_skip or max_skip < 1:
            raise InputError(f"max_skip must be an integer >= 1 frames, got {max_skip}")
        for name, value in (("max_rows", max_rows), ("max_pairs", max_pairs)):
            if value is not None and (int(value) != value or value < 1):
                raise InputError(f"{name} must be None or an integer >= 1, got {value}")
        self.tracker = tracker
        self.queue_size = int(queue_size)
        self.max_skip = int(max_skip)
        self.max_rows = max_rows
        self.max_pairs = max_pairs
        self._on_update = on_update
        self._on_drop = on_drop
        self._on_dropped = on_dropped
        self._on_error = on_error
        self._on_failure = on_failure
        self._on_memory = on_memory
        self._submit_lock = threading.Lock()  # ordering checks and counters of submit()
        self._track_lock = threading.Lock()  # the Tracker itself
        self._store_lock = threading.Lock()  # committed updates
        self._outcome_lock = threading.Lock()  # the open frames below
        self._committed: deque[TrackUpdate] = deque(maxlen=history)
        self._open: deque[int] = deque()  # accepted frames not yet committed, in order
        self._open_dropped: set[int] = set()  # those of them already reported dropped
        self._window: deque[tuple[int, int]] = deque()  # (frame, estimated bytes) held by the tracker
        self._window_bytes = 0
        self._next = 0  # smallest frame index the next submit may have
        self._shape: tuple[int, ...] | None = None
        self._columns: tuple[str, ...] | None = None
        self._kind: str | None = None  # "image" or "table"
        self._closed = False
        self._finished = threading.Event()
        self.failure: tuple[str, int | None, BaseException] | None = None
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
    def submit(self, item: np.ndarray | pd.DataFrame, frame: int | None = None,
               on_release: Callable[[], None] | None = None, reserved: int = 0) -> bool:
        """Hand over the next frame (a 2-D image) or its detections (``y, x`` [+ features]).

        frame: its index (None = one after the previous submit); must increase.
        on_release: called once when the live tracker no longer holds ``item`` (detected, tracked,
            dropped or rejected), e.g. to give the memory of a received message back to a budget.
        reserved: bytes that ``on_release`` gives back to the account that ``on_memory`` charges. When
            the frame enters the tracker's window, its window charge and this release are made in one
            ``on_memory`` call (the difference), so the account never holds both at once; ``on_release``
            is then not called.
        Returns True when the frame was tracked or queued, False when it was dropped (queue full).
        Raises :class:`InputError` for bad input (nothing is queued then), :class:`LiveTrackerFailed`
        after a failure.
        """
        lease = _Lease(on_release, reserved if self._on_memory is not None else 0)
        queued = False
        try:
            with self._submit_lock:
                if self.failure is not None:
                    raise LiveTrackerFailed(f"the live tracker failed in stage {self.failure[0]}: "
                                            f"{describe_failure(self.failure[2])}")
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
                with self._outcome_lock:
                    self._open.append(index)
                if self._queue is None:
                    # synchronous: track here, in order, before returning
                    self._process(index, item, lease)
                    return True
                try:
                    self._queue.put_nowait((index, item, lease))
                    queued = True
                except queue.Full:
                    pass
            if not queued:
                lease.release()
                self._drop(index, "queue_full")
                return False
            return True
        finally:
            if not queued:
                lease.release()

    def _checked(self, item: np.ndarray | pd.DataFrame, index: int) -> np.ndarray | pd.DataFrame:
        if isinstance(item, pd.DataFrame):
            if self._kind == "image":
                raise InputError(f"frame {index}: a detection table in a stream of images (do not mix them)")
            if self.max_rows is not None and len(item) > self.max_rows:
                raise InputError(f"detections of frame {index}: {len(item)} rows (at most {self.max_rows} per frame)")
            columns = check_spots_table(item, self._columns, index)
            self._check_pairs(item["y"].to_numpy(np.float64), item["x"].to_numpy(np.float64), index)
            self._columns = columns
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

    def _check_pairs(self, y: np.ndarray, x: np.ndarray, index: int) -> None:
        if self.max_pairs is None or len(y) < 2 or not (np.isfinite(y).all() and np.isfinite(x).all()):
            return
        pairs = candidate_pairs(y, x, float(self.tracker.config.max_distance))
        if pairs > self.max_pairs:
            raise InputError(f"detections of frame {index}: about {pairs} pairs of its {len(y)} detections lie "
                             f"within max_distance={self.tracker.config.max_distance:g} px of each other (at most "
                             f"{self.max_pairs}): lower max_distance or send fewer detections")

    def _check_detections(self, spots: np.ndarray, index: int) -> None:
        if self.max_rows is not None and len(spots) > self.max_rows:
            raise InputError(f"frame {index}: detection found {len(spots)} spots (at most {self.max_rows} per frame; "
                             "raise the detection threshold)")
        self._check_pairs(spots[:, 0], spots[:, 1], index)

    # ------------------------------------------------------------------ outcomes
    def _drop(self, index: int, reason: str) -> None:
        """Report an accepted frame as dropped (once)."""
        with self._outcome_lock:
            if index in self._open_dropped:
                return
            self._open_dropped.add(index)
            self.frames_dropped += 1
            self.dropped.append(index)
        if self._on_dropped is not None:
            self._on_dropped(index, reason)
        elif self._on_drop is not None:
            self._on_drop(index)

    def fail(self, stage: str, index: int | None, exc: BaseException) -> None:
        """Fail the live tracker: an unexpected exception in ``stage`` at frame ``index`` (None: not one frame).

        Tracking stops (no more frames are accepted); the failure is recorded in :attr:`failure` and
        reported once to ``on_failure``. Called by the stages, and by a server whose own thread failed.
        """
        if self.failure is not None:
            return
        self.failure = (failure_stage(exc, stage), index, exc)
        self.errors.append((-1 if index is None else index, describe_failure(exc)))
        if self._on_failure is not None:
            try:
                self._on_failure(*self.failure)
            except Exception:  # the reporter itself broke: the failure is still recorded in self.failure
                pass

    # ------------------------------------------------------------------ tracking
    def _detect_stage(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is _STOP:
                self._detected.put(_STOP)
                return
            index, item, lease = job
            if self.failure is not None:
                lease.release()
                continue
            if isinstance(item, np.ndarray):
                try:
                    spots = self.tracker.detect(item)  # also validates the frame
                    shape = item.shape
                    item = None
                    if not lease.nbytes:
                        lease.release()  # the image is no longer needed (else: netted against the window)
                    self._check_detections(spots, index)
                    item = (spots, shape)
                except EdgetrackError as exc:
                    lease.release()
                    self._failed(index, exc)
                    continue
                except Exception as exc:
                    lease.release()
                    self.fail("detect", index, exc)
                    continue
            self._detected.put((index, item, lease))

    def _link_stage(self) -> None:
        while True:
            job = self._detected.get()
            if job is _STOP:
                return
            index, item, lease = job
            if self.failure is not None:
                lease.release()
                continue
            try:
                updates = self._push(index, item, lease)
            except EdgetrackError as exc:
                self._failed(index, exc)
                continue
            except Exception as exc:
                self.fail("link", index, exc)
                continue
            finally:
                lease.release()
            self._deliver(updates)

    def _push(self, index: int, item: Any, lease: _Lease | None = None) -> list[TrackUpdate]:
        with self._track_lock:
            if isinstance(item, pd.DataFrame):
                updates = self.tracker.push(item, frame=index)
                rows, width = len(item), len(self._columns or ("y", "x"))
            else:
                spots, shape = item
                updates = self.tracker.push_spots(spots, frame_shape=shape, frame=index)
                rows, width = spots.shape
            self.frames_tracked += 1
        self._hold(index, rows, width, lease)
        return updates

    def _hold(self, index: int, rows: int, width: int, lease: _Lease | None) -> None:
        """Estimate the memory the tracker's window holds for this frame (released when it leaves the
        window); the frame's own lease, when it was reserved on the same account, is netted against it."""
        if self._on_memory is None:
            return
        cfg = self.tracker.config
        cost = window_bytes(rows, width, cfg.max_candidates)
        self._window.append((index, cost))
        delta = cost
        while self._window and self._window[0][0] <= index - (cfg.window + cfg.max_gap):
            delta -= self._window.popleft()[1]
        self._window_bytes += delta
        credit = lease.absorb() if lease is not None else 0
        self._on_memory(delta - credit)

    def _failed(self, index: int, exc: EdgetrackError) -> None:
        self.errors.append((index, str(exc)))
        if self._on_error is not None:
            self._on_error(index, exc)
        text = str(exc)
        self._drop(index, "too_many_detections" if "spots (at most" in text or "pairs of its" in text
                   else "tracking_failed")

    def _process(self, index: int, item: np.ndarray | pd.DataFrame, lease: _Lease | None = None) -> None:
        """Track one frame in the calling thread (``queue_size = 0``); bad input raises, nothing changes."""
        try:
            if not isinstance(item, pd.DataFrame):
                spots = self.tracker.detect(item)  # validates the frame before the tracker moves on
                self._check_detections(spots, index)
                item = (spots, item.shape)
            updates = self._push(index, item, lease)
        except EdgetrackError as exc:
            self.errors.append((index, str(exc)))
            with self._outcome_lock:
                self._open.remove(index)  # rejected in the calling thread: it has no outcome to wait for
            raise
        except Exception as exc:
            self.fail("track", index, exc)
            raise LiveTrackerFailed(f"tracking frame {index} failed: {describe_failure(exc)}") from exc
        self._deliver(updates)

    def _deliver(self, updates: list[TrackUpdate]) -> None:
        if not updates:
            return
        with self._store_lock:
            self._committed.extend(updates)
            self.frames_committed += len(updates)
        last = updates[-1].frame
        with self._outcome_lock:
            while self._open and self._open[0] <= last:
                self._open_dropped.discard(self._open.popleft())
        if self._on_update is not None:
            try:
                self._on_update(updates)
            except Exception as exc:
                self.fail(getattr(exc, "stage", "deliver"), last, exc)

    def _stop_workers(self, timeout: float | None) -> None:
        """Put the stop marker behind the queued frames and wait for the stages (abandon frames after ``timeout``)."""
        if not self._threads or self._queue is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
            stopped = True
        except queue.Full:
            stopped = False  # still full at the deadline: handled below
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            # out of time: abandon the frames still waiting; the stages exit at the stop marker
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopped = False
                    continue
                job[2].release()
                self._drop(job[0], "abandoned")
            self._queue.put_nowait(_STOP)
            for thread in self._threads:
                thread.join()
        elif not stopped:
            self._queue.put_nowait(_STOP)
            for thread in self._threads:
                thread.join()

    def finish(self, timeout: float | None = None) -> list[TrackUpdate]:
        """Track every queued frame, commit the rest of the window, and stop accepting frames.

        Returns the updates committed by the final flush (they are also passed to ``on_update``).
        ``timeout`` bounds the wait for the workers, seconds (None = as long as it takes); frames still
        queued after it are abandoned (reported dropped). Every accepted frame index, including frames
        dropped after the last tracked one, is committed (dropped ones as empty frames). After a
        failure this is :meth:`abort`.
        """
        with self._submit_lock:
            if self._closed:
                self._finished.wait(timeout)
                return []
            self._closed = True
        self._stop_workers(timeout)
        if self.failure is not None:
            self._abandon_open()
            self._finished.set()
            return []
        try:
            with self._track_lock:
                updates = self._commit_tail()
                updates.extend(self.tracker.flush())
        except Exception as exc:
            self.fail("link", None, exc)
            self._abandon_open()
            self._finished.set()
            return []
        self._deliver(updates)
        if self.failure is not None:
            self._abandon_open()
        self._release_window()
        self._finished.set()
        return updates

    def _commit_tail(self) -> list[TrackUpdate]:
        """Push an empty frame at the last accepted index when the tracker has not reached it (the frames
        dropped at the end), so that each of them is committed like the dropped frames before."""
        last = self._next - 1
        if last < self.tracker.frames_pushed or self._kind is None:
            return []
        if self._kind == "table":
            empty = pd.DataFrame({c: np.zeros(0, np.float64) for c in (self._columns or ("y", "x"))})
            return self.tracker.push(empty, frame=last)
        from edgetrack.runtime.detect.spots import SPOT_FEATURES

        return self.tracker.push_spots(np.zeros((0, len(SPOT_FEATURES))), frame=last)

    def abort(self, timeout: float | None = 10.0) -> None:
        """Stop without committing the window: every accepted frame not committed is reported dropped
        (reason ``failed``). Used after a failure; what was committed stays committed."""
        with self._submit_lock:
            already = self._closed
            self._closed = True
            if self.failure is None:
                self.failure = ("aborted", None, LiveTrackerFailed("aborted"))
        if not already:
            self._stop_workers(timeout)
        self._abandon_open()
        self._release_window()
        self._finished.set()

    def _abandon_open(self) -> None:
        with self._outcome_lock:
            pending = list(self._open)
        for index in pending:
            self._drop(index, "failed")

    def _release_window(self) -> None:
        if self._on_memory is not None and self._window_bytes:
            self._on_memory(-self._window_bytes)
        self._window_bytes = 0
        self._window.clear()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def uncommitted(self) -> list[int]:
        """Accepted frames neither committed nor reported dropped (snapshot)."""
        with self._outcome_lock:
            return [i for i in self._open if i not in self._open_dropped]

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
        """Counters: frames received (accepted), dropped, tracked, committed, queued, errors."""
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
