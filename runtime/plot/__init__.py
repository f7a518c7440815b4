"""Pictures of tracks (matplotlib, the plot extra): tracks over a frame, value maps, animated overlays."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"plot_tracks": "tracks", "plot_value_map": "tracks"})
