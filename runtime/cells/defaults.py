"""The cell tracker's defaults (they differ from the spot tracker's: cells divide, and a learned scorer
needs a longer window); the command line reads them from here."""

from __future__ import annotations

__all__ = ["WINDOW", "LINKER", "SCORER", "MAX_CHILDREN"]

WINDOW = 4  # frames held before a frame is committed (the transformer scores 4-frame windows)
LINKER = "greedy"  # allows divisions and keeps up live; "ilp" for the window optimum
SCORER = "distance"
MAX_CHILDREN = 2  # divisions on
