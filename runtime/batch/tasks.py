"""The work of one batch task, run on a Dask worker (or anywhere: these are plain functions).

``track_one(job)`` tracks one movie with the streaming pipeline and writes ``<out>/<name>/tracks.csv``
(and the motion tables with ``analyze``). A long movie is split instead: ``detect_chunk(job, start, stop)``
detects the spots of a range of frames (detection is pure, so chunks run in parallel on any worker) and
``link_chunks(job, *chunks)`` pushes them, in order, into one Tracker: the same tracks as the streaming run.

A movie that fails with an :class:`~edgetrack.runtime.errors.EdgetrackError` (unreadable, corrupt, bad
shape) returns a ``failed`` record instead of raising, so it is not retried; any other exception
propagates, and Dask retries the task (``retries=``) before the batch records it as failed. Every
output is written atomically, and the record says ``done`` only after all of them are in place.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgetrack.runtime.batch.manifest import content_hash, file_stat
from edgetrack.runtime.errors import EdgetrackError

FRAMES_TOPIC = "edgetrack-batch-frames"  # worker -> client frame-progress events (Worker.log_event)
TRACKS_FILE = "tracks.csv"
REPORT_INTERVAL = 0.5  # s between frame-progress events of one task


class FrameReporter:
    """Sends ``(name, done, total)`` frame counts to the batch's client, at most every REPORT_INTERVAL s.

    Outside a Dask worker (a serial run) it does nothing."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self._last = 0.0
        self._sent = 0
        try:
            from distributed import get_worker

            self._worker = get_worker()
        except (ImportError, ValueError):
            self._worker = None

    def __call__(self, done: int, force: bool = False) -> None:
        if self._worker is None or done == self._sent:
            return
        now = time.monotonic()
        if force or now - self._last >= REPORT_INTERVAL:
            self._last = now
            with contextlib.suppress(Exception):  # progress is best effort; it never fails a movie
                self._worker.log_event(FRAMES_TOPIC, {"name": self.name, "done": done - self._sent,
                                                      "total": self.total})
            self._sent = done


def where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _open(job: dict[str, Any]):
    from edgetrack.runtime.io.readers import open_movie

    return open_movie(job["input"], channel=job.get("channel"), z=job.get("z"))


def _tracker(job: dict[str, Any]):
    from edgetrack.runtime.stream.tracker import Tracker

    return Tracker(job["tracker"], detect=job["detect"])


def _fingerprint(job: dict[str, Any]) -> dict[str, Any]:
    """Size, mtime and sha256 of the input, taken by the task (on the worker, in parallel)."""
    record: dict[str, Any] = {"size": None, "mtime_ns": None, "sha256": None}
    with contextlib.suppress(OSError):
        record.update(file_stat(job["input"]))
        record["sha256"] = content_hash(job["input"])
    return record


def _clean_parts(folder: Path) -> None:
    """Remove temporary files a killed task left (``.NAME.XXXX.part``, see io/atomic.py)."""
    if folder.is_dir():
        for part in folder.glob(".*.part"):
            with contextlib.suppress(OSError):
                part.unlink()


def _write(job: dict[str, Any], tracks, n_frames: int, record: dict[str, Any]) -> dict[str, Any]:
    """Write the tracks (and the analysis) of one movie; returns the finished record."""
    from edgetrack.runtime.errors import OutputError
    from edgetrack.runtime.io.tables import write_table

    folder = Path(job["out"]) / job["name"]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    _clean_parts(folder)
    outputs = [write_table(tracks, folder / TRACKS_FILE)]
    notes: list[str] = []
    if job.get("analyze"):
        from edgetrack.runtime.motion.analyze import analyze_tracks, write_analysis

        result = analyze_tracks(tracks, **job.get("analyze_options", {}))
        outputs += write_analysis(result, folder)
        notes = list(result.notes)
    record.update(status="done", error=None, n_frames=int(n_frames), n_points=int(len(tracks)),
                  n_tracks=int(tracks["track_id"].nunique()) if len(tracks) else 0,
                  outputs=sorted(Path(p).relative_to(job["out"]).as_posix() for p in outputs), notes=notes)
    return record


def _failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update(status="failed", error=" ".join(f"{exc}".split()) or type(exc).__name__, outputs=[])
    return record


def _base(job: dict[str, Any]) -> dict[str, Any]:
    return {"name": job["name"], "input": job["input"], "worker": where(), "started": time.time()}


def _finish(record: dict[str, Any]) -> dict[str, Any]:
    record["seconds"] = round(time.time() - record.pop("started"), 3)
    return record


def track_one(job: dict[str, Any]) -> dict[str, Any]:
    """Track one movie with the streaming pipeline (``stream.pipeline.track_frames``) and write its outputs.

    job: ``name, input, out, tracker, detect, analyze`` [``channel, z, analyze_options``]. Returns the
    manifest record (``status`` ``done`` or ``failed`` with ``error``)."""
    from edgetrack.runtime.stream.pipeline import track_frames

    record = _base(job)
    record.update(_fingerprint(job))
    try:
        movie = _open(job)
        tracker = _tracker(job)
        report = FrameReporter(job["name"], len(movie))

        def frames():
            for i, frame in enumerate(movie):
                report(i)
                yield frame

        # one detection thread per task: the cluster already runs several tasks side by side on the cores
        for _ in track_frames(tracker, frames(), workers=1):  # the loop of stream.pipeline.track_movie
            pass
        report(len(movie), force=True)
        tracks = tracker.finish()
        return _finish(_write(job, tracks, len(movie), record))
    except EdgetrackError as exc:
        return _finish(_failed(record, exc))


def detect_chunk(job: dict[str, Any], start: int, stop: int) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The spots of frames ``start .. stop - 1`` as ``(frame shape, spots)`` per frame, as
    :meth:`~edgetrack.runtime.stream.tracker.Tracker.detect` returns them. An EdgetrackError is returned
    (not raised) so that the linking task records it without retries."""
    try:
        movie = _open(job)
        tracker = _tracker(job)
        report = FrameReporter(job["name"], len(movie))
        for i in range(start if tracker.psf_tries else 0):  # psf_sigma="auto": settled as the whole movie's
            if tracker.measure_psf(np.asarray(movie[i])):  # run settles it, on its first frames, so every
                break  # chunk detects with the same sigma
        out = []
        for i in range(start, stop):
            image = np.asarray(movie[i])
            out.append((image.shape, tracker.detect(image)))
            report(i + 1 - start)
        report(stop - start, force=True)
        return out
    except EdgetrackError as exc:
        return [exc]  # type: ignore[list-item]


def link_chunks(job: dict[str, Any], *chunks: list) -> dict[str, Any]:
    """Push the detected chunks of one movie, in order, into one Tracker and write the outputs
    (the same tracks as :func:`track_one`)."""
    record = _base(job)
    record.update(_fingerprint(job))
    try:
        tracker = _tracker(job)
        n_frames = 0
        for chunk in chunks:
            for item in chunk:
                if isinstance(item, BaseException):
                    raise item
                shape, spots = item
                tracker.push_spots(spots, frame_shape=shape)
                n_frames += 1
        tracker.flush()
        tracks = tracker.finish()
        return _finish(_write(job, tracks, n_frames, record))
    except EdgetrackError as exc:
        return _finish(_failed(record, exc))
