"""The candidate graph's defaults, the one source every tracker and the command line read them from."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_DISTANCE", "DEFAULT_MAX_GAP"]

DEFAULT_MAX_DISTANCE = 6.0  # px: the largest step of a link
DEFAULT_MAX_GAP = 2  # frames: links span 1..max_gap frames (1 = no gap closing)
