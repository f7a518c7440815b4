"""Simulated spot movies with known truth (diffusing spots, a Gaussian PSF, camera noise)."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"simulate_movie": "spots", "simulate_detections": "spots", "SpotSimConfig": "spots"})
