"""Scorers by name: the one table that says which association model ``scorer="..."`` selects.

A scorer is any object with a ``name`` and a ``score(edges, features=None)`` method returning float64
(m,) link probabilities in [0, 1] (:class:`EdgeScorer`). Scorers that need the whole window (a graph
network) set ``needs_window = True`` and give ``score_window(node_frame, values, columns, edges)``
instead; learned scorers may have ``configure(max_distance=...)``. Each entry of :data:`SCORERS`
names the factory that builds the scorer; its module is imported only when the scorer is made, so
ONNX Runtime loads only for a learned scorer. Add your own with :func:`register_scorer`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from edgetrack.runtime.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from edgetrack.runtime.graph.candidates import CandidateEdges

__all__ = ["EdgeScorer", "SCORERS", "make_scorer", "register_scorer", "scorer_names"]


@runtime_checkable
class EdgeScorer(Protocol):
    """Scores candidate edges: ``score`` returns float64 (m,) link probabilities in [0, 1]."""

    name: str

    def score(self, edges: CandidateEdges, features: np.ndarray | None = None) -> np.ndarray: ...


#: name -> ``"module:factory"`` (imported on first use) or a factory callable (added by register_scorer).
SCORERS: dict[str, str | Callable[..., EdgeScorer]] = {
    "distance": "edgetrack.runtime.associate.distance:make_distance_scorer",
    "magik": "edgetrack.runtime.associate.magik:make_magik_scorer",
    "transformer": "edgetrack.runtime.associate.cell_transformer:make_transformer_scorer",
}


def register_scorer(name: str, factory: Callable[..., EdgeScorer]) -> None:
    """Make ``make_scorer(name, **options)`` call ``factory(**options)``; a name is registered once."""
    if name in SCORERS and SCORERS[name] is not factory:
        raise ConfigError(f"a scorer named {name!r} is already registered")
    SCORERS[name] = factory


def scorer_names() -> list[str]:
    """The names :func:`make_scorer` knows, sorted."""
    return sorted(SCORERS)


def make_scorer(name: str, **options: Any) -> EdgeScorer:
    """Create the scorer registered under ``name`` with its options (unknown options are errors)."""
    try:
        factory = SCORERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown scorer {name!r}; known scorers are {', '.join(scorer_names())}") from None
    if isinstance(factory, str):
        module, function = factory.split(":")
        factory = getattr(importlib.import_module(module), function)
    return factory(**options)
