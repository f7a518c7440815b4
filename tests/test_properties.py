"""Property-based tests (hypothesis): invariants of the graph builder, the metrics and the tracker."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetrack.runtime.graph.candidates import build_graph
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.stream.pipeline import link_detections

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def detections(draw, max_n: int = 40, max_frame: int = 5, size: float = 30.0):
    n = draw(st.integers(0, max_n))
    frame = draw(st.lists(st.integers(0, max_frame), min_size=n, max_size=n))
    coords = st.floats(0.0, size, allow_nan=False, width=32)
    y = draw(st.lists(coords, min_size=n, max_size=n))
    x = draw(st.lists(coords, min_size=n, max_size=n))
    return np.array(frame, np.int64), np.array(y, np.float64), np.array(x, np.float64)


@SETTINGS
@given(detections(), st.floats(0.5, 12.0), st.integers(1, 3), st.randoms(use_true_random=False))
def test_graph_edges_are_exactly_the_pairs_within_reach(dets, max_distance, max_gap, rnd):
    frame, y, x = dets
    e = build_graph(frame, y, x, max_distance, max_gap)
    assert (e.dt >= 1).all() and (e.dt <= max_gap).all()  # never backwards, never sideways, never too far
    assert np.array_equal(frame[e.dst] - frame[e.src], e.dt)
    assert (e.dist <= max_distance + 1e-9).all()
    expected = {(i, j) for i in range(len(frame)) for j in range(len(frame))
                if 1 <= frame[j] - frame[i] <= max_gap and np.hypot(y[j] - y[i], x[j] - x[i]) <= max_distance}
    assert set(zip(e.src.tolist(), e.dst.tolist())) == expected
    perm = np.array(rnd.sample(range(len(frame)), len(frame)), np.int64)
    p = build_graph(frame[perm], y[perm], x[perm], max_distance, max_gap)
    assert set(zip(perm[p.src].tolist(), perm[p.dst].tolist())) == expected


@st.composite
def track_tables(draw):
    n_tracks = draw(st.integers(1, 6))
    rows = []
    for t in range(n_tracks):
        start = draw(st.integers(0, 5))
        length = draw(st.integers(1, 6))
        y0, x0 = 20.0 * t, draw(st.floats(0, 10))
        for k in range(length):
            if k and draw(st.booleans()) and draw(st.booleans()):
                continue  # a gap
            rows.append((start + k, y0 + 0.3 * k, x0, t))
    return pd.DataFrame(rows, columns=["frame", "y", "x", "track_id"])


@SETTINGS
@given(track_tables(), st.randoms(use_true_random=False))
def test_metrics_against_itself_and_row_order(tracks, rnd):
    m = link_metrics(tracks, tracks)
    if m["n_truth_links"]:
        assert m["f1"] == 1.0 and m["jaccard"] == 1.0
    assert m["perfect_tracks"] == 1.0 and m["rmse"] == 0.0
    shuffled = tracks.sample(frac=1.0, random_state=rnd.randint(0, 10**6)).reset_index(drop=True)
    m2 = link_metrics(shuffled, tracks)
    for key in ("precision", "recall", "f1", "tp", "perfect_tracks"):
        assert m[key] == m2[key] or (np.isnan(m[key]) and np.isnan(m2[key]))


@SETTINGS
@given(detections(max_n=30, size=20.0), st.sampled_from(["lap", "greedy", "flow"]), st.randoms(use_true_random=False))
def test_tracker_output_does_not_depend_on_row_order(dets, linker, rnd):
    frame, y, x = dets
    table = pd.DataFrame({"frame": frame, "y": y, "x": x}).drop_duplicates(["frame", "y", "x"])
    a = link_detections(table, linker=linker, max_distance=5.0)
    b = link_detections(table.sample(frac=1.0, random_state=rnd.randint(0, 10**6)), linker=linker, max_distance=5.0)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    # at most one parent per point: each (frame, track) holds one point
    assert not a.duplicated(["frame", "track_id"]).any()


def test_exact_distance_ties_are_broken_the_same_way_for_any_order():
    # a lattice moving by exactly half a spacing: every detection has two candidates at the same distance
    rows = [(t, 10.0 * i + 5.0 * (t % 2), 10.0 * j, ) for t in range(6) for i in range(5) for j in range(5)]
    table = pd.DataFrame(rows, columns=["frame", "y", "x"])
    for linker in ("lap", "greedy", "flow"):
        ref = link_detections(table, linker=linker, max_distance=6.0)
        for seed in range(5):
            other = link_detections(table.sample(frac=1.0, random_state=seed), linker=linker, max_distance=6.0)
            pd.testing.assert_frame_equal(ref.reset_index(drop=True), other.reset_index(drop=True))
