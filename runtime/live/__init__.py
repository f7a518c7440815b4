"""At the microscope: feeding a tracker from acquisition threads, the localhost server and its client, Micro-Manager."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"LiveTracker": "feeder", "TrackServer": "serve", "TrackClient": "client", "MicroManagerTracker": "micromanager"})
