"""The candidate graph's defaults, the one source every tracker and the command line read them from."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_DISTANCE", "DEFAULT_MAX_GAP", "LARGEST_MAX_DISTANCE", "LARGEST_MAX_GAP", "LARGEST_WINDOW"]

DEFAULT_MAX_DISTANCE = 6.0  # px: the largest step of a link
DEFAULT_MAX_GAP = 2  # frames: links span 1..max_gap frames (1 = no gap closing)

# Upper bounds, so that a typo (1e200) is an error and not an overflow or a stalled stream:
LARGEST_MAX_DISTANCE = 65536.0  # px: larger than any camera frame
LARGEST_MAX_GAP = 1000  # frames
LARGEST_WINDOW = 1000  # frames held before a frame is committed
