"""Association (distance scorer) and linkers (greedy, LAP): hand examples, invariants, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from edgetrack.runtime.associate.distance import DistanceScorer

from edgetrack.runtime.associate.registry import EdgeScorer, make_scorer, scorer_names
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.graph.candidates import CandidateEdges, build_graph
from edgetrack.runtime.link.registry import LINKERS, get_linker
from edgetrack.runtime.link.problem import validate_link_inputs
from edgetrack.runtime.link.greedy import link_greedy
from edgetrack.runtime.link.lap import link_lap

I = np.int64


def arr(*v):
    return np.array(v, dtype=I)


def undecided(n, locked=None):
    lp = np.full(n, -2, dtype=I)
    for i, p in (locked or {}).items():
        lp[i] = p
    return lp


# --------------------------------------------------------------------------- scorer


def test_distance_scorer_formula():
    e = CandidateEdges(arr(0, 0, 1), arr(1, 2, 2), arr(1, 2, 1),
                       np.zeros(3), np.zeros(3), np.array([0.0, 2.0, 3.0]))
    s = DistanceScorer(step_sigma=1.5, gap_penalty=0.25)
    got = s.score(e)
    want = [1.0, math.exp(-4.0 / (2 * 1.5**2 * 2)) * 0.25, math.exp(-9.0 / (2 * 1.5**2))]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert got.dtype == np.float64
    assert isinstance(s, EdgeScorer) and s.name == "distance"


def test_make_scorer_registry():
    s = make_scorer("distance", step_sigma=2.0)
    assert isinstance(s, DistanceScorer) and s.gap_penalty == 0.5
    assert "distance" in scorer_names()
    with pytest.raises(ConfigError, match="known scorers are.*distance"):
        make_scorer("magikk")
    with pytest.raises(ConfigError, match="unknown option"):
        make_scorer("distance", step_sigma=2.0, sigma=3.0)
    with pytest.raises(ConfigError, match="step_sigma"):
        make_scorer("distance", step_sigma=0.0)
    with pytest.raises(ConfigError, match="gap_penalty"):
        make_scorer("distance", step_sigma=1.0, gap_penalty=1.5)


def test_distance_scorer_bad_edges():
    s = DistanceScorer(step_sigma=1.0)
    with pytest.raises(InputError, match="dt"):
        s.score(CandidateEdges(arr(0), arr(1), arr(0), np.zeros(1), np.zeros(1), np.zeros(1)))
    with pytest.raises(InputError, match="dist"):
        s.score(CandidateEdges(arr(0), arr(1), arr(1), np.zeros(1), np.zeros(1), np.array([np.nan])))
    assert s.score(CandidateEdges(arr(), arr(), arr(), np.zeros(0), np.zeros(0), np.zeros(0))).shape == (0,)


# --------------------------------------------------------------------------- hand examples


def crossing():
    # A=0, B=1 in frame 0; a=2, b=3 in frame 1.
    nf = arr(0, 0, 1, 1)
    src, dst = arr(0, 0, 1, 1), arr(2, 3, 2, 3)
    score = np.array([0.9, 0.8, 0.85, 0.1])
    return nf, src, dst, arr(1, 1, 1, 1), score, undecided(4, {0: -1, 1: -1}), np.zeros(4, I)


def test_crossing_greedy_and_lap_differ():
    args = crossing()
    # greedy takes A->a (0.9) first, then only B->b (0.1) is left
    np.testing.assert_array_equal(link_greedy(*args), [-1, -1, 0, 1])
    # LAP: -log(.8) - log(.85) = 0.39 < -log(.9) - log(.1) = 2.41
    np.testing.assert_array_equal(link_lap(*args), [-1, -1, 1, 0])


def test_gap_closing():
    # 0 (f0) -> missing in f1 -> 2 (f2); 1 (f1) is a new object far away, 3 (f2) its successor.
    nf = arr(0, 1, 2, 2)
    src, dst, dt = arr(0, 1, 0), arr(2, 3, 3), arr(2, 1, 3 - 1)
    score = np.array([0.4, 0.9, 0.3])
    lp = undecided(4, {0: -1})
    for linker in (link_greedy, link_lap):
        np.testing.assert_array_equal(linker(nf, src, dst, dt, score, lp, np.zeros(4, I)), [-1, -1, 0, 1])


def test_lap_time_order_uses_slots_from_earlier_frames():
    # 0 (f0) -> 1 (f1) strongly; 0 -> 2 (f2) by a gap. Frame 1 is solved first, so 0's slot is
    # used and 2 can only take 1 as parent.
    nf = arr(0, 1, 2)
    src, dst, dt = arr(0, 0, 1), arr(1, 2, 2), arr(1, 2, 1)
    score = np.array([0.6, 0.99, 0.5])
    np.testing.assert_array_equal(link_lap(nf, src, dst, dt, score, undecided(3), np.zeros(3, I)), [-1, 0, 1])
    # greedy takes the best edge first regardless of time
    np.testing.assert_array_equal(link_greedy(nf, src, dst, dt, score, undecided(3), np.zeros(3, I)), [-1, -1, 0])


def test_locked_parent_and_committed_children():
    # 0, 1 in f0; 2, 3 in f1. Node 2 is locked to parent 1 (so 1 has a committed child).
    nf = arr(0, 0, 1, 1)
    src, dst, dt = arr(0, 0, 1, 1), arr(2, 3, 2, 3), arr(1, 1, 1, 1)
    score = np.array([0.99, 0.2, 0.9, 0.95])
    lp = undecided(4, {0: -1, 1: -1, 2: 1})
    cc = arr(0, 1, 0, 0)
    for linker in (link_greedy, link_lap):
        parent = linker(nf, src, dst, dt, score, lp, cc)
        # 2 keeps its locked parent; 1 has no free slot, so 3 takes 0 despite the lower score
        np.testing.assert_array_equal(parent, [-1, -1, 1, 0])
    # a node locked to "no parent" stays without one
    lp2 = undecided(4, {0: -1, 1: -1, 3: -1})
    for linker in (link_greedy, link_lap):
        parent = linker(nf, src, dst, dt, score, lp2, np.zeros(4, I))
        assert parent[3] == -1 and parent[2] == 0


def test_division_with_greedy():
    # mother 0 in f0, daughters 1, 2 in f1, an unrelated 3 in f0 weakly linked to 2
    nf = arr(0, 1, 1, 0)
    src, dst, dt = arr(0, 0, 3), arr(1, 2, 2), arr(1, 1, 1)
    score = np.array([0.8, 0.7, 0.1])
    lp = undecided(4, {0: -1, 3: -1})
    np.testing.assert_array_equal(
        link_greedy(nf, src, dst, dt, score, lp, np.zeros(4, I), max_children=2), [-1, 0, 0, -1])
    np.testing.assert_array_equal(link_greedy(nf, src, dst, dt, score, lp, np.zeros(4, I)), [-1, 0, 3, -1])
    # one child already committed: only one more
    np.testing.assert_array_equal(
        link_greedy(nf, src, dst, dt, score, lp, arr(1, 0, 0, 0), max_children=2), [-1, 0, 3, -1])
    with pytest.raises(ConfigError, match="greedy"):
        link_lap(nf, src, dst, dt, score, lp, np.zeros(4, I), max_children=2)


def test_min_score_is_exclusive():
    nf = arr(0, 1)
    for linker in (link_greedy, link_lap):
        args = (nf, arr(0), arr(1), arr(1), np.array([0.01]), undecided(2), np.zeros(2, I))
        assert linker(*args, min_score=0.01)[1] == -1
        assert linker(*args, min_score=0.0099)[1] == 0
        # min_score 0: any positive score links, a zero score never does
        assert linker(*args[:4], np.array([1e-300]), *args[5:], min_score=0.0)[1] == 0
        assert linker(*args[:4], np.array([0.0]), *args[5:], min_score=0.0)[1] == -1


def test_greedy_tie_break():
    # equal scores: smaller dt wins, then smaller dist, then smaller src
    nf = arr(0, 1, 2, 1)
    src, dst, dt = arr(0, 1, 3), arr(2, 2, 2), arr(2, 1, 1)
    score = np.full(3, 0.5)
    lp = undecided(4, {0: -1, 1: -1, 3: -1})
    p = link_greedy(nf, src, dst, dt, score, lp, np.zeros(4, I))
    assert p[2] == 1
    p = link_greedy(nf, src, dst, dt, score, lp, np.zeros(4, I), dist=np.array([1.0, 2.0, 1.5]))
    assert p[2] == 3
    for linker in (link_greedy, link_lap):
        p = linker(nf, src, dst, dt, score, lp, np.zeros(4, I), dist=np.array([1.0, 2.0, 2.0]))
        assert p[2] == 1


def test_lap_matches_exhaustive_optimum_one_frame():
    rng = np.random.default_rng(11)
    min_score = 0.05
    for _ in range(60):
        ns, nt = rng.integers(1, 5), rng.integers(1, 5)
        pairs = [(i, ns + j) for i in range(ns) for j in range(nt) if rng.random() < 0.6]
        if not pairs:
            continue
        src = np.array([p[0] for p in pairs], dtype=I)
        dst = np.array([p[1] for p in pairs], dtype=I)
        score = rng.uniform(0, 1, len(pairs))
        nf = np.r_[np.zeros(ns, I), np.ones(nt, I)]
        lp = np.r_[np.full(ns, -1, I), np.full(nt, -2, I)]
        parent = link_lap(nf, src, dst, np.ones(len(pairs), I), score, lp, np.zeros(ns + nt, I),
                          min_score=min_score)

        def cost(links):
            used = {s for s, _ in links}
            c = sum(-math.log(score[pairs.index(l)]) for l in links)
            return c + (ns + nt - 2 * len(used)) * -math.log(min_score) / 2

        got = [(int(parent[t]), t) for t in range(ns, ns + nt) if parent[t] >= 0]
        best = math.inf
        usable = [p for k, p in enumerate(pairs) if score[k] > min_score]
        for r in range(len(usable) + 1):
            for combo in itertools.combinations(usable, r):
                if len({s for s, _ in combo}) == r and len({t for _, t in combo}) == r:
                    best = min(best, cost(combo))
        assert cost(got) == pytest.approx(best, abs=1e-9)


def augmented_optimum(score, src, dst, ns, nt, min_score):
    """Reference: optimum of the full augmented matrix [[C, death], [birth, C^T]] solved at once."""
    u = -math.log(min_score) / 2
    k = ns + nt
    big = np.full((k, k), np.inf)
    for s, d, sc in zip(src, dst, score):
        if sc > min_score:
            big[s, d - ns] = min(big[s, d - ns], -math.log(sc))
            big[ns + d - ns, nt + s] = 0.0
    big[np.arange(ns), nt + np.arange(ns)] = u
    big[ns + np.arange(nt), np.arange(nt)] = u
    r, c = linear_sum_assignment(big)
    return big[r, c].sum()


@pytest.mark.parametrize("seed", range(4))
def test_lap_equals_augmented_optimum_all_component_sizes(seed):
    # One frame pair; shapes from 2x2 up to 14x14 so that stars, the exact small solver and
    # scipy (large components) are all used.
    rng = np.random.default_rng(seed)
    min_score = 1e-3
    for ns, nt in [(2, 2), (3, 12), (12, 3), (6, 6), (7, 7), (9, 10), (14, 14), (5, 30)]:
        pairs = [(i, ns + j) for i in range(ns) for j in range(nt) if rng.random() < 0.5]
        src = np.array([p[0] for p in pairs], dtype=I)
        dst = np.array([p[1] for p in pairs], dtype=I)
        score = rng.choice([0.0005, 0.2, 0.5, 0.5, 0.7, 0.9, 1.0], len(pairs)) * rng.uniform(0.9, 1, len(pairs))
        nf = np.r_[np.zeros(ns, I), np.ones(nt, I)]
        lp = np.r_[np.full(ns, -1, I), np.full(nt, -2, I)]
        parent = link_lap(nf, src, dst, np.ones(len(pairs), I), score, lp, np.zeros(ns + nt, I),
                          min_score=min_score)
        cost = dict(zip(zip(src.tolist(), dst.tolist()), score))
        linked = [(int(parent[t]), t) for t in range(ns, ns + nt) if parent[t] >= 0]
        assert len({s for s, _ in linked}) == len(linked)
        total = sum(-math.log(cost[l]) for l in linked) - math.log(min_score) / 2 * (ns + nt - 2 * len(linked))
        assert total == pytest.approx(augmented_optimum(score, src, dst, ns, nt, min_score), abs=1e-9)


def reference_greedy(nf, src, dst, dt, score, lp, cc, max_children, dist, min_score=1e-6):
    parent = lp.copy()
    used = cc.copy()
    keys = sorted(range(len(src)), key=lambda e: (-score[e], dt[e], dist[e], src[e], dst[e]))
    for e in keys:
        if score[e] > min_score and parent[dst[e]] == -2 and used[src[e]] < max_children:
            parent[dst[e]] = src[e]
            used[src[e]] += 1
    parent[parent == -2] = -1
    return parent


@pytest.mark.parametrize("max_children", [1, 2])
def test_greedy_equals_reference_on_dense_window(max_children):
    # A dense window gives large components (long sorts) and many tied scores.
    rng = np.random.default_rng(4)
    n = 400
    nf = np.sort(rng.integers(0, 5, n)).astype(I)
    y, x = rng.uniform(0, 40, n), rng.uniform(0, 40, n)
    e = build_graph(nf, y, x, 6.0, 2)
    score = np.round(rng.uniform(0, 1, len(e.src)), 1)
    lp = np.where(nf == 0, -1, -2).astype(I)
    cc = rng.integers(0, 2, n).astype(I)
    got = link_greedy(nf, e.src, e.dst, e.dt, score, lp, cc, max_children=max_children, dist=e.dist)
    want = reference_greedy(nf, e.src, e.dst, e.dt, score, lp, cc, max_children, e.dist)
    assert len(e.src) > 2000
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- invariants


@st.composite
def windows(draw):
    n = draw(st.integers(1, 14))
    nf = np.sort(np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=I))
    pairs = [(s, d) for s in range(n) for d in range(n) if 1 <= nf[d] - nf[s] <= 2]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=40)) if pairs else []
    src = np.array([p[0] for p in chosen], dtype=I)
    dst = np.array([p[1] for p in chosen], dtype=I)
    # a few distinct values so that ties happen
    score = np.array(draw(st.lists(st.sampled_from([0.0, 1e-6, 0.1, 0.5, 0.5, 0.9, 1.0]),
                                   min_size=len(chosen), max_size=len(chosen))), dtype=float)
    lp = np.full(n, -2, dtype=I)
    for i in range(n):
        earlier = [j for j in range(n) if nf[j] < nf[i]]
        choice = draw(st.integers(-3, len(earlier) - 1))
        if choice == -3:
            lp[i] = -1
        elif choice >= 0 and draw(st.booleans()):
            lp[i] = earlier[choice]
    cc = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=I)
    perm = np.array(draw(st.permutations(list(range(len(chosen))))), dtype=I)
    return nf, src, dst, nf[dst] - nf[src], score, lp, cc, perm


def check_invariants(parent, nf, src, dst, score, lp, cc, max_children, min_score=1e-6):
    n = nf.size
    assert parent.dtype == np.int64 and parent.shape == (n,)
    locked = lp != -2
    np.testing.assert_array_equal(parent[locked], lp[locked])
    ok_edges = {(int(s), int(d)) for s, d, sc in zip(src, dst, score) if sc > min_score}
    new_children = np.zeros(n, dtype=I)
    for i in np.nonzero(~locked)[0]:
        p = parent[i]
        if p >= 0:
            assert (int(p), int(i)) in ok_edges  # an existing, forward, usable edge
            assert nf[p] < nf[i]
            new_children[p] += 1
    got = new_children > 0
    assert np.all(cc[got] + new_children[got] <= max_children)


@settings(max_examples=150, deadline=None)
@given(windows(), st.integers(1, 2))
def test_greedy_invariants(w, max_children):
    nf, src, dst, dt, score, lp, cc, perm = w
    parent = link_greedy(nf, src, dst, dt, score, lp, cc, max_children=max_children)
    check_invariants(parent, nf, src, dst, score, lp, cc, max_children)
    want = reference_greedy(nf, src, dst, dt, score, lp, cc, max_children, np.zeros(len(src)))
    np.testing.assert_array_equal(parent, want)
    again = link_greedy(nf, src[perm], dst[perm], dt[perm], score[perm], lp, cc, max_children=max_children)
    np.testing.assert_array_equal(parent, again)


@settings(max_examples=150, deadline=None)
@given(windows())
def test_lap_invariants(w):
    nf, src, dst, dt, score, lp, cc, perm = w
    parent = link_lap(nf, src, dst, dt, score, lp, cc)
    check_invariants(parent, nf, src, dst, score, lp, cc, 1)
    again = link_lap(nf, src[perm], dst[perm], dt[perm], score[perm], lp, cc)
    np.testing.assert_array_equal(parent, again)


# --------------------------------------------------------------------------- end to end


def test_brownian_tracks_recovered():
    rng = np.random.default_rng(2)
    n_obj, n_frames, sigma = 60, 12, 1.0
    start = rng.uniform(0, 200, (n_obj, 2))
    steps = rng.normal(0, sigma, (n_frames, n_obj, 2))
    steps[0] = 0
    pos = start[None] + np.cumsum(steps, axis=0)
    keep = rng.random((n_frames, n_obj)) > 0.05  # 5 % missed detections: gaps
    f_idx, o_idx = np.nonzero(keep)
    frame, obj = f_idx.astype(I), o_idx
    y, x = pos[f_idx, o_idx, 0], pos[f_idx, o_idx, 1]
    e = build_graph(frame, y, x, 6.0, 2)
    score = make_scorer("distance", step_sigma=sigma).score(e)
    n = frame.size
    # recoverable true links: consecutive detections of one object at most 2 frames apart
    truth = sum(np.count_nonzero(np.diff(frame[obj == o]) <= 2) for o in range(n_obj))
    # greedy loses some links to gap-closing edges that outscore a large one-frame step
    for linker, min_recall in ((link_greedy, 0.94), (link_lap, 0.98)):
        parent = linker(frame, e.src, e.dst, e.dt, score, np.full(n, -2, I), np.zeros(n, I), dist=e.dist)
        has = parent >= 0
        correct = np.count_nonzero(obj[parent[has]] == obj[has])
        assert correct / truth >= min_recall
        assert np.count_nonzero(has) - correct <= 0.02 * truth


# --------------------------------------------------------------------------- errors


def test_registry():
    assert set(LINKERS) >= {"greedy", "lap"}
    assert get_linker("lap").function is link_lap
    with pytest.raises(ConfigError, match=r"known linkers are .*greedy.*lap"):
        get_linker("hungarian")


@pytest.mark.parametrize("linker", [link_greedy, link_lap])
def test_bad_inputs(linker):
    nf, src, dst, dt, score, lp, cc = crossing()
    with pytest.raises(InputError, match="NaN"):
        linker(nf, src, dst, dt, np.array([0.9, np.nan, 0.5, 0.1]), lp, cc)
    with pytest.raises(InputError, match="outside"):
        linker(nf, src, dst, dt, np.array([0.9, 1.5, 0.5, 0.1]), lp, cc)
    with pytest.raises(InputError, match="backwards or sideways"):
        linker(nf, arr(0, 2, 1, 1), arr(2, 0, 2, 3), dt, score, lp, cc)
    with pytest.raises(InputError, match="backwards or sideways"):
        linker(nf, arr(0, 0, 1, 1), arr(1, 3, 2, 3), dt, score, lp, cc)
    with pytest.raises(InputError, match="out of range"):
        linker(nf, src, arr(2, 3, 2, 4), dt, score, lp, cc)
    with pytest.raises(InputError, match="out of range"):
        linker(nf, arr(-1, 0, 1, 1), dst, dt, score, lp, cc)
    with pytest.raises(InputError, match="differ in length"):
        linker(nf, src, dst, dt, score[:3], lp, cc)
    with pytest.raises(InputError, match="child_count"):
        linker(nf, src, dst, dt, score, lp, cc[:3])
    with pytest.raises(InputError, match="dt differs"):
        linker(nf, src, dst, arr(1, 2, 1, 1), score, lp, cc)
    with pytest.raises(InputError, match="locked_parent"):
        linker(nf, src, dst, dt, score, arr(-1, -3, -2, -2), cc)
    with pytest.raises(InputError, match="earlier frame"):
        linker(nf, src, dst, dt, score, arr(-1, 0, -2, -2), cc)
    with pytest.raises(InputError, match="integers"):
        linker(nf.astype(float), src, dst, dt, score, lp, cc)
    for bad in (-0.1, 1.0, np.nan):
        with pytest.raises(ConfigError, match="min_score"):
            linker(nf, src, dst, dt, score, lp, cc, min_score=bad)
    with pytest.raises(ConfigError, match="max_children"):
        linker(nf, src, dst, dt, score, lp, cc, max_children=0)


def test_validate_returns_contiguous_int64():
    nf, src, dst, dt, score, lp, cc = crossing()
    v = validate_link_inputs(nf.astype(np.int32), src[::1], dst, dt, score.astype(np.float32), lp, cc)
    assert v.node_frame.dtype == np.int64 and v.score.dtype == np.float64
    assert v.dist.shape == (4,) and not v.dist.any()


def test_empty_window():
    for linker in (link_greedy, link_lap):
        out = linker(arr(), arr(), arr(), arr(), np.zeros(0), arr(), arr())
        assert out.shape == (0,)
        out = linker(arr(0, 1), arr(), arr(), arr(), np.zeros(0), undecided(2), np.zeros(2, I))
        np.testing.assert_array_equal(out, [-1, -1])
