"""Shared test fixtures: small simulated data, made once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGETRACK_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """Path into ../shared/data; skips the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (the ../shared/data folder is optional)")
    return path


@pytest.fixture(scope="session")
def small_movie() -> tuple[np.ndarray, pd.DataFrame]:
    """30 frames of 128x128 px, ~40 spots, SNR 10: (movie uint16 (T,H,W), truth)."""
    from edgetrack.runtime.simulate.spots import simulate_movie

    return simulate_movie(n_frames=30, shape=(128, 128), n_spots=40, snr=10.0, seed=3)


def make_walks(n_tracks: int = 20, n_frames: int = 40, step: float = 0.5, size: float = 200.0,
               seed: int = 0) -> pd.DataFrame:
    """Well-separated Brownian walks as a truth table frame, y, x, track_id (no simulator needed)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_tracks)))
    spacing = size / side
    start = np.array([[(i // side + 0.5) * spacing, (i % side + 0.5) * spacing] for i in range(n_tracks)])
    steps = rng.normal(0.0, step, size=(n_tracks, n_frames, 2))
    steps[:, 0] = 0.0
    pos = start[:, None, :] + np.cumsum(steps, axis=1)
    frame = np.tile(np.arange(n_frames), n_tracks)
    track = np.repeat(np.arange(n_tracks), n_frames)
    return pd.DataFrame({"frame": frame, "y": pos[..., 0].ravel(), "x": pos[..., 1].ravel(), "track_id": track})
