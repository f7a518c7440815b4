"""3-D candidate edges: every pair within max_distance in physical units, none beyond."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.graph.volume import edges_into_frame_3d


def _brute(pz, py, px, pf, nz, ny, nx, t, max_distance, max_gap, z_scale):
    pairs = {}
    for i in range(len(py)):
        if not 1 <= t - pf[i] <= max_gap:
            continue
        for j in range(len(ny)):
            d = np.sqrt((ny[j] - py[i]) ** 2 + (nx[j] - px[i]) ** 2 + (z_scale * (nz[j] - pz[i])) ** 2)
            if d <= max_distance:
                pairs[(i, j)] = d
    return pairs


@pytest.mark.parametrize("z_scale", [1.0, 3.0])
def test_edges_match_brute_force(z_scale):
    rng = np.random.default_rng(3)
    p, q = 300, 250
    pf = rng.integers(7, 10, p)
    pz, py, px = rng.uniform(0, 10, p), rng.uniform(0, 60, p), rng.uniform(0, 60, p)
    nz, ny, nx = rng.uniform(0, 10, q), rng.uniform(0, 60, q), rng.uniform(0, 60, q)
    edges, dz = edges_into_frame_3d(pf, pz, py, px, nz, ny, nx, 10, 6.0, 2, z_scale=z_scale, past_offset=5,
                                    new_offset=1000)
    got = {(int(s) - 5, int(d) - 1000): float(x) for s, d, x in zip(edges.src, edges.dst, edges.dist)}
    want = _brute(pz, py, px, pf, nz, ny, nx, 10, 6.0, 2, z_scale)
    assert got.keys() == want.keys() and len(got) > 50
    for key, d in want.items():
        assert got[key] == pytest.approx(d)
    np.testing.assert_allclose(dz, nz[edges.dst - 1000] - pz[edges.src - 5])
    assert np.all(np.diff(edges.dst) >= 0), "ordered by destination"


def test_z_far_apart_is_no_candidate_and_bad_scale_is_an_error():
    edges, _ = edges_into_frame_3d(np.array([0]), np.array([0.0]), np.array([5.0]), np.array([5.0]),
                                   np.array([3.0]), np.array([5.0]), np.array([5.0]), 1, 5.0, 1, z_scale=2.0)
    assert len(edges.src) == 0  # 3 z voxels of 2 px each: 6 px > 5
    with pytest.raises(ConfigError, match="z_scale"):
        edges_into_frame_3d(np.array([0]), np.array([0.0]), np.array([5.0]), np.array([5.0]),
                            np.array([0.0]), np.array([5.0]), np.array([5.0]), 1, 5.0, 1, z_scale=0)
