"""The distance-only scorer: the baseline every learned association model must beat."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.graph.candidates import CandidateEdges

__all__ = ["DistanceScorer", "make_distance_scorer"]


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


def make_distance_scorer(**options: Any) -> DistanceScorer:
    """The distance scorer from its options (``step_sigma`` px, ``gap_penalty``); unknown options are errors."""
    if "name" in options:
        raise ConfigError("a scorer's name is make_scorer's first argument, not an option")
    return DistanceScorer.from_dict(options)
