"""Association: score every candidate edge with a link probability in [0, 1].

A scorer is any object with a ``name`` and a ``score(edges, features=None)`` method
(:class:`EdgeScorer`). The distance-only :class:`DistanceScorer` is the baseline every learned
model must beat. Scorers are created by name with :func:`make_scorer`; learned models add
themselves to the registry with :func:`register_scorer`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from .config import StageConfig, require
from .errors import ConfigError, InputError
from .graph import CandidateEdges

__all__ = ["EdgeScorer", "DistanceScorer", "make_scorer", "register_scorer", "scorer_names"]


@runtime_checkable
class EdgeScorer(Protocol):
    """Scores candidate edges: ``score`` returns float64 (m,) link probabilities in [0, 1]."""

    name: str

    def score(self, edges: CandidateEdges, features: np.ndarray | None = None) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class DistanceScorer(StageConfig):
    """Distance-only link probability of a Gaussian step model.

    score = exp(-dist^2 / (2 * step_sigma^2 * dt)) * gap_penalty ** (dt - 1)

    step_sigma: px, expected rms displacement per axis in one frame (sqrt(2 D) for Brownian
    motion with D in px^2/frame). gap_penalty: factor in [0, 1] per skipped frame.
    """

    step_sigma: float
    gap_penalty: float = 0.5
    name: str = "distance"

    def validate(self) -> None:
        require(
            isinstance(self.step_sigma, (int, float, np.integer, np.floating))
            and math.isfinite(self.step_sigma)
            and self.step_sigma > 0,
            f"step_sigma must be a finite number of pixels > 0, got {self.step_sigma!r}",
        )
        require(
            isinstance(self.gap_penalty, (int, float, np.integer, np.floating))
            and 0.0 <= self.gap_penalty <= 1.0,
            f"gap_penalty must be in [0, 1], got {self.gap_penalty!r}",
        )

    def score(self, edges: CandidateEdges, features: np.ndarray | None = None) -> np.ndarray:
        """float64 (m,) scores of ``edges`` (uses ``dist`` in px and ``dt`` in frames; no features)."""
        dist = np.asarray(edges.dist, dtype=np.float64)
        dt = np.asarray(edges.dt)
        if dist.ndim != 1 or dt.shape != dist.shape:
            raise InputError(
                f"edges.dist and edges.dt must be 1-D arrays of one length, got {dist.shape} and {dt.shape}"
            )
        if dist.size == 0:
            return np.empty(0, dtype=np.float64)
        if not np.isfinite(dist).all() or dist.min() < 0:
            raise InputError("edges.dist must be finite and >= 0")
        if dt.dtype.kind not in "iu" or dt.min() < 1:
            raise InputError("edges.dt must hold integer frame steps >= 1")
        dtf = dt.astype(np.float64)
        out = np.exp(-(dist * dist) / (2.0 * self.step_sigma**2 * dtf))
        if dtf.max() > 1:
            out *= np.power(float(self.gap_penalty), dtf - 1.0)
        return out


def _distance_scorer(**options: Any) -> DistanceScorer:
    if "name" in options:
        raise ConfigError("a scorer's name is make_scorer's first argument, not an option")
    return DistanceScorer.from_dict(options)


_SCORERS: dict[str, Callable[..., EdgeScorer]] = {"distance": _distance_scorer}


def register_scorer(name: str, factory: Callable[..., EdgeScorer]) -> None:
    """Make ``make_scorer(name, **options)`` call ``factory(**options)``; a name is registered once."""
    if name in _SCORERS and _SCORERS[name] is not factory:
        raise ConfigError(f"a scorer named {name!r} is already registered")
    _SCORERS[name] = factory


def scorer_names() -> list[str]:
    """The names :func:`make_scorer` knows, sorted."""
    return sorted(_SCORERS)


def make_scorer(name: str, **options: Any) -> EdgeScorer:
    """Create the scorer registered under ``name`` with its options (unknown options are errors)."""
    try:
        factory = _SCORERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown scorer {name!r}; known scorers are {', '.join(scorer_names())}"
        ) from None
    return factory(**options)
