"""The "Track cells" widget: the objects of a Labels layer (T, H, W) tracked with divisions, with an optional
Image layer for their mean intensity.

Each frame's labels (and image) go to a :class:`~edgetrack.runtime.cells.tracker.CellTracker` on a worker
thread (the frame loop of ``edgetrack.track_cells``, one push per frame so the progress bar counts
frames). The result is the Tracks layer ``<labels> tracks``: one point per object at its centroid, the
object's ``label`` and shape features (area, eccentricity, ...) as features, divisions in the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.cells import defaults
from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.link import LINKERS
from edgetrack.runtime.napari_plugin.controls import TaskRunner, layer_picker
from edgetrack.runtime.napari_plugin.layers import frames_of, show_tracks
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox

__all__ = ["TrackCellsWidget", "track_label_frames"]


def track_label_frames(masks: Any, images: Any, options: dict[str, Any]) -> Iterator[int]:
    """Track (T, H, W) label masks (and intensity frames or None) with ``CellTracker(**options)``:
    yields frames pushed, returns the tracks (columns ``CELL_COLUMNS``)."""
    from edgetrack.runtime.cells.tracker import CellTracker

    tracker = CellTracker(**options)
    for t in range(len(masks)):
        tracker.push(np.asarray(masks[t]), None if images is None else np.asarray(images[t]))
        yield t + 1
    return tracker.finish()


class TrackCellsWidget(Container):
    """Track the objects of a Labels layer; see the module docstring."""

    def __init__(self, napari_viewer: Any) -> None:
        from napari.layers import Image, Labels

        self.viewer = napari_viewer
        self.masks = layer_picker(napari_viewer, Labels, "labels")
        self.image = layer_picker(napari_viewer, Image, "intensity image", nullable=True)
        self.linker = ComboBox(label="linker", choices=list(LINKERS), value=defaults.LINKER)
        self.divisions = CheckBox(text="divisions", value=defaults.MAX_CHILDREN > 1)
        self.max_distance = FloatSpinBox(label="max distance (px, 0 = auto)", value=0.0, min=0.0, max=1000.0)
        self.task = TaskRunner("Track")
        super().__init__(widgets=[self.masks, self.image, self.linker, self.divisions, self.max_distance, self.task])
        self.image.value = None
        self.task.run.changed.connect(self.track)

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``CellTracker`` (max distance None = one median cell diameter)."""
        distance = float(self.max_distance.value)
        return {"linker": str(self.linker.value), "divisions": bool(self.divisions.value),
                "max_distance": distance if distance > 0 else None}

    def track(self, *_: Any) -> Any:
        """Start tracking the chosen Labels layer on a worker thread; returns the worker (None if refused)."""
        labels, image = self.masks.value, self.image.value
        if labels is None:
            self.task.say("choose a Labels layer first")
            return None
        try:
            masks = frames_of(labels)
            images = None if image is None else frames_of(image)
            if images is not None and tuple(images.shape) != tuple(masks.shape):
                raise InputError(f"image layer {image.name!r} has shape {tuple(images.shape)}, the labels "
                                 f"{tuple(masks.shape)}: they must match")
        except EdgetrackError as exc:
            self.task.fail(exc)
            return None
        options = self.options()
        self.task.say(f"tracking {len(masks)} frames...")
        return self.task.start(track_label_frames, masks, images, options, total=len(masks),
                               on_result=lambda tracks: self.show(labels, tracks))

    def show(self, labels: Any, tracks: pd.DataFrame) -> None:
        """Put the cell tracks into ``<labels> tracks``."""
        show_tracks(self.viewer, tracks, f"{labels.name} tracks", source=labels)
        n_tracks = tracks["track_id"].nunique() if len(tracks) else 0
        divisions = int((tracks["parent_track_id"] >= 0).sum()) if len(tracks) else 0
        self.task.say(f"{n_tracks} tracks, {len(tracks)} objects, {divisions} daughters")
