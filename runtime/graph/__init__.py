"""Candidate graph: edges from each detection to those up to max_gap frames later within max_distance px."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"CandidateEdges": "candidates", "build_graph": "candidates", "edges_into_frame": "candidates"})
