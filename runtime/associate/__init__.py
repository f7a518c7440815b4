"""Association: models that give every candidate edge a link probability (distance, MAGIK, cell transformer)."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"make_scorer": "registry", "register_scorer": "registry", "scorer_names": "registry", "SCORERS": "registry", "EdgeScorer": "registry", "DistanceScorer": "distance"})
