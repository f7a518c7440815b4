"""Motion characterisation of tracks: alpha, K, state and change points (AnDi), DeepSPT modes, fingerprints, classifiers."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"analyze_tracks": "analyze", "write_analysis": "analyze", "MotionEstimator": "analyze", "segment_tracks": "deepspt", "fingerprint_table": "fingerprints", "train_classifier": "classifier", "apply_classifier": "classifier"})
