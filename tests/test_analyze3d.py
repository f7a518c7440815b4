"""`analyze` on 3-D tracks: the 2-D motion model reads the three planar projections; z in voxels is scaled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import edgetrack
from edgetrack.runtime.errors import InputError


def _brownian_3d(K: float = 1.0, z_step_px: float = 3.0, n_tracks: int = 30, n: int = 120) -> pd.DataFrame:
    """Free 3-D walks, per-coordinate MSD 2 K t (px^2, frames); z written in voxels of z_step_px px."""
    rng = np.random.default_rng(0)
    parts = []
    for tid in range(n_tracks):
        p = 100 + np.cumsum(rng.normal(0, np.sqrt(2 * K), (n, 3)), axis=0)
        parts.append(pd.DataFrame({"track_id": tid, "frame": np.arange(n), "y": p[:, 0], "x": p[:, 1],
                                   "z": p[:, 2] / z_step_px}))
    return pd.concat(parts, ignore_index=True)


def test_alpha_and_K_in_3d_need_z_in_the_units_of_y_and_x():
    tracks = _brownian_3d()
    scaled = edgetrack.analyze(tracks, z_scale=3.0, extras=False)
    assert abs(float(scaled.frames["alpha"].median()) - 1.0) < 0.1
    assert abs(float(scaled.frames["K"].median()) - 1.0) < 0.15
    assert any("projections" in note for note in scaled.notes)
    raw = edgetrack.analyze(tracks, extras=False)  # z taken as px: the (z, x) and (y, z) planes move too little
    assert float(raw.frames["K"].median()) < 0.85 * float(scaled.frames["K"].median())


def test_z_scale_is_checked():
    tracks = _brownian_3d(n_tracks=2, n=20)
    with pytest.raises(InputError, match="z_scale"):
        edgetrack.analyze(tracks, z_scale=0.0, extras=False)
    with pytest.raises(InputError, match="z_scale goes with 3-D"):
        edgetrack.analyze(tracks.drop(columns="z"), z_scale=3.0, extras=False)
