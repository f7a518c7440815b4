"""The "Track spots" widget: a detection preview on the shown frame, then the whole movie tracked on a
worker thread, with a progress bar.

Preview: while "preview detections" is on, ``edgetrack.locate`` runs on the frame the viewer shows and
the Points layer ``<image> detections`` follows the frame slider and the detection parameters.
"measure spot sigma on this frame" sets the spot sigma to the width measured on the shown frame
(:func:`~edgetrack.runtime.detect.psf.estimate_psf_sigma`, what ``psf_sigma="auto"`` does in a run).
Track: an ``edgetrack.Tracker`` with the parameters is fed the layer's frames one by one
(``stream.pipeline.track_frames``: detection of the next frames on a second thread); the result is the
Tracks layer ``<image> tracks`` (features per point, the division graph when divisions are on) and the
Points layer ``<image> spots`` (every tracked spot, with its ``track_id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import EdgetrackError
from edgetrack.runtime.napari_plugin.controls import (
    SpotParameters,
    TaskRunner,
    describe_error,
    layer_picker,
)
from edgetrack.runtime.napari_plugin.layers import (
    current_frame,
    frames_of,
    show_points,
    show_tracks,
)
from magicgui.widgets import CheckBox, Container, PushButton

__all__ = ["TrackSpotsWidget", "track_layer_frames"]


def track_layer_frames(frames: Any, options: dict[str, Any]) -> Iterator[int]:
    """Track (T, H, W) frames with ``edgetrack.Tracker(**options)``: yields frames committed, returns the tracks."""
    from edgetrack.runtime.stream.pipeline import track_frames

    import edgetrack

    tracker = edgetrack.Tracker(**options)
    for _ in track_frames(tracker, (np.asarray(frames[t]) for t in range(len(frames)))):
        yield tracker.frames_committed
    return tracker.finish()


class TrackSpotsWidget(Container):
    """Track the spots of an Image layer (T, H, W); see the module docstring."""

    def __init__(self, napari_viewer: Any) -> None:
        from napari.layers import Image

        self.viewer = napari_viewer
        self.image = layer_picker(napari_viewer, Image, "image")
        self.parameters = SpotParameters()
        self.measure = PushButton(text="measure spot sigma on this frame")
        self.preview = CheckBox(text="preview detections on this frame", value=True)
        self.task = TaskRunner("Track")
        super().__init__(widgets=[self.image, self.parameters, self.measure, self.preview, self.task])
        self.measure.changed.connect(self.measure_sigma)
        for widget in (*self.parameters.detection_widgets, self.preview, self.image):
            widget.changed.connect(self.update_preview)
        napari_viewer.dims.events.current_step.connect(self.update_preview)
        self.task.run.changed.connect(self.track)
        self.update_preview()

    def update_preview(self, *_: Any) -> None:
        """Detect the spots of the shown frame into ``<image> detections`` (nothing while preview is off)."""
        layer = self.image.value
        if layer is None or not self.preview.value or self.task.busy:
            return
        import edgetrack

        try:
            t = current_frame(self.viewer, layer)
            frame = np.asarray(frames_of(layer)[t])
            spots = edgetrack.locate(frame, invert=bool(self.parameters.invert.value),
                                     **self.parameters.detect_options())
        except EdgetrackError as exc:
            self.task.say(f"preview: {describe_error(exc)}")
            return
        spots["frame"] = t
        show_points(self.viewer, spots, f"{layer.name} detections", source=layer).visible = True
        self.task.say(f"frame {t}: {len(spots)} spots")

    def measure_sigma(self, *_: Any) -> float | None:
        """Set the spot sigma to the width measured on the shown frame; returns it (None where it cannot)."""
        from edgetrack.runtime.detect.config import DetectConfig
        from edgetrack.runtime.detect.psf import estimate_psf_sigma

        layer = self.image.value
        if layer is None:
            self.task.say("choose an Image layer first")
            return None
        try:
            frame = np.asarray(frames_of(layer)[current_frame(self.viewer, layer)], dtype=np.float64)
            if self.parameters.invert.value:
                frame = frame.max() - frame
            estimate = estimate_psf_sigma(frame, DetectConfig(snr_threshold=float(self.parameters.snr_threshold.value)))
        except EdgetrackError as exc:
            self.task.say(f"measure: {describe_error(exc)}")
            return None
        sigma = round(estimate.sigma, 2)
        self.parameters.psf_sigma.value = sigma  # the preview follows
        self.task.say(f"spot sigma {sigma:g} px, measured on {estimate.n_spots} isolated spots")
        return sigma

    def track(self, *_: Any) -> Any:
        """Start tracking the chosen layer on a worker thread; returns the worker (None without a layer)."""
        layer = self.image.value
        if layer is None:
            self.task.say("choose an Image layer first")
            return None
        try:
            frames = frames_of(layer)
        except EdgetrackError as exc:
            self.task.fail(exc)
            return None
        options = self.parameters.tracker_options()
        self.task.say(f"tracking {len(frames)} frames...")
        return self.task.start(track_layer_frames, frames, options, total=len(frames),
                               on_result=lambda tracks: self.show(layer, tracks))

    def show(self, layer: Any, tracks: pd.DataFrame) -> None:
        """Put the tracks of ``layer`` into its Tracks and Points layers."""
        name = layer.name
        if f"{name} detections" in self.viewer.layers:  # the preview is superseded by the tracked spots
            self.viewer.layers[f"{name} detections"].visible = False
        show_points(self.viewer, tracks, f"{name} spots", source=layer, border_color="cyan", size=4)
        show_tracks(self.viewer, tracks, f"{name} tracks", source=layer)
        n_tracks = tracks["track_id"].nunique() if len(tracks) else 0
        self.task.say(f"{n_tracks} tracks, {len(tracks)} points")
