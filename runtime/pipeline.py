"""Overlapping detection and linking: detect the next frames in a worker thread while linking.

The Numba detection kernels release the GIL, so on a machine with two or more cores the detection of
frame ``t + 1`` (and reading it from disk) runs while frame ``t`` is linked. Results are identical to
pushing the frames one by one; only the wall time changes.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np

from .stream import Tracker, TrackUpdate


def track_frames(tracker: Tracker, frames: Iterable[np.ndarray], prefetch: int = 2,
                 flush: bool = True) -> Iterator[TrackUpdate]:
    """Push every frame of ``frames`` into ``tracker``, yielding committed updates as they come.

    prefetch: frames detected ahead in one worker thread (0 = no thread, plain ``push``).
    flush: commit the remaining frames at the end of ``frames`` (the end of the stream).
    """
    if prefetch <= 0:
        for frame in frames:
            yield from tracker.push(frame)
    else:
        def work(image: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
            image = np.asarray(image)
            return image.shape, tracker.detect(image)

        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgetrack-detect") as pool:
            iterator = iter(frames)
            exhausted = False
            try:
                while True:
                    while not exhausted and len(pending) <= prefetch:
                        try:
                            image = next(iterator)
                        except StopIteration:
                            exhausted = True
                            break
                        pending.append(pool.submit(work, image))
                    if not pending:
                        break
                    shape, spots = pending.popleft().result()
                    yield from tracker.push_spots(spots, frame_shape=shape)
            finally:
                for future in pending:
                    future.cancel()
    if flush:
        yield from tracker.flush()
