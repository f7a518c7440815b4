"""Input and output: movies (TIFF, OME-TIFF, OME-Zarr, image folders, .npy), tables, label masks and
Cell Tracking Challenge folders, napari tracks, and atomic writes. The bottom layer: it imports no stage."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"open_movie": "readers", "Movie": "movie", "read_table": "tables", "write_table": "tables", "check_table": "tables", "open_masks": "masks", "write_ctc_result": "masks", "to_napari": "napari", "write_napari": "napari", "atomic_open": "atomic", "atomic_path": "atomic"})
