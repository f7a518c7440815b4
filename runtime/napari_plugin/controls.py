"""The widgets' shared parts: layer choices that follow the viewer, the spot tracker's parameters, and a
task runner that runs a generator on napari's worker thread with a progress bar, a status line and Cancel.

The parameters are the runtime's own options (:class:`~edgetrack.runtime.detect.config.DetectConfig`,
:class:`~edgetrack.runtime.stream.config.TrackerConfig`), with their defaults; the widgets pass them to
``edgetrack.locate`` / ``edgetrack.Tracker`` unchanged, so a value the runtime refuses is reported in the
status line with the runtime's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.errors import EdgetrackError
from edgetrack.runtime.link import LINKERS
from edgetrack.runtime.stream.config import TrackerConfig
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

__all__ = ["SpotParameters", "TaskRunner", "describe_error", "layer_picker"]


def layer_picker(viewer: Any, kind: type, label: str, nullable: bool = False) -> ComboBox:
    """A drop-down of the viewer's layers of type ``kind``, refreshed when layers are added, removed or renamed."""
    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]

    combo = ComboBox(label=label, choices=choices, nullable=nullable)
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
        event.connect(combo.reset_choices)
    return combo


def describe_error(exc: BaseException) -> str:
    """One line for the status bar: edgetrack's own message, or the exception's type and message."""
    if isinstance(exc, EdgetrackError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def status_line() -> Label:
    """An empty Label that takes the widget's whole width (magicgui's keeps the width of its first text)."""
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value="")
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


class SpotParameters(Container):
    """Detection (spot sigma px, SNR threshold, dark spots) and linking (max distance px, max gap frames,
    linker, divisions, each track's own motion) parameters, with the runtime's defaults."""

    def __init__(self) -> None:
        det, trk = DetectConfig(), TrackerConfig()
        self.psf_sigma = FloatSpinBox(label="spot sigma (px)", value=det.psf_sigma, min=0.3, max=50.0, step=0.1)
        self.snr_threshold = FloatSpinBox(label="SNR threshold", value=det.snr_threshold, min=0.5, max=100.0, step=0.5)
        self.invert = CheckBox(text="dark spots on a bright background", value=trk.invert)
        self.max_distance = FloatSpinBox(label="max distance (px)", value=trk.max_distance, min=0.5, max=200.0)
        self.max_gap = SpinBox(label="max gap (frames)", value=trk.max_gap, min=1, max=20)
        self.linker = ComboBox(label="linker", choices=list(LINKERS), value=trk.linker)
        self.divisions = CheckBox(text="divisions (greedy, flow, ilp)", value=trk.max_children > 1)
        self.adaptive = CheckBox(text="each track's own motion (fast or drifting particles)",
                                 value=trk.motion == "adaptive")
        super().__init__(widgets=[self.psf_sigma, self.snr_threshold, self.invert, self.max_distance, self.max_gap,
                                  self.linker, self.divisions, self.adaptive], labels=True)

    @property
    def detection_widgets(self) -> tuple[Any, ...]:
        """The widgets whose change changes the detections (the preview follows them)."""
        return self.psf_sigma, self.snr_threshold, self.invert

    def detect_options(self) -> dict[str, Any]:
        """Options of :class:`DetectConfig` (``edgetrack.locate`` keyword arguments)."""
        return {"psf_sigma": float(self.psf_sigma.value), "snr_threshold": float(self.snr_threshold.value)}

    def tracker_options(self) -> dict[str, Any]:
        """Keyword arguments of ``edgetrack.Tracker`` (detection options under ``detect``)."""
        divisions = bool(self.divisions.value) and LINKERS[self.linker.value].divisions
        return {"max_distance": float(self.max_distance.value), "max_gap": int(self.max_gap.value),
                "linker": str(self.linker.value), "max_children": 2 if divisions else 1,
                "invert": bool(self.invert.value), "motion": "adaptive" if self.adaptive.value else "none",
                "detect": self.detect_options()}


class TaskRunner(Container):
    """A Run / Cancel row, a progress bar and a status line for one long task at a time.

    ``start(work, *args, total=..., on_result=...)`` runs ``work(*args)``, a generator function that yields
    the number of steps done and returns the result, on napari's worker thread; the bar counts to ``total`` (0: busy, no count);
    ``on_result(result)`` runs in the main thread. Errors end in the status line, never in a traceback.
    """

    def __init__(self, run_text: str) -> None:
        self.run = PushButton(text=run_text)
        self.cancel = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, visible=True)
        self.status = status_line()
        self.worker: Any = None
        self.cancel.changed.connect(self._cancel)
        super().__init__(widgets=[Container(widgets=[self.run, self.cancel], layout="horizontal", labels=False),
                                  self.progress, self.status], labels=False)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, work: Callable[..., Iterator[int]], *args: Any, total: int, on_result: Callable[[Any], None]) -> Any:
        from napari.qt.threading import create_worker

        self.progress.max = max(int(total), 0)
        self.progress.value = 0
        worker = create_worker(work, *args, _start_thread=False)
        worker.yielded.connect(self._advance)
        worker.returned.connect(lambda result: self._done(on_result, result))
        worker.errored.connect(self.fail)
        worker.aborted.connect(lambda: self.say("cancelled"))
        worker.finished.connect(self._finished)
        self.worker = worker
        self.run.enabled, self.cancel.enabled = False, True
        worker.start()
        return worker

    def say(self, text: str) -> None:
        self.status.value = text

    def fail(self, exc: BaseException) -> None:
        """Show an error in the status line and napari's notifications."""
        from napari.utils.notifications import show_error

        message = describe_error(exc)
        self.say(f"error: {message}")
        show_error(message)

    def _advance(self, done: int) -> None:
        if self.progress.max > 0:
            self.progress.value = min(int(done), self.progress.max)

    def _done(self, on_result: Callable[[Any], None], result: Any) -> None:
        self.progress.max = max(self.progress.max, 1)  # a busy bar (max 0) becomes a full one
        self.progress.value = self.progress.max
        try:
            on_result(result)
        except EdgetrackError as exc:
            self.fail(exc)

    def _cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _finished(self) -> None:
        self.worker = None
        self.run.enabled, self.cancel.enabled = True, False
