"""Global linkers: ILP (CP-SAT) and min-cost flow. Optimality against brute force, divisions,
locked parents, the time-out path, bad inputs, determinism, streaming and offline use."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.graph.candidates import build_graph
from edgetrack.runtime.link.flow import link_flow
from edgetrack.runtime.link.greedy import link_greedy
from edgetrack.runtime.link.ilp import link_ilp
from edgetrack.runtime.link.lap import link_lap
from edgetrack.runtime.link.costs import IlpConfig, IlpTimeoutWarning, LinkInfo, link_cost
from edgetrack.runtime.link.registry import LINKERS, get_linker

I = np.int64
CPSAT = IlpConfig(flow_without_divisions=False, time_limit=30.0)


def arr(*v):
    return np.array(v, dtype=I)


def random_window(rng, n_max=7, p_edge=0.5, lock=True):
    """A tiny random window: frames 0..3, random forward edges (some duplicated), scores with ties."""
    n = int(rng.integers(2, n_max + 1))
    nf = np.sort(rng.integers(0, 4, n)).astype(I)
    pairs = [(s, d) for s in range(n) for d in range(n) if 1 <= nf[d] - nf[s] <= 2 and rng.random() < p_edge]
    if pairs and rng.random() < 0.3:
        pairs.append(pairs[0])  # a repeated pair: the cheaper edge counts
    src = np.array([p[0] for p in pairs], dtype=I)
    dst = np.array([p[1] for p in pairs], dtype=I)
    score = rng.choice([0.0, 0.02, 0.1, 0.3, 0.5, 0.5, 0.8, 0.95, 1.0], len(pairs))
    lp = np.full(n, -2, I)
    cc = np.zeros(n, I)
    if lock:
        for i in range(n):
            earlier = np.flatnonzero(nf < nf[i])
            u = rng.random()
            if u < 0.15:
                lp[i] = -1
            elif u < 0.25 and earlier.size:
                lp[i] = rng.choice(earlier)
        cc = rng.choice([0, 0, 0, 1, 2], n).astype(I)
    return nf, src, dst, nf[dst] - nf[src], score, lp, cc


def brute_force(nf, src, dst, dt, score, lp, cc, max_children, config, min_score=1e-6):
    """Smallest integer cost over every valid answer (each undecided node: no parent or a usable edge)."""
    n = nf.size
    options = []
    for i in range(n):
        if lp[i] != -2:
            options.append([int(lp[i])])
        else:
            parents = sorted({int(s) for s, d, sc in zip(src, dst, score) if d == i and sc > min_score})
            options.append([-1] + parents)
    best = math.inf
    for choice in itertools.product(*options):
        parent = np.array(choice, dtype=I)
        new = np.bincount(parent[(parent >= 0) & (lp == -2)], minlength=n)
        if np.any((new > 0) & (cc + new > max_children)):
            continue
        best = min(best, link_cost(nf, src, dst, dt, score, lp, cc, parent, max_children=max_children, config=config))
    return best


def check_valid(parent, nf, src, dst, score, lp, cc, max_children, min_score=1e-6):
    n = nf.size
    assert parent.dtype == np.int64 and parent.shape == (n,)
    locked = lp != -2
    np.testing.assert_array_equal(parent[locked], lp[locked])
    usable = {(int(s), int(d)) for s, d, sc in zip(src, dst, score) if sc > min_score}
    new = np.zeros(n, I)
    for i in np.flatnonzero(~locked):
        if parent[i] >= 0:
            assert (int(parent[i]), int(i)) in usable
            new[parent[i]] += 1
    assert np.all(cc[new > 0] + new[new > 0] <= max_children)
    return new


# --------------------------------------------------------------------------- optimality


@pytest.mark.parametrize("max_children", [1, 2])
def test_optimal_against_brute_force(max_children):
    rng = np.random.default_rng(40 + max_children)
    configs = [IlpConfig(), IlpConfig(edge_cost="logit", appearance_cost=1.0, disappearance_cost=0.5, division_cost=0.2)]
    checked = 0
    for k in range(70):
        w = random_window(rng)
        config = configs[k % 2]
        want = brute_force(*w, max_children, config)
        for solve in (link_flow, link_ilp):
            cfg = config.replace(flow_without_divisions=False, time_limit=30.0) if solve is link_ilp else config
            parent, info = solve(*w, max_children=max_children, config=cfg, return_info=True)
            check_valid(parent, *w[:2], w[2], w[4], w[5], w[6], max_children)
            assert info.cost == want == link_cost(*w, parent, max_children=max_children, config=config)
            assert info.status == "optimal" and not info.timed_out
        checked += len(w[1]) > 0
    assert checked > 50


def test_crossing_hand_case():
    # A=0, B=1 in frame 0; a=2, b=3 in frame 1: A->b + B->a beats A->a + B->b (as the LAP finds)
    nf = arr(0, 0, 1, 1)
    args = (nf, arr(0, 0, 1, 1), arr(2, 3, 2, 3), arr(1, 1, 1, 1), np.array([0.9, 0.8, 0.85, 0.1]),
            arr(-1, -1, -2, -2), np.zeros(4, I))
    np.testing.assert_array_equal(link_greedy(*args), [-1, -1, 0, 1])
    for linker in (link_flow, link_ilp):
        np.testing.assert_array_equal(linker(*args), [-1, -1, 1, 0])
    np.testing.assert_array_equal(link_ilp(*args, config=CPSAT), [-1, -1, 1, 0])


def test_window_beats_frame_by_frame():
    # 0 (f0) -> 1 (f1) and 0 -> 2 (f2, a gap); 1 -> 2 weak. Frame by frame, 1 takes 0 first; over the
    # window, 0 -> 2 plus 3 -> 1 (another parent for 1) is cheaper.
    nf = arr(0, 1, 2, 0)
    src, dst = arr(0, 0, 1, 3), arr(1, 2, 2, 1)
    score = np.array([0.9, 0.9, 0.05, 0.8])
    args = (nf, src, dst, nf[dst] - nf[src], score, arr(-1, -2, -2, -1), np.zeros(4, I))
    for linker in (link_flow, link_ilp):
        np.testing.assert_array_equal(linker(*args), [-1, 3, 0, -1])
    np.testing.assert_array_equal(link_lap(*args), [-1, 0, 1, -1])


# --------------------------------------------------------------------------- divisions


def division_case():
    # mother 0 (f0); daughters 1, 2 (f1) close to it; 3 (f0) an unrelated track very weakly linked to 2
    nf = arr(0, 1, 1, 0)
    src, dst = arr(0, 0, 3), arr(1, 2, 2)
    return nf, src, dst, arr(1, 1, 1), np.array([0.8, 0.7, 0.005]), arr(-1, -2, -2, -1), np.zeros(4, I)


def test_divisions_only_with_max_children_2():
    args = division_case()
    for linker, cfg in ((link_flow, IlpConfig()), (link_ilp, CPSAT), (link_ilp, IlpConfig())):
        np.testing.assert_array_equal(linker(*args, max_children=2, config=cfg), [-1, 0, 0, -1])
        np.testing.assert_array_equal(linker(*args, max_children=1, config=cfg), [-1, 0, 3, -1])
        # an expensive division is not made
        pricey = cfg.replace(division_cost=cfg.appearance_cost)
        np.testing.assert_array_equal(linker(*args, max_children=2, config=pricey), [-1, 0, 3, -1])
        # one child already committed to the mother: one more makes a division (cost V)
        cc = arr(1, 0, 0, 0)
        np.testing.assert_array_equal(linker(*args[:6], cc, max_children=2, config=cfg), [-1, 0, 3, -1])
        np.testing.assert_array_equal(linker(*args[:6], cc, max_children=1, config=cfg), [-1, -1, 3, -1])


@pytest.mark.parametrize("seed", range(3))
def test_no_node_gets_two_children_without_divisions(seed):
    nf, src, dst, dt, score, lp, cc = dense_window(seed, n=300)
    for linker in (link_flow, link_ilp):
        for cfg in (IlpConfig(), CPSAT):
            parent = linker(nf, src, dst, dt, score, lp, cc, config=cfg)
            new = check_valid(parent, nf, src, dst, score, lp, cc, 1)
            assert new.max() <= 1
    parent = link_ilp(nf, src, dst, dt, score, lp, cc, max_children=2, config=CPSAT)
    new = check_valid(parent, nf, src, dst, score, lp, cc, 2)
    assert new.max() == 2  # a dense window has divisions worth making


def dense_window(seed, n=300, size=40.0, frames=5):
    rng = np.random.default_rng(seed)
    nf = np.sort(rng.integers(0, frames, n)).astype(I)
    y, x = rng.uniform(0, size, n), rng.uniform(0, size, n)
    e = build_graph(nf, y, x, 6.0, 2)
    score = np.exp(-e.dist**2 / 8.0) * 0.5 ** (e.dt - 1)
    lp = np.where(nf == 0, -1, -2).astype(I)
    lp[(nf == 1) & (rng.random(n) < 0.3)] = -1
    cc = np.where(nf == 0, rng.integers(0, 2, n), 0).astype(I)
    return nf, e.src, e.dst, e.dt, score, lp, cc


@pytest.mark.parametrize("seed", range(3))
def test_flow_equals_ilp(seed):
    w = dense_window(seed)
    for max_children in (1, 2):
        pf, fi = link_flow(*w, max_children=max_children, return_info=True)
        pi, ii = link_ilp(*w, max_children=max_children, config=CPSAT, return_info=True)
        assert ii.solver == "cp-sat" and fi.solver == "flow" and ii.status == "optimal"
        assert fi.cost == ii.cost == ii.bound
        assert ii.n_solver_edges > 100  # not just stars
    # max_children=1 dispatches to the flow by default
    pd_, di = link_ilp(*w, return_info=True)
    assert di.solver == "flow"
    np.testing.assert_array_equal(pd_, link_flow(*w))


def test_locked_parents_and_committed_children_respected():
    rng = np.random.default_rng(5)
    for _ in range(40):
        w = random_window(rng, n_max=9)
        for max_children in (1, 2):
            for parent in (link_flow(*w, max_children=max_children),
                           link_ilp(*w, max_children=max_children, config=CPSAT)):
                check_valid(parent, w[0], w[1], w[2], w[4], w[5], w[6], max_children)


# --------------------------------------------------------------------------- time limit


def test_time_out_without_solution_falls_back_to_greedy():
    w = dense_window(1, n=400)
    cfg = IlpConfig(time_limit=1e-9)
    with pytest.warns(IlpTimeoutWarning, match="greedy") as record:
        parent, info = link_ilp(*w, max_children=2, config=cfg, return_info=True)
    assert info.status == "fallback" and info.timed_out and info.bound is None
    assert record[0].message.info is not None and record[0].message.info.status == "fallback"
    check_valid(parent, w[0], w[1], w[2], w[4], w[5], w[6], 2)
    optimum = link_flow(*w, max_children=2, return_info=True)[1].cost
    assert info.cost >= optimum
    assert info.cost == link_cost(*w, parent, max_children=2)


def test_time_out_with_feasible_solution(monkeypatch):
    from ortools.sat.python import cp_model

    original = cp_model.CpSolver.solve

    def stop_early(self, model, *args, **kwargs):  # stands in for a time-out after the first solution
        self.parameters.stop_after_first_solution = True
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(cp_model.CpSolver, "solve", stop_early)
    w = dense_window(2, n=400)
    with pytest.warns(IlpTimeoutWarning, match="best solution found"):
        parent, info = link_ilp(*w, max_children=2, return_info=True)
    assert info.status == "feasible" and info.timed_out
    check_valid(parent, w[0], w[1], w[2], w[4], w[5], w[6], 2)
    optimum = link_flow(*w, max_children=2, return_info=True)[1].cost
    assert info.bound <= optimum < info.cost


def test_no_warning_when_optimal():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        link_ilp(*dense_window(0, n=100), max_children=2)


# --------------------------------------------------------------------------- info, conflicts


def test_conflicts_reported_not_merged():
    # 0 and 1 (f0) both want 2 (f1); 1 has nowhere else to go: a refused merge
    nf = arr(0, 0, 1, 1)
    src, dst = arr(0, 1, 0), arr(2, 2, 3)
    args = (nf, src, dst, arr(1, 1, 1), np.array([0.9, 0.8, 0.3]), arr(-1, -1, -2, -2), np.zeros(4, I))
    for linker in (link_flow, link_ilp):
        parent, info = linker(*args, return_info=True)
        assert isinstance(info, LinkInfo)
        np.testing.assert_array_equal(parent, [-1, -1, 1, 0])  # 0 -> 3 frees 2 for 1
        assert info.conflicts.tolist() == []
        parent, info = linker(*args[:4], np.array([0.9, 0.8, 0.0]), *args[5:], return_info=True)
        np.testing.assert_array_equal(parent, [-1, -1, 0, -1])
        assert info.conflicts.tolist() == [2]


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("linker", [link_flow, link_ilp])
def test_bad_inputs(linker):
    nf, src, dst, dt, score, lp, cc = division_case()
    with pytest.raises(InputError, match="NaN"):
        linker(nf, src, dst, dt, np.array([0.8, np.nan, 0.1]), lp, cc)
    with pytest.raises(InputError, match="outside"):
        linker(nf, src, dst, dt, np.array([0.8, 1.2, 0.1]), lp, cc)
    with pytest.raises(InputError, match="outside"):
        linker(nf, src, dst, dt, np.array([0.8, -0.1, 0.1]), lp, cc)
    with pytest.raises(InputError, match="backwards"):
        linker(nf, arr(1, 0, 3), arr(0, 2, 2), dt, score, lp, cc)
    with pytest.raises(InputError, match="differ in length"):
        linker(nf, src, dst[:2], dt, score, lp, cc)
    with pytest.raises(InputError, match="locked_parent"):
        linker(nf, src, dst, dt, score, lp[:3], cc)
    with pytest.raises(ConfigError, match="max_children"):
        linker(nf, src, dst, dt, score, lp, cc, max_children=0)
    # the smallest positive scores still give finite integer costs (never worth a link)
    np.testing.assert_array_equal(linker(nf, src, dst, dt, np.array([5e-324, 1e-300, 0.0]), lp, cc, min_score=0.0),
                                  [-1, -1, -1, -1])


def test_config_and_cost_errors():
    with pytest.raises(ConfigError, match="edge_cost"):
        IlpConfig(edge_cost="prob")
    with pytest.raises(ConfigError, match="time_limit"):
        IlpConfig(time_limit=0)
    with pytest.raises(ConfigError, match="division_cost"):
        IlpConfig(division_cost=-1.0)
    with pytest.raises(ConfigError, match="unknown option"):
        IlpConfig.from_dict({"timeout": 3})
    nf, src, dst, dt, score, lp, cc = division_case()
    with pytest.raises(InputError, match="not joined"):
        link_cost(nf, src, dst, dt, score, lp, cc, arr(-1, 3, -1, -1))
    with pytest.raises(InputError, match="locked parent"):
        link_cost(nf, src, dst, dt, score, lp, cc, arr(1, 0, 0, -1))
    with pytest.raises(InputError, match="more than max_children"):
        link_cost(nf, src, dst, dt, score, lp, cc, arr(-1, 0, 0, -1))


def test_empty_windows():
    for linker in (link_flow, link_ilp):
        assert linker(arr(), arr(), arr(), arr(), np.zeros(0), arr(), arr()).shape == (0,)
        np.testing.assert_array_equal(linker(arr(0, 1), arr(), arr(), arr(), np.zeros(0), arr(-2, -2), arr(0, 0)),
                                      [-1, -1])


def test_deterministic_and_order_free():
    nf, src, dst, dt, score, lp, cc = dense_window(3)
    perm = np.random.default_rng(0).permutation(src.size)
    for max_children in (1, 2):
        for linker, cfg in ((link_flow, IlpConfig()), (link_ilp, CPSAT)):
            a = linker(nf, src, dst, dt, score, lp, cc, max_children=max_children, config=cfg)
            b = linker(nf, src, dst, dt, score, lp, cc, max_children=max_children, config=cfg)
            c = linker(nf, src[perm], dst[perm], dt[perm], score[perm], lp, cc, max_children=max_children, config=cfg)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------- streaming and offline


def test_registry():
    assert get_linker("ilp").function is link_ilp and get_linker("flow").function is link_flow
    assert {"greedy", "lap", "flow", "ilp"} <= set(LINKERS)


@pytest.fixture(scope="module")
def dividing():
    from edgetrack.runtime.simulate.spots import simulate_detections

    return simulate_detections(n_frames=25, shape=(128, 128), n_spots=60, division_rate=0.02, miss_rate=0.05,
                               seed=7)


def test_tracker_with_ilp_and_divisions(dividing, monkeypatch):
    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.stream.pipeline import link_detections

    det, truth = dividing
    # a generous time limit: the test machine may be slow, and a time-out would change the answer
    scores = {}
    for linker, options in (("greedy", None), ("ilp", CPSAT.to_dict())):
        tracks = link_detections(det, linker=linker, max_children=2, gap_penalty=0.05, linker_options=options)
        assert "parent_track_id" in tracks.columns
        scores[linker] = link_metrics(truth, tracks)
    ilp = scores["ilp"]
    assert ilp["n_truth_divisions"] >= 10
    assert ilp["division_f1"] > scores["greedy"]["division_f1"] + 0.1
    assert ilp["f1"] > scores["greedy"]["f1"]
    flow = link_metrics(truth, link_detections(det, linker="flow", max_children=2, gap_penalty=0.05))
    assert abs(flow["f1"] - ilp["f1"]) < 0.005  # both optimal in every window (ties aside)


def test_offline_optimum_and_streaming_cost(dividing):
    from edgetrack.runtime.stream.offline import link_offline, offline_graph, tracks_from_parents
    from edgetrack.runtime.stream.tracker import Tracker

    det, _ = dividing
    graph = offline_graph(det, max_distance=6.0, max_gap=2)
    n = graph.node_frame.size
    e = graph.edges
    full = (graph.node_frame, e.src, e.dst, e.dt, graph.score, np.full(n, -2, I), np.zeros(n, I))
    optimum, info = link_flow(*full, max_children=2, return_info=True)
    ilp = link_ilp(*full, max_children=2, config=CPSAT)
    assert link_cost(*full, ilp, max_children=2) == info.cost
    tracks = link_offline(det, linker="flow", max_children=2)
    pd.testing.assert_frame_equal(tracks, tracks_from_parents(graph.node_frame, graph.values, graph.columns, optimum, True))
    # the streaming answer, in the same node numbering (det_id), costs at least the optimum
    tracker = Tracker(linker="flow", max_children=2, max_distance=6.0, max_gap=2)
    stream = np.full(n, -3, I)
    frames = det.sort_values("frame", kind="stable")
    for f in range(int(frames.frame.max()) + 1):
        for u in tracker.push(frames[frames.frame == f], frame=f):
            stream[u.det_id] = u.parent_det_id
    for u in tracker.flush():
        stream[u.det_id] = u.parent_det_id
    assert (stream >= -1).all()
    assert link_cost(*full, stream, max_children=2) >= info.cost


def test_tracks_from_parents_divisions():
    from edgetrack.runtime.stream.offline import tracks_from_parents

    # 0 -> 1 -> {2, 3} (a division), 3 -> 4; 5 alone
    nf = arr(0, 1, 2, 2, 3, 3)
    values = np.column_stack([np.arange(6.0), np.zeros(6)])
    tracks = tracks_from_parents(nf, values, ("y", "x"), arr(-1, 0, 1, 1, 3, -1), divisions=True)
    assert tracks["track_id"].tolist() == [0, 0, 1, 2, 2, 3]
    assert tracks["parent_track_id"].tolist() == [-1, -1, 0, 0, -1, -1]
    assert list(tracks.columns) == ["frame", "y", "x", "track_id", "parent_track_id"]
    plain = tracks_from_parents(nf, values, ("y", "x"), arr(-1, 0, 1, -1, 3, -1))
    assert plain["track_id"].tolist() == [0, 0, 0, 1, 1, 2] and "parent_track_id" not in plain
