"""Tests of the detection and linking metrics."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.metrics.links import link_metrics, localization_metrics, match_points


def pts(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["frame", "y", "x", "track_id"])


def hand_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth: A (4 points), B (4), C (3), D (2) -> 9 links, 13 points.

    Prediction: track 1 = A0 A1 B2 B3 and track 2 = B0 B1 A2 (A3 missed): two swapped links;
    track 3 = C exactly; track 4 = D plus a spurious point (one false link). One point of C is
    0.3 px off.
    """
    truth = pts(
        [(f, 0.0, 5.0 * f, 0) for f in range(4)]
        + [(f, 10.0, 5.0 * f, 1) for f in range(4)]
        + [(f, 20.0, 5.0 * f, 2) for f in range(3)]
        + [(f, 30.0, 5.0 * f, 3) for f in range(2)]
    )
    pred = pts(
        [(0, 0.0, 0.0, 1), (1, 0.0, 5.0, 1), (2, 10.0, 10.0, 1), (3, 10.0, 15.0, 1)]
        + [(0, 10.0, 0.0, 2), (1, 10.0, 5.0, 2), (2, 0.0, 10.0, 2)]
        + [(0, 20.0, 0.0, 3), (1, 20.3, 5.0, 3), (2, 20.0, 10.0, 3)]
        + [(0, 30.0, 0.0, 4), (1, 30.0, 5.0, 4), (2, 30.0, 50.0, 4)]
    )
    return truth, pred


def test_hand_computed_link_metrics():
    truth, pred = hand_example()
    m = link_metrics(truth, pred)
    assert m["n_truth_links"] == 9 and m["n_pred_links"] == 9
    assert m["tp"] == 6
    assert m["precision"] == pytest.approx(6 / 9)
    assert m["recall"] == pytest.approx(6 / 9)
    assert m["f1"] == pytest.approx(6 / 9)
    assert m["jaccard"] == pytest.approx(6 / 12)
    assert m["perfect_tracks"] == pytest.approx(1 / 4)  # only C
    assert m["detection_recall"] == pytest.approx(12 / 13)
    assert m["detection_precision"] == pytest.approx(12 / 13)
    assert m["rmse"] == pytest.approx(math.sqrt(0.09 / 12))
    assert m["n_truth_tracks"] == 4 and m["n_pred_tracks"] == 4


def test_hand_computed_localization_metrics():
    truth, pred = hand_example()
    m = localization_metrics(truth, pred)
    assert (m["n_truth"], m["n_pred"], m["n_matched"]) == (13, 13, 12)
    assert m["recall"] == pytest.approx(12 / 13) and m["precision"] == pytest.approx(12 / 13)
    assert m["f1"] == pytest.approx(12 / 13)
    assert m["rmse"] == pytest.approx(math.sqrt(0.09 / 12))


def test_perfect_requires_nothing_else_and_one_track():
    truth, _ = hand_example()
    # Every truth track in its own predicted track, but C's track also holds a spurious point.
    pred = pd.concat([truth, pts([(3, 20.0, 15.0, 2)])], ignore_index=True)
    m = link_metrics(truth, pred)
    assert m["perfect_tracks"] == pytest.approx(3 / 4)
    assert m["tp"] == 9 and m["n_pred_links"] == 10
    # A track split in two predicted tracks is not perfect and loses one link.
    split = truth.copy()
    split.loc[(split.track_id == 0) & (split.frame >= 2), "track_id"] = 99
    m = link_metrics(truth, split)
    assert m["perfect_tracks"] == pytest.approx(3 / 4)
    assert m["tp"] == 8 and m["recall"] == pytest.approx(8 / 9) and m["precision"] == pytest.approx(1.0)


def test_gap_links():
    truth = pts([(0, 0.0, 0.0, 0), (1, 0.0, 1.0, 0), (2, 0.0, 2.0, 0)])
    # Prediction misses frame 1 and links 0 -> 2 directly: not a truth link.
    pred = pts([(0, 0.0, 0.0, 5), (2, 0.0, 2.0, 5)])
    m = link_metrics(truth, pred)
    assert (m["tp"], m["n_truth_links"], m["n_pred_links"]) == (0, 2, 1)
    # A truth track with a gap: its gap link is matched by a predicted gap link.
    truth_gap = pts([(0, 0.0, 0.0, 0), (2, 0.0, 2.0, 0)])
    m = link_metrics(truth_gap, pred)
    assert m["tp"] == 1 and m["f1"] == 1.0 and m["perfect_tracks"] == 1.0


def test_self_match_is_perfect_and_fast():
    from edgetrack.runtime.simulate.spots import simulate_detections

    _, truth = simulate_detections(n_frames=100, shape=(512, 512), n_spots=2000, seed=4)
    assert len(truth) > 150_000
    start = time.perf_counter()
    m = link_metrics(truth, truth)
    elapsed = time.perf_counter() - start
    assert m["f1"] == 1.0 and m["jaccard"] == 1.0 and m["perfect_tracks"] == 1.0 and m["rmse"] == 0.0
    assert m["tp"] == m["n_truth_links"] == len(truth) - truth["track_id"].nunique()
    assert elapsed < 3.0
    loc = localization_metrics(truth, truth)
    assert loc["f1"] == 1.0 and loc["n_matched"] == len(truth)


def test_row_order_and_labels_do_not_matter():
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, truth = simulate_detections(n_frames=15, shape=(96, 96), n_spots=60, seed=8, miss_rate=0.1, localization_error=0.4)
    pred = truth.copy()
    rng = np.random.default_rng(1)
    pred["y"] += rng.normal(0, 0.5, len(pred))
    pred["x"] += rng.normal(0, 0.5, len(pred))
    pred = pred.iloc[rng.permutation(len(pred))[: int(0.9 * len(pred))]]
    # Relabel and break some tracks so the comparison is not trivial.
    pred = pred.assign(track_id=pred["track_id"] * 7 + (pred["frame"] > 8) * (pred["track_id"] % 3 == 0))
    base = link_metrics(truth, pred)
    assert 0 < base["f1"] < 1
    perm_t = truth.iloc[rng.permutation(len(truth))].set_index(pd.Index(rng.permutation(len(truth)) + 1000))
    perm_p = pred.iloc[rng.permutation(len(pred))]
    assert link_metrics(perm_t, perm_p) == base
    assert localization_metrics(perm_t, det) == localization_metrics(truth, det)
    # match_points returns row positions: the matched pairs are the same points after permutation.
    m1 = match_points(truth, det)
    m2 = match_points(perm_t, det.iloc[::-1])
    pairs1 = {(f, tuple(truth.iloc[i][["y", "x"]]), tuple(det.iloc[j][["y", "x"]])) for f, i, j in m1[["frame", "truth_index", "pred_index"]].itertuples(index=False)}
    rev = det.iloc[::-1]
    pairs2 = {(f, tuple(perm_t.iloc[i][["y", "x"]]), tuple(rev.iloc[j][["y", "x"]])) for f, i, j in m2[["frame", "truth_index", "pred_index"]].itertuples(index=False)}
    assert pairs1 == pairs2


def test_matching_maximises_pairs_then_minimises_distance():
    # Greedy nearest-first would pair p=(0,1.0) with a=(0,0) and leave two points unmatched.
    truth = pd.DataFrame({"frame": [0, 0], "y": [0.0, 0.0], "x": [0.0, 2.2]})
    pred = pd.DataFrame({"frame": [0, 0], "y": [0.0, 0.0], "x": [1.0, -1.9]})
    m = match_points(truth, pred, max_distance=2.0)
    assert list(m["truth_index"]) == [0, 1] and list(m["pred_index"]) == [1, 0]
    np.testing.assert_allclose(m["distance"], [1.9, 1.2])
    assert list(m.columns) == ["frame", "truth_index", "pred_index", "distance"]
    assert m["frame"].dtype == np.int64 and m["truth_index"].dtype == np.int64


@pytest.mark.parametrize("seed", range(5))
def test_matching_agrees_with_dense_assignment(seed):
    rng = np.random.default_rng(seed)
    n_t, n_p, md = 60, 55, 2.0
    truth = pd.DataFrame({"frame": rng.integers(0, 3, n_t), "y": rng.uniform(0, 12, n_t), "x": rng.uniform(0, 12, n_t)})
    pred = pd.DataFrame({"frame": rng.integers(0, 3, n_p), "y": rng.uniform(0, 12, n_p), "x": rng.uniform(0, 12, n_p)})
    m = match_points(truth, pred, md)
    assert m["distance"].max() <= md
    assert m["truth_index"].is_unique and m["pred_index"].is_unique
    assert (truth["frame"].to_numpy()[m["truth_index"]] == pred["frame"].to_numpy()[m["pred_index"]]).all()
    count, total = 0, 0.0
    for f in range(3):
        t = truth[truth.frame == f][["y", "x"]].to_numpy()
        p = pred[pred.frame == f][["y", "x"]].to_numpy()
        d = np.hypot(t[:, None, 0] - p[None, :, 0], t[:, None, 1] - p[None, :, 1])
        cost = np.where(d <= md, d, 1e6)
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < 1e6
        count += int(ok.sum())
        total += float(d[r, c][ok].sum())
    assert len(m) == count
    assert m["distance"].sum() == pytest.approx(total, rel=1e-9)


def test_empty_inputs():
    truth, pred = hand_example()
    none = pred.iloc[:0]
    m = localization_metrics(truth, none)
    assert m["recall"] == 0.0 and math.isnan(m["precision"]) and math.isnan(m["rmse"]) and m["n_matched"] == 0
    m = link_metrics(truth, none)
    assert m["tp"] == 0 and m["recall"] == 0.0 and math.isnan(m["precision"]) and m["perfect_tracks"] == 0.0
    assert len(match_points(none, none)) == 0


def test_bad_input_errors():
    truth, pred = hand_example()
    with pytest.raises(InputError, match="missing column.*track_id"):
        link_metrics(truth.drop(columns="track_id"), pred)
    with pytest.raises(InputError, match="pred.*missing column.*y"):
        match_points(truth, pred.drop(columns="y"))
    with pytest.raises(InputError, match="NaN"):
        localization_metrics(truth.assign(x=np.where(truth.index == 3, np.nan, truth.x)), pred)
    with pytest.raises(InputError, match="frame"):
        match_points(truth.assign(frame=truth.frame + 0.5), pred)
    with pytest.raises(InputError, match="more than one point in frame"):
        link_metrics(truth, pd.concat([pred, pred.iloc[:1]], ignore_index=True))
    with pytest.raises(InputError, match="max_distance"):
        match_points(truth, pred, max_distance=0)
    with pytest.raises(InputError, match="DataFrame"):
        match_points(truth.to_numpy(), pred)
