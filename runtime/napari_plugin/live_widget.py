"""The "Live tracking" widget: follows an Image layer while frames are appended to it (as an acquisition
plugin does), and keeps its Tracks layer up to date.

Start: an ``edgetrack.Tracker`` with the parameters is wrapped in a
:class:`~edgetrack.runtime.live.feeder.LiveTracker` (its own detection and linking threads). The frames
the layer has are submitted, and every data event of the layer submits the new ones: a (T, H, W) layer
that grew from T to T' frames submits frames T..T'-1; a 2-D layer whose image was replaced submits it
as the next frame. No frame is dropped: at most ``queue_size`` wait in the live tracker, the rest wait
here (the layer holds them anyway) until it has room. Committed frames (``window - 1`` frames behind
the newest) reach the Tracks layer ``<image> live tracks`` at most every ``refresh`` seconds.
Stop: the rest of the window is committed and shown; the tracker takes no more frames.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from edgetrack.runtime.errors import EdgetrackError, InputError
from edgetrack.runtime.napari_plugin.controls import (
    SpotParameters,
    describe_error,
    layer_picker,
    status_line,
)
from edgetrack.runtime.napari_plugin.layers import frames_of, show_tracks
from magicgui.widgets import Container, PushButton, SpinBox
from qtpy.QtCore import QObject, QTimer, Signal

__all__ = ["LiveTrackingWidget"]


class _Relay(QObject):
    """Carries the live tracker's "committed" callback (its linking thread) to the main thread."""

    committed = Signal()


class LiveTrackingWidget(Container):
    """Track an Image layer live while frames are appended; see the module docstring."""

    queue_size = 16  # frames waiting in the live tracker at most
    refresh = 0.25  # s between two updates of the Tracks layer, at most

    def __init__(self, napari_viewer: Any) -> None:
        from napari.layers import Image

        self.viewer = napari_viewer
        self.image = layer_picker(napari_viewer, Image, "follow layer")
        self.parameters = SpotParameters()
        self.window = SpinBox(label="window (frames)", value=3, min=1, max=50)
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = status_line()
        super().__init__(widgets=[self.image, self.parameters, self.window,
                                  Container(widgets=[self.start_button, self.stop_button], layout="horizontal",
                                            labels=False), self.status])
        self.live: Any = None
        self.layer: Any = None
        self.submitted = 0  # frames handed to the live tracker
        self._pending: deque[tuple[int, np.ndarray]] = deque()  # 2-D layers: replaced images not yet handed over
        self._shown = -1  # frames committed when the Tracks layer was last updated
        self._layer_frames = True  # a (T, H, W) layer that grows, else a 2-D layer whose image is replaced
        self._stopping = False
        self._relay = _Relay()
        self._relay.committed.connect(self._schedule_refresh)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh_tracks)
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)

    @property
    def following(self) -> bool:
        return self.live is not None

    def start(self, *_: Any) -> None:
        """Start following the chosen layer with a new tracker (the frames it has are tracked first)."""
        from edgetrack.runtime.live.feeder import LiveTracker

        import edgetrack

        layer = self.image.value
        if layer is None or self.following:
            self.status.value = "choose an Image layer first" if layer is None else self.status.value
            return
        try:
            frames_of(layer)
            tracker = edgetrack.Tracker(window=int(self.window.value), **self.parameters.tracker_options())
        except EdgetrackError as exc:
            self.status.value = f"error: {describe_error(exc)}"
            return
        self.live = LiveTracker(tracker, queue_size=self.queue_size, on_update=lambda _: self._relay.committed.emit(),
                                on_failure=lambda *_: self._relay.committed.emit())
        self.layer, self.submitted, self._shown = layer, 0, -1
        self._pending.clear()
        self._layer_frames = layer.data.ndim == 3
        if not self._layer_frames:
            self._pending.append((0, np.array(layer.data)))
        layer.events.data.connect(self._on_data)
        self.start_button.enabled, self.stop_button.enabled = False, True
        self.submit_pending()

    def _on_data(self, *_: Any) -> None:
        if not self.following:
            return
        if not self._layer_frames:
            index = self.submitted + len(self._pending)
            self._pending.append((index, np.array(self.layer.data)))
        self.submit_pending()

    def _available(self) -> int:
        """Frames the layer has that were not submitted yet."""
        if not self._layer_frames:
            return len(self._pending)
        return len(frames_of(self.layer)) - self.submitted

    def submit_pending(self) -> bool:
        """Hand the live tracker as many waiting frames as its queue takes; False (and stopped) after an error."""
        live = self.live
        try:
            while live is not None and self._available() > 0 and live.queued < self.queue_size:
                if self._layer_frames:
                    index, frame = self.submitted, np.asarray(frames_of(self.layer)[self.submitted])
                else:
                    index, frame = self._pending.popleft()
                if not live.submit(frame, frame=index):
                    raise InputError(f"frame {index} was dropped by the live tracker")
                self.submitted += 1
        except EdgetrackError as exc:
            if not self._stopping:
                self.stop(reason=f"error: {describe_error(exc)}")
            return False
        self._say()
        return True

    def _say(self) -> None:
        if self.live is None:
            return
        stats = self.live.stats()
        waiting = self._available() if self.layer is not None else 0
        self.status.value = f"{stats['committed']} frames committed, {stats['queued'] + waiting} waiting"

    def _schedule_refresh(self) -> None:
        self.submit_pending()
        if not self._timer.isActive():
            self._timer.start(int(self.refresh * 1000))

    def refresh_tracks(self) -> Any:
        """Show the committed tracks in ``<image> live tracks`` (when more frames were committed); returns the layer."""
        if self.live is None or self.layer is None:
            return None
        if self.live.failure is not None:
            stage, frame, exc = self.live.failure
            self.status.value = f"error in {stage} at frame {frame}: {describe_error(exc)}"
        committed = self.live.frames_committed
        if committed == self._shown:
            return None
        self._shown = committed
        return show_tracks(self.viewer, self.live.tracks(), f"{self.layer.name} live tracks", source=self.layer)

    def stop(self, *_: Any, reason: str = "stopped") -> None:
        """Track the frames still waiting, commit the rest of the window, show the final tracks and stop."""
        live = self.live
        if live is None or self._stopping:
            return
        self._stopping = True
        try:
            self.layer.events.data.disconnect(self._on_data)
            while reason == "stopped" and self._available() > 0 and live.failure is None:
                self._wait_for_room()
                if live.queued >= self.queue_size or not self.submit_pending():
                    break
            live.finish(timeout=60.0)
            self._timer.stop()
            self.refresh_tracks()
            self._say()
            self.status.value += f" ({reason})"
        finally:
            self.live, self._stopping = None, False
            self.start_button.enabled, self.stop_button.enabled = True, False

    def _wait_for_room(self, timeout: float = 60.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while self.live.queued >= self.queue_size and time.monotonic() < deadline and self.live.failure is None:
            time.sleep(0.01)
