"""Simulators of the AnDi challenges: exact fGn/fBm, the five phenomenological models, the
challenge's experiments and the theoretical models."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.metrics.motion import SegmentLabels
from edgetrack.training.andi import challenge as C
from edgetrack.training.andi import fbm as F
from edgetrack.training.andi import models as M
from edgetrack.training.andi import theory as TH


def _msd_from_origin(pos: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Ensemble MSD per coordinate at the given lags (frames)."""
    return np.array([np.mean((pos[:, t] - pos[:, 0]) ** 2) for t in lags])


def _loglog_fit(lags: np.ndarray, msd: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(lags), np.log(msd), 1)
    return float(slope), float(np.exp(intercept))


# ----------------------------------------------------------------------------- fGn / fBm


@pytest.mark.parametrize("alpha", [0.3, 1.0, 1.6])
def test_fgn_autocovariance_matches_formula(alpha):
    rng = np.random.default_rng(1)
    x = F.fgn(np.full(3000, alpha), 64, rng)
    emp = [np.mean(x[:, : 64 - k] * x[:, k:]) for k in range(6)]
    np.testing.assert_allclose(emp, F.fgn_autocovariance(alpha, 6), atol=0.025)
    assert abs(np.mean(x[..., 0] * x[..., 1])) < 0.02  # coordinates independent


def test_fgn_autocovariance_values():
    # gamma(k) = (|k+1|^a - 2|k|^a + |k-1|^a) / 2: white noise for alpha = 1, -0.5 limit at lag 1
    np.testing.assert_allclose(F.fgn_autocovariance(1.0, 4), [1, 0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(F.fgn_autocovariance(1.5, 2), [1, 0.5 * (2**1.5 - 2)])


def test_circulant_embedding_is_valid_over_the_alpha_range():
    for n in (1, 2, 7, 50, 199, 512):
        lam = F._circulant_sqrt_eigenvalues(np.linspace(0.01, 1.99, 25), F._embedding_size(n))
        assert np.all(np.isfinite(lam)) and lam.min() >= 0


@pytest.mark.parametrize("alpha,K", [(0.3, 0.5), (1.0, 2.0), (1.5, 0.1)])
def test_fbm_msd_exponent_and_K(alpha, K):
    pos = F.fbm(np.full(2000, alpha), K, 200, np.random.default_rng(2))
    assert pos.shape == (2000, 200, 2) and np.all(pos[:, 0] == 0)
    lags = np.unique(np.geomspace(1, 150, 20).astype(int))
    slope, amp = _loglog_fit(lags, _msd_from_origin(pos, lags))
    assert abs(slope - alpha) < 0.05
    assert abs(amp / (2 * K) - 1) < 0.08  # per-coordinate MSD = 2 K t^alpha


def test_fgn_rejects_bad_alpha():
    with pytest.raises(InputError):
        F.fgn([0.5, 2.0], 10, np.random.default_rng(0))
    with pytest.raises(InputError):
        F.fgn([np.nan], 10, np.random.default_rng(0))


def test_fgn_segments_lengths_and_variance():
    rng = np.random.default_rng(3)
    lens = np.array([5, 0, 130, 64, 1])
    out = F.fgn_segments(np.array([0.5, 1.0, 1.2, 0.7, 1.9]), lens, rng)
    assert out.shape == (lens.sum(), 2)
    many = F.fgn_segments(np.full(2000, 0.6), np.full(2000, 33), rng).reshape(2000, 33, 2)
    assert abs(many.var() - 1) < 0.03
    assert abs(np.mean(many[:, :-1] * many[:, 1:]) - F.fgn_autocovariance(0.6, 2)[1]) < 0.02


# ----------------------------------------------------------------------------- phenomenological models


def test_single_state_labels_msd_and_box():
    cfg = M.SingleState(alpha=(0.7, 0.0), K=(0.5, 0.0))
    tr = M.simulate(cfg, 1500, 120, rng=4)
    assert tr.positions.shape == (1500, 120, 2) and np.all(tr.state == M.FREE)
    assert np.all(tr.alpha == 0.7) and np.all(tr.K == 0.5)
    lags = np.arange(1, 60)
    slope, amp = _loglog_fit(lags, _msd_from_origin(tr.positions, lags))
    assert abs(slope - 0.7) < 0.05 and abs(amp - 1.0) < 0.08
    boxed = M.simulate(M.SingleState(alpha=(1.9, 0.0), K=(5.0, 0.0), L=20.0), 100, 200, rng=5)
    assert boxed.positions.min() >= 0 and boxed.positions.max() <= 20.0
    assert np.all(boxed.state == M.DIRECTED)  # alpha >= 1.9


def test_multi_state_dwell_times_follow_transition_matrix():
    P = ((0.95, 0.05), (0.10, 0.90))
    cfg = M.MultiState(M=P, alpha=((1.0, 0.0), (0.5, 0.0)), K=((1.0, 0.0), (0.05, 0.0)))
    tr = M.simulate(cfg, 3000, 200, rng=6)
    s = tr.state_num.astype(int)
    for a in (0, 1):
        from_a = s[:, :-1] == a
        p_leave = np.mean(s[:, 1:][from_a] != a)
        assert abs(p_leave - (1 - P[a][a])) < 0.006
    # dwell times in state 0 (complete runs, long trajectories) are geometric with mean 1 / 0.05
    runs = []
    for row in M.simulate(cfg, 200, 2000, rng=61).state_num.astype(int):
        change = np.flatnonzero(np.diff(row)) + 1
        bounds = np.concatenate([[0], change, [row.size]])
        for k in range(1, bounds.size - 2):
            if row[bounds[k]] == 0:
                runs.append(bounds[k + 1] - bounds[k])
    assert len(runs) > 3000 and abs(np.mean(runs) - 20) < 1.0
    # labels follow the state; the step out of a frame uses that frame's state (K)
    np.testing.assert_array_equal(tr.alpha, np.where(s == 0, 1.0, 0.5))
    steps = np.diff(tr.positions, axis=1)
    for a, K in ((0, 1.0), (1, 0.05)):
        v = steps[s[:, :-1] == a].var()
        assert abs(v / (2 * K) - 1) < 0.05
    cps = tr.change_points()
    assert sum(len(c) for c in cps) == int((np.diff(s, axis=1) != 0).sum())


def test_multi_state_constraints_and_validation():
    cfg = M.MultiState(
        M=((0.9, 0.1), (0.1, 0.9)), alpha=((1.2, 0.01), (0.8, 0.01)), K=((1.0, 0.01), (0.4, 0.01)),
        epsilon_a=(0.2,), gamma_d=(0.5,),
    )
    tr = M.simulate(cfg, 400, 50, rng=7)
    a0 = np.array([r[s == 0][0] if np.any(s == 0) else np.nan for r, s in zip(tr.alpha, tr.state_num)])
    a1 = np.array([r[s == 1][0] if np.any(s == 1) else np.nan for r, s in zip(tr.alpha, tr.state_num)])
    k0 = np.array([r[s == 0][0] if np.any(s == 0) else np.nan for r, s in zip(tr.K, tr.state_num)])
    k1 = np.array([r[s == 1][0] if np.any(s == 1) else np.nan for r, s in zip(tr.K, tr.state_num)])
    both = np.isfinite(a0) & np.isfinite(a1)
    assert both.sum() > 100 and np.all(a0[both] - a1[both] >= 0.2)
    assert np.all(k1[both] <= 0.5 * k0[both])
    with pytest.raises(ConfigError):
        M.MultiState(M=((0.5, 0.4), (0.1, 0.9)))
    with pytest.raises(ConfigError):
        M.MultiState.from_dict({"M": ((1.0,),), "alpha": ((1, 0),), "K": ((1, 0),), "typo": 1})
    with pytest.raises(ConfigError):
        M.SingleState(alpha=(2.5, 0.0))


def test_immobile_trap_particles_stop_near_traps():
    traps = np.array([[10.0, 10.0], [30.0, 30.0], [10.0, 30.0], [30.0, 10.0]])
    cfg = M.ImmobileTraps(L=40.0, r=2.0, Pu=0.05, Pb=0.5, alpha=(0.8, 0.0), K=(1.0, 0.0))
    tr = M.simulate(cfg, 400, 200, rng=8, traps=traps)
    bound = tr.state == M.IMMOBILE
    assert 0.05 < bound.mean() < 0.9
    steps = np.linalg.norm(np.diff(tr.positions, axis=1), axis=2)
    assert np.all(steps[bound[:, 1:]] == 0)  # immobile at t: no move from t-1 to t
    assert np.all(steps[~bound[:, 1:]] > 0)
    assert np.all(tr.alpha[bound] == 0) and np.all(tr.K[bound] == 0)
    # binding happens within r of a trap (distance from the previous position)
    starts = bound[:, 1:] & ~bound[:, :-1]
    prev = tr.positions[:, :-1][starts]
    d = np.min(np.linalg.norm(prev[:, None, :] - traps[None], axis=2), axis=1)
    assert starts.sum() > 20 and np.all(d < 2.0)


def test_confined_particles_stay_in_their_compartment():
    centers = np.array([[15.0, 15.0], [15.0, 45.0], [45.0, 15.0], [45.0, 45.0]])
    cfg = M.Confinement(L=60.0, r=8.0, trans=0.0, alpha=((1.0, 0.0), (0.8, 0.0)), K=((2.0, 0.0), (1.0, 0.0)))
    tr = M.simulate(cfg, 500, 150, rng=9, compartments=centers)
    conf = tr.state_num == 1
    assert conf.any() and np.all(tr.state[conf] == M.CONFINED)
    # with transmittance 0 a confined particle never leaves, and stays within r of one centre
    first = np.argmax(conf, axis=1)
    ever = conf.any(axis=1)
    for i in np.flatnonzero(ever):
        assert conf[i, first[i]:].all()
        p = tr.positions[i, first[i]:]
        c = centers[np.argmin(np.linalg.norm(centers - p[0], axis=1))]
        assert np.all(np.linalg.norm(p - c, axis=1) <= 8.0 + 1e-9)
    # with transmittance 1 and equal states, particles cross freely: the area fraction is confined
    free_cfg = cfg.replace(trans=1.0, alpha=((1.0, 0.0), (1.0, 0.0)), K=((1.0, 0.0), (1.0, 0.0)))
    tr1 = M.simulate(free_cfg, 2000, 100, rng=10, compartments=centers)
    area = 4 * np.pi * 64 / 3600
    assert abs((tr1.state_num == 1).mean() - area) < 0.04


def test_dimers_move_together():
    cfg = M.Dimerization(
        L=25.0, r=1.0, Pu=0.05, Pb=1.0, alpha=((1.0, 0.0), (0.7, 0.0)), K=((1.0, 0.0), (0.2, 0.0))
    )
    tr = M.simulate([cfg] * 4, 40, 150, rng=11)
    bound = tr.state_num == 1
    assert 0.1 < bound.mean() < 0.95
    steps = np.diff(tr.positions, axis=1)
    n_checked = 0
    for e in range(4):
        rows = np.flatnonzero(tr.experiment == e)
        for t in range(1, 149):
            both = rows[bound[rows, t] & bound[rows, t + 1]]
            for i in both[:3]:
                others = both[both != i]
                same = np.all(np.abs(steps[others, t] - steps[i, t]) < 1e-12, axis=1)
                near_wall = np.any((tr.positions[i, t : t + 2] < 3) | (tr.positions[i, t : t + 2] > 22))
                assert same.any() or near_wall
                n_checked += 1
    assert n_checked > 200
    np.testing.assert_array_equal(tr.alpha[bound & (tr.alpha != 0.7)].size, 0)


@pytest.mark.parametrize("model", C.PHENOM_MODELS)
def test_models_are_deterministic(model):
    cfgs = [C.challenge_config(model, np.random.default_rng(k)) for k in range(2)]
    a = M.simulate(cfgs, 20, 40, rng=12)
    b = M.simulate(cfgs, 20, 40, rng=12)
    c = M.simulate(cfgs, 20, 40, rng=13)
    for name in ("positions", "alpha", "K", "state", "state_num"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.positions, c.positions)
    assert a.model == model and np.all(np.isfinite(a.positions))


def test_simulate_input_errors():
    with pytest.raises(InputError):
        M.simulate([M.SingleState(), M.MultiState()], 5, 10)
    with pytest.raises(InputError):
        M.simulate(M.SingleState(), 0, 10)
    with pytest.raises(InputError):
        M.simulate(M.SingleState(), 5, 10, traps=np.zeros((2, 2)))
    with pytest.raises(InputError):
        M.simulate(M.ImmobileTraps(), 5, 10, traps=np.zeros((2, 3)))
    with pytest.raises(ConfigError):
        M.simulate(M.Confinement(L=20.0, r=5.0, n_compartments=30), 5, 10, rng=0)


def test_truncated_normal_sampler():
    rng = np.random.default_rng(14)
    x = M.sample_truncated_normal(np.full(20000, 0.2), np.full(20000, 0.04), (0.0, 1.999), rng)
    assert x.min() >= 0 and x.max() <= 1.999
    free = M.sample_truncated_normal(np.full(20000, 1.0), np.full(20000, 0.01), (0.0, 1.999), rng)
    assert abs(free.mean() - 1.0) < 0.005 and abs(free.std() - 0.1) < 0.005
    np.testing.assert_array_equal(M.sample_truncated_normal(np.array([0.5]), np.array([0.0]), (0, 1), rng), [0.5])
    with pytest.raises(ConfigError):
        M.sample_truncated_normal(np.array([3.0]), np.array([0.0]), (0, 1), rng)


# ----------------------------------------------------------------------------- challenge experiments


def test_label_filter_matches_reference_examples():
    # expected outputs computed with andi-datasets 2.1.13 utils_challenge.label_filter
    cases = [
        ([0, 0, 0, 1, 0, 0, 0], [0] * 7),
        ([1, 1, 0, 0, 0, 0, 0, 0], [0] * 8),
        ([0] * 10 + [1] * 10, [0] * 10 + [1] * 10),
        ([0] * 10 + [1, 1] + [2] * 10, [0] * 12 + [2] * 10),
    ]
    for raw, want in cases:
        np.testing.assert_array_equal(C.label_filter(np.array(raw, float)), want)


def test_challenge_dataset_fov_labels_and_change_points():
    data = C.challenge_dataset("multi_state", 3, rng=15, noise_sigma=0.0)
    tr = data.trajectories
    assert tr.n_frames == C.N_FRAMES and len(data.configs) == 3 and data.fov_origins.shape == (3, 2)
    pres = tr.present
    assert np.all(tr.lengths >= C.MIN_LENGTH)
    # each trajectory is one run of frames, strictly inside its experiment's field of view
    assert np.all(np.diff(pres.astype(int), axis=1).clip(min=0).sum(1) <= 1)
    o = data.fov_origins[tr.experiment][:, None, :]
    inside = (tr.positions > o) & (tr.positions < o + C.FOV_SIZE)
    assert np.all(inside.all(axis=2)[pres]) and np.all(np.isnan(tr.positions[~pres]))
    # change points = label changes, counted from the first point; rows parse back
    for i, (cps, row) in enumerate(zip(tr.change_points(), tr.segment_rows())):
        idx, seg = SegmentLabels.from_row(row)
        sl = slice(tr.first_frame[i], tr.first_frame[i] + tr.lengths[i])
        ref = SegmentLabels.from_frames(tr.alpha[i, sl], tr.K[i, sl], tr.state[i, sl])
        assert idx == i and seg.length == tr.lengths[i]
        np.testing.assert_array_equal(seg.change_points, cps)
        np.testing.assert_array_equal(ref.change_points, cps)
        np.testing.assert_allclose(ref.alpha, seg.alpha)
        # the label filter leaves no segment shorter than 3 frames
        edges = np.concatenate([[0], cps, [tr.lengths[i]]])
        assert np.all(np.diff(edges) >= 3)
    for e, ens in enumerate(data.ensembles):
        assert ens.shape == (5, 2)
        assert ens[4].sum() == pres[tr.experiment == e].sum()
    df = tr.to_dataframe()
    assert list(df.columns[:7]) == ["traj_idx", "frame", "y", "x", "alpha", "K", "state"]
    assert len(df) == pres.sum() and df["state"].dtype == np.int8


def test_challenge_noise_and_configs():
    rng = np.random.default_rng(16)
    cfg = C.challenge_config("confinement", rng)
    assert isinstance(cfg, M.Confinement) and cfg.r == 5.0 and cfg.n_compartments == 30
    assert 0.8 <= cfg.alpha[0][0] <= 1.2 and 0.2 <= cfg.alpha[0][0] - cfg.alpha[1][0] <= 0.6
    clean = C.challenge_dataset("single_state", 2, rng=17, noise_sigma=0.0).trajectories
    noisy = C.challenge_dataset("single_state", 2, rng=17, noise_sigma=0.12).trajectories
    assert clean.n_trajectories == noisy.n_trajectories
    diff = (noisy.positions - clean.positions)[clean.present]
    assert abs(diff.std() - 0.12) < 0.01
    with pytest.raises(InputError):
        C.challenge_dataset("nonexistent", 1)
    with pytest.raises(InputError):
        C.challenge_dataset("single_state", 1, configs=[M.SingleState()])  # no box


def test_crop_to_fov_splits_exits():
    pos = np.zeros((1, 60, 2)) + 50.0
    pos[0, 25:30] = 500.0  # leaves the field of view for 5 frames
    tr = M.Trajectories(
        positions=pos, alpha=np.ones((1, 60)), K=np.ones((1, 60)),
        state=np.full((1, 60), 2, np.int8), state_num=np.zeros((1, 60), np.int8),
        experiment=np.zeros(1, np.int64), model="single_state",
    )
    out = C.crop_to_fov(tr, np.array([0.0, 0.0]), size=128.0, min_length=20)
    np.testing.assert_array_equal(out.first_frame, [0, 30])
    np.testing.assert_array_equal(out.lengths, [25, 30])


# ----------------------------------------------------------------------------- theory models


def test_theory_shapes_and_validation():
    rng = np.random.default_rng(18)
    for model in TH.THEORY_MODELS:
        lo, hi = TH.ALPHA_RANGES[model]
        a = np.array([min(hi, 0.9) if model != "lw" else 1.5] * 7)
        pos = TH.simulate_theory(model, a, 50, rng)
        assert pos.shape == (7, 50, 2) and np.all(pos[:, 0] == 0) and np.all(np.isfinite(pos))
    with pytest.raises(InputError):
        TH.ctrw([1.5], 20, rng)
    with pytest.raises(InputError):
        TH.levy_walk([0.5], 20, rng)
    with pytest.raises(InputError):
        TH.fbm([2.0], 20, rng)
    with pytest.raises(InputError):
        TH.simulate_theory("brownian", [1.0], 20, rng)


def test_sbm_and_ctrw_statistics():
    rng = np.random.default_rng(19)
    lags = np.arange(1, 150)
    for alpha in (0.5, 1.4):
        slope, amp = _loglog_fit(lags, _msd_from_origin(TH.sbm(np.full(3000, alpha), 150, rng, K=0.5), lags))
        assert abs(slope - alpha) < 0.05 and abs(amp - 1.0) < 0.08
    # CTRW: positions only change at jumps; fewer jumps for smaller alpha
    moves = {}
    for alpha in (0.3, 1.0):
        pos = TH.ctrw(np.full(500, alpha), 200, rng)
        moving = np.any(np.diff(pos, axis=1) != 0, axis=2)
        moves[alpha] = moving.mean()
    assert moves[0.3] < moves[1.0] < 1.0
    # Levy walk steps have constant speed within a trajectory
    pos = TH.levy_walk(np.full(20, 1.5), 100, rng, velocity=2.0)
    np.testing.assert_allclose(np.linalg.norm(np.diff(pos, axis=1), axis=2), 2.0)


def test_theory_dataset_labels():
    pos, alpha, model = TH.theory_dataset(500, 64, rng=20)
    assert pos.shape == (500, 64, 2) and alpha.shape == (500,) and model.dtype == np.int8
    for k, name in enumerate(TH.THEORY_MODELS):
        a = alpha[model == k]
        lo, hi = TH.ALPHA_RANGES[name]
        assert a.size > 50 and np.all(a > lo) and np.all(a <= hi)
    pos2, alpha2, model2 = TH.theory_dataset(500, 64, rng=20)
    np.testing.assert_array_equal(pos, pos2)
    np.testing.assert_array_equal(model, model2)


def test_ensemble_counts_a_directed_free_state_as_the_free_state():
    """A free state with alpha >= 1.9 is labelled directed per frame; its frames still count as that state's."""
    from types import SimpleNamespace

    from edgetrack.training.andi.models import CONFINED, DIRECTED, IMMOBILE

    present = np.ones(10, bool)
    directed_and_confined = SimpleNamespace(state=np.array([DIRECTED] * 6 + [CONFINED] * 4), state_num=np.zeros(10),
                                            present=present)
    cfg = M.Confinement(alpha=((1.95, 0.0), (0.5, 0.0)))
    np.testing.assert_array_equal(C.ensemble_labels(cfg, directed_and_confined)[4], [6.0, 4.0])
    directed_and_immobile = SimpleNamespace(state=np.array([DIRECTED] * 7 + [IMMOBILE] * 3), state_num=np.zeros(10),
                                            present=present)
    traps = M.ImmobileTraps(alpha=(1.95, 0.0))
    np.testing.assert_array_equal(C.ensemble_labels(traps, directed_and_immobile)[4], [3.0, 7.0])
