"""Whole movies and tables through a Tracker; detection of the next frames overlapped with linking.

The Numba detection kernels release the GIL, so on a machine with two or more cores the next frames are
detected on worker threads (two by default, one frame each, so detection uses both cores of a small PC)
while frame ``t`` is linked, and the frames still enter the tracker, and commit, in order. Results are
identical to pushing the frames one by one; only the wall time changes.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

import pandas as pd

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.errors import ConfigError, EdgetrackError, InputError
from edgetrack.runtime.io.tables import check_table
from edgetrack.runtime.stream.config import TrackerConfig
from edgetrack.runtime.stream.tracker import Tracker
from edgetrack.runtime.stream.updates import TrackUpdate


def default_workers() -> int:
    """Detection threads of :func:`track_frames` by default: two, or one on a single-core machine."""
    return max(1, min(2, os.cpu_count() or 1))


#: Frames detected ahead of the one being linked, by default. Two detection threads with only two frames
#: queued idle whenever one finishes while the main thread links (per-frame times vary); six keep both busy
#: (bench_speed's movies, 2 cores: 500 spots 180 -> 206 fps, 2,000 spots 96 -> 100 fps against two).
PREFETCH = 6


def track_frames(tracker: Tracker, frames: Iterable[np.ndarray], prefetch: int = PREFETCH,
                 flush: bool = True, between: Callable[[], bool] | None = None,
                 workers: int | None = None) -> Iterator[TrackUpdate]:
    """Push every frame of ``frames`` into ``tracker``, yielding committed updates as they come.

    prefetch: frames detected ahead of the one being linked (0 = no thread, plain ``push``); each holds
        its frame and its spots in memory until it is linked.
    workers: detection threads (each detects whole frames; None = :func:`default_workers`); at most
        ``prefetch + 1`` frames are in flight, so more workers than that add nothing.
    flush: commit the remaining frames at the end of ``frames`` (the end of the stream).
    between: called after each push once its updates were yielded (the tracker and whatever consumed
        the updates are then consistent: a safe point for a checkpoint); returning True stops the
        stream there, without flushing.

    A frame that fails to read (a truncated or unreadable file) raises its error only after the
    frames read before it were pushed and their updates yielded; nothing is flushed then, so the
    tracker can be checkpointed and resumed. Errors of a frame name its index in the stream.
    """
    first = tracker.frames_pushed
    if prefetch <= 0:
        for frame in frames:
            yield from tracker.push(frame)
            if between is not None and between():
                return
    else:
        def work(index: int, image: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
            image = np.asarray(image)
            try:
                return image.shape, tracker.detect(image)
            except InputError as exc:
                raise InputError(f"frame {index}: {exc}") from None

        pending: deque[Future] = deque()
        failure: BaseException | None = None
        n_workers = default_workers() if workers is None else int(workers)
        if n_workers < 1:
            raise ConfigError(f"workers must be at least 1 detection thread, got {workers!r}")
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="edgetrack-detect") as pool:
            iterator = iter(frames)
            exhausted = False
            submitted = 0
            try:
                while True:
                    while not exhausted and len(pending) <= prefetch:
                        try:
                            image = next(iterator)
                        except StopIteration:
                            exhausted = True
                            break
                        except EdgetrackError as exc:  # push what was read before it, then raise
                            failure, exhausted = exc, True
                            break
                        if tracker.psf_tries:  # psf_sigma="auto": measured in stream order, here
                            pending.append(_done(work, first + submitted, image))
                        else:
                            pending.append(pool.submit(work, first + submitted, image))
                        submitted += 1
                    if not pending:
                        break
                    shape, spots = pending.popleft().result()
                    yield from tracker.push_spots(spots, frame_shape=shape)
                    if between is not None and between():
                        return
            finally:
                for future in pending:
                    future.cancel()
        if failure is not None:
            raise failure
    if flush:
        yield from tracker.flush()


def _done(fn: Callable, *args) -> Future:
    """A future holding ``fn(*args)`` (its result or its exception), computed in this thread."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # re-raised by result(), as from the pool
        future.set_exception(exc)
    return future


def track_movie(movie: Iterable[np.ndarray], config: TrackerConfig | dict | None = None, *,
                detect: DetectConfig | dict | None = None, **options) -> pd.DataFrame:
    """Track every frame of a movie (an iterable of 2-D frames or a (T, H, W) array); returns the tracks.

    Detection of the next frames runs in a worker thread while the current frame is linked.
    """
    tracker = Tracker(config, detect=detect, **options)
    for _ in track_frames(tracker, movie):
        pass
    return tracker.finish()


def link_detections(detections: pd.DataFrame, config: TrackerConfig | dict | None = None, **options) -> pd.DataFrame:
    """Link a detection table (``frame, y, x`` [+ numeric features]) into tracks, as the streaming tracker does."""
    detections = check_table(detections, ("frame", "y", "x"), source="detections")
    duplicated = detections.duplicated(subset=["frame", "y", "x"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(f"detections: {int(duplicated.sum())} duplicated row(s) (same frame, y, x), first at row {row}; "
                         "remove duplicates before linking")
    tracker = Tracker(config, **options)
    if len(detections) == 0:
        return tracker.finish()
    detections = detections.sort_values("frame", kind="stable")
    frames = detections["frame"].to_numpy()
    bounds = np.flatnonzero(np.diff(frames)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(frames)]])
    for s, e in zip(starts, ends):
        tracker.push(detections.iloc[s:e], frame=int(frames[s]))
    return tracker.finish()
