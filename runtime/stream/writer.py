"""Streaming CSV output of committed track updates (used by ``edgetrack track`` and ``edgetrack serve``)."""

from __future__ import annotations

import pandas as pd

from edgetrack.runtime.detect.spots import SPOT_FEATURES


class UpdateWriter:
    """Writes committed :class:`~edgetrack.runtime.stream.tracker.TrackUpdate` objects to an open text handle as CSV.

    Rows are buffered and written in chunks of about ``chunk`` rows (the header once), so a long stream
    is written with flat memory. ``close()`` writes what is pending (or just the header if nothing came).
    """

    def __init__(self, handle, chunk: int = 20000) -> None:
        self.handle = handle
        self.chunk = chunk
        self.pending: list = []
        self.pending_rows = 0
        self.header = True
        self.n_points = 0
        self._max_track = -1

    def write(self, updates) -> None:
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

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pd.concat([u.to_dataframe() for u in self.pending], ignore_index=True)
        table.to_csv(self.handle, header=self.header, index=False, float_format="%.4f")
        self.header = False
        self.n_points += len(table)
        self.pending, self.pending_rows = [], 0

    def close(self, columns: tuple[str, ...] = SPOT_FEATURES) -> None:
        """Write the pending rows; with no rows at all, write the header (``columns`` are y, x, features)."""
        if self.pending:
            self._flush()
        elif self.header:
            pd.DataFrame(columns=["frame", "y", "x", "track_id", *columns[2:]]).to_csv(self.handle, index=False)
            self.header = False
