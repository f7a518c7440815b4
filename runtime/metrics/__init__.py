"""Accuracy against a ground truth: link metrics, Cell Tracking Challenge TRA / LNK, AnDi motion scores."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"link_metrics": "links", "ctc_scores": "ctc"})
