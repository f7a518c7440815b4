"""Cells from label masks: per-object features and the cell tracker (divisions on)."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"CellTracker": "tracker", "track_cells": "tracker", "frame_features": "features", "movie_features": "features"})
