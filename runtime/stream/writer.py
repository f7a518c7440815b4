"""Streaming CSV output of committed track updates (used by ``edgetrack track`` and ``edgetrack serve``)."""

from __future__ import annotations

import hashlib

import pandas as pd

from edgetrack.runtime.detect.spots import SPOT_FEATURES


class UpdateWriter:
    """Writes committed :class:`~edgetrack.runtime.stream.tracker.TrackUpdate` objects to an open text handle as CSV.

    Rows are buffered and written in chunks of about ``chunk`` rows (the header once), so a long stream
    is written with flat memory. ``close()`` writes what is pending (or just the header if nothing came).
    The bytes are the same whatever the chunking, so a run resumed from a checkpoint writes exactly what
    an uninterrupted one does: ``position()`` says how many bytes (and their sha256) hold every update
    given so far, and ``resume_from()`` continues after such a prefix.
    """

    def __init__(self, handle, chunk: int = 20000) -> None:
        self.handle = handle
        self.chunk = chunk
        self.pending: list = []
        self.pending_rows = 0
        self.header = True
        self.n_points = 0
        self._max_track = -1
        self.n_bytes = 0
        self._sha = hashlib.sha256()

    def write(self, updates) -> None:
        """Buffer ``updates`` and write a chunk when enough rows are pending.

        A failed write (a full disk) raises and loses nothing: the updates stay pending, whatever part
        of the chunk reached the file is cut off again where possible, and a later ``write`` or
        ``close`` writes them once.
        """
        for u in updates:
            self.pending.append(u)
            self.pending_rows += len(u)
            if len(u):
                self._max_track = max(self._max_track, int(u.track_id.max()))
        if self.pending_rows >= self.chunk:
            self._flush()

    @property
    def n_tracks(self) -> int:
        return self._max_track + 1

    def _emit(self, text: str) -> None:
        self.handle.write(text)
        data = text.encode("utf-8")  # counted only once the handle took all of it
        self.n_bytes += len(data)
        self._sha.update(data)

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pd.concat([u.to_dataframe() for u in self.pending], ignore_index=True)
        try:
            self._emit(table.to_csv(None, header=self.header, index=False, float_format="%.4f"))
        except BaseException:
            self._cut_to_written()
            raise
        self.header = False
        self.n_points += len(table)
        self.pending, self.pending_rows = [], 0

    def _cut_to_written(self) -> None:
        """Truncate the file to the bytes counted as written (drop a partly written chunk), if it can."""
        try:
            self.handle.seek(self.n_bytes)
            self.handle.truncate()
        except (OSError, ValueError, AttributeError):
            pass  # not seekable, or the disk is still full: the caller reports the failure

    def position(self) -> dict:
        """Write what is pending and return ``{bytes, sha256, n_points, max_track}`` of the output so far."""
        self._flush()
        self.handle.flush()
        return {"bytes": self.n_bytes, "sha256": self._sha.hexdigest(), "n_points": self.n_points,
                "max_track": self._max_track}

    def resume_from(self, prefix: bytes, n_points: int, max_track: int) -> None:
        """Continue after ``prefix`` (the first bytes of an earlier run's output, written here now)."""
        self.handle.write(prefix.decode("utf-8"))
        self.n_bytes = len(prefix)
        self._sha = hashlib.sha256(prefix)
        self.header = not prefix
        self.n_points = n_points
        self._max_track = max_track

    def close(self, columns: tuple[str, ...] = SPOT_FEATURES) -> None:
        """Write the pending rows; with no rows at all, write the header (``columns`` are y, x, features)."""
        if self.pending:
            self._flush()
        elif self.header:
            self._emit(pd.DataFrame(columns=["frame", "y", "x", "track_id", *columns[2:]]).to_csv(None, index=False))
            self.header = False
