"""Cell association transformer: runtime inputs and edge scores (no torch), targets, loss, ONNX parity,
a tiny training run with export, and the scorer inside the Tracker."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.associate.cell_transformer import (CELL_FEATURE_COLUMNS, INPUT_FEATURES, TransformerScorer, associate,
                                          edge_probabilities, score_pairs, window_inputs)
from edgetrack.runtime.errors import ConfigError, InputError, ModelError
from edgetrack.runtime.graph.candidates import build_graph
from edgetrack.runtime.models.onnx import clear_cache, model_names

COLUMNS = ("y", "x", *CELL_FEATURE_COLUMNS)


def _has_model(name: str) -> bool:
    try:
        return name in model_names()
    except ModelError:
        return False


needs_model = pytest.mark.skipif(not _has_model("cell_assoc"), reason="cell_assoc is not exported")


def synthetic_cells(seed: int = 0, n_tracks: int = 8, n_frames: int = 10, side: float = 200.0,
                    divide_at: int | None = 4):
    """A stand-in for the simulator: objects (frame, y, x, cell features, track_id) and lineage parents.

    Cells of radius ~10 px move ~2 px per frame; track 1 divides at ``divide_at`` into two daughters.
    """
    rng = np.random.default_rng(seed)
    rows = []
    parent = {}
    pos = {k: rng.uniform(20, side - 20, 2) for k in range(1, n_tracks + 1)}
    alive = set(pos)
    next_track = n_tracks + 1
    for t in range(n_frames):
        if divide_at is not None and t == divide_at + 1 and 1 in alive:
            alive.discard(1)
            for s in (-1, 1):
                pos[next_track] = pos[1] + s * np.array([7.0, 0.0])
                parent[next_track] = 1
                alive.add(next_track)
                next_track += 1
        for k in sorted(alive):
            pos[k] = pos[k] + rng.normal(0, 1.5, 2)
            r = 10.0 + 0.5 * rng.normal()
            area = math.pi * r * r
            rows.append({"frame": t, "y": pos[k][0], "x": pos[k][1], "area": area, "perimeter": 2 * math.pi * r,
                         "eccentricity": 0.3, "solidity": 0.95, "mean_intensity": 500.0 + 10 * k,
                         "inertia_yy": r * r / 4, "inertia_xy": 0.0, "inertia_xx": r * r / 4, "track_id": k})
    return pd.DataFrame(rows), parent


# ---------------------------------------------------------------- runtime (numpy only)
def test_window_inputs_normalise_by_diameter_and_check_columns():
    table, _ = synthetic_cells(n_frames=3)
    frame = table["frame"].to_numpy()
    values = table[list(COLUMNS)].to_numpy()
    inputs = window_inputs(frame, values, COLUMNS)
    d = inputs.diameter
    assert 18 < d < 22  # radius ~10 px
    assert inputs["coords"].shape == (len(table), 3) and inputs["coords"].dtype == np.float32
    assert inputs["features"].shape == (len(table), len(INPUT_FEATURES))
    np.testing.assert_allclose(inputs["coords"][:, 1], (values[:, 0] - values[:, 0].mean()) / d, rtol=1e-5, atol=1e-5)
    assert set(np.unique(inputs["coords"][:, 0])) == {0.0, 1.0, 2.0}
    assert np.all(np.abs(inputs["features"][:, 6]) < 0.35)  # inertia of a disk ~ d^2 / 16 -> ~0
    # scaling every length by 3 leaves the inputs unchanged (lengths are in cell diameters)
    scaled = values.copy()
    scaled[:, [0, 1, 3]] *= 3
    scaled[:, [2, 7, 8, 9]] *= 9
    again = window_inputs(frame, scaled, COLUMNS)
    np.testing.assert_allclose(again["coords"], inputs["coords"], atol=1e-5)
    np.testing.assert_allclose(again["features"], inputs["features"], atol=1e-4)
    with pytest.raises(InputError, match="solidity"):
        window_inputs(frame, values[:, :5], COLUMNS[:5])
    bad = values.copy()
    bad[0, 2] = np.nan
    with pytest.raises(InputError, match="area"):
        window_inputs(frame, bad, COLUMNS)


def test_edge_probabilities_discount_gaps_by_intermediate_ancestors():
    # objects: 0 (frame 0), 1 (frame 1), 2 (frame 2)
    assoc = np.zeros((3, 3))
    assoc[0, 1], assoc[1, 2], assoc[0, 2] = 0.9, 0.8, 0.7
    frame = np.array([0, 1, 2])
    p = edge_probabilities(assoc, frame, np.array([0, 1, 0]), np.array([1, 2, 2]))
    np.testing.assert_allclose(p, [0.9, 0.8, 0.7 * (1 - 0.8)])
    assoc[1, 2] = 0.0  # the cell was not seen in frame 1: the gap edge keeps its probability
    p = edge_probabilities(assoc, frame, np.array([0]), np.array([2]))
    np.testing.assert_allclose(p, [0.7])


def test_score_pairs_averages_over_sliding_windows():
    frame = np.array([0, 1, 2, 3])
    values = np.zeros((4, len(COLUMNS)))
    values[:, 2] = 300.0  # area
    calls = []

    def run(coords, features):
        calls.append(len(coords))
        n = len(coords)
        a = np.zeros((n, n), np.float32)
        a[np.arange(n - 1), np.arange(1, n)] = 0.2 * len(calls)  # a different score in each window
        return a

    src, dst = np.array([0, 1, 2]), np.array([1, 2, 3])
    out = score_pairs(run, frame, values, COLUMNS, src, dst, window=2)
    assert calls == [2, 2, 2]
    np.testing.assert_allclose(out, [0.2, 0.4, 0.6])
    calls.clear()
    out = score_pairs(run, frame, values, COLUMNS, src, dst, window=3)
    assert calls == [3, 3]
    # pair (1, 2) is in both windows: mean of 0.2 and 0.4; the others in one each
    np.testing.assert_allclose(out, [0.2, 0.3, 0.4])


def test_scorer_is_registered_and_loads_lazily(tmp_path):
    from edgetrack.runtime.associate.registry import make_scorer
    from edgetrack.runtime.stream.tracker import Tracker

    scorer = make_scorer("transformer")
    assert isinstance(scorer, TransformerScorer) and scorer.needs_window
    with pytest.raises(ConfigError):
        make_scorer("transformer", radius=3)
    Tracker(scorer="transformer", max_distance=20.0)  # nothing is loaded yet
    table, _ = synthetic_cells(n_frames=3)
    frame = table["frame"].to_numpy()
    values = table[list(COLUMNS)].to_numpy()
    edges = build_graph(frame, values[:, 0], values[:, 1], 20.0, 2)
    with pytest.raises(ModelError):
        TransformerScorer(folder=str(tmp_path)).score_window(frame, values, COLUMNS, edges)
    with pytest.raises(ConfigError):
        scorer.score(edges)


# ---------------------------------------------------------------- targets (numpy)
def test_targets_follow_tracks_and_divisions():
    from edgetrack.training.cell_assoc.data import representatives, window_targets

    # frame 0: track 1 (mother); frame 1: tracks 2, 3 (daughters of 1) and a false object; frame 2: track 2
    frame = np.array([0, 1, 1, 1, 2])
    track = np.array([1, 2, 3, 0, 2])
    target, division = window_targets(frame, track, {2: 1, 3: 1})
    expected = np.zeros((5, 5))
    expected[0, [1, 2, 4]] = 1  # the mother is the ancestor of both daughters and of the daughter later on
    expected[1, 4] = 1  # same track
    np.testing.assert_array_equal(target, expected)
    assert division[0, 1] == division[0, 2] == division[0, 4] == 1 and division[1, 4] == 0
    # a split object: two pieces of track 5 in one frame; only the larger counts
    rep = representatives(np.array([0, 0, 1]), np.array([5, 5, 5]), np.array([100.0, 300.0, 250.0]))
    assert rep.tolist() == [0, 5, 5]


def test_augmentation_keeps_features_consistent():
    from edgetrack.training.cell_assoc.data import augment_table

    table, _ = synthetic_cells(n_frames=3)
    frame = table["frame"].to_numpy()
    values = table[list(COLUMNS)].to_numpy(copy=True)
    values[:, COLUMNS.index("inertia_yy")] *= 1.5  # elongated along y
    values[:, COLUMNS.index("inertia_xy")] = 3.0
    base = window_inputs(frame, values, COLUMNS)["features"]
    for seed in range(8):
        aug = augment_table(values, np.random.default_rng(seed))
        feats = window_inputs(frame, aug, COLUMNS)["features"]
        # flips and transposes move the geometry but never the size or shape features
        np.testing.assert_allclose(feats[:, :4], base[:, :4], atol=1e-5)
        assert np.allclose(np.abs(feats[:, 7]), np.abs(base[:, 7]), atol=1e-5)
        swapped = np.allclose(feats[:, 6], base[:, 8], atol=1e-5) and np.allclose(feats[:, 8], base[:, 6], atol=1e-5)
        assert swapped or (np.allclose(feats[:, 6], base[:, 6], atol=1e-5))
        jittered = augment_table(values, np.random.default_rng(seed), size_jitter=0.5)
        ratio = jittered[:, 2] / values[:, 2]
        np.testing.assert_allclose(jittered[:, 3] / values[:, 3], np.sqrt(ratio), rtol=1e-9)
        assert ratio.min() < 0.9  # some objects shrink a lot


# ---------------------------------------------------------------- training side (torch)
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def _labelled(seed=0, **kw):
    from edgetrack.training.cell_assoc.data import LabelledMovie

    table, parent = synthetic_cells(seed=seed, **kw)
    return LabelledMovie(table=table, parent=parent)


def test_parental_softmax_has_a_none_option_per_frame():
    from edgetrack.training.cell_assoc.model import log_parental_softmax

    coords = torch.tensor([[0.0, 0, 0], [0.0, 1, 0], [1.0, 0, 0], [2.0, 0, 0]])
    logits = torch.tensor([[0.0, 0, 2.0, 1.0], [0, 0, 0.0, 3.0], [0, 0, 0, 1.0], [0, 0, 0, 0]])
    t = coords[:, 0]
    valid = t[:, None] < t[None, :]
    p = torch.exp(log_parental_softmax(logits, coords, valid)) * valid
    # child 3: frame-0 candidates 0, 1 share one softmax with +1; frame-1 candidate 2 has its own
    z0 = 1 + math.exp(1.0) + math.exp(3.0)
    np.testing.assert_allclose(p[:, 3].numpy(), [math.exp(1.0) / z0, math.exp(3.0) / z0, math.exp(1) / (1 + math.exp(1)), 0],
                               rtol=1e-5)
    assert float(p[:2, 2].sum()) < 1.0 and float(p[:, 0].sum()) == 0.0


def test_model_is_translation_invariant_in_its_association_logits():
    from edgetrack.training.cell_assoc.model import AssocConfig, CellAssoc

    torch.manual_seed(0)
    model = CellAssoc(AssocConfig(d=32, heads=2, n_encoder=1, n_decoder=1, n_fourier=4, fourier_scale=0.0)).eval()
    rng = np.random.default_rng(0)
    coords = torch.tensor(np.column_stack([rng.integers(0, 3, 30), rng.uniform(-3, 3, (30, 2))]), dtype=torch.float32)
    feats = torch.tensor(rng.normal(size=(30, len(INPUT_FEATURES))), dtype=torch.float32)
    shifted = coords.clone()
    shifted[:, 1:] += torch.tensor([5.0, -7.0])
    with torch.no_grad():
        a = model.probabilities(coords, feats)
        b = model.probabilities(shifted, feats)
    assert float((a - b).abs().max()) < 1e-4  # with the Fourier features off, only relative positions count


def test_onnx_parity_with_a_dynamic_number_of_objects(tmp_path):
    from edgetrack.training.cell_assoc.export import export_onnx, parity
    from edgetrack.training.cell_assoc.model import CellAssoc

    torch.manual_seed(0)
    model = CellAssoc().eval()
    export_onnx(model, tmp_path / "m.onnx")
    assert parity(model, tmp_path / "m.onnx", sizes=(1, 2, 33, 250)) <= 1e-4


def test_division_jitter_changes_only_objects_next_to_divisions():
    from edgetrack.training.cell_assoc.data import make_window

    movie = _labelled(seed=2, n_tracks=4, n_frames=8, divide_at=3)
    plain = make_window(movie, 2, 4, np.random.default_rng(0))
    jittered = make_window(movie, 2, 4, np.random.default_rng(0), division_jitter=1.0)
    changed = np.flatnonzero(np.abs(plain.features[:, 0] - jittered.features[:, 0]) > 1e-6)
    tab = movie.table[(movie.table["frame"] >= 2) & (movie.table["frame"] < 6)].reset_index(drop=True)
    near = ((tab["track_id"] == 1) & (tab["frame"] == 3)) | (tab["track_id"].isin([5, 6]) & (tab["frame"] == 4))
    # sizes are normalised by the window's median diameter, which the three changed objects barely move
    assert set(changed.tolist()) >= set(np.flatnonzero(near.to_numpy()).tolist())
    big = np.abs(plain.features[:, 0] - jittered.features[:, 0]) > 0.05
    assert set(np.flatnonzero(big).tolist()) <= set(np.flatnonzero(near.to_numpy()).tolist())
    np.testing.assert_array_equal(plain.target, jittered.target)


def test_loss_decreases_on_one_window():
    from edgetrack.training.cell_assoc.data import make_window
    from edgetrack.training.cell_assoc.model import AssocConfig, CellAssoc
    from edgetrack.training.cell_assoc.train import loss_of

    torch.manual_seed(0)
    w = make_window(_labelled(), 2, 4)
    assert w.target.sum() > 0 and w.division.sum() > 0
    model = CellAssoc(AssocConfig(d=32, heads=2, n_encoder=1, n_decoder=1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(loss_of(model, w).detach())
    for _ in range(30):
        opt.zero_grad()
        loss = loss_of(model, w)
        loss.backward()
        opt.step()
    assert float(loss_of(model, w).detach()) < 0.5 * first


def test_tiny_training_run_exports_and_scores_in_the_tracker(tmp_path, monkeypatch):
    from edgetrack.runtime.stream.tracker import Tracker
    from edgetrack.training.cell_assoc.cli import train_and_export

    movies = [_labelled(seed=s) for s in range(3)]
    entry = train_and_export(0, tmp_path, command="test", train_movies=movies, held_out=[_labelled(seed=9)],
                             parity_sizes=(3, 60), steps=3, batch=1,
                             arch={"d": 32, "heads": 2, "n_encoder": 1, "n_decoder": 1, "d_assoc": 16})
    assert entry["parity_max_abs_diff"] <= 1e-4 and entry["opset"] >= 17 and entry["size_bytes"] < 10e6
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["cell_assoc"]
    assert {"transformer", "distance"} <= set(entry["metrics"])
    clear_cache()
    scorer = TransformerScorer(folder=str(tmp_path))
    table, _ = synthetic_cells(seed=3, n_frames=8)
    frame = table["frame"].to_numpy()
    values = table[list(COLUMNS)].to_numpy()
    edges = build_graph(frame, values[:, 0], values[:, 1], 25.0, 2)
    score = scorer.score_window(frame, values, COLUMNS, edges)
    assert score.shape == (len(edges.src),) and score.min() >= 0 and score.max() <= 1
    # offline: pairs of objects one frame apart, with their averaged scores
    src, dst, prob = associate(table, window=4, folder=str(tmp_path))
    assert len(src) == len(dst) == len(prob) > 0
    assert np.all(table["frame"].to_numpy()[dst] - table["frame"].to_numpy()[src] == 1)
    # the streaming tracker runs with it (divisions on)
    from edgetrack.runtime.associate.registry import SCORERS

    monkeypatch.setitem(SCORERS, "transformer", lambda **o: TransformerScorer(folder=str(tmp_path)))
    tracker = Tracker(scorer="transformer", linker="greedy", max_children=2, max_distance=25.0, window=4)
    for t in range(8):
        tracker.push(table[table["frame"] == t].drop(columns=["track_id"]), frame=t)
    tracks = tracker.finish()
    assert len(tracks) == len(table)


def test_true_links_and_division_scores():
    from edgetrack.training.cell_assoc.evaluate import link_scores, true_links

    movie = _labelled(seed=1, n_tracks=3, n_frames=7, divide_at=3)
    tab = movie.table
    links = true_links(movie)
    # every object but those of the first frame has exactly one true parent here (no false objects, no gaps)
    assert len(links) == int((tab["frame"] > 0).sum())
    mother_last = int(tab.index[(tab["track_id"] == 1) & (tab["frame"] == 3)][0])
    daughters = set(tab.index[(tab["frame"] == 4) & tab["track_id"].isin([4, 5])])
    assert {c for p, c in links if p == mother_last} == daughters
    perfect = link_scores(links, links)
    assert perfect["link_f1"] == 1.0 and perfect["division_f1"] == 1.0 and perfect["division_n_true"] == 1
    one_child = links - {(mother_last, min(daughters))}
    broken = link_scores(one_child, links)
    assert broken["division_recall"] == 0.0 and broken["link_recall"] < 1.0 and broken["link_precision"] == 1.0


@needs_model
def test_exported_model_links_stand_in_cells_with_divisions():
    from edgetrack.training.cell_assoc.evaluate import link_scores, track_links, true_links

    movie = _labelled(seed=5, n_tracks=10, n_frames=12, divide_at=5)
    pred, _ = track_links(movie, "transformer", "greedy", max_distance=25.0, min_score=0.05)
    scores = link_scores(pred, true_links(movie))
    assert scores["link_f1"] > 0.95, scores
    assert scores["division_recall"] == 1.0, scores


@needs_model
def test_runtime_transformer_does_not_import_torch():
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from edgetrack.runtime.associate.cell_transformer import associate
        import pandas as pd

        rng = np.random.default_rng(0)
        start = rng.uniform(20, 180, (8, 2))
        rows = [dict(frame=t, y=p[0] + 1.5 * t, x=p[1], area=314.0, perimeter=63.0, eccentricity=0.3, solidity=0.95,
                     mean_intensity=500.0, inertia_yy=25.0, inertia_xy=0.0, inertia_xx=25.0)
                for t in range(6) for p in start]
        table = pd.DataFrame(rows)
        src, dst, prob = associate(table, window=4)
        assert len(src) and np.all((prob >= 0) & (prob <= 1))
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")], "torch was imported"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
