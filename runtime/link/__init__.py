"""Linking: from scored candidate edges to parents (greedy, LAP, min-cost flow, CP-SAT ILP, MAGIK's post-processing)."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"get_linker": "registry", "LINKERS": "registry"})
