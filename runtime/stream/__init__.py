"""Streaming: the Tracker's sliding window, detection on a worker thread, checkpoints, offline linking."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"Tracker": "tracker", "TrackerConfig": "config", "TrackUpdate": "updates", "track_movie": "pipeline", "link_detections": "pipeline", "track_frames": "pipeline", "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "link_offline": "offline"})
