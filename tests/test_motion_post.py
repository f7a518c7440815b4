"""Motion post-processing without the network: features, baseline, change points, states, segments, GMM."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.motion.network import INPUT_CHANNELS, FramePredictions, motion_features, msd_fit, pad_tracks
from edgetrack.runtime.motion.ensemble import (
    confined_votes,
    ensemble_summary,
    fit_gmm,
    guess_model,
    harmonise_states,
    segment_errors,
    select_gmm,
)
from edgetrack.runtime.motion.segments import (
    BUMP_MASS,
    SegmentConfig,
    network_change_points,
    ruptures_change_points,
    segment_track,
    smooth_states,
)


def _walk(n: int, step: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, step, (n, 2)), axis=0) + 50.0


def test_features_ignore_padding_and_scale():
    a, b = _walk(37, 1.0, 0), _walk(90, 0.3, 1)
    pos1, n1 = pad_tracks([a])
    pos2, n2 = pad_tracks([a, b])
    f1, m1, s1 = motion_features(pos1, n1)
    f2, m2, s2 = motion_features(pos2, n2)
    assert f1.shape == (1, len(INPUT_CHANNELS), 40) and f2.shape[2] == 96
    np.testing.assert_allclose(f1[0, :, :37], f2[0, :, :37], rtol=1e-6, atol=1e-6)
    assert np.all(f2[0, :, 37:] == 0) and m2[0, 36] == 1 and m2[0, 37] == 0
    # positions x10: every channel but log_scale is unchanged, log_scale shifts by 0.5 ln 10
    f3, _, s3 = motion_features(pos1 * 10.0, n1)
    c = INPUT_CHANNELS.index("log_scale")
    keep = [i for i in range(len(INPUT_CHANNELS)) if i != c]
    np.testing.assert_allclose(f3[0, keep], f1[0, keep], atol=1e-5)
    assert s3[0] - s1[0] == pytest.approx(np.log(10.0))
    assert f3[0, c, 0] - f1[0, c, 0] == pytest.approx(0.5 * np.log(10.0), rel=1e-5)


def test_pad_tracks_rejects_bad_input():
    with pytest.raises(InputError, match="NaN"):
        pad_tracks([np.array([[0.0, 1.0], [np.nan, 2.0]])])
    with pytest.raises(InputError, match=r"\(n, 2\)"):
        pad_tracks([np.zeros((5, 3))])
    with pytest.raises(InputError, match="no tracks"):
        pad_tracks([])


def test_msd_fit_recovers_brownian_k():
    rng = np.random.default_rng(3)
    K = 0.7  # per-coordinate MSD 2 K t
    alphas, ks = [], []
    for _ in range(20):
        pos = np.cumsum(rng.normal(0, np.sqrt(2 * K), (400, 2)), axis=0)
        a, k = msd_fit(pos)
        alphas.append(a)
        ks.append(k)
    assert np.mean(alphas) == pytest.approx(1.0, abs=0.05)
    assert np.mean(ks) == pytest.approx(K, rel=0.08)
    assert np.isnan(msd_fit(np.zeros((2, 2)))[0])


def _bumps(n: int, centres, height: float = 1.0) -> np.ndarray:
    t = np.arange(n)
    return np.clip(sum(height * np.exp(-0.5 * (t - c) ** 2) for c in centres) + 0.0, 0, 1)


def test_network_change_points_peaks_and_dwell():
    p = _bumps(100, [30, 70])
    assert list(network_change_points(p, 0.5, 3)) == [30, 70]
    assert network_change_points(_bumps(100, [30], 0.2), 0.5, 3).size == 0  # weak bump: mass 0.2 < 0.5
    close = np.maximum(_bumps(100, [30]), _bumps(100, [32], 0.9))
    assert list(network_change_points(close, 0.5, 5)) == [30]  # NMS keeps the stronger one
    assert network_change_points(_bumps(100, [1]), 0.5, 3).size == 0  # too near the start
    assert BUMP_MASS == pytest.approx(1 + 2 * np.exp(-0.5) + 2 * np.exp(-2.0))


@pytest.mark.parametrize("method", ["pelt", "binseg", "window"])
def test_ruptures_finds_a_step(method):
    rng = np.random.default_rng(0)
    x = np.r_[np.zeros(60), np.ones(60) * 3.0] + rng.normal(0, 0.3, 120)
    cps = ruptures_change_points(x, method, penalty=5.0, min_dwell=3, window_half=8)
    assert cps.size == 1 and abs(int(cps[0]) - 60) <= 2


def test_smooth_states_merges_short_runs():
    probs = np.zeros((20, 4))
    probs[:, 2] = 0.8
    probs[8:10, 1] = 0.9  # a 2-point confined blip
    probs[8:10, 2] = 0.1
    s = smooth_states(probs, min_dwell=3)
    assert np.all(s == 2)
    assert np.all(smooth_states(probs, min_dwell=2)[8:10] == 1)


def _pred(alpha, K, states, cp) -> FramePredictions:
    n = len(alpha)
    probs = np.full((n, 4), 0.02)
    probs[np.arange(n), states] = 0.94
    return FramePredictions(np.asarray(alpha, float), np.asarray(K, float), probs, np.asarray(cp, float))


def test_segment_track_immobile_and_directed():
    n = 60
    states = np.r_[np.full(30, 2), np.full(30, 0)]
    alpha = np.r_[np.full(30, 1.95), np.full(30, 0.3)]
    K = np.r_[np.full(30, 1.0), np.full(30, 0.01)]
    seg = segment_track(_pred(alpha, K, states, _bumps(n, [30])), SegmentConfig(method="network"))
    assert list(seg.change_points) == [30]
    assert list(seg.state) == [3, 0]  # free with alpha >= 1.9 is directed
    assert seg.alpha[1] == 0 and seg.K[1] == 0  # immobile: alpha = K = 0
    assert list(seg.start) == [0, 30] and list(seg.end) == [29, 59]
    a, k, s, idx = seg.per_point()
    assert a.shape == (n,) and s[0] == 3 and idx[-1] == 1


def test_segment_track_state_change_is_a_change_point():
    states = np.r_[np.full(25, 2), np.full(25, 1)]
    seg = segment_track(_pred(np.ones(50), np.ones(50), states, np.zeros(50)), SegmentConfig(method="network"))
    assert list(seg.change_points) == [25] and list(seg.state) == [2, 1]


def test_segment_config_rejects_unknown():
    with pytest.raises(ConfigError):
        SegmentConfig(method="magic")
    with pytest.raises(ConfigError):
        SegmentConfig.from_dict({"treshold": 0.3})


def test_gmm_recovers_two_clusters_and_bic_choice():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal([1.0, 0.0], [0.08, 0.1], (120, 2)), rng.normal([0.5, -1.5], [0.08, 0.15], (80, 2))]
    gm, bics = select_gmm(x, rng.uniform(20, 200, 200), max_k=4)
    assert gm.k == 2 and min(bics, key=bics.get) == 2
    order = np.argsort(gm.means[:, 1])
    np.testing.assert_allclose(gm.means[order], [[0.5, -1.5], [1.0, 0.0]], atol=0.06)
    one, _ = select_gmm(rng.normal(0, 1, (100, 2)))
    assert one.k == 1
    with pytest.raises(InputError):
        fit_gmm(np.full((5, 2), np.nan), None, 1)


def test_ensemble_summary_immobile_state_and_harmonise():
    rng = np.random.default_rng(2)
    n = 40
    alpha = np.r_[rng.normal(1.0, 0.05, n), rng.normal(0.5, 0.05, n), np.zeros(5)]
    K = np.r_[rng.normal(1.0, 0.05, n), rng.normal(0.03, 0.003, n), np.zeros(5)]
    state = np.r_[np.full(2 * n, 2), np.zeros(5, int)]
    frames = np.full(2 * n + 5, 50)
    s = ensemble_summary(alpha, K, state, frames)
    assert s.n_states == 3 and s.immobile.tolist().count(True) == 1
    assert s.matrix[4].sum() == frames.sum()
    assert set(s.labels[-5:]) == {int(np.flatnonzero(s.immobile)[0])}
    assert guess_model(s, state) == "immobile_traps"
    probs = np.zeros((2 * n + 5, 4))
    probs[:, 2] = 1.0
    slow = s.labels[n]
    probs[n:2 * n, 1], probs[n:2 * n, 2] = 0.7, 0.3  # the slow ensemble state votes confined
    probs[n, 1], probs[n, 2] = 0.1, 0.9  # one dissenter follows the vote
    new = harmonise_states(s.labels, state, alpha, probs, frames, s.immobile)
    assert np.all(new[s.labels == slow] == 1) and np.all(new[:n] == 2) and np.all(new[-5:] == 0)


def test_deconvolution_recovers_spread_and_shrinks_short_segments():
    rng = np.random.default_rng(4)
    n = np.r_[np.full(60, 20), np.full(60, 200)]
    true_a = rng.normal(0.8, 0.1, n.size)
    true_k = 10 ** rng.normal(0.0, 0.05, n.size)
    cal = {"alpha_error_var": [0.001, 0.7], "log10_K_error_var": [0.0005, 0.1]}
    err = segment_errors(n, cal)
    est_a = true_a + rng.normal(0, np.sqrt(err[:, 0]))
    est_k = true_k * 10 ** rng.normal(0, np.sqrt(err[:, 1]))
    plain = ensemble_summary(est_a, est_k, np.full(n.size, 2), n)
    xd = ensemble_summary(est_a, est_k, np.full(n.size, 2), n, error_var=cal)
    assert xd.n_states == 1 and plain.alpha is not xd.alpha
    assert xd.matrix[1, 0] == pytest.approx(0.01, abs=0.005)  # the true spread, not the noisy one
    assert plain.matrix[1, 0] > 1.3 * xd.matrix[1, 0]
    short = slice(0, 60)
    assert np.mean(np.abs(xd.alpha[short] - true_a[short])) < 0.8 * np.mean(np.abs(est_a[short] - true_a[short]))
    assert np.max(np.abs(xd.alpha[60:] - est_a[60:])) < np.max(np.abs(xd.alpha[short] - est_a[short]))
    np.testing.assert_array_equal(plain.alpha, est_a)  # without errors the values stay


def test_confined_votes_threshold():
    labels = np.array([0, 0, 1, 1, 2])
    state = np.array([2, 1, 2, 2, 0])
    probs = np.array([[0, 0.7, 0.3, 0], [0, 0.6, 0.4, 0], [0, 0.1, 0.9, 0], [0, 0.2, 0.8, 0], [1, 0, 0, 0]], float)
    frames = np.array([10, 30, 10, 10, 50])
    immobile = np.array([False, False, True])
    votes = confined_votes(labels, state, probs, frames, immobile)
    assert set(votes) == {0, 1} and votes[0] == pytest.approx((7 + 18) / 40) and votes[1] == pytest.approx(0.15)
    paired = np.array([0.0, 1.0, 0.0, 0.0, 0.0])  # the long segment moves with a partner
    assert confined_votes(labels, state, probs, frames, immobile, paired)[0] == pytest.approx(7 / 40)
    alpha = np.array([1.0, 1.0, 1.95, 1.0, 0.0])
    assert list(harmonise_states(labels, state, alpha, probs, frames, immobile, 0.5)) == [1, 1, 3, 2, 0]
    assert list(harmonise_states(labels, state, alpha, probs, frames, immobile, 0.1)) == [1, 1, 1, 1, 0]
