"""The streaming Tracker: correctness, latency, streaming == offline, bounded memory, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_walks
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.stream.tracker import Tracker
from edgetrack.runtime.stream.config import TrackerConfig
from edgetrack.runtime.stream.pipeline import link_detections, track_movie


def _links(tracks: pd.DataFrame) -> set[tuple]:
    """Links as pairs of (frame, rounded y, rounded x) points: independent of track ids."""
    out = set()
    for _, g in tracks.sort_values("frame").groupby("track_id"):
        pts = list(zip(g["frame"], g["y"].round(6), g["x"].round(6)))
        out.update(zip(pts[:-1], pts[1:]))
    return out


@pytest.mark.parametrize("linker", ["greedy", "lap"])
def test_separated_walks_are_tracked_perfectly(linker):
    truth = make_walks(n_tracks=25, n_frames=30, step=0.6)
    tracks = link_detections(truth[["frame", "y", "x"]], linker=linker, max_distance=5.0)
    assert len(tracks) == len(truth)
    assert _links(tracks) == _links(truth)
    assert tracks["track_id"].nunique() == 25


@pytest.mark.parametrize("linker", ["greedy", "lap"])
def test_gap_is_closed_only_within_max_gap(linker):
    truth = make_walks(n_tracks=4, n_frames=10, step=0.3)
    holed = truth[~((truth.track_id == 1) & (truth.frame == 5))]
    bridged = link_detections(holed[["frame", "y", "x"]], linker=linker, max_gap=2)
    assert bridged.track_id.nunique() == 4
    split = link_detections(holed[["frame", "y", "x"]], linker=linker, max_gap=1)
    assert split.track_id.nunique() == 5


def test_crossing_prefers_the_likelier_assignment():
    # two particles pass each other; frame-to-frame LAP keeps them on their straight paths
    frames = []
    for t in range(6):
        frames.append((t, 10.0, 10.0 + 1.5 * t, 0))
        frames.append((t, 12.0, 17.5 - 1.5 * t, 1))
    truth = pd.DataFrame(frames, columns=["frame", "y", "x", "track_id"])
    tracks = link_detections(truth[["frame", "y", "x"]], linker="lap", max_distance=3.0)
    assert _links(tracks) == _links(truth)


def test_latency_is_window_minus_one():
    truth = make_walks(n_tracks=5, n_frames=12)
    tracker = Tracker(window=4, keep_results=False)
    committed = []
    for t, g in truth.groupby("frame"):
        updates = tracker.push(g[["y", "x"]])
        committed.append([u.frame for u in updates])
    assert committed[:3] == [[], [], []]
    assert all(c == [t - 3] for t, c in enumerate(committed) if t >= 3)
    rest = [u.frame for u in tracker.flush()]
    assert rest == [9, 10, 11]


def test_streaming_updates_equal_final_tracks_and_never_change():
    truth = make_walks(n_tracks=30, n_frames=25, step=1.0, size=120.0, seed=5)
    tracker = Tracker(window=3, max_distance=4.0)
    seen = []
    for t, g in truth.groupby("frame"):
        seen.extend(u.to_dataframe() for u in tracker.push(g[["y", "x"]]))
    seen.extend(u.to_dataframe() for u in tracker.flush())
    streamed = pd.concat(seen, ignore_index=True)
    final = tracker.results()
    pd.testing.assert_frame_equal(streamed, final)


@pytest.mark.parametrize("linker", ["greedy", "lap"])
def test_row_order_does_not_change_tracks(linker):
    truth = make_walks(n_tracks=40, n_frames=15, step=1.2, size=80.0, seed=2)
    dets = truth[["frame", "y", "x"]]
    a = link_detections(dets, linker=linker)
    shuffled = dets.sample(frac=1.0, random_state=7)
    b = link_detections(shuffled, linker=linker)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_ids_are_per_instance():
    truth = make_walks(n_tracks=3, n_frames=5)
    a = link_detections(truth[["frame", "y", "x"]])
    b = link_detections(truth[["frame", "y", "x"]])
    assert sorted(a.track_id.unique()) == sorted(b.track_id.unique()) == [0, 1, 2]


def test_window_memory_is_bounded_and_results_optional():
    rng = np.random.default_rng(0)
    tracker = Tracker(window=3, max_gap=2, keep_results=False)
    n_points = 0
    for t in range(600):
        dets = pd.DataFrame({"y": rng.uniform(0, 100, 20), "x": rng.uniform(0, 100, 20)})
        n_points += sum(len(u) for u in tracker.push(dets))
        assert len(tracker._blocks) <= 3 + 2
    final = tracker.flush()
    n_points += sum(len(u) for u in final)
    assert n_points == 600 * 20
    assert tracker._results == []
    # finish() after flush() returns those same final frames again, not an error and not nothing
    last = tracker.finish()
    assert len(last) == sum(len(u) for u in final) and set(last["frame"]) == {u.frame for u in final}
    assert [u.frame for u in tracker.flush()] == [u.frame for u in final]


def test_an_endless_stream_that_stops_loses_nothing():
    truth = make_walks(n_tracks=8, n_frames=15, seed=3)
    keep = Tracker(window=4)
    live = Tracker(window=4, keep_results=False)
    seen = []
    for _, g in truth.groupby("frame"):
        keep.push(g[["y", "x"]])
        seen += [u.to_dataframe() for u in live.push(g[["y", "x"]])]
    end = live.finish()  # the last window - 1 frames, which no push returned
    assert sorted(end["frame"].unique()) == [12, 13, 14]
    streamed = pd.concat(seen + [end], ignore_index=True)
    pd.testing.assert_frame_equal(streamed, keep.finish())


def test_skipped_frames_are_empty_and_frames_must_increase():
    tracker = Tracker(window=1)
    tracker.push(pd.DataFrame({"y": [1.0], "x": [1.0]}), frame=0)
    ups = tracker.push(pd.DataFrame({"y": [1.5], "x": [1.0]}), frame=3)
    assert [u.frame for u in ups] == [1, 2, 3]
    with pytest.raises(InputError, match="must increase"):
        tracker.push(pd.DataFrame({"y": [1.0], "x": [1.0]}), frame=2)


def test_track_movie_on_simulated_frames(small_movie):
    movie, truth = small_movie
    from edgetrack.runtime.metrics.links import link_metrics

    tracks = track_movie(movie)
    m = link_metrics(truth, tracks, max_distance=2.0)
    assert m["f1"] > 0.9, m
    assert {"frame", "y", "x", "track_id", "mass"} <= set(tracks.columns)


def test_bad_frames_raise_input_errors():
    tracker = Tracker()
    tracker.push(np.zeros((32, 32), np.uint16))
    with pytest.raises(InputError, match="shape"):
        tracker.push(np.zeros((32, 33), np.uint16))
    bad = np.zeros((32, 32), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(InputError):
        Tracker().push(bad)
    with pytest.raises(InputError):
        Tracker().push(np.zeros((4, 32, 32)))
    with pytest.raises(InputError, match="NaN"):
        Tracker().push(pd.DataFrame({"y": [np.nan], "x": [1.0]}))
    with pytest.raises(InputError, match="missing"):
        Tracker().push(pd.DataFrame({"y": [1.0]}))


def test_config_rejects_unknown_and_out_of_range_options():
    with pytest.raises(ConfigError, match="max_distnce"):
        Tracker(max_distnce=5.0)
    with pytest.raises(ConfigError, match="max_gap"):
        TrackerConfig(max_gap=0)
    with pytest.raises(ConfigError, match="linker"):
        Tracker(linker="nonsense")


def test_window_scorer_sees_the_window_and_drives_the_links():
    from edgetrack.runtime.associate.registry import register_scorer

    calls = []

    class PreferFar:
        """Scores longer edges higher: the opposite of the distance baseline."""

        name = "prefer_far_test"
        needs_window = True

        def score_window(self, node_frame, values, columns, edges):
            calls.append((node_frame.shape[0], values.shape, columns, len(edges.src)))
            assert values.shape[0] == node_frame.shape[0] and columns[:2] == ("y", "x")
            assert (node_frame[edges.dst] - node_frame[edges.src] == edges.dt).all()
            return np.clip(edges.dist / 10.0, 0.0, 1.0)

    register_scorer("prefer_far_test", PreferFar)
    rows = [(0, 10.0, 10.0), (0, 10.0, 14.0), (1, 10.0, 10.5), (1, 10.0, 13.5)]
    dets = pd.DataFrame(rows, columns=["frame", "y", "x"])
    near = link_detections(dets, linker="lap", max_gap=1)
    far = link_detections(dets, linker="lap", max_gap=1, scorer="prefer_far_test")
    assert calls and all(c[3] == 4 for c in calls)
    same_near = near.groupby("track_id")["x"].apply(lambda v: sorted(v.round(1).tolist())).tolist()
    same_far = far.groupby("track_id")["x"].apply(lambda v: sorted(v.round(1).tolist())).tolist()
    assert sorted(same_near) == [[10.0, 10.5], [13.5, 14.0]]
    assert sorted(same_far) == [[10.0, 13.5], [10.5, 14.0]]


def test_rejected_push_with_skip_changes_nothing():
    tracker = Tracker(window=1)
    tracker.push(pd.DataFrame({"y": [1.0], "x": [1.0]}), frame=0)
    with pytest.raises(InputError):
        tracker.push(pd.DataFrame({"y": [np.nan], "x": [1.0]}), frame=3)
    assert tracker.frames_pushed == 1
    ups = tracker.push(pd.DataFrame({"y": [1.2], "x": [1.0]}), frame=3)
    assert [u.frame for u in ups] == [1, 2, 3]


def test_pathological_crowd_degrades_to_greedy_instead_of_stalling():
    import time
    import warnings

    from edgetrack.runtime.errors import DegradedWarning

    rng = np.random.default_rng(1)
    tracker = Tracker(linker="lap", max_distance=6.0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            tracker.push(pd.DataFrame({"y": rng.uniform(0, 100, 1500), "x": rng.uniform(0, 100, 1500)}))
    elapsed = time.perf_counter() - start
    assert tracker.degraded_windows > 0
    assert any(issubclass(w.category, DegradedWarning) and "max_component" in str(w.message) for w in caught)
    assert elapsed < 20.0  # an exact dense solve of these windows takes minutes
    tracks = tracker.finish()
    assert len(tracks) == 5 * 1500 and tracks.groupby("frame").track_id.nunique().min() == 1500


def test_candidate_cap_keeps_the_best_parents():
    from edgetrack.runtime.graph.candidates import build_graph
    from edgetrack.runtime.stream.window import cap_candidates

    frame = np.array([0] * 6 + [1], np.int64)
    y = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 0.0])
    x = np.zeros(7)
    edges = build_graph(frame, y, x, 5.0, 1)
    score = np.exp(-edges.dist)
    capped, s = cap_candidates(edges, score, first_new=6, n_new=1, k=3)
    assert sorted(capped.src.tolist()) == [0, 1, 2] and np.allclose(s, np.exp(-capped.dist))
    same, _ = cap_candidates(edges, score, first_new=6, n_new=1, k=10)
    assert len(same.src) == 6


@pytest.mark.parametrize("seed", range(5))
def test_component_size_kernel_matches_scipy(seed):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from edgetrack.runtime.stream.window import largest_frame_component

    rng = np.random.default_rng(seed)
    n = 60
    node_frame = np.sort(rng.integers(0, 5, n)).astype(np.int64)
    pairs = [(a, b) for a in range(n) for b in range(n) if 1 <= node_frame[b] - node_frame[a] <= 2 and rng.random() < 0.08]
    src = np.array([p[0] for p in pairs], np.int64)
    dst = np.array([p[1] for p in pairs], np.int64)
    locked = np.where(node_frame < 1, -1, -2).astype(np.int64)
    open_e = locked[dst] == -2
    nf = node_frame.max() - node_frame.min() + 1
    a = n + src[open_e] * nf + node_frame[dst[open_e]] - node_frame.min()
    g = coo_matrix((np.ones(open_e.sum()), (a, dst[open_e])), shape=(n + n * nf,) * 2)
    _, labels = connected_components(g, directed=False)
    used = np.unique(np.concatenate([a, dst[open_e]]))
    expected = int(np.bincount(labels[used]).max()) if len(used) else 0
    assert largest_frame_component(node_frame, src, dst, locked) == expected


def test_flow_and_ilp_through_the_tracker_with_options():
    from edgetrack.runtime.simulate.spots import simulate_detections

    dets, truth = simulate_detections(n_frames=20, shape=(128, 128), n_spots=40, seed=3, division_rate=0.02)
    from edgetrack.runtime.metrics.links import link_metrics

    for linker in ("flow", "ilp"):
        tracker = Tracker(linker=linker, max_children=2, linker_options={"time_limit": 2.0, "division_cost": 1.0})
        for f, g in dets.groupby("frame"):
            tracker.push(g[["y", "x"]], frame=int(f))
        tracks = tracker.finish()
        assert "parent_track_id" in tracks.columns
        assert link_metrics(truth, tracks)["f1"] > 0.85
        assert tracker.timed_out_windows == 0
    with pytest.raises(ConfigError, match="linker_options"):
        Tracker(linker="lap", linker_options={"time_limit": 1.0})
    with pytest.raises(ConfigError):
        Tracker(linker="ilp", linker_options={"no_such_cost": 1.0})


def test_cli_exposes_all_linkers_and_divisions(tmp_path):
    from edgetrack.runtime.cli.app import main

    truth = make_walks(n_tracks=6, n_frames=8)
    truth[["frame", "y", "x"]].to_csv(tmp_path / "d.csv", index=False)
    for linker in ("greedy", "lap", "flow", "ilp"):
        out = tmp_path / f"{linker}.csv"
        assert main(["link", str(tmp_path / "d.csv"), "--out", str(out), "--linker", linker, "--quiet",
                     "--max-children", "2" if linker != "lap" else "1", "--gap-penalty", "0.1"]) == 0
        assert pd.read_csv(out)["track_id"].nunique() == 6


def test_division_whose_daughters_commit_in_different_frames_ends_the_mother():
    """Live updates give daughter A the mother's id (B is not linked yet); results() ends the mother."""
    def frame(t, pts):
        return pd.DataFrame({"frame": t, "y": [p[0] for p in pts], "x": [p[1] for p in pts]})

    tracker = Tracker(max_distance=5, max_gap=2, window=3, linker="greedy", max_children=2, keep_results=True)
    movie = [[(10, 10), (40, 40)], [(10, 14), (40, 41)], [(10, 15), (10, 8), (40, 42)], [(10, 16), (10, 7), (40, 43)]]
    live = [u.to_dataframe(divisions=True) for t, pts in enumerate(movie) for u in tracker.push(frame(t, pts), frame=t)]
    live = pd.concat(live)
    mother_live = live[(live.frame == 0) & (live.y == 10)].track_id.item()
    assert live[(live.frame == 1) & (live.y == 10)].track_id.item() == mother_live  # what streaming had to say
    res = tracker.finish()
    mother = res[(res.frame == 0) & (res.y == 10)].track_id.item()
    a = res[(res.y == 10) & (res.x >= 14)]
    b = res[(res.y == 10) & (res.x <= 8)]
    assert (res.track_id == mother).sum() == 1  # the mother ends where she divides
    assert a.track_id.nunique() == 1 and b.track_id.nunique() == 1 and a.track_id.iloc[0] != b.track_id.iloc[0]
    for daughter in (a, b):
        first = daughter.sort_values("frame").iloc[0]
        assert first.parent_track_id == mother
        assert (daughter.sort_values("frame").parent_track_id.iloc[1:] == -1).all()
    other = res[res.y >= 40]
    assert other.track_id.nunique() == 1 and (other.parent_track_id == -1).all()
