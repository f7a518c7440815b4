"""Candidate graph: brute-force equality, streaming == offline, permutation invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.graph.candidates import (
    CandidateEdges,
    GraphConfig,
    build_graph,
    concat_edges,
    edges_into_frame,
    empty_edges,
)


def brute_force(frame, y, x, max_distance, max_gap):
    """O(N^2) reference: set of (dst, src) with 1 <= dt <= max_gap and dist <= max_distance (inclusive)."""
    dy = y[None, :] - y[:, None]  # [src, dst] = y[dst] - y[src]
    dx = x[None, :] - x[:, None]
    dist = np.sqrt(dy * dy + dx * dx)
    dt = frame[None, :] - frame[:, None]
    s, d = np.nonzero((dist <= max_distance) & (dt >= 1) & (dt <= max_gap))
    return sorted(zip(d.tolist(), s.tolist()))


def as_pairs(e: CandidateEdges):
    return list(zip(e.dst.tolist(), e.src.tolist()))


def check_fields(e: CandidateEdges, frame, y, x, max_distance, max_gap):
    for k, arr in enumerate(e):
        assert arr.dtype == (np.int64 if k < 3 else np.float64)
        assert arr.shape == e.src.shape
    np.testing.assert_array_equal(e.dt, frame[e.dst] - frame[e.src])
    np.testing.assert_array_equal(e.dy, y[e.dst] - y[e.src])
    np.testing.assert_array_equal(e.dx, x[e.dst] - x[e.src])
    np.testing.assert_allclose(e.dist, np.hypot(e.dy, e.dx), rtol=1e-15)
    assert np.all((e.dt >= 1) & (e.dt <= max_gap))
    assert np.all(e.dist <= max_distance)


@pytest.mark.parametrize("max_gap", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_brute_force_random(max_gap, seed):
    rng = np.random.default_rng(seed)
    n = 1500
    frame = rng.integers(0, 7, n)
    y = rng.uniform(-20, 80, n)
    x = rng.uniform(0, 60, n)
    e = build_graph(frame, y, x, 6.0, max_gap)
    ref = brute_force(frame, y, x, 6.0, max_gap)
    assert len(ref) > 1000
    assert as_pairs(e) == ref  # same set, and ordered by (dst, src)
    check_fields(e, frame, y, x, 6.0, max_gap)


@pytest.mark.parametrize("max_gap", [1, 2, 3])
def test_points_exactly_at_max_distance_are_included(max_gap):
    # Integer grid: many pairs at exactly 5 px (0-5, 3-4-5); the bound is inclusive (<=).
    rng = np.random.default_rng(3)
    n = 600
    frame = rng.integers(0, 5, n)
    y = rng.integers(0, 25, n).astype(float)
    x = rng.integers(0, 25, n).astype(float)
    e = build_graph(frame, y, x, 5.0, max_gap)
    assert as_pairs(e) == brute_force(frame, y, x, 5.0, max_gap)
    assert np.count_nonzero(e.dist == 5.0) > 50
    check_fields(e, frame, y, x, 5.0, max_gap)


def test_hand_example_boundary():
    frame = np.array([0, 1, 1, 1, 2])
    y = np.array([0.0, 6.0, 0.0, 6.0000001, 0.0])
    x = np.array([0.0, 0.0, -6.0, 0.0, 3.0])
    e = build_graph(frame, y, x, 6.0, 1)
    # 0->1 and 0->2 at exactly 6 px, 0->3 just beyond; frame 2 -> from 1 (dist ~6.7, no), 2 (9, no), 3 (no)
    assert as_pairs(e) == [(1, 0), (2, 0)]
    e2 = build_graph(frame, y, x, 6.0, 2)
    assert as_pairs(e2) == [(1, 0), (2, 0), (4, 0)]
    np.testing.assert_array_equal(e2.dt, [1, 1, 2])


@pytest.mark.parametrize("max_gap", [1, 3])
def test_incremental_equals_offline(max_gap):
    rng = np.random.default_rng(5)
    n_frames, per = 8, 150
    frame = np.repeat(np.arange(n_frames), per)
    y = rng.uniform(0, 60, frame.size)
    x = rng.uniform(0, 60, frame.size)
    parts = []
    for f in range(n_frames):
        lo = max(0, f - max_gap - 1) * per  # past window includes one frame too old: it must be ignored
        new = slice(f * per, (f + 1) * per)
        parts.append(
            edges_into_frame(frame[lo:f * per], y[lo:f * per], x[lo:f * per], y[new], x[new], f,
                             6.0, max_gap, past_offset=lo, new_offset=f * per)
        )
    inc = concat_edges(parts)
    off = build_graph(frame, y, x, 6.0, max_gap)
    for a, b in zip(inc, off):
        np.testing.assert_array_equal(a, b)


def test_edges_into_frame_ignores_future_and_same_frame_past():
    past_frame = np.array([3, 4, 5, 2])
    past_y = np.zeros(4)
    past_x = np.array([0.0, 1.0, 2.0, 3.0])
    e = edges_into_frame(past_frame, past_y, past_x, np.array([0.0]), np.array([0.5]), 4, 6.0, 2,
                         past_offset=10, new_offset=100)
    assert as_pairs(e) == [(100, 10), (100, 13)]
    np.testing.assert_array_equal(e.dt, [1, 2])


def test_permuted_input_gives_same_edges():
    rng = np.random.default_rng(7)
    n = 800
    frame = rng.integers(0, 5, n)
    y = rng.uniform(0, 50, n)
    x = rng.uniform(0, 50, n)
    perm = rng.permutation(n)
    e = build_graph(frame, y, x, 6.0, 2)
    p = build_graph(frame[perm], y[perm], x[perm], 6.0, 2)
    # edge (perm[s], perm[d]) in original indices
    mapped = sorted(zip(perm[p.dst].tolist(), perm[p.src].tolist()))
    assert mapped == as_pairs(e)
    assert as_pairs(p) == sorted(as_pairs(p))


def test_empty_and_singletons():
    e = build_graph(np.zeros(0, int), np.zeros(0), np.zeros(0), 6.0, 2)
    assert all(len(a) == 0 for a in e)
    e = build_graph(np.array([0, 0]), np.array([0.0, 1.0]), np.array([0.0, 0.0]), 6.0, 2)
    assert len(e.src) == 0  # same frame: no edge
    e = edges_into_frame(np.zeros(0, int), np.zeros(0), np.zeros(0), np.ones(3), np.ones(3), 5, 6.0, 1)
    assert len(e.src) == 0
    assert all(len(a) == 0 for a in empty_edges())
    assert all(len(a) == 0 for a in concat_edges([]))


def test_far_apart_coordinates_and_sparse_frames():
    frame = np.array([0, 1000, 1001, 5])
    y = np.array([1e7, 1e7 + 3.0, -1e7, 0.0])
    x = np.array([0.0, 4.0, 0.0, 0.0])
    e = build_graph(frame, y, x, 6.0, 1)
    assert as_pairs(e) == []
    frame = np.array([999, 1000, 1001, 5])
    e = build_graph(frame, y, x, 6.0, 1)
    assert as_pairs(e) == [(1, 0)]
    assert e.dist[0] == 5.0


def test_bad_input():
    f = np.array([0, 1])
    y = np.array([0.0, 1.0])
    with pytest.raises(InputError, match="lengths differ"):
        build_graph(f, y, np.zeros(3), 6.0, 1)
    with pytest.raises(InputError, match="NaN"):
        build_graph(f, np.array([0.0, np.nan]), y, 6.0, 1)
    with pytest.raises(InputError, match="integer"):
        build_graph(np.array([0.0, 1.5]), y, y, 6.0, 1)
    with pytest.raises(InputError, match="1-D"):
        build_graph(f, y.reshape(2, 1), y, 6.0, 1)
    with pytest.raises(InputError, match="span"):
        build_graph(f, np.array([-1e300, 1e300]), np.array([-1e300, 1e300]), 6.0, 1)
    for md in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ConfigError, match="max_distance"):
            build_graph(f, y, y, md, 1)
    for g in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="max_gap"):
            build_graph(f, y, y, 6.0, g)
    with pytest.raises(InputError, match="new_frame"):
        edges_into_frame(f, y, y, y, y, 1.5, 6.0, 1)
    with pytest.raises(InputError, match="new_x"):
        edges_into_frame(f, y, y, y, np.zeros(5), 2, 6.0, 1)


def test_graph_config():
    cfg = GraphConfig.from_dict({"max_distance": 4.0})
    assert cfg.max_gap == 2 and cfg.max_distance == 4.0
    with pytest.raises(ConfigError, match="unknown"):
        GraphConfig.from_dict({"max_dist": 4.0})
    with pytest.raises(ConfigError, match="max_gap"):
        GraphConfig(max_gap=0)
