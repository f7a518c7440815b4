"""The "Analyze motion" widget: ``edgetrack.analyze`` on a Tracks layer (worker thread), the tracks coloured
by alpha, K or diffusive state, and the ensemble plotted below (matplotlib, in the dock).

The per-point results (``alpha``, ``K`` in px^2/frame^alpha, ``state``, ``cp_prob``, ``segment``) become
features of the Tracks layer, its ``color_by`` names the one shown, and the colours are set on the fixed
scales of :mod:`~edgetrack.runtime.napari_plugin.colours` (napari's own colouring would stretch each
feature over its range, and has no categorical map for the states).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.napari_plugin.colours import (
    COLOUR_BY,
    colour_scale,
    motion_colours,
)
from edgetrack.runtime.napari_plugin.controls import TaskRunner, layer_picker
from edgetrack.runtime.napari_plugin.motion_plot import plot_ensemble
from edgetrack.runtime.napari_plugin.tables import tracks_from_layer
from magicgui.widgets import ComboBox, Container

__all__ = ["MOTION_FEATURES", "AnalyzeMotionWidget", "analyze_layer_tracks"]

#: The per-point columns of ``edgetrack.analyze`` that become Tracks layer features.
MOTION_FEATURES = ("alpha", "K", "state", "cp_prob", "segment")


def analyze_layer_tracks(tracks: pd.DataFrame) -> Iterator[int]:
    """``edgetrack.analyze(tracks)`` as a worker generator (one step: the bar is busy while it runs)."""
    import edgetrack

    yield 0
    return edgetrack.analyze(tracks, extras=False)


class AnalyzeMotionWidget(Container):
    """Analyse the motion of a Tracks layer's tracks; see the module docstring."""

    def __init__(self, napari_viewer: Any) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
        from napari.layers import Tracks

        self.viewer = napari_viewer
        self.tracks = layer_picker(napari_viewer, Tracks, "tracks")
        self.colour_by = ComboBox(label="colour by", choices=list(COLOUR_BY), value="alpha")
        self.task = TaskRunner("Analyze")
        super().__init__(widgets=[self.tracks, self.colour_by, self.task])
        self.figure = Figure(figsize=(4.6, 2.6), dpi=90)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.native.layout().addWidget(self.canvas)
        self.result: Any = None
        self.analyzed: Any = None  # the Tracks layer the result belongs to
        self.task.run.changed.connect(self.analyze)
        self.colour_by.changed.connect(self.recolour)

    def analyze(self, *_: Any) -> Any:
        """Start the analysis of the chosen Tracks layer on a worker thread; returns the worker."""
        layer = self.tracks.value
        if layer is None:
            self.task.say("choose a Tracks layer first")
            return None
        try:
            tracks = tracks_from_layer(layer.data, layer.features, layer.graph)
        except InputError as exc:
            self.task.fail(exc)
            return None
        self.task.say(f"analysing {tracks['track_id'].nunique()} tracks...")
        return self.task.start(analyze_layer_tracks, tracks, total=0, on_result=lambda result: self.show(layer, result))

    def show(self, layer: Any, result: Any) -> None:
        """Add the per-point motion values to ``layer``'s features, colour it and plot the ensemble."""
        rows = tracks_from_layer(layer.data)[["track_id", "frame"]]
        values = result.frames[["track_id", "frame", *MOTION_FEATURES]]
        merged = rows.merge(values, on=["track_id", "frame"], how="left", validate="one_to_one")
        features = pd.DataFrame(layer.features).reset_index(drop=True)
        features = features.drop(columns=[c for c in MOTION_FEATURES if c in features.columns])
        layer.features = pd.concat([features, merged[list(MOTION_FEATURES)]], axis=1)
        self.result, self.analyzed = result, layer
        self.recolour()
        n_states = len(result.ensemble)
        self.task.say(f"{len(result.segments)} segments, {n_states} ensemble state{'s' if n_states != 1 else ''}")

    def recolour(self, *_: Any) -> None:
        """Colour the analysed layer by the chosen value and redraw the plot (nothing before an analysis)."""
        layer, by = self.analyzed, str(self.colour_by.value)
        if layer is None or by not in layer.features.columns:
            return
        values = layer.features[by].to_numpy(np.float64)
        scale = colour_scale(values, by)
        layer.color_by = by
        layer.track_colors = motion_colours(values, by, scale)
        plot_ensemble(self.figure, self.result, by, scale)
        self.canvas.draw_idle()
