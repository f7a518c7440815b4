"""MAGIK: ONNX export parity, a tiny training run, model loading checks, the scorer in the Tracker,
the post-processing linker and the linking-free predictions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import edgetrack

from edgetrack.runtime.errors import ConfigError, InputError, ModelError
from edgetrack.runtime.graph.candidates import build_graph
from edgetrack.runtime.link.magik_post import link_magik_post
from edgetrack.runtime.associate.magik import MagikScorer, chunk_order, graph_inputs
from edgetrack.runtime.models.onnx import clear_cache, load_model, manifest_entry, model_names


def _has_model(name: str) -> bool:
    try:
        return name in model_names()
    except ModelError:
        return False


needs_link_model = pytest.mark.skipif(not _has_model("magik_link"), reason="magik_link is not exported")


# ---------------------------------------------------------------- feature building (no torch)
def test_graph_inputs_chunks_keep_every_node_once():
    rng = np.random.default_rng(0)
    n = 203
    frame = np.sort(rng.integers(0, 5, n))
    y, x = rng.uniform(0, 40, n), rng.uniform(0, 40, n)
    edges = build_graph(frame, y, x, 4.0, 2)
    full = graph_inputs(frame, y, x, edges, 4.0, chunk=0)
    chunked = graph_inputs(frame, y, x, edges, 4.0, chunk=16)
    assert full.inputs["node_mask"].shape == (1, n)
    assert chunked.inputs["node_mask"].shape == (13, 16)  # 203 nodes padded to 208
    assert chunked.inputs["node_mask"].sum() == n
    assert sorted(chunked.position.tolist()) == list(range(n))
    # the same node features, moved to their chunk positions; padding rows are zero
    np.testing.assert_array_equal(chunked.inputs["node_features"][chunked.position], full.inputs["node_features"])
    assert not chunked.inputs["node_features"][n:].any()
    # edges point at the moved nodes
    np.testing.assert_array_equal(chunked.inputs["edge_index"][0], chunked.position[edges.src])
    nf = full.inputs["node_features"]
    assert nf.min() >= 0 and nf.max() <= 1
    ef = full.inputs["edge_features"]
    assert np.all(ef[:, 0] <= 1.0 + 1e-6) and set(np.unique(ef[:, 3])) <= {0.0, 1.0}


def test_chunk_order_groups_nearby_points():
    rng = np.random.default_rng(1)
    y, x = rng.uniform(0, 100, 400), rng.uniform(0, 100, 400)
    order = chunk_order(np.zeros(400, np.int64), y, x, cell=5.0)
    pts = np.column_stack([y, x])[order].reshape(25, 16, 2)
    spread = np.mean([np.ptp(c[:, 0]) + np.ptp(c[:, 1]) for c in pts])
    assert spread < 60  # random chunks of 16 points would span ~170 px (y + x)


def test_graph_inputs_rejects_bad_input():
    edges = build_graph(np.array([0, 1]), np.array([0.0, 1.0]), np.array([0.0, 1.0]), 3.0, 1)
    with pytest.raises(InputError):
        graph_inputs(np.array([0, 1]), np.array([0.0, np.nan]), np.array([0.0, 1.0]), edges, 3.0)
    with pytest.raises(InputError):
        graph_inputs(np.array([0, 1]), np.array([0.0, 1.0]), np.array([0.0, 1.0]), edges, -1.0)
    with pytest.raises(ConfigError):
        graph_inputs(np.array([0, 1]), np.array([0.0, 1.0]), np.array([0.0, 1.0]), edges, 3.0, chunk=-2)


# ---------------------------------------------------------------- post-processing linker
def _post(node_frame, src, dst, score, max_children=1, locked=None):
    node_frame = np.asarray(node_frame, np.int64)
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    n = len(node_frame)
    lp = np.full(n, -2, np.int64) if locked is None else np.asarray(locked, np.int64)
    return link_magik_post(node_frame, src, dst, node_frame[dst] - node_frame[src], np.asarray(score, float), lp,
                           np.zeros(n, np.int64), max_children=max_children)


def test_post_keeps_links_from_half_and_prefers_short_gaps():
    # nodes: 0 (frame 0), 1 (frame 1), 2 (frame 2)
    parent = _post([0, 1, 2], [0, 1, 0], [1, 2, 2], [0.49, 0.6, 0.99])
    # 0->1 is below 0.5; 1->2 (dt 1, 0.6) wins over 0->2 (dt 2, 0.99): shortest gap first
    assert parent.tolist() == [-1, -1, 1]


def test_post_highest_score_within_a_gap_and_divisions():
    # node 0 in frame 0; nodes 1, 2 in frame 1
    parent = _post([0, 1, 1], [0, 0], [1, 2], [0.7, 0.9])
    assert parent.tolist() == [-1, -1, 0]
    parent = _post([0, 1, 1], [0, 0], [1, 2], [0.7, 0.9], max_children=2)
    assert parent.tolist() == [-1, 0, 0]  # two children: a division


def test_post_respects_locked_parents_and_is_registered():
    from edgetrack.runtime.link.registry import get_linker

    assert get_linker("magik_post").function is link_magik_post
    parent = _post([0, 1], [0], [1], [0.9], locked=[-1, -1])
    assert parent.tolist() == [-1, -1]
    with pytest.raises(InputError):
        _post([0, 1], [0], [1], [1.5])


# ---------------------------------------------------------------- model files
@needs_link_model
def test_load_model_checks_sha256(tmp_path):
    from edgetrack.runtime.models.onnx import models_dir

    for name in ("magik_link.onnx", "manifest.json"):
        shutil.copy(models_dir() / name, tmp_path / name)
    model = load_model("magik_link", folder=tmp_path, provider="cpu")
    assert model.provider == "CPUExecutionProvider"
    clear_cache()
    data = bytearray((tmp_path / "magik_link.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "magik_link.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model("magik_link", folder=tmp_path)
    (tmp_path / "magik_link.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model("magik_link", folder=tmp_path)
    with pytest.raises(ModelError, match="no exported model"):
        load_model("no_such_model", folder=tmp_path)
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="manifest"):
        load_model("magik_link", folder=tmp_path)


@needs_link_model
def test_default_provider_really_works():
    import onnxruntime as ort

    model = load_model("magik_link")
    assert model.provider in ort.get_available_providers()
    assert model.session.get_providers()[0] == model.provider


# ---------------------------------------------------------------- scorer inside the Tracker
def _detections(seed=0, n_frames=12):
    from edgetrack.runtime.simulate.spots import simulate_detections

    return simulate_detections(shape=(48, 48), n_spots=25, D_range=(0.3, 0.3), n_frames=n_frames, seed=seed)


@needs_link_model
@pytest.mark.parametrize("linker", ["lap", "greedy", "magik_post"])
def test_tracker_with_magik_scorer(linker):
    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.stream.pipeline import link_detections

    det, truth = _detections()
    tracks = link_detections(det, max_distance=3.0, scorer="magik", linker=linker)
    assert len(tracks) == len(det)
    m = link_metrics(truth, tracks, max_distance=0.5)
    assert m["f1"] > 0.8, m


@needs_link_model
def test_scorer_scores_are_probabilities_and_match_all_pairs_closely():
    det, _ = _detections(seed=2, n_frames=5)
    frame = det["frame"].to_numpy()
    values = det[["y", "x"]].to_numpy()
    edges = build_graph(frame, values[:, 0], values[:, 1], 3.0, 2)
    chunked = MagikScorer(max_distance=3.0, chunk=16).score_window(frame, values, ("y", "x"), edges)
    exact = MagikScorer(max_distance=3.0, chunk=0).score_window(frame, values, ("y", "x"), edges)
    assert chunked.shape == (len(edges.src),) and chunked.dtype == np.float64
    assert chunked.min() >= 0 and chunked.max() <= 1
    assert np.mean(np.abs(chunked - exact)) < 0.05
    with pytest.raises(ConfigError):
        MagikScorer().score(edges)


def test_stream_imports_and_magik_loads_lazily(tmp_path):
    """No model file is needed to import the runtime or create the scorer; a missing model fails on first use."""
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(scorer="magik", max_distance=3.0)  # nothing is loaded yet
    scorer = MagikScorer(folder=str(tmp_path))
    det, _ = _detections(n_frames=3)
    frame = det["frame"].to_numpy()
    values = det[["y", "x"]].to_numpy()
    edges = build_graph(frame, values[:, 0], values[:, 1], 3.0, 2)
    with pytest.raises(ModelError):
        scorer.score_window(frame, values, ("y", "x"), edges)
    assert tracker.config.scorer == "magik"


@needs_link_model
def test_runtime_magik_does_not_import_torch():
    script = textwrap.dedent(
        """
        import sys
        from edgetrack.runtime.stream.pipeline import link_detections
        from edgetrack.runtime.simulate.spots import simulate_detections

        det, truth = simulate_detections(shape=(32, 32), n_spots=10, D_range=(0.2, 0.2), n_frames=6, seed=1)
        tracks = link_detections(det, max_distance=3.0, scorer="magik", linker="magik_post")
        assert len(tracks) == len(det)
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")], "torch was imported"
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


# ---------------------------------------------------------------- predictions without linking
needs_diffusion_model = pytest.mark.skipif(not _has_model("magik_diffusion"), reason="magik_diffusion is not exported")


@needs_diffusion_model
def test_predict_nodes_tells_slow_from_fast_particles():
    from edgetrack.runtime.associate.magik import predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_detections

    means = []
    for d in (0.02, 0.5):
        det, _ = simulate_detections(shape=(32, 32), n_spots=30, D_range=(d, d), n_frames=50, seed=4)
        out = predict_nodes(det)
        assert len(out) == len(det) and np.isfinite(out["sqrt_2D"]).all()
        np.testing.assert_allclose(out["D"], np.maximum(out["sqrt_2D"], 0) ** 2 / 2)
        means.append(float(out["sqrt_2D"].median()))
    assert means[0] < 0.5 * means[1], means  # sqrt(2D) = 0.2 vs 1.0 px


def test_step_scale_follows_the_movies_steps():
    from edgetrack.runtime.associate.scale import REFERENCE_STEP, median_next_step, step_scale

    rng = np.random.default_rng(0)
    frame = np.repeat(np.arange(30), 20)
    start = rng.uniform(0, 500, (20, 2))
    for step, expected in ((0.1, 1.0), (3.0, None)):
        pos = start + np.cumsum(rng.normal(0, step, (30, 20, 2)), axis=0)
        y, x = pos[..., 0].ravel(), pos[..., 1].ravel()
        m = median_next_step(frame, y, x)
        assert 0.5 * step < m < 2.5 * step  # sparse particles: the nearest next detection is the particle itself
        s = step_scale(frame, y, x)
        assert s == (expected if expected is not None else pytest.approx(REFERENCE_STEP / m))
    assert np.isnan(median_next_step(np.array([0, 2]), np.zeros(2), np.zeros(2)))  # no consecutive frames
    assert step_scale(np.array([0, 2]), np.zeros(2), np.zeros(2)) == 1.0


@needs_diffusion_model
def test_predict_nodes_scales_fast_movies_back_to_their_own_units():
    from edgetrack.runtime.associate.magik import predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(128, 128), n_spots=40, D_range=(1.5, 1.5), n_frames=50, seed=3)
    auto, plain = predict_nodes(det), predict_nodes(det, scale=1.0)
    assert auto.attrs["magik_scale"] < 0.7 and plain.attrs["magik_scale"] == 1.0
    # the training videos stop at D = 0.7: unscaled, the model saturates below the true 1.5 px^2/frame
    assert plain["D"].median() < 0.9 < auto["D"].median() < 2.2
    half = det.assign(y=det["y"] * 0.5, x=det["x"] * 0.5)  # the same movie, scaled by hand
    np.testing.assert_allclose(predict_nodes(half, scale=auto.attrs["magik_scale"] / 0.5)["D"] * 4.0, auto["D"],
                               rtol=1e-3, atol=1e-6)
    with pytest.raises(InputError, match="scale"):
        predict_nodes(det, scale="big")
    with pytest.raises(InputError, match="scale"):
        predict_nodes(det, scale=0.0)


@needs_diffusion_model
def test_predict_nodes_averages_over_the_symmetries_of_the_square():
    from edgetrack.runtime.associate.magik import SYMMETRIES, predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(64, 64), n_spots=20, D_range=(0.05, 0.5), n_frames=30, seed=5)
    one = predict_nodes(det, scale=1.0, symmetries=1)
    eight = predict_nodes(det, scale=1.0, symmetries=8)
    np.testing.assert_allclose(predict_nodes(det, scale=1.0)["sqrt_2D"],  # the default: the 4 mirrored copies
                               predict_nodes(det, scale=1.0, symmetries=4)["sqrt_2D"])
    # by hand: the plain network on the 8 mirrored / swapped copies, averaged
    copies = []
    for sy, sx, swap, _ in SYMMETRIES[:8]:
        y, x = sy * det["y"], sx * det["x"]
        copies.append(predict_nodes(det.assign(y=x, x=y) if swap else det.assign(y=y, x=x), scale=1.0,
                                    symmetries=1)["sqrt_2D"].to_numpy())
    np.testing.assert_allclose(eight["sqrt_2D"], np.maximum(np.mean(copies, axis=0), 0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(one["sqrt_2D"], eight["sqrt_2D"], atol=1e-4)  # the network alone is not invariant
    # the average is: a mirrored, transposed movie gets the same map
    turned = predict_nodes(det.assign(y=-det["x"], x=det["y"]), scale=1.0, symmetries=8)
    np.testing.assert_allclose(turned["sqrt_2D"], eight["sqrt_2D"], rtol=1e-4, atol=1e-5)
    sixteen = predict_nodes(det, scale=1.0, symmetries=16)
    assert np.isfinite(sixteen["sqrt_2D"]).all() and not np.allclose(sixteen["sqrt_2D"], eight["sqrt_2D"], atol=1e-4)
    for bad in (3, 0, True, 2.0):
        with pytest.raises(ConfigError, match="symmetries"):
            predict_nodes(det, symmetries=bad)


@needs_diffusion_model
def test_predict_nodes_overlapping_blocks_weigh_each_detection_by_its_distance_from_the_block_ends():
    from edgetrack.runtime.associate.magik import predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(48, 48), n_spots=15, D_range=(0.05, 0.5), n_frames=100, seed=6)
    f = det["frame"].to_numpy()
    plain = predict_nodes(det, scale=1.0, symmetries=1, stride=50)["sqrt_2D"].to_numpy()
    over = predict_nodes(det, scale=1.0, symmetries=1)["sqrt_2D"].to_numpy()  # default: stride 25
    # by hand: blocks 0-49, 25-74, 50-99, each its own graph, triangle weights
    total, weight = np.zeros(len(det)), np.zeros(len(det))
    for start in (0, 25, 50):
        rows = np.flatnonzero((f >= start) & (f < start + 50))
        block = predict_nodes(det.iloc[rows], scale=1.0, symmetries=1, stride=50)["sqrt_2D"].to_numpy()
        w = np.minimum(f[rows] - start, 49 - (f[rows] - start)) + 1.0
        total[rows] += w * block
        weight[rows] += w
    np.testing.assert_allclose(over, total / weight, rtol=1e-5, atol=1e-6)
    edge = (f < 25) | (f >= 75)  # in one block only
    np.testing.assert_allclose(over[edge], plain[edge], rtol=1e-5, atol=1e-6)
    assert not np.allclose(over[~edge], plain[~edge], atol=1e-4)
    short = det[f < 50]  # one block: the stride changes nothing
    np.testing.assert_allclose(predict_nodes(short, scale=1.0, symmetries=1)["sqrt_2D"],
                               predict_nodes(short, scale=1.0, symmetries=1, stride=50)["sqrt_2D"], rtol=1e-6)
    for bad in (0, 51, 2.5, True):
        with pytest.raises(ConfigError, match="stride"):
            predict_nodes(det, stride=bad)


@needs_diffusion_model
def test_magik_predict_command(tmp_path):
    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(32, 32), n_spots=20, D_range=(0.1, 0.1), n_frames=20, seed=5)
    det.to_csv(tmp_path / "det.csv", index=False)
    code = main(["magik-predict", str(tmp_path / "det.csv"), "--task", "diffusion", "--out",
                 str(tmp_path / "map.csv"), "--quiet"])
    assert code == 0
    out = pd.read_csv(tmp_path / "map.csv")
    assert {"frame", "y", "x", "sqrt_2D", "D"} <= set(out.columns) and len(out) == len(det)
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--scale", "0.5", "--out", str(tmp_path / "m2.csv"),
                 "--quiet"]) == 0
    assert not np.allclose(pd.read_csv(tmp_path / "m2.csv")["D"], out["D"])
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--scale", "x", "--out", str(tmp_path / "m3.csv"),
                 "--quiet"]) == 2
    from edgetrack.runtime.associate.magik import predict_nodes

    assert main(["magik-predict", str(tmp_path / "det.csv"), "--symmetries", "1", "--out", str(tmp_path / "m4.csv"),
                 "--quiet"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "m4.csv")["D"], predict_nodes(det, symmetries=1)["D"], rtol=1e-6)
    np.testing.assert_allclose(out["D"], predict_nodes(det)["D"], rtol=1e-6)
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--stride", "20", "--out", str(tmp_path / "m5.csv"),
                 "--quiet"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "m5.csv")["D"], predict_nodes(det, stride=20)["D"], rtol=1e-6)
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--stride", "0", "--out", str(tmp_path / "m6.csv"),
                 "--quiet"]) == 2
    pd.DataFrame({"frame": [0], "y": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["magik-predict", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o.csv"), "--quiet"]) == 2


@pytest.mark.skipif(not _has_model("magik_motion"), reason="magik_motion is not exported")
def test_predict_global_gives_fractions_per_block():
    from edgetrack.runtime.associate.magik import predict_global, predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(32, 32), n_spots=30, D_range=(0.1, 0.1), n_frames=60, seed=6)
    out = predict_global(det)
    assert len(out) == 2  # 60 frames in blocks of the model's 30
    cols = ["p_fbm", "p_ctrw", "p_attm"]
    p = out[cols].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert set(out["label"]) <= {"fbm", "ctrw", "attm"}
    if "node_prob" in load_model("magik_motion").output_names:
        # the video's fractions are the mean of the per-detection probabilities of its block
        nodes = predict_nodes(det, "magik_motion")
        assert len(nodes) == len(det) and set(nodes["label"]) <= {"fbm", "ctrw", "attm"}
        np.testing.assert_allclose(nodes[cols].sum(axis=1), 1.0, atol=1e-5)
        block = (nodes["frame"] - nodes["frame"].min()) // 30
        np.testing.assert_allclose(nodes.groupby(block)[cols].mean().to_numpy(), p, atol=1e-5)


def _motion_has_node_prob() -> bool:
    try:
        return "node_prob" in {o["name"] for o in manifest_entry("magik_motion")["outputs"]}
    except ModelError:
        return False


@pytest.mark.skipif(not _motion_has_node_prob(), reason="magik_motion has no per-detection output")
def test_magik_predict_motion_per_detection(tmp_path):
    from edgetrack.runtime.cli.app import main
    from edgetrack.runtime.simulate.spots import simulate_detections

    det, _ = simulate_detections(shape=(32, 32), n_spots=20, D_range=(0.1, 0.1), n_frames=30, seed=7)
    det.to_csv(tmp_path / "det.csv", index=False)
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--task", "motion", "--per-detection",
                 "--out", str(tmp_path / "nodes.csv"), "--quiet"]) == 0
    assert main(["magik-predict", str(tmp_path / "det.csv"), "--task", "motion",
                 "--out", str(tmp_path / "video.csv"), "--quiet"]) == 0
    nodes, video = pd.read_csv(tmp_path / "nodes.csv"), pd.read_csv(tmp_path / "video.csv")
    cols = ["p_fbm", "p_ctrw", "p_attm"]
    assert len(nodes) == len(det) and len(video) == 1
    np.testing.assert_allclose(nodes[cols].mean().to_numpy(), video[cols].to_numpy()[0], atol=1e-5)


# ---------------------------------------------------------------- training side (torch)
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.mark.parametrize("kind", ["edge", "node", "global", "global_from_nodes"])
def test_onnx_parity_on_random_graphs(tmp_path, kind):
    from edgetrack.training.magik.export import export_onnx, onnx_input_names, parity
    from edgetrack.training.magik.model import Magik, MagikConfig

    torch.manual_seed(0)
    pooled = kind == "global_from_nodes"
    cfg = MagikConfig(edge_out=int(kind == "edge"), node_out=int(kind == "node") + 3 * pooled,
                      global_out=3 * (kind == "global"), global_from_nodes=pooled)
    model = Magik(cfg).eval()
    kind = "global" if pooled else kind
    path = tmp_path / "m.onnx"
    export_onnx(model, kind, path)
    assert parity(model, kind, path, sizes=(1, 5, 130, 600), chunks=(0, 16, 64)) <= 1e-4
    if pooled:
        import onnx

        assert [o.name for o in onnx.load(str(path)).graph.output] == ["global_pred", "node_prob"]
        assert "node_mask" in onnx_input_names(path)


def test_global_from_nodes_is_the_mean_over_real_nodes():
    from edgetrack.training.magik.model import Magik, MagikConfig
    from edgetrack.training.magik.train import tensors

    torch.manual_seed(3)
    model = Magik(MagikConfig(edge_out=0, node_out=3, global_from_nodes=True)).eval()
    rng = np.random.default_rng(3)
    n = 75
    frame = np.sort(rng.integers(0, 6, n))
    y, x = rng.uniform(0, 30, n), rng.uniform(0, 30, n)
    edges = build_graph(frame, y, x, 4.0, 2)
    g = graph_inputs(frame, y, x, edges, 4.0, chunk=16)  # 75 nodes padded to 80
    with torch.no_grad():
        out = model(*tensors(g.inputs))
    prob = out["node_prob"].numpy()
    np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["global_prob"].numpy(), prob[g.position].mean(0), atol=1e-6)
    assert not np.allclose(out["global_prob"].numpy(), prob.mean(0), atol=1e-4)  # padding left out
    with pytest.raises(ConfigError):
        MagikConfig(node_out=1, global_from_nodes=True)


def test_motion_graph_node_targets_match_the_fractions():
    from edgetrack.training.magik.data import AugmentConfig, NO_AUGMENT, motion_graph

    rng = np.random.default_rng(5)
    for mixed, aug in ((0.0, NO_AUGMENT), (1.0, AugmentConfig())):
        g = motion_graph(rng, aug, mixed=mixed)
        assert g.node_target.shape == (len(g.frame), 3)
        np.testing.assert_array_equal(g.node_target.sum(1), 1.0)
        np.testing.assert_allclose(g.global_target, g.node_target.mean(0), atol=1e-6)
        # one model per track
        per_track = pd.DataFrame(g.node_target.argmax(1), columns=["c"]).groupby(g.track)["c"].nunique()
        assert (per_track == 1).all()
        if mixed == 0.0:
            assert g.global_target.max() == 1.0


def test_ablations_export_and_match(tmp_path):
    from edgetrack.training.magik.export import export_onnx, parity
    from edgetrack.training.magik.model import Magik, MagikConfig

    torch.manual_seed(1)
    model = Magik(MagikConfig(receptive_field=False, attention=False)).eval()
    export_onnx(model, "edge", tmp_path / "a.onnx")
    assert parity(model, "edge", tmp_path / "a.onnx", sizes=(10, 200), chunks=(0, 32)) <= 1e-4


def test_receptive_field_parameters_stay_in_range():
    from edgetrack.training.magik.model import BETA_RANGE, SIGMA_RANGE, Magik

    model = Magik()
    block = model.blocks[0]
    assert abs(float(block.sigma.detach()) - 0.5) < 1e-5 and abs(float(block.beta.detach()) - 4.0) < 1e-4
    with torch.no_grad():
        block.raw_sigma.fill_(50.0)
        block.raw_beta.fill_(-50.0)
    assert SIGMA_RANGE[0] <= float(block.sigma.detach()) <= SIGMA_RANGE[1]
    assert BETA_RANGE[0] <= float(block.beta.detach()) <= BETA_RANGE[1]


def test_link_labels_mark_consecutive_detections():
    from edgetrack.training.magik.data import link_labels

    frame = np.array([0, 0, 1, 2, 3])
    track = np.array([7, 8, 7, 8, 7])
    y = np.array([0.0, 5.0, 0.5, 5.5, 1.0])
    edges = build_graph(frame, y, np.zeros(5), 3.0, 2)
    labels = link_labels(frame, track, edges, 2)
    truth = {(0, 2), (1, 3), (2, 4)}  # 8 skips frame 1 (a gap of 2 frames)
    got = {(int(s), int(d)) for s, d, lab in zip(edges.src, edges.dst, labels) if lab}
    assert got == truth


def test_motion_loss_decreases_when_nodes_are_right():
    from edgetrack.training.magik.data import NO_AUGMENT, motion_graph
    from edgetrack.training.magik.train import loss_of

    g = motion_graph(np.random.default_rng(8), NO_AUGMENT, mixed=1.0)
    n = len(g.frame)
    position = np.arange(n)
    right = torch.from_numpy(g.node_target * 8.0)
    flat = torch.zeros(n, 3)
    losses = []
    for logits in (right, flat):
        prob = torch.softmax(logits, -1)
        losses.append(float(loss_of("motion", {"node_pred": logits, "global_prob": prob.mean(0)}, g, position)))
    t = g.global_target[g.global_target > 0]
    entropy = float(-(t * np.log(t)).sum())  # the floor of the soft cross-entropy of the fractions
    assert abs(losses[0] - entropy) < 0.01
    assert losses[1] > losses[0] + 1.0  # flat: ln 3 for the nodes plus the fractions' cross-entropy with 1/3


def test_tiny_motion_training_exports_node_and_global_outputs(tmp_path):
    from edgetrack.runtime.associate.magik import predict_global, predict_nodes
    from edgetrack.training.magik.cli import train_and_export
    from edgetrack.runtime.simulate.spots import simulate_detections

    entry = train_and_export("motion", 0, tmp_path, steps=2, eval_graphs=2, command="test", parity_sizes=(3, 120))
    assert [o["name"] for o in entry["outputs"]] == ["global_pred", "node_prob"]
    assert entry["architecture"]["global_from_nodes"] and entry["training"]["mixed_share"] == 0.6
    m = entry["metrics"]["metrics"]
    assert m["n_single_model_videos"] == 1 and m["n_mixed_videos"] == 1
    assert 0.0 <= m["node_accuracy"] <= 1.0 and m["constant_baseline_fraction_mae"] > 0
    clear_cache()
    det, _ = simulate_detections(shape=(32, 32), n_spots=15, D_range=(0.1, 0.1), n_frames=30, seed=2)
    glob = predict_global(det, "magik_motion", folder=str(tmp_path))
    nodes = predict_nodes(det, "magik_motion", folder=str(tmp_path))
    cols = ["p_fbm", "p_ctrw", "p_attm"]
    np.testing.assert_allclose(nodes[cols].mean().to_numpy(), glob[cols].to_numpy()[0], atol=1e-5)
    with pytest.raises(ModelError):
        predict_nodes(det, "magik_motion_missing", folder=str(tmp_path))


def test_a_training_command_and_its_seed_reproduce_the_model(tmp_path):
    from edgetrack.training.magik.cli import train_and_export

    runs = [train_and_export("diffusion", 0, tmp_path / str(k), steps=4, eval_graphs=2, command="test",
                             parity_sizes=(3, 60)) for k in range(2)]
    assert runs[0]["sha256"] == runs[1]["sha256"]  # bit-identical ONNX files
    assert runs[0]["metrics"] == runs[1]["metrics"] and runs[0]["training"]["final_loss"] == runs[1]["training"]["final_loss"]
    other = train_and_export("diffusion", 1, tmp_path / "seed1", steps=4, eval_graphs=2, command="test",
                             parity_sizes=(3, 60))
    assert other["sha256"] != runs[0]["sha256"]  # and the seed matters


def test_tiny_training_run_exports_and_loads(tmp_path):
    from edgetrack.training.magik.cli import train_and_export

    entry = train_and_export("link", 0, tmp_path, steps=4, eval_graphs=2, command="test", parity_sizes=(3, 120))
    assert entry["parity_max_abs_diff"] <= 1e-4
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["magik_link"]
    versions = manifest["models"][0]["versions"]  # what the model was trained and exported with
    assert versions["edgetrack"] == edgetrack.__version__ and versions["torch"].startswith("2.")
    assert entry["opset"] >= 17 and entry["size_bytes"] < 10e6
    assert {i["name"] for i in entry["inputs"]} == {"node_features", "edge_features", "edge_index", "node_mask"}
    clear_cache()
    scorer = MagikScorer(folder=str(tmp_path), max_distance=3.0)
    det, _ = _detections(n_frames=4)
    frame = det["frame"].to_numpy()
    values = det[["y", "x"]].to_numpy()
    edges = build_graph(frame, values[:, 0], values[:, 1], 3.0, 2)
    score = scorer.score_window(frame, values, ("y", "x"), edges)
    assert score.shape == (len(edges.src),)
    assert scorer.provider == "CPUExecutionProvider" or scorer.provider.endswith("ExecutionProvider")
