"""Detection: sub-pixel spots (positions in px and their features) in one frame, in Numba."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"DetectConfig": "config", "detect_spots": "spots", "detect_spots_array": "spots", "detect_movie": "spots", "SPOT_FEATURES": "spots"})
