"""Dividing particles in the simulator, and division-aware link metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.metrics.links import division_metrics, link_metrics
from edgetrack.runtime.simulate.spots import SpotSimConfig, simulate_detections, simulate_movie, simulate_trajectories


# --------------------------------------------------------------------------- simulator


def test_divisions_in_trajectories():
    cfg = SpotSimConfig(n_frames=40, shape=(64, 64), n_spots=30, D_range=(0.5, 0.5), division_rate=0.03,
                        division_distance=3.0, seed=5)
    traj = simulate_trajectories(cfg)
    assert traj["parent_track_id"].dtype == np.int64
    per_track = traj.groupby("track_id").agg(first=("frame", "min"), last=("frame", "max"),
                                             parent=("parent_track_id", "first"))
    assert (traj.groupby("track_id")["parent_track_id"].nunique() == 1).all()
    daughters = per_track[per_track.parent >= 0]
    assert len(daughters) >= 20
    counts = daughters.groupby("parent").size()
    assert (counts == 2).all()  # two daughters per mother
    mothers = per_track.loc[counts.index]
    # a mother's track ends the frame before its daughters start
    np.testing.assert_array_equal(mothers["last"].to_numpy() + 1,
                                  daughters.groupby("parent")["first"].min().loc[counts.index].to_numpy())
    assert (mothers["last"] < cfg.n_frames - 1).all()
    # daughters start about division_distance / 2 (+ one step) from the mother's last position
    pos = traj.set_index(["track_id", "frame"])[["y", "x"]]
    gaps = []
    for d, row in daughters.iterrows():
        m_last = pos.loc[(row.parent, per_track.loc[row.parent, "last"])].to_numpy()
        gaps.append(np.hypot(*(pos.loc[(d, row["first"])].to_numpy() - m_last)))
    gaps = np.array(gaps)
    assert 0.8 < np.median(gaps) < 2.8 and gaps.max() < 1.5 + 6 * math.sqrt(2 * 0.5)
    # the two daughters of a mother start apart
    first_pos = np.array([pos.loc[(d, f)].to_numpy() for d, f in zip(daughters.index, daughters["first"])])
    pair_gap = [np.hypot(*(first_pos[i] - first_pos[j])) for i, j in
                [tuple(np.flatnonzero(daughters.parent.to_numpy() == p)) for p in counts.index]]
    assert np.median(pair_gap) > 2.0


def test_no_divisions_keeps_the_old_output():
    base = SpotSimConfig(n_frames=20, shape=(48, 48), n_spots=20, seed=3)
    a = simulate_trajectories(base)
    b = simulate_trajectories(base.replace(division_distance=5.0))
    assert "parent_track_id" not in a.columns
    pd.testing.assert_frame_equal(a, b)
    _, truth = simulate_movie(base.replace(division_rate=0.05, n_frames=10))
    assert list(truth.columns)[-1] == "parent_track_id"
    det, truth = simulate_detections(base.replace(division_rate=0.05), miss_rate=0.0)
    det2, truth2 = simulate_detections(base.replace(division_rate=0.05), miss_rate=0.0)
    pd.testing.assert_frame_equal(truth, truth2)
    assert list(det.columns) == ["frame", "y", "x"] and len(det) == len(truth)


def test_division_config_errors():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="division_rate"):
            SpotSimConfig(division_rate=bad)
    with pytest.raises(ConfigError, match="division_distance"):
        SpotSimConfig(division_distance=-1.0)


# --------------------------------------------------------------------------- metrics


def lineage():
    """Mother 0 (frames 0-2) divides into 1 and 2 (frames 3-4); track 3 is unrelated."""
    rows = [(f, 10.0, 10.0 + f, 0, -1) for f in range(3)]
    rows += [(f, 8.0, 13.0 + f, 1, 0) for f in (3, 4)]
    rows += [(f, 12.0, 13.0 + f, 2, 0) for f in (3, 4)]
    rows += [(f, 40.0, 40.0, 3, -1) for f in range(5)]
    return pd.DataFrame(rows, columns=["frame", "y", "x", "track_id", "parent_track_id"])


def test_exact_division_prediction():
    truth = lineage()
    pred = truth.assign(track_id=truth.track_id + 10, parent_track_id=np.where(truth.parent_track_id >= 0,
                                                                               truth.parent_track_id + 10, -1))
    m = link_metrics(truth, pred)
    # links: 2 (mother) + 1 + 1 (daughters) + 2 (division links) + 4 (track 3)
    assert m["n_truth_links"] == m["n_pred_links"] == m["tp"] == 10
    assert (m["division_tp"], m["n_truth_divisions"], m["n_pred_divisions"]) == (1, 1, 1)
    assert m["division_f1"] == 1.0
    assert division_metrics(truth, pred)["division_precision"] == 1.0
    # the parent id on the first point of a daughter only (the Tracker's output) means the same
    first_only = pred.copy()
    first_only.loc[first_only.frame == 4, "parent_track_id"] = -1
    assert link_metrics(truth, first_only) == m


def test_division_missed_or_wrong():
    truth = lineage()
    # no divisions predicted: the mother continues into daughter 1, daughter 2 is a new track
    pred = truth.drop(columns="parent_track_id").assign(track_id=truth.track_id.replace({1: 0}))
    m = link_metrics(truth, pred)
    assert m["n_pred_links"] == 9 and m["tp"] == 9 and m["n_truth_links"] == 10
    assert m["division_tp"] == 0 and m["division_recall"] == 0.0 and math.isnan(m["division_precision"])
    # a division into the wrong second daughter (the unrelated track's point)
    wrong = truth.copy()
    wrong.loc[wrong.track_id == 2, ["y", "x"]] = [[40.0, 40.0], [40.0, 40.0]]
    wrong.loc[(wrong.track_id == 3) & (wrong.frame >= 3), ["y", "x"]] = [[12.0, 16.0], [12.0, 17.0]]
    m = link_metrics(truth, wrong)
    assert m["n_pred_divisions"] == 1 and m["division_tp"] == 0 and m["division_f1"] == 0.0
    # tables without parent_track_id get no division keys
    plain = truth.drop(columns="parent_track_id")
    assert "division_f1" not in link_metrics(plain, plain)
    assert math.isnan(division_metrics(plain, plain)["division_f1"])


def test_bad_parent_ids():
    truth = lineage()
    bad = truth.copy()
    bad.loc[(bad.track_id == 1) & (bad.frame == 4), "parent_track_id"] = 3
    with pytest.raises(InputError, match="more than one parent_track_id"):
        link_metrics(truth, bad)
    with pytest.raises(InputError, match="parent_track_id"):
        link_metrics(truth, truth.assign(parent_track_id=np.nan))
