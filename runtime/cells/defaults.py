"""The cell tracker's defaults (they differ from the spot tracker's: cells divide, and a learned scorer
needs a longer window); the command line reads them from here."""

from __future__ import annotations

__all__ = ["CHECK_DIVISIONS", "LINKER", "MAX_CHILDREN", "MERGE_FRAGMENTS", "MIN_TRACK_LENGTH", "SCORER", "WINDOW"]

WINDOW = 4  # frames held before a frame is committed (the transformer scores 4-frame windows)
LINKER = "greedy"  # allows divisions and keeps up live; "ilp" for the window optimum
SCORER = "distance"
MAX_CHILDREN = 2  # divisions on
# segmentation-error handling (benchmarks/bench_cells_seg.py measures each)
MIN_TRACK_LENGTH = 1  # tracks shorter than this (frames) with no mother and no daughters are dropped
CHECK_DIVISIONS = True  # divisions kept only when mother and daughters are consistent (cells/divisions.py)
MERGE_FRAGMENTS = True  # two pieces of one cell in a frame merged into one object (cells/fragments.py)
