"""Cell-movie simulator (training.cells): determinism, shapes, lineage, segmentation errors, speed, config errors."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.errors import ConfigError
from edgetrack.training.cells import CellMovie, CellSimConfig, simulate_cells

NO_ERRORS = dict(miss_rate=0.0, merge_rate=0.0, split_rate=0.0, false_rate=0.0)


@pytest.fixture(scope="module")
def movie() -> CellMovie:
    return simulate_cells(seed=5, division_rate=0.03)


def _presence(masks: np.ndarray) -> dict[int, np.ndarray]:
    """Label -> sorted frames where it has pixels."""
    frames: dict[int, list[int]] = {}
    for t, frame in enumerate(masks):
        for label in np.unique(frame):
            if label:
                frames.setdefault(int(label), []).append(t)
    return {k: np.asarray(v) for k, v in frames.items()}


def test_shapes_and_dtypes(movie):
    t, h, w = 30, 256, 256
    for name in ("masks", "true_masks", "images"):
        array = getattr(movie, name)
        assert array.shape == (t, h, w), name
        assert array.dtype == np.uint16, name
    assert list(movie.lineage.columns) == ["label", "start", "end", "parent"]
    assert list(movie.objects.columns) == ["frame", "label", "y", "x", "track_id", "parent_track_id"]
    assert all(movie.lineage[c].dtype == np.int64 for c in movie.lineage.columns)
    for c in ("frame", "label", "track_id", "parent_track_id"):
        assert movie.objects[c].dtype == np.int64, c
    assert list(movie.errors.columns) == ["frame", "kind", "label", "other"]
    # the images show the cells: brighter inside than outside
    inside = movie.images[movie.true_masks > 0].mean()
    outside = movie.images[movie.true_masks == 0].mean()
    assert inside > outside + 0.5 * movie.config.brightness


def test_deterministic_for_a_seed():
    a = simulate_cells(seed=11, n_frames=8, shape=(96, 128), n_cells=6)
    b = simulate_cells(seed=11, n_frames=8, shape=(96, 128), n_cells=6)
    c = simulate_cells(seed=12, n_frames=8, shape=(96, 128), n_cells=6)
    for name in ("masks", "true_masks", "images"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.lineage, b.lineage)
    pd.testing.assert_frame_equal(a.objects, b.objects)
    pd.testing.assert_frame_equal(a.errors, b.errors)
    assert not np.array_equal(a.true_masks, c.true_masks)


def test_error_rates_do_not_change_the_truth():
    a = simulate_cells(seed=3, n_frames=10, **NO_ERRORS)
    b = simulate_cells(seed=3, n_frames=10, miss_rate=0.2, split_rate=0.1)
    np.testing.assert_array_equal(a.true_masks, b.true_masks)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.masks > 0, b.masks > 0)


def test_lineage_matches_true_masks(movie):
    lineage = movie.lineage
    presence = _presence(movie.true_masks)
    assert sorted(presence) == lineage["label"].tolist()
    assert lineage["label"].tolist() == list(range(1, len(lineage) + 1))
    for row in lineage.itertuples():
        np.testing.assert_array_equal(presence[row.label], np.arange(row.start, row.end + 1))
    by_label = lineage.set_index("label")
    daughters = lineage[lineage["parent"] > 0]
    assert len(daughters) >= 4  # division_rate=0.03 gives several divisions in 30 frames
    counts = daughters["parent"].value_counts()
    assert (counts == 2).all(), counts
    for row in daughters.itertuples():
        assert by_label.loc[row.parent, "end"] == row.start - 1
    # daughters start near their mother's last position, each with roughly half her area
    for row in daughters.itertuples():
        mother = movie.true_masks[row.start - 1] == row.parent
        daughter = movie.true_masks[row.start] == row.label
        my, mx = np.argwhere(mother).mean(axis=0)
        dy, dx = np.argwhere(daughter).mean(axis=0)
        radius = np.sqrt(mother.sum() / np.pi)
        assert np.hypot(dy - my, dx - mx) < 2.0 * radius
        assert 0.2 * mother.sum() < daughter.sum() < 0.9 * mother.sum()


def test_cells_enter_and_leave():
    sim = simulate_cells(seed=2, n_frames=60, enter_rate=0.5, speed_range=(1.0, 3.0), **NO_ERRORS)
    lineage = sim.lineage
    entered = lineage[(lineage["start"] > 0) & (lineage["parent"] == 0)]
    left = lineage[(lineage["end"] < 59) & ~lineage["label"].isin(lineage["parent"])]
    assert len(entered) >= 10
    assert len(left) >= 3
    # an entering cell first shows up at the border
    h, w = sim.config.shape
    for row in entered.itertuples():
        rows, cols = np.nonzero(sim.true_masks[row.start] == row.label)
        assert rows.min() == 0 or cols.min() == 0 or rows.max() == h - 1 or cols.max() == w - 1


def test_objects_without_errors_match_truth():
    sim = simulate_cells(seed=4, n_frames=12, division_rate=0.05, **NO_ERRORS)
    assert len(sim.errors) == 0
    np.testing.assert_array_equal(sim.masks > 0, sim.true_masks > 0)
    obj = sim.objects
    # one object per true object, track ids equal to the true labels, centroids of the true masks
    for t in range(sim.masks.shape[0]):
        rows = obj[obj["frame"] == t]
        labels = np.unique(sim.true_masks[t])[1:]
        assert sorted(rows["track_id"]) == labels.tolist()
        assert sorted(rows["label"]) == list(range(1, labels.size + 1))
        for r in rows.itertuples():
            ys, xs = np.nonzero(sim.masks[t] == r.label)
            assert r.y == pytest.approx(ys.mean())
            assert r.x == pytest.approx(xs.mean())
            assert np.all(sim.true_masks[t][ys, xs] == r.track_id)
    daughters = sim.lineage[sim.lineage["parent"] > 0]
    heads = obj[obj["parent_track_id"] > 0]
    assert len(daughters) > 0
    assert sorted(zip(heads["track_id"], heads["parent_track_id"], heads["frame"])) == sorted(
        zip(daughters["label"], daughters["parent"], daughters["start"]))


def _rate(kind: str, **rates) -> tuple[float, pd.DataFrame, CellMovie]:
    sim = simulate_cells(seed=9, **{"n_frames": 40, "n_cells": 40, **NO_ERRORS, **rates})
    n_true = sum(np.unique(f).size - 1 for f in sim.true_masks)
    errors = sim.errors
    assert set(errors["kind"]) <= {kind}
    return len(errors) / n_true, errors, sim


def test_missed_rate():
    rate, errors, sim = _rate("missed", miss_rate=0.1)
    assert 0.08 < rate < 0.12
    obj = sim.objects
    for row in errors.itertuples():
        assert not ((obj["frame"] == row.frame) & (obj["track_id"] == row.label)).any()
        assert not np.any(sim.masks[row.frame][sim.true_masks[row.frame] == row.label])


def test_split_rate():
    rate, errors, sim = _rate("split", split_rate=0.1)
    assert 0.07 < rate < 0.12
    obj = sim.objects
    per_track = obj.groupby(["frame", "track_id"]).size()
    assert (per_track == 2).sum() == len(errors)
    assert len(obj) == sum(np.unique(f).size - 1 for f in sim.true_masks) + len(errors)


def test_false_rate():
    rate, errors, sim = _rate("false", false_rate=0.1)
    assert 0.07 < rate < 0.13
    false = sim.objects[sim.objects["track_id"] == 0]
    assert len(false) == len(errors)
    for row in false.itertuples():
        assert not np.any(sim.true_masks[row.frame][sim.masks[row.frame] == row.label])


def test_merge_rate():
    rate, errors, sim = _rate("merged", merge_rate=0.2, n_cells=60)
    assert len(errors) >= 20
    obj = sim.objects
    for row in errors.itertuples():
        # the merged object covers both cells and is attributed to one of them
        frame_masks, frame_true = sim.masks[row.frame], sim.true_masks[row.frame]
        labels_a = np.unique(frame_masks[frame_true == row.label])
        labels_b = np.unique(frame_masks[frame_true == row.other])
        assert labels_a.tolist() == labels_b.tolist() and labels_a.size == 1 and labels_a[0] > 0
        track = obj[(obj["frame"] == row.frame) & (obj["label"] == labels_a[0])]["track_id"].item()
        assert track in (row.label, row.other)
    # a merge takes two objects away and adds one
    n_true = sum(np.unique(f).size - 1 for f in sim.true_masks)
    assert len(obj) == n_true - len(errors)
    assert rate <= 0.2


def test_default_error_rates_are_modest():
    sim = simulate_cells(seed=1, n_frames=30)
    n_true = sum(np.unique(f).size - 1 for f in sim.true_masks)
    kinds = sim.errors["kind"].value_counts()
    for kind in ("missed", "split", "false"):
        assert kinds.get(kind, 0) / n_true < 0.06, kind


def test_speed():
    simulate_cells(seed=0)  # warm-up
    best = np.inf
    for seed in range(3):
        start = time.perf_counter()
        simulate_cells(seed=seed)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"30 frames of 256x256 with 20 cells took {best:.2f} s"


def test_density_range():
    sparse = simulate_cells(seed=0, n_frames=2, n_cells=3, **NO_ERRORS)
    crowded = simulate_cells(seed=0, n_frames=2, n_cells=150, **NO_ERRORS)
    assert (sparse.true_masks[0] > 0).mean() < 0.05
    assert (crowded.true_masks[0] > 0).mean() > 0.5
    empty = simulate_cells(seed=0, n_frames=3, n_cells=0, enter_rate=0.0)
    assert empty.true_masks.max() == 0 and len(empty.lineage) == 0 and len(empty.objects) == 0


@pytest.mark.parametrize("bad", [
    {"shape": (8, 256)},
    {"shape": (256,)},
    {"shape": "big"},
    {"n_frames": 0},
    {"n_cells": -1},
    {"n_cells": 2.5},
    {"radius_range": (10.0, 5.0)},
    {"radius_range": (1.0, 5.0)},
    {"speed_range": (-1.0, 2.0)},
    {"persistence": 1.0},
    {"division_rate": 1.5},
    {"miss_rate": -0.1},
    {"merge_rate": float("nan")},
    {"deformation": 0.9},
    {"brightness": 0.0},
    {"enter_rate": True},
    {"no_such_option": 1},
])
def test_bad_config_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        simulate_cells(**bad)


def test_bad_seed_and_config_type():
    with pytest.raises(ConfigError, match="seed"):
        simulate_cells(seed=-1)
    with pytest.raises(ConfigError, match="CellSimConfig"):
        simulate_cells(config={"n_cells": 3})
    config = CellSimConfig(n_frames=3, shape=[64, 64], n_cells=2)
    assert config.shape == (64, 64)
    assert simulate_cells(config, n_cells=1).config.n_cells == 1


def test_overlapping_cells_the_smaller_keeps_the_shared_pixels():
    from edgetrack.training.cells.simulate import _new_cells, _paint

    config = CellSimConfig(deformation=0.0)
    rng = np.random.default_rng(0)
    cells = _new_cells(rng, config, np.array([[30.0, 30.0], [30.0, 40.0]]), np.array([10.0, 6.0]),
                       np.array([1.0, 1.0]))
    codes, counts = _paint(cells, (64, 64))
    assert codes[30, 36] == 2  # inside both discs: the smaller (second) cell
    assert counts[1] == pytest.approx(np.pi * 36, rel=0.1)  # the small disc is whole
    assert counts[0] < np.pi * 100 * 0.95  # the large one gave way
    assert counts.sum() == (codes > 0).sum()
