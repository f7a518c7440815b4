"""track_cells / CellTracker: label masks in, tracks with divisions out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from edgetrack.runtime.io.masks import ctc_from_tracks, ctc_result
from edgetrack.runtime.cells.tracker import CELL_COLUMNS, CellTracker, default_max_distance, tracks_from_links, track_cells
from edgetrack.runtime.metrics.ctc import ctc_scores
from edgetrack.runtime.errors import ConfigError, InputError


def paint(frames: list[list[tuple[float, float, int]]], shape=(80, 120), radius=5) -> np.ndarray:
    """Masks from per-frame lists of discs (y, x, label)."""
    masks = np.zeros((len(frames), *shape), np.uint16)
    for t, discs in enumerate(frames):
        for y, x, label in discs:
            rr, cc = disk((y, x), radius, shape=shape)
            masks[t, rr, cc] = label
    return masks


def dividing_scene(gap: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """Cell A (moving right) divides after frame 3 into two daughters 14 px apart; cell B moves down.

    With ``gap`` the second daughter is missing in frame 4 (it appears at frame 5).
    Labels are shuffled per frame (a segmenter's labels carry no identity). Returns masks and the
    true (frame, label) -> cell name table.
    """
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for t in range(8):
        discs = []
        if t <= 3:
            discs.append((40.0, 20.0 + 3 * t, "A"))
        else:
            discs.append((33.0 - (t - 4), 29.0 + 2 * t, "A1"))
            if not (gap and t == 4):
                discs.append((47.0 + (t - 4), 29.0 + 2 * t, "A2"))
        discs.append((10.0 + 2 * t, 95.0, "B"))
        labels = rng.choice(np.arange(1, 50), len(discs), replace=False)
        frames.append([(y, x, int(lab)) for (y, x, _), lab in zip(discs, labels)])
        truth += [(t, int(lab), name) for (_, _, name), lab in zip(discs, labels)]
    return paint(frames), pd.DataFrame(truth, columns=["frame", "label", "cell"])


def _names(tracks: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    return tracks.merge(truth, on=["frame", "label"], validate="one_to_one")


@pytest.mark.parametrize("linker", ["greedy", "ilp"])
def test_division_is_found(linker):
    masks, truth = dividing_scene()
    tracks = track_cells(masks, linker=linker, max_distance=20.0)
    assert list(tracks.columns) == list(CELL_COLUMNS)
    named = _names(tracks, truth)
    per_cell = named.groupby("cell")["track_id"].nunique()
    assert (per_cell == 1).all()  # one track per true cell
    ids = named.groupby("cell")["track_id"].first()
    assert len(set(ids)) == 4
    first = named.sort_values("frame").groupby("cell").first()
    assert first.loc["A1", "parent_track_id"] == ids["A"] and first.loc["A2", "parent_track_id"] == ids["A"]
    assert first.loc["A", "parent_track_id"] == -1 and first.loc["B", "parent_track_id"] == -1
    assert (named.groupby("track_id")["parent_track_id"].apply(lambda s: (s >= 0).sum()) <= 1).all()


def test_second_daughter_after_a_gap_still_divides():
    # the streaming tracker commits A1 (frame 4) before A2 (frame 5) is linked to A across the gap, so
    # its live ids let A1 go on in A's track; the finished table rebuilds the ids from the links
    masks, truth = dividing_scene(gap=True)
    tracker = CellTracker(linker="greedy", max_distance=20.0, max_gap=2, window=2)
    live = [df for m in masks for df in tracker.push(m)]
    live += tracker.flush()
    live = _names(pd.concat(live, ignore_index=True), truth)
    assert list(live.columns[:-1]) == list(CELL_COLUMNS) and len(live) == len(truth)
    tracks = _names(tracker.finish(), truth)
    ids = tracks.groupby("cell")["track_id"].first()
    assert len(set(ids)) == 4
    first = tracks.sort_values("frame").groupby("cell").first()
    assert first.loc["A1", "parent_track_id"] == ids["A"] and first.loc["A2", "parent_track_id"] == ids["A"]
    # and the CTC form is a proper division: mother ends at 3, daughters start at 4 and 5
    _, lineage = ctc_from_tracks(tracks)
    mother = lineage[lineage.end == 3]
    assert len(lineage[lineage.parent.isin(mother.label)]) == 2


def test_tracks_from_links():
    # 0 -> 1 -> 2 (2 divides) -> 3, 4; 5 alone; 6 linked to 3 across a gap
    det = np.array([0, 1, 2, 3, 4, 5, 6])
    parent = np.array([-1, 0, 1, 2, 2, -1, 3])
    track, parent_track = tracks_from_links(det, parent)
    assert track.tolist() == [0, 0, 0, 1, 2, 3, 1]
    assert parent_track.tolist() == [-1, -1, -1, 0, 0, -1, -1]
    shuffled = np.array([3, 0, 6, 1, 5, 2, 4])  # row order does not matter, only the ids
    t2, p2 = tracks_from_links(det[shuffled], parent[shuffled])
    assert t2.tolist() == track[shuffled].tolist() and p2.tolist() == parent_track[shuffled].tolist()
    with pytest.raises(InputError, match="not in the table"):
        tracks_from_links(np.array([0, 1]), np.array([-1, 9]))


def test_default_max_distance_and_leading_empty_frames():
    masks, truth = dividing_scene()
    masks = np.concatenate([np.zeros((2, *masks.shape[1:]), masks.dtype), masks])
    tracker = CellTracker()
    for m in masks:
        tracker.push(m)
    tracks = tracker.finish()
    area = np.bincount(masks[2].ravel())[1:]
    assert tracker.max_distance == pytest.approx(default_max_distance(area[area > 0]))
    assert tracks["frame"].min() == 2 and len(tracks) == len(truth)
    with pytest.raises(InputError, match="without objects"):
        default_max_distance(np.zeros(0))


def test_lap_links_one_to_one_and_options_are_checked():
    masks, _ = dividing_scene()
    tracks = track_cells(masks, linker="lap", max_distance=20.0)
    assert (tracks["parent_track_id"] == -1).all()
    with pytest.raises(ConfigError, match="max_children"):
        CellTracker(max_children=2)
    with pytest.raises(ConfigError, match="max_distance"):
        CellTracker(max_distance=-1.0)
    with pytest.raises(InputError, match="shape"):
        tracker = CellTracker(max_distance=5.0)
        tracker.push(masks[0])
        tracker.push(masks[0][:10])
    with pytest.raises(InputError, match="twice"):
        CellTracker(max_distance=5.0).push_objects(
            pd.DataFrame({c: [1.0, 1.0] for c in ("y", "x", "label", *CELL_COLUMNS[6:])}))
    with pytest.raises(InputError, match="missing column"):
        CellTracker(max_distance=5.0).push_objects(pd.DataFrame({"y": [1.0], "x": [2.0]}))
    with pytest.raises(InputError, match="counts must match"):
        track_cells(masks, images=np.zeros((3, *masks.shape[1:])))


def test_images_give_mean_intensity_and_labels_map_back():
    masks, _ = dividing_scene()
    images = (masks > 0) * 50.0 + 7.0
    tracks = track_cells(masks, images, max_distance=20.0)
    assert np.allclose(tracks["mean_intensity"], 57.0)
    assert (track_cells(list(masks), max_distance=20.0)["mean_intensity"] == 0.0).all()
    for row in tracks.itertuples():
        ys, xs = np.nonzero(masks[row.frame] == row.label)
        assert (row.y, row.x) == pytest.approx((ys.mean(), xs.mean()))
    assert len(track_cells(np.zeros((0, 4, 4), np.uint16))) == 0


def test_simulated_cells_track_well():
    from edgetrack.training.cells import simulate_cells

    movie = simulate_cells(seed=1, n_frames=20, miss_rate=0.0, merge_rate=0.0, split_rate=0.0, false_rate=0.0)
    tracks = track_cells(movie.true_masks, movie.images, linker="greedy")
    res, lineage = ctc_result(tracks, movie.true_masks)
    scores = ctc_scores(movie.true_masks, movie.lineage, res, lineage)
    assert scores["FN"] == 0 and scores["FP"] == 0
    assert scores["TRA"] > 0.97


@pytest.mark.parametrize("name", ["Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+"])
def test_ctc_markers_meet_the_tra_target(name):
    # the ground-truth markers as the segmentation: only linking is judged (target TRA >= 0.99)
    from conftest import shared_data
    from edgetrack.runtime.io.masks import open_masks, read_ctc_lineage

    folder = shared_data("ctc", name, "01_GT", "TRA")
    masks = np.stack(list(open_masks(folder)))
    tracks = track_cells(masks, linker="greedy")
    res, lineage = ctc_result(tracks, masks)
    scores = ctc_scores(masks, read_ctc_lineage(folder), res, lineage)
    assert scores["TRA"] >= 0.99


class _RecordingWindowScorer:
    """A window scorer (like the transformer) that records what the tracker hands it."""

    name = "cell-test-window"
    needs_window = True
    seen: list = []

    def configure(self, max_distance: float) -> None:
        self.max_distance = max_distance

    def score(self, edges, features=None):
        raise AssertionError("a window scorer is called through score_window")

    def score_window(self, node_frame, values, columns, edges):
        type(self).seen.append(tuple(columns))
        return np.exp(-edges.dist / self.max_distance)


def test_window_scorers_get_the_cell_features_but_no_labels():
    from edgetrack.runtime.associate.registry import register_scorer

    register_scorer("cell-test-window", _RecordingWindowScorer)
    masks, truth = dividing_scene()
    tracks = track_cells(masks, scorer="cell-test-window", max_distance=20.0)
    assert _RecordingWindowScorer.seen and set(_RecordingWindowScorer.seen) == {("y", "x", "object", *CELL_COLUMNS[6:])}
    assert (_names(tracks, truth).groupby("cell")["track_id"].nunique() == 1).all()
