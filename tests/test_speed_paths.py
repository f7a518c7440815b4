"""The speed paths of issue 19 give the same answers as the plain ones: the oldest-frame LAP solve, the
bucket grid of the deblending searches, the recurrence rendering, two detection threads, the profile."""

from __future__ import annotations

import numpy as np
import pytest
from edgetrack.runtime.detect.fitting import render
from edgetrack.runtime.detect.grid import (
    build_grid,
    cell_of,
    grid_insert,
    grid_remove,
    grid_shape,
)
from edgetrack.runtime.errors import ConfigError
from edgetrack.runtime.link.lap import link_lap
from edgetrack.runtime.link.problem import UNDECIDED
from edgetrack.runtime.simulate.spots import simulate_movie
from edgetrack.runtime.stream.pipeline import track_frames
from edgetrack.runtime.stream.tracker import Tracker


def _window(seed: int, per_frame: int = 40, frames: int = 5, committed: int = 2):
    """A random window: ``committed`` frames with locked parents, then undecided ones; edges to 2 frames back."""
    rng = np.random.default_rng(seed)
    node_frame = np.repeat(np.arange(frames), per_frame)
    pos = rng.uniform(0, 60, (len(node_frame), 2))
    src, dst = [], []
    for d in range(len(node_frame)):
        for s in range(len(node_frame)):
            gap = node_frame[d] - node_frame[s]
            if node_frame[d] >= committed and 1 <= gap <= 2 and np.hypot(*(pos[d] - pos[s])) < 8:
                src.append(s)
                dst.append(d)
    src, dst = np.array(src, np.int64), np.array(dst, np.int64)
    dt = node_frame[dst] - node_frame[src]
    score = rng.uniform(0.01, 1.0, len(src))
    locked = np.where(node_frame < committed, -1, UNDECIDED).astype(np.int64)
    children = (rng.random(len(node_frame)) < 0.3).astype(np.int64) * (node_frame < committed)
    return node_frame, src, dst, dt, score, locked, children


@pytest.mark.parametrize("seed", range(5))
def test_lap_links_of_the_oldest_undecided_frame_do_not_depend_on_later_frames(seed):
    node_frame, src, dst, dt, score, locked, children = _window(seed)
    whole = link_lap(node_frame, src, dst, dt, score, locked, children)
    oldest = node_frame == 2
    into = oldest[dst]
    alone = link_lap(node_frame, src[into], dst[into], dt[into], score[into], locked, children)
    assert (whole[oldest] >= 0).sum() > 5  # a real assignment problem
    np.testing.assert_array_equal(whole[oldest], alone[oldest])


def test_grid_finds_exactly_the_neighbours_a_full_scan_finds():
    rng = np.random.default_rng(1)
    h, w, radius = 200, 300, 3.75
    ys = rng.uniform(-0.5, h - 0.5, 800)
    xs = rng.uniform(-0.5, w - 0.5, 800)
    use = rng.random(800) < 0.9
    cell, ncy, ncx = grid_shape(h, w, radius)
    head, nxt = build_grid(ys, xs, use, 801, cell, ncy, ncx)
    # move one spot and add another, as the residual search does
    grid_remove(head, nxt, 5, ys[5], xs[5], cell, ncx)
    ys[5], xs[5] = ys[5] + 2.0, xs[5] - 1.0
    grid_insert(head, nxt, 5, ys[5], xs[5], cell, ncx)
    use[5] = True
    for q in range(0, 800, 7):
        cy, cx = cell_of(ys[q], xs[q], cell, ncy, ncx)
        found = set()
        for gy in range(max(cy - 1, 0), min(cy + 2, ncy)):
            for gx in range(max(cx - 1, 0), min(cx + 2, ncx)):
                j = head[gy * ncx + gx]
                while j >= 0:
                    if (ys[j] - ys[q]) ** 2 + (xs[j] - xs[q]) ** 2 < radius * radius:
                        found.add(int(j))
                    j = nxt[j]
        brute = {int(j) for j in np.flatnonzero(use) if (ys[j] - ys[q]) ** 2 + (xs[j] - xs[q]) ** 2 < radius ** 2}
        assert found == brute


def test_render_matches_the_gaussian_and_removes_itself_exactly():
    model = np.zeros((40, 50), np.float32)
    render(model, 20.3, 24.8, 100.0, 1.5, 6)
    yy, xx = np.mgrid[14:27, 19:32]
    expected = 100.0 * np.exp(-((yy - 20.3) ** 2 + (xx - 24.8) ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(model[14:27, 19:32], expected, rtol=1e-6, atol=1e-9)
    assert model.sum() == pytest.approx(model[14:27, 19:32].sum())  # nothing outside the window
    render(model, 20.3, 24.8, -100.0, 1.5, 6)
    assert not model.any()


@pytest.fixture(scope="module")
def crowded_movie():
    movie, _ = simulate_movie(n_frames=12, shape=(96, 96), n_spots=120, snr=8, D_range=(1.0, 1.0), seed=4)
    return movie


def test_two_detection_threads_give_the_tracks_of_plain_push(crowded_movie):
    plain = Tracker(max_distance=5.0)
    for frame in crowded_movie:
        plain.push(frame)
    expected = plain.finish()
    for workers in (1, 2, 3):
        tracker = Tracker(max_distance=5.0)
        updates = list(track_frames(tracker, crowded_movie, workers=workers))
        assert [u.frame for u in updates] == list(range(len(crowded_movie)))  # in order
        assert tracker.finish().equals(expected)


def test_workers_below_one_is_a_config_error(crowded_movie):
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        list(track_frames(Tracker(), crowded_movie, workers=0))


def test_profile_names_every_stage_and_changes_nothing(crowded_movie):
    plain = Tracker(max_distance=5.0)
    profiled = Tracker(max_distance=5.0)
    profiled.timings = {}
    for frame in crowded_movie:
        plain.push(frame)
        profiled.push(frame)
    assert profiled.finish().equals(plain.finish())
    t = profiled.timings
    for stage in ("detect", "graph", "score", "link", "commit", "detect.bandpass", "detect.deblend",
                  "detect.seed_fits", "detect.spot_table"):
        assert t[stage] > 0.0, stage
    passes = sum(v for k, v in t.items() if k.startswith("detect."))
    assert passes <= t["detect"]
    assert plain.timings is None


@pytest.mark.parametrize("seed", range(3))
def test_window_largest_component_is_the_largest_of_each_frames_own(seed):
    from edgetrack.runtime.link.components import largest_component
    from edgetrack.runtime.stream.window import largest_frame_component

    node_frame, src, dst, _, _, locked, _ = _window(seed, per_frame=60)
    whole = largest_frame_component(node_frame, src, dst, locked)
    n = len(node_frame)
    per_frame = max(largest_component(src[node_frame[dst] == f], dst[node_frame[dst] == f] + n, 2 * n)
                    for f in np.unique(node_frame[dst]))
    assert whole == per_frame > 4


def test_rows_pushed_in_any_order_give_the_tracks_of_sorted_rows():
    import pandas as pd

    rng = np.random.default_rng(2)
    frames = [pd.DataFrame({"y": rng.uniform(0, 50, 30), "x": rng.uniform(0, 50, 30)}) for _ in range(6)]
    frames[2].loc[5, "y"] = frames[2].loc[6, "y"]  # a tie in y, broken by x
    ordered = Tracker(max_distance=4.0)
    shuffled = Tracker(max_distance=4.0)
    for table in frames:
        ordered.push(table.sort_values(["y", "x"]).reset_index(drop=True))
        shuffled.push(table.sample(frac=1.0, random_state=0))
    assert shuffled.finish().equals(ordered.finish())


def test_candidate_edges_of_a_dense_crowd_overflowing_the_first_buffer_are_all_found():
    from edgetrack.runtime.graph.candidates import edges_into_frame

    rng = np.random.default_rng(5)
    past_y, past_x = rng.uniform(0, 10, 600), rng.uniform(0, 10, 600)  # ~60 neighbours per new point
    new_y, new_x = rng.uniform(0, 10, 10), rng.uniform(0, 10, 10)
    past_frame = np.repeat([0, 1], 300)
    edges = edges_into_frame(past_frame, past_y, past_x, new_y, new_x, 2, 4.0, 2)
    d = np.hypot(new_y[:, None] - past_y[None, :], new_x[:, None] - past_x[None, :])
    dst, src = np.nonzero(d <= 4.0)
    assert len(edges.src) == len(src) > 16 + 4 * 10
    np.testing.assert_array_equal(edges.dst, dst)
    np.testing.assert_array_equal(edges.src, src)


def test_local_maxima_of_a_frame_with_more_maxima_than_the_first_buffer_match_a_direct_check():
    from edgetrack.runtime.detect.filters import local_maxima

    rng = np.random.default_rng(6)
    img = rng.normal(0, 1, (150, 160)).astype(np.float32)
    prof = np.zeros((3, 160))
    prof[0] = 1.0  # noise factor 1 everywhere: the threshold is base + excess
    dy = np.array([-1, 0, 0, 1], np.int64)
    dx = np.array([0, -1, 1, 0], np.int64)
    ys, xs = local_maxima(img, -10.0, 0.0, prof[:, :150], prof, dy, dx)
    pad = np.pad(img, 1, constant_values=-np.inf)
    c = pad[1:-1, 1:-1]
    is_max = (c > pad[:-2, 1:-1]) & (c > pad[1:-1, :-2]) & (c >= pad[1:-1, 2:]) & (c >= pad[2:, 1:-1])
    ry, rx = np.nonzero(is_max)  # earlier neighbours (up, left) win ties, later ones (right, down) do not
    assert len(ry) > 4096
    np.testing.assert_array_equal(ys, ry)
    np.testing.assert_array_equal(xs, rx)
