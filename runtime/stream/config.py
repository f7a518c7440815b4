"""The streaming tracker's options: one typed, validated configuration (distances in px, times in frames)."""

from __future__ import annotations

import dataclasses

from edgetrack.runtime.config import StageConfig, is_real, require
from edgetrack.runtime.graph.defaults import (DEFAULT_MAX_DISTANCE, DEFAULT_MAX_GAP, LARGEST_MAX_DISTANCE,
                                              LARGEST_MAX_GAP, LARGEST_WINDOW)

__all__ = ["TrackerConfig"]


@dataclasses.dataclass(frozen=True)
class TrackerConfig(StageConfig):
    """Options of the streaming tracker (distances in px, times in frames).

    max_distance: largest displacement between two linked detections, px.
    max_gap: a track may skip up to ``max_gap - 1`` frames (edges span 1..max_gap frames).
    window: frames held before a frame is committed (latency ``window - 1`` frames); >= 1.
    linker: "greedy" or "lap" (others as they are registered in :mod:`edgetrack.runtime.link.registry`).
    scorer: association model scoring candidate edges ("distance" is the distance-only baseline).
    step_sigma: expected rms displacement per axis per frame, px; None = max_distance / 3.
    gap_penalty: score factor per skipped frame for the distance scorer.
    min_score: edges scoring at or below this are never linked.
    max_children: 1 (no divisions) or 2 (divisions allowed, where the linker supports them).
    invert: detect dark spots on a bright background (frames are inverted before detection).
    keep_results: keep committed points so that :meth:`Tracker.finish` returns every track.
    max_candidates: each detection keeps at most this many candidate parents (the best scored); in
        ordinary scenes a detection has far fewer, so this only bounds pathological crowds.
    max_component: the 'lap' linker solves a window greedily, with a :class:`DegradedWarning`, when a
        frame's assignment problem has a connected component of more detections than this (an
        exact solve of a dense N x N assignment costs O(N^3) and would stall the stream).
    linker_options: options of the 'flow' and 'ilp' linkers (an
        :class:`~edgetrack.runtime.link.costs.IlpConfig` as a dict: costs, time_limit, ...).
    ndim: 2 (frames and detections in y, x) or 3 (z-stacks, detections with a ``z`` column in voxels).
    motion: "adaptive" scores each link out of a tracked detection with that track's own step size and
        drift, learnt from its committed steps (:mod:`edgetrack.runtime.stream.motion`); "none" gives every
        link the same ``step_sigma``. Distance scorer only.
    z_scale: in 3-D, the z voxel size over the (y, x) pixel size (3 for 0.3 um steps with 0.1 um
        pixels): distances, ``max_distance`` and ``step_sigma`` are then in (y, x) px, a z step of one
        voxel counting ``z_scale`` px.
    """

    max_distance: float = DEFAULT_MAX_DISTANCE
    max_gap: int = DEFAULT_MAX_GAP
    window: int = 3
    linker: str = "lap"
    scorer: str = "distance"
    step_sigma: float | None = None
    gap_penalty: float = 0.5
    min_score: float = 1e-6
    max_children: int = 1
    invert: bool = False
    keep_results: bool = True
    max_candidates: int = 10
    max_component: int = 1000
    linker_options: dict | None = None
    ndim: int = 2
    z_scale: float = 1.0
    motion: str = "none"

    def validate(self) -> None:
        require(is_real(self.max_distance) and 0 < self.max_distance <= LARGEST_MAX_DISTANCE,
                f"max_distance must be a number of px in (0, {LARGEST_MAX_DISTANCE:g}], got {self.max_distance!r}")
        require(is_real(self.max_gap) and self.max_gap <= LARGEST_MAX_GAP,
                f"max_gap must be at most {LARGEST_MAX_GAP} frames, got {self.max_gap!r}")
        require(is_real(self.window) and self.window <= LARGEST_WINDOW,
                f"window must be at most {LARGEST_WINDOW} frames, got {self.window!r}")
        require(int(self.max_gap) == self.max_gap and self.max_gap >= 1, f"max_gap must be an integer >= 1, got {self.max_gap}")
        require(int(self.window) == self.window and self.window >= 1, f"window must be an integer >= 1, got {self.window}")
        require(self.step_sigma is None or self.step_sigma > 0, f"step_sigma must be > 0 px, got {self.step_sigma}")
        require(0.0 < self.gap_penalty <= 1.0, f"gap_penalty must be in (0, 1], got {self.gap_penalty}")
        require(0.0 <= self.min_score < 1.0, f"min_score must be in [0, 1), got {self.min_score}")
        require(self.max_children in (1, 2), f"max_children must be 1 or 2, got {self.max_children}")
        require(int(self.max_candidates) == self.max_candidates and self.max_candidates >= 1,
                f"max_candidates must be an integer >= 1, got {self.max_candidates}")
        require(int(self.max_component) == self.max_component and self.max_component >= 2,
                f"max_component must be an integer >= 2, got {self.max_component}")
        require(self.linker_options is None or isinstance(self.linker_options, dict),
                f"linker_options must be a dict, got {type(self.linker_options).__name__}")
        require(self.ndim in (2, 3) and not isinstance(self.ndim, bool), f"ndim must be 2 or 3, got {self.ndim!r}")
        require(is_real(self.z_scale) and 0 < self.z_scale <= 1000,
                f"z_scale must be a number in (0, 1000] (z voxel size / pixel size), got {self.z_scale!r}")
        require(self.motion in ("none", "adaptive"), f"motion must be 'none' or 'adaptive', got {self.motion!r}")
        require(self.motion == "none" or self.scorer == "distance",
                f"motion='adaptive' refines the distance scorer; scorer {self.scorer!r} scores links itself "
                "(use motion='none')")
        require(self.ndim == 2 or self.scorer == "distance",
                f"3-D tracking scores links with the distance scorer; scorer {self.scorer!r} is 2-D only")
