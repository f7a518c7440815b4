"""Candidate edges in 3-D: detections with ``z, y, x``, distances in physical units.

A link in 3-D is never shorter than its projection on the (y, x) plane, so the 2-D cell-list search of
:func:`~edgetrack.runtime.graph.candidates.edges_into_frame` with the same ``max_distance`` finds every
3-D candidate (and some more); the z distance then removes the extra ones. Coordinates are scaled to
one isotropic unit first: ``z_scale`` is the z voxel size over the (y, x) pixel size (3 for a 0.3 um
step with 0.1 um pixels), so that ``max_distance`` and the returned ``dist`` are in (y, x) px. ``dz``
(in z voxels) is returned beside the edges.
"""

from __future__ import annotations

import math

import numpy as np

from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.graph.candidates import CandidateEdges, edges_into_frame

__all__ = ["edges_into_frame_3d", "check_z_scale"]


def check_z_scale(z_scale: float) -> float:
    """``z_scale`` as a float, or ConfigError when it is not a finite number > 0."""
    try:
        value = float(z_scale)
    except (TypeError, ValueError):
        raise ConfigError(f"z_scale must be a number > 0 (z voxel size / pixel size), got {z_scale!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"z_scale must be a finite number > 0 (z voxel size / pixel size), got {z_scale!r}")
    return value


def edges_into_frame_3d(past_frame: np.ndarray, past_z: np.ndarray, past_y: np.ndarray, past_x: np.ndarray,
                        new_z: np.ndarray, new_y: np.ndarray, new_x: np.ndarray, new_frame: int,
                        max_distance: float, max_gap: int, *, z_scale: float = 1.0, past_offset: int = 0,
                        new_offset: int = 0) -> tuple[CandidateEdges, np.ndarray]:
    """Candidate edges from past detections into one new frame, in 3-D: (edges, dz).

    past_*: (p,) frame and ``z, y, x`` of the past detections (z in voxels, y and x in px); new_*: (q,) of
    the new frame's. ``dist`` of each edge is the 3-D distance in px, ``sqrt(dy^2 + dx^2 + (z_scale dz)^2)``,
    at most ``max_distance``; ``dz`` (float64, (e,)) is the z step in voxels. Order and ids as in
    :func:`~edgetrack.runtime.graph.candidates.edges_into_frame`.
    """
    scale = check_z_scale(z_scale)
    pz = np.asarray(past_z, np.float64)
    nz = np.asarray(new_z, np.float64)
    if pz.shape != np.shape(past_y) or nz.shape != np.shape(new_y):
        raise ConfigError("z, y and x must have one value per detection")
    flat = edges_into_frame(past_frame, past_y, past_x, new_y, new_x, new_frame, max_distance, max_gap,
                            past_offset=past_offset, new_offset=new_offset)
    if len(flat.src) == 0:
        return flat, np.zeros(0, np.float64)
    dz = nz[flat.dst - int(new_offset)] - pz[flat.src - int(past_offset)]
    dist = np.sqrt(flat.dist * flat.dist + (scale * dz) ** 2)
    keep = dist <= max_distance
    edges = CandidateEdges(flat.src[keep], flat.dst[keep], flat.dt[keep], flat.dy[keep], flat.dx[keep], dist[keep])
    return edges, dz[keep]
