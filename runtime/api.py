"""The functions behind ``import edgetrack``: DataFrame in, DataFrame out, one call per job.

Coordinates are pixels (``y`` = row, ``x`` = column), ``frame`` a 0-based integer. trackpy's
column names are understood on input (``particle`` as the track id, ``ecc`` as the eccentricity),
and ``names="trackpy"`` writes them, so trackpy's own tools (``filter_stubs``, ``emsd``,
``compute_drift``) run on edgetrack's output.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.io.tables import from_trackpy_names, to_trackpy_names

__all__ = ["locate", "link", "track", "analyze", "volume_columns"]

Names = Literal["edgetrack", "trackpy"]


def _named(table: pd.DataFrame, names: Names) -> pd.DataFrame:
    if names == "edgetrack":
        return table
    if names == "trackpy":
        return to_trackpy_names(table)
    raise ConfigError(f"names must be 'edgetrack' or 'trackpy', got {names!r}")


def _detect_config(diameter: float | None, options: dict[str, Any]):
    """The detector's configuration; a dict with ``psf_sigma="auto"`` when that is to be measured."""
    from edgetrack.runtime.detect.config import DetectConfig
    from edgetrack.runtime.detect.psf import AUTO, split_auto

    if diameter is not None:
        if "psf_sigma" in options:
            raise ConfigError("give diameter or psf_sigma, not both")
        if not (isinstance(diameter, (int, float, np.integer, np.floating)) and np.isfinite(diameter) and diameter > 0):
            raise ConfigError(f"diameter must be a positive number of px, got {diameter!r}")
        options = dict(options, psf_sigma=float(diameter) / 4.0)  # a spot of diameter d spans +-2 sigma
    rest, auto = split_auto(options)
    cfg = DetectConfig.from_dict(rest)  # the other options are checked here, "auto" or not
    return dict(cfg.to_dict(), psf_sigma=AUTO) if auto else cfg


def locate(image: np.ndarray, diameter: float | None = None, *, invert: bool = False,
           names: Names = "edgetrack", **detect_options: Any) -> pd.DataFrame:
    """Find the spots of one frame (H, W) or of every frame of a stack (T, H, W).

    diameter: spot diameter in px, as trackpy's ``locate`` takes it (sets ``psf_sigma = diameter / 4``);
    or give ``psf_sigma`` (px, or ``"auto"``: measured on the first frame) and the other :class:`~edgetrack.runtime.detect.config.DetectConfig`
    options. invert: dark spots on a bright background. Returns one row per spot: ``frame, y, x``
    (px, sub-pixel) and ``mass, size, signal, eccentricity``.
    """
    from edgetrack.runtime.detect.config import DetectConfig
    from edgetrack.runtime.detect.psf import estimate_psf_sigma, settled_sigma, split_auto
    from edgetrack.runtime.detect.spots import detect_movie, detect_spots

    cfg = _detect_config(diameter, detect_options)
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"image must be one frame (H, W) or a stack (T, H, W), got shape {arr.shape}")
    if invert:
        arr = arr.max() - arr if arr.size else arr
    if isinstance(cfg, dict):  # psf_sigma="auto": measured on the first frame
        first = arr if arr.ndim == 2 else arr[0]
        cfg = DetectConfig.from_dict(split_auto(cfg)[0])
        cfg = cfg.replace(psf_sigma=settled_sigma(estimate_psf_sigma(first, cfg).sigma, cfg.psf_sigma))
    table = detect_spots(arr, cfg) if arr.ndim == 2 else detect_movie(arr, cfg)
    return _named(table, names)


def link(detections: pd.DataFrame, search_range: float | None = None, *, memory: int | None = None,
         names: Names = "edgetrack", **options: Any) -> pd.DataFrame:
    """Link a detection table (``frame, y, x`` [+ numeric features]) into tracks.

    ``edgetrack.link(df, 5)`` works as ``trackpy.link(df, 5)``: search_range is the largest step in px
    (``max_distance``) and memory the number of frames a spot may vanish (``max_gap = memory + 1``).
    Other options are those of :class:`~edgetrack.runtime.stream.config.TrackerConfig` (``linker``,
    ``scorer``, ...). Returns ``frame, y, x, track_id`` and the features (``particle`` with
    ``names="trackpy"``).
    """
    from edgetrack.runtime.stream.pipeline import link_detections

    if search_range is not None:
        if "max_distance" in options:
            raise ConfigError("give search_range or max_distance, not both")
        options["max_distance"] = search_range
    if memory is not None:
        if "max_gap" in options:
            raise ConfigError("give memory or max_gap, not both")
        if not (isinstance(memory, (int, np.integer)) and memory >= 0):
            raise ConfigError(f"memory must be an integer >= 0 frames, got {memory!r}")
        options["max_gap"] = int(memory) + 1
    table = from_trackpy_names(detections, source="detections") if isinstance(detections, pd.DataFrame) else detections
    if isinstance(table, pd.DataFrame) and "track_id" in table.columns:
        table = table.drop(columns=["track_id"])  # an earlier linking's ids are not an input
    return _named(link_detections(table, **options), names)


def track(movie: str | os.PathLike[str] | np.ndarray | Iterable[np.ndarray], *, diameter: float | None = None,
          names: Names = "edgetrack", detect: dict[str, Any] | None = None, channel: int | None = None,
          z: int | None = None, scene: int | str | None = None, ndim: int = 2,
          voxel_size: Sequence[float] | None = None, stitch: bool = False, **options: Any) -> pd.DataFrame:
    """Detect and link every frame of a movie: a path (TIFF, OME-TIFF, OME-Zarr, image folder, .npy),
    a (T, H, W) array or an iterable of (H, W) frames. Returns the tracks (``frame, y, x, track_id`` +
    spot features), as the streaming tracker commits them.

    diameter (px) or ``detect={"psf_sigma": ...}`` set the detector; without either, 2-D spots are detected
    with the width measured on the first frames (``psf_sigma="auto"``, :mod:`~edgetrack.runtime.detect.psf`;
    z-stacks take 1.5 px); other options are those of
    :class:`~edgetrack.runtime.stream.config.TrackerConfig` (``max_distance`` px, ``max_gap`` frames,
    ``linker``, ``invert``, ...). channel / z: the plane of a multi-channel or z-stack file (such files
    are refused without them); scene: the scene (index or name) of a multi-scene vendor file (.nd2, .czi,
    .lif, read through bioio).

    stitch: afterwards join track fragments whose jump fits their own motion
    (:func:`~edgetrack.runtime.stream.stitch.stitch_tracks`: a fast particle's step beyond ``max_distance``
    or a hole longer than ``max_gap``; 2-D only).

    ndim=3: the movie is z-stacks over time, a (T, Z, Y, X) array or a TIFF / OME-TIFF with a Z axis
    (:func:`~edgetrack.runtime.io.stacks.open_stacks`); returns ``frame, z, y, x, track_id`` + features (z in
    voxels, y, x in px) and ``z_um, y_um, x_um`` when the voxel size is known. voxel_size: (z, y, x) um,
    else the file's (else isotropic voxels are assumed: z_scale 1); ``max_distance`` is in (y, x) px with a
    z step weighted by the voxel anisotropy. diameter: (z, y, x) voxels, or one lateral value.
    """
    if ndim == 3:
        if stitch:
            raise ConfigError("stitch is for 2-D spots (not ndim=3)")
        if z is not None or scene is not None:
            raise ConfigError("z and scene choose a 2-D plane; with ndim=3 the whole stack is tracked")
        return _track_stacks(movie, diameter, dict(detect or {}), channel, voxel_size, names, options)
    if ndim != 2:
        raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")
    if voxel_size is not None:
        raise ConfigError("voxel_size goes with ndim=3")
    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.stream.pipeline import track_movie

    detect = dict(detect or {})
    if diameter is None:
        detect.setdefault("psf_sigma", "auto")
    cfg = _detect_config(diameter, detect)
    frames = open_movie(movie, channel=channel, z=z, scene=scene) if isinstance(movie, (str, os.PathLike)) else movie
    if isinstance(frames, np.ndarray) and frames.ndim != 3:
        raise InputError(f"movie must be a (T, H, W) array, got shape {frames.shape}")
    tracks = track_movie(frames, detect=cfg, **options)
    if stitch:
        from edgetrack.runtime.stream.stitch import stitch_tracks

        tracks = stitch_tracks(tracks, tracker_max_distance=options.get("max_distance"),
                               tracker_max_gap=options.get("max_gap")).drop(columns="stitched")
    return _named(tracks, names)


def _voxel(voxel_size: Sequence[float] | None) -> tuple[float, float, float] | None:
    if voxel_size is None:
        return None
    try:
        voxel = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        raise ConfigError(f"voxel_size must be three numbers (z, y, x) in um, got {voxel_size!r}") from None
    if len(voxel) != 3 or not all(np.isfinite(v) and v > 0 for v in voxel):
        raise ConfigError(f"voxel_size must be three numbers (z, y, x) > 0 in um, got {voxel_size!r}")
    if voxel[1] != voxel[2]:
        raise ConfigError(f"voxel_size: y and x must be equal (square pixels), got {voxel[1]:g} and {voxel[2]:g} um")
    return voxel


def _track_stacks(movie, diameter, detect: dict[str, Any], channel, voxel_size, names: Names,
                  options: dict[str, Any]) -> pd.DataFrame:
    """``track(..., ndim=3)``: z-stacks over time (see :func:`track`)."""
    from edgetrack.runtime.io.stacks import open_stacks
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    stacks = open_stacks(movie, channel=channel) if isinstance(movie, (str, os.PathLike, np.ndarray)) else movie
    voxel = _voxel(voxel_size) or getattr(stacks, "voxel_size_um", None)
    if voxel is not None and "z_scale" not in options:
        options = dict(options, z_scale=voxel[0] / voxel[2])
    if diameter is not None:
        if "psf_sigma" in detect:
            raise ConfigError("give diameter or psf_sigma, not both")
        d = np.atleast_1d(np.asarray(diameter, np.float64))
        if d.size == 1:
            d = np.array([d[0] / float(options.get("z_scale", 1.0)), d[0], d[0]])
        if d.size != 3 or not np.all(np.isfinite(d) & (d > 0)):
            raise ConfigError(f"diameter must be one lateral value or (z, y, x) voxels > 0, got {diameter!r}")
        detect = dict(detect, psf_sigma=tuple(float(v) / 4.0 for v in d))
    tracker = Tracker(ndim=3, detect=detect, **options)
    for _ in track_frames(tracker, stacks):
        pass
    return _named(volume_columns(tracker.finish(), voxel), names)


def volume_columns(tracks: pd.DataFrame, voxel_size_um: Sequence[float] | None = None) -> pd.DataFrame:
    """A 3-D tracks table in the order ``frame, z, y, x, track_id, ...``, plus ``z_um, y_um, x_um`` when
    the voxel size (z, y, x) um is known."""
    first = [c for c in ("frame", "z", "y", "x", "track_id", "parent_track_id") if c in tracks.columns]
    out = tracks[first + [c for c in tracks.columns if c not in first]].copy()
    if voxel_size_um is not None:
        for axis, size in zip("zyx", voxel_size_um):
            out[f"{axis}_um"] = out[axis] * float(size)
    return out


def analyze(tracks: pd.DataFrame, **options: Any):
    """Motion characterisation of a track table (``track_id`` or trackpy's ``particle``, ``frame, y, x``).

    Returns an :class:`~edgetrack.runtime.motion.analyze.AnalyzeResult` (``frames``, ``segments``,
    ``ensemble`` DataFrames; per-frame alpha, K in px^2/frame^alpha, state, change points). Options as in
    :func:`~edgetrack.runtime.motion.analyze.analyze_tracks` (``pixel_size`` um, ``frame_interval`` s, ...).
    """
    from edgetrack.runtime.motion.analyze import analyze_tracks

    return analyze_tracks(tracks, **options)
