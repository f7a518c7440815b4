"""Scores of the 2nd AnDi Challenge against hand-computed examples.

Expected values were worked out by hand from the challenge's definitions
(andi_datasets.utils_challenge, release 2.1.13); the module was also checked against that
package on random sets (see the report of issue 6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from edgetrack.runtime.errors import InputError
from edgetrack.runtime.metrics.motion import (
    SegmentLabels,
    alpha_mae,
    change_point_scores,
    ensemble_distances,
    framewise_scores,
    k_msle,
    segment_pairs,
    single_trajectory_scores,
    state_f1,
    wasserstein1,
)


def seg(cps, T, alpha, K=None, state=None) -> SegmentLabels:
    n = len(cps) + 1
    return SegmentLabels(
        change_points=cps, length=T, alpha=alpha,
        K=np.ones(n) if K is None else K, state=np.full(n, 2) if state is None else state,
    )


# ----------------------------------------------------------------------------- change points


@pytest.mark.parametrize(
    "true,pred,rmse,jsc",
    [
        ([[50]], [[55]], 5.0, 1.0),  # one TP at 5 frames
        ([[50]], [[65]], 0.0, 0.0),  # 15 frames apart: one FP and one FN, no TP
        ([[50]], [[60]], 0.0, 0.0),  # exactly the threshold is not a hit (strict <)
        ([[50, 120]], [[52]], 2.0, 0.5),  # TP + missed change point
        ([[50]], [[49, 100, 150]], 1.0, 1 / 3),  # TP + two false positives
        ([[]], [[]], 0.0, 1.0),  # nothing anywhere
        ([[], [30]], [[], []], 0.0, 0.5),  # empty-empty trajectory counts as a TP; one FN
        ([[10, 20]], [[19, 29]], 9.0, 1.0),  # Hungarian: (10,19) + (20,29), not greedy (20,19)
    ],
)
def test_change_point_scores_hand_examples(true, pred, rmse, jsc):
    r, j = change_point_scores([np.array(t) for t in true], [np.array(p) for p in pred])
    assert r == pytest.approx(rmse) and j == pytest.approx(jsc)


def test_change_point_scores_pool_over_trajectories():
    # TP distances 3 and 4 pooled: rmse = sqrt((9 + 16) / 2); JSC = 2 / (2 + 1 FP)
    r, j = change_point_scores([np.array([40]), np.array([80])], [np.array([43]), np.array([76, 150])])
    assert r == pytest.approx(math.sqrt(12.5)) and j == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        change_point_scores([np.array([1])], [])
    with pytest.raises(InputError):
        change_point_scores([np.array([np.nan])], [np.array([1])])


# ----------------------------------------------------------------------------- segments


def test_segment_pairs_matches_by_overlap():
    true = seg([100], 200, [0.5, 1.0], K=[1.0, 0.1], state=[2, 1])
    pred = seg([95], 200, [0.6, 0.9], K=[0.8, 0.2], state=[2, 2])
    a, k, s = segment_pairs(true, pred)
    np.testing.assert_allclose(a, [[0.5, 0.6], [1.0, 0.9]])
    np.testing.assert_allclose(k, [[1.0, 0.8], [0.1, 0.2]])
    np.testing.assert_allclose(s, [[2, 2], [1, 2]])
    # a prediction with more segments: the true segment pairs with the most overlapping one
    pred3 = seg([20, 95], 200, [1.5, 0.6, 0.9])
    a3, _, _ = segment_pairs(true, pred3)
    np.testing.assert_allclose(a3, [[0.5, 0.6], [1.0, 0.9]])


def test_segment_pairs_without_change_points():
    # true has no change point: paired with the predicted segment overlapping it most
    true = seg([], 200, [0.7])
    pred = seg([30], 200, [1.2, 0.4])
    a, _, _ = segment_pairs(true, pred)
    np.testing.assert_allclose(a, [[0.7, 0.4]])
    # prediction without change point: the longest true segment (frames 51..150) is matched
    true3 = seg([50, 150], 200, [0.2, 0.9, 1.4])
    none = seg([], 200, [0.8])
    a, _, _ = segment_pairs(true3, none, reference_quirks=False)
    np.testing.assert_allclose(a, [[0.9, 0.8]])
    a, _, _ = segment_pairs(seg([], 50, [0.3]), seg([], 50, [0.5]))
    np.testing.assert_allclose(a, [[0.3, 0.5]])


def test_property_errors():
    assert alpha_mae([0.5, 1.0], [0.7, 0.5]) == pytest.approx(0.35)
    assert alpha_mae([0.0], [5.0]) == pytest.approx(1.999)  # capped
    assert k_msle([1.0], [math.e - 1]) == pytest.approx((math.log(2) - 1) ** 2)
    assert k_msle([0.0], [-3.0]) == pytest.approx(0.0)  # both clamped at 1e-12
    assert state_f1([2, 2, 1, 0], [2, 1, 1, 0]) == pytest.approx(0.75)
    with pytest.raises(InputError):
        alpha_mae([1.0], [1.0, 2.0])


# ----------------------------------------------------------------------------- whole sets


def test_single_trajectory_scores_perfect_and_missing():
    true = {0: seg([60], 150, [0.5, 1.1], K=[0.05, 1.0], state=[1, 2]), 1: seg([], 80, [0.9], K=[0.7])}
    perfect = single_trajectory_scores(true, dict(true))
    assert (perfect.cp_rmse, perfect.cp_jsc, perfect.alpha_mae, perfect.k_msle, perfect.state_f1) == (0, 1, 0, 0, 1)
    # trajectory 1 missing: its alpha pair is (2, 0), K (1e5 + 1, 1), state (10, 0) and the
    # change points (20 vs 10) count as one FP and one FN
    part = single_trajectory_scores(true, {0: true[0]})
    assert part.n_missing == 1 and part.n_trajectories == 2
    assert part.alpha_mae == pytest.approx(2 / 3)
    assert part.k_msle == pytest.approx((math.log1p(1e5 + 1) - math.log(2)) ** 2 / 3)
    assert part.state_f1 == pytest.approx(2 / 3)
    assert part.cp_jsc == pytest.approx(1 / 3) and part.cp_rmse == 0


def test_single_trajectory_scores_replace_invalid_predictions():
    true = {0: seg([], 100, [0.8], K=[1.0], state=[2])}
    bad = {0: seg([], 100, [np.nan], K=[np.nan], state=[7])}
    sc = single_trajectory_scores(true, bad)
    assert sc.alpha_mae == pytest.approx(1.999)  # true + 2, capped
    assert sc.k_msle == pytest.approx((math.log(2) - math.log1p(1e5 + 1)) ** 2)
    assert sc.state_f1 == 0.0  # state 7 -> 0 (immobile), true is free


def test_segment_labels_rows_and_frames():
    row = [3, 1.0, 0.5, 2, 40, 0.1, 0.9, 1, 100]
    idx, lab = SegmentLabels.from_row(row)
    assert idx == 3 and lab.length == 100
    np.testing.assert_array_equal(lab.change_points, [40])
    np.testing.assert_allclose(lab.alpha, [0.5, 0.9])
    assert lab.to_row(3) == [float(x) for x in row]
    frames = SegmentLabels.from_frames(
        np.r_[np.full(40, 0.5), np.full(60, 0.9)],
        np.r_[np.ones(40), np.full(60, 0.1)],
        np.r_[np.full(40, 2), np.ones(60)],
    )
    np.testing.assert_array_equal(frames.change_points, [40])
    assert frames.to_row(3) == [float(x) for x in row]
    with pytest.raises(InputError):
        SegmentLabels.from_row([0, 1.0, 0.5, 2])
    with pytest.raises(InputError):
        SegmentLabels(change_points=[10], length=50, alpha=[1.0], K=[1.0], state=[2])


# ----------------------------------------------------------------------------- ensemble


def test_wasserstein1_examples():
    assert wasserstein1([0.0], [1.0]) == pytest.approx(1.0)
    assert wasserstein1([0.0, 1.0], [0.0, 1.0], [1, 3], [3, 1]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=50), rng.normal(1, 2, size=70)
    wu, wv = rng.random(50), rng.random(70)
    assert wasserstein1(u, v, wu, wv) == pytest.approx(wasserstein_distance(u, v, wu, wv), rel=1e-12)
    with pytest.raises(InputError):
        wasserstein1([0.0], [1.0], [-1.0], [1.0])


def test_ensemble_distances():
    one = np.array([0.5, 0.01, 1.0, 0.01, 100])
    assert ensemble_distances(one, one, 20001) == pytest.approx((0.0, 0.0), abs=1e-12)
    # shifted single states far from the bounds: W1 is the shift of the mean
    moved = np.array([0.7, 0.01, 1.1, 0.01, 100])
    wa, wk = ensemble_distances(one, moved, 200001)
    assert wa == pytest.approx(0.2, abs=2e-3) and wk == pytest.approx(0.1, abs=2e-3)
    # two states: weights are normalised counts; moving 25 % of the mass by 0.4 costs 0.1
    two = np.array([[0.4, 1.2], [0.0, 0.0], [1.0, 1.0], [0.01, 0.01], [300, 100]])
    two_moved = two.copy()
    two_moved[0, 1] = 1.6
    wa, wk = ensemble_distances(two, two_moved, 200001)
    assert wa == pytest.approx(0.1, abs=2e-3) and wk == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError):
        ensemble_distances(np.zeros((4, 2)), two)


def test_framewise_scores():
    ta = np.array([[0.5, 0.5, np.nan]])
    ones = np.ones((1, 3))
    sc = framewise_scores(ta, ones, np.array([[2, 2, -1]]), np.array([[0.6, 0.3, 0]]), ones, np.array([[2, 1, 0]]))
    assert sc["alpha_mae"] == pytest.approx(0.15) and sc["k_msle"] == 0 and sc["state_f1"] == 0.5
    with pytest.raises(InputError):
        framewise_scores(ta, ta, ta, ta, ta, np.ones((2, 3)))
