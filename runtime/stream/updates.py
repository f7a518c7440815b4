"""What the tracker gives back: committed track points, one frame at a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["TrackUpdate", "points_frame"]


@dataclasses.dataclass
class TrackUpdate:
    """What became final after a push: the track points of one committed frame.

    frame: the committed frame index.
    columns: names of the columns of ``values`` (``y, x`` then features).
    values: float64 (n, len(columns)).
    track_id: int64 (n,), parent_track_id: int64 (n,) (-1 none; set only where a division starts a track).
    det_id: int64 (n,) stream-wide detection ids; parent_det_id: int64 (n,) the linked predecessor (-1 none).
    """

    frame: int
    columns: tuple[str, ...]
    values: np.ndarray
    track_id: np.ndarray
    parent_track_id: np.ndarray
    det_id: np.ndarray
    parent_det_id: np.ndarray

    def __len__(self) -> int:
        return len(self.track_id)

    @property
    def links(self) -> np.ndarray:
        """int64 (k, 2): committed links (parent det_id, child det_id) into this frame."""
        has = self.parent_det_id >= 0
        return np.stack([self.parent_det_id[has], self.det_id[has]], axis=1)

    def to_dataframe(self, divisions: bool = False) -> pd.DataFrame:
        """Track points as a DataFrame: frame, y, x, track_id[, parent_track_id], features."""
        return points_frame(self.frame * np.ones(len(self), np.int64), self.columns, self.values,
                             self.track_id, self.parent_track_id if divisions else None)


def points_frame(frame: np.ndarray, columns: tuple[str, ...], values: np.ndarray, track_id: np.ndarray,
                 parent_track_id: np.ndarray | None = None) -> pd.DataFrame:
    """Track points as a DataFrame: frame, y, x, track_id[, parent_track_id], then the feature columns.

    frame, track_id, parent_track_id: int64 (n,); values: float64 (n, len(columns)) with y, x (px) first.
    """
    data: dict[str, np.ndarray] = {"frame": frame, "y": values[:, 0], "x": values[:, 1], "track_id": track_id}
    if parent_track_id is not None:
        data["parent_track_id"] = parent_track_id
    for j, name in enumerate(columns[2:], start=2):
        data[name] = values[:, j]
    return pd.DataFrame(data)
