"""Particles chosen in advance (the 2nd AnDi Challenge's "VIPs"): find their tracks and report on them alone.

A VIP image is a label image of one frame (normally the movie's first): every labelled region marks
one particle of interest, its label its index. :func:`read_vip_labels` turns it into one row per
particle (``vip, y, x``: the region's centroid in px). Which pixel value is the background is read
from the image: the most common value (0 in a usual label image; 255 in the challenge's uint8 VIP
frame, where label ``i`` marks trajectory ``i`` and 0 is a particle). :func:`match_vips` pairs each
particle with the track that has a point in that frame nearest to it (one track per particle,
optimal assignment, within ``max_distance`` px); :func:`vip_tracks` keeps those tracks with the
particle's index as ``track_id``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.motion.analyze import AnalyzeResult, andi_rows, fill_values

__all__ = ["VIP_MATCH_COLUMNS", "read_vip_labels", "vip_labels_from_image", "match_vips", "vip_tracks",
           "vip_andi_rows"]

#: Columns of :func:`match_vips`'s table.
VIP_MATCH_COLUMNS = ("vip", "y", "x", "track_id", "distance", "n_points")


def vip_labels_from_image(image: np.ndarray, source: str = "VIP image") -> pd.DataFrame:
    """One row per labelled particle of a 2-D label image: ``vip`` (the label, int), ``y, x`` (px,
    the centroid of its pixels), ``n_pixels``. The most common pixel value is the background."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(f"{source}: a VIP image must be one 2-D label frame, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"{source}: a VIP image must hold whole-number labels")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise InputError(f"{source}: a VIP image must hold integer labels, got dtype {arr.dtype}")
    values, counts = np.unique(arr.ravel(), return_counts=True)
    if len(values) < 2:
        raise InputError(f"{source}: no particle is labelled (every pixel is {values[0] if len(values) else '-'})")
    background = values[np.argmax(counts)]
    flat = arr.ravel().astype(np.int64)
    keep = flat != background
    labels = flat[keep]
    rows, cols = np.divmod(np.flatnonzero(keep), arr.shape[1])
    uniq, inverse = np.unique(labels, return_inverse=True)
    n = np.bincount(inverse).astype(np.float64)
    y = np.bincount(inverse, weights=rows) / n
    x = np.bincount(inverse, weights=cols) / n
    return pd.DataFrame({"vip": uniq.astype(np.int64), "y": y, "x": x, "n_pixels": n.astype(np.int64)})


def read_vip_labels(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a VIP label image (TIFF, PNG, ...; the first plane of a stack) as :func:`vip_labels_from_image`."""
    from edgetrack.runtime.io.masks import open_masks

    try:
        masks = open_masks(path)
    except InputError as exc:
        raise InputError(f"--vip {os.fspath(path)}: {exc}") from exc
    if len(masks) == 0:
        raise InputError(f"--vip {os.fspath(path)}: the image has no frame")
    return vip_labels_from_image(np.asarray(masks[0]), f"--vip {os.fspath(path)}")


def match_vips(tracks: pd.DataFrame, vips: pd.DataFrame, *, frame: int | None = None,
               max_distance: float = 3.0) -> pd.DataFrame:
    """Pair every particle of ``vips`` (``vip, y, x``) with a track of ``tracks`` (``track_id, frame,
    y, x``) by its point in ``frame`` (default: the table's first frame): one track per particle and one
    particle per track, the assignment with the least total distance among pairs within
    ``max_distance`` px. Returns ``vip, y, x, track_id, distance, n_points`` (one row per particle;
    ``track_id`` -1 and distance NaN where no track is near enough)."""
    from scipy.optimize import linear_sum_assignment

    if not (math.isfinite(max_distance) and max_distance > 0):
        raise InputError(f"the VIP matching distance must be a finite number > 0 px, got {max_distance!r}")
    if frame is None:
        frame = int(tracks["frame"].min()) if len(tracks) else 0
    here = tracks[tracks["frame"] == frame]
    ids = here["track_id"].to_numpy()
    sizes = tracks.groupby("track_id").size()
    out = pd.DataFrame({"vip": vips["vip"].to_numpy(), "y": vips["y"].to_numpy(), "x": vips["x"].to_numpy(),
                        "track_id": np.full(len(vips), -1, dtype=np.int64), "distance": np.nan,
                        "n_points": np.zeros(len(vips), dtype=np.int64)})
    if len(here) == 0 or len(vips) == 0:
        return out
    d = np.hypot(vips["y"].to_numpy()[:, None] - here["y"].to_numpy()[None, :],
                 vips["x"].to_numpy()[:, None] - here["x"].to_numpy()[None, :])
    cost = np.where(d <= max_distance, d, 1e9)
    rows, cols = linear_sum_assignment(cost)
    good = d[rows, cols] <= max_distance
    rows, cols = rows[good], cols[good]
    out.loc[rows, "track_id"] = ids[cols].astype(np.int64)
    out.loc[rows, "distance"] = d[rows, cols]
    out.loc[rows, "n_points"] = sizes.reindex(ids[cols]).to_numpy().astype(np.int64)
    return out


def vip_tracks(tracks: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    """The matched tracks alone, with the particle's index as ``track_id`` (the other columns kept)."""
    found = matches[matches["track_id"] >= 0]
    rename = dict(zip(found["track_id"].to_numpy(), found["vip"].to_numpy()))
    kept = tracks[tracks["track_id"].isin(list(rename))].copy()
    kept["track_id"] = kept["track_id"].map(rename).astype(np.int64)
    return kept.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def vip_andi_rows(result: AnalyzeResult, matches: pd.DataFrame, n_frames: int) -> list[list[float]]:
    """The challenge's trajectory lines for the particles of ``matches`` alone, in the order of their index.

    ``result`` is the analysis of every track (so that the ensemble sees them all); a matched particle
    gets its track's line with its own index first. A particle with no track gets one segment with the
    experiment's frame-weighted median alpha and K, state 2 (free) and the movie's ``n_frames`` as its
    end, so that the scorer finds a line for every particle it asks for."""
    by_track = {row[0]: row for row in andi_rows(result)}
    alpha_fill, K_fill = fill_values(result)
    rows = []
    for vip, track in sorted(zip(matches["vip"].to_numpy(), matches["track_id"].to_numpy())):
        line = by_track.get(float(track)) if track >= 0 else None
        if line is None:
            rows.append([float(vip), K_fill, alpha_fill, 2.0, float(n_frames)])
        else:
            rows.append([float(vip), *line[1:]])
    return rows
