"""edgetrack: live tracking and motion characterisation of moving objects in microscopy movies.

The user's door. Every name loads its module on first use, so ``import edgetrack`` is instant and
OR-Tools, ONNX Runtime, Numba and matplotlib load only when a feature needs them.

Coordinates are pixels (``y`` = row, ``x`` = column), ``frame`` is a 0-based integer; tables are
pandas DataFrames.

locate(image, diameter=None, **detect_options)
    Spots of one frame (H, W) or a stack (T, H, W): ``frame, y, x, mass, size, signal, eccentricity``.
link(detections, search_range=None, memory=None, **options)
    A detection table (``frame, y, x``) linked into tracks (``track_id``); as ``trackpy.link(df, 5)``.
track(movie, diameter=None, **options)
    A movie (path, (T, H, W) array or iterable of frames) detected and linked: the tracks.
Tracker(max_distance=6.0, max_gap=2, window=3, linker="lap", ...)
    The streaming tracker: ``push(frame)`` returns what became final, ``finish()`` the tracks.
track_cells(masks, images=None, linker="greedy", divisions=True, ...)
    Cells from label masks (T, H, W), with divisions (``track_id, parent_track_id``).
analyze(tracks, pixel_size=None, frame_interval=None, ...)
    Per-frame alpha, K, diffusive state and change points, segments and the ensemble.
open_movie(path)
    A movie opened for lazy frame-by-frame reading (TIFF, OME-TIFF, OME-Zarr, image folders, .npy).
batch(inputs, out, analyze=False, workers=None, scheduler=None, ...)
    Many movies on Dask distributed (the dask extra), resumable: ``edgetrack batch`` in Python.
show_info()
    What this installation has and can do (the same report as ``edgetrack doctor``).
__version__
    This edgetrack's version.

``names="trackpy"`` (locate, link, track) writes trackpy's column names (``particle``, ``ecc``); trackpy's
names are accepted on input everywhere. The command line is ``edgetrack --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgetrack.runtime import __version__
from edgetrack.runtime.lazy import attach

__getattr__, __dir__, _names = attach(__name__, {
    "locate": "runtime.api",
    "link": "runtime.api",
    "track": "runtime.api",
    "analyze": "runtime.api",
    "Tracker": "runtime.stream.tracker",
    "track_cells": "runtime.cells.tracker",
    "open_movie": "runtime.io.readers",
    "show_info": "runtime.info",
    "batch": "runtime.batch.run",
})
__all__ = [*_names, "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from edgetrack.runtime.api import analyze, link, locate, track
    from edgetrack.runtime.cells.tracker import track_cells
    from edgetrack.runtime.batch.run import batch
    from edgetrack.runtime.info import show_info
    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.stream.tracker import Tracker
