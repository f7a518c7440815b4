"""The motion network (PyTorch side): tiny training, ONNX export, parity, manifest, padding invariance."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the training side needs torch")
pytest.importorskip("onnx", reason="ONNX export needs the onnx package")

from edgetrack.runtime.models.onnx import load_model  # noqa: E402
from edgetrack.runtime.motion.network import MODEL_NAME, predict_frames  # noqa: E402
from edgetrack.training.andi_model.cli import export_and_register, load_checkpoint, save_checkpoint  # noqa: E402
from edgetrack.training.andi_model.data import make_batch, simulate_tracks  # noqa: E402
from edgetrack.training.andi_model.export import random_tracks  # noqa: E402
from edgetrack.training.andi_model.model import MotionNet, MotionNetConfig  # noqa: E402
from edgetrack.training.andi_model.train import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def pool():
    return simulate_tracks(1, np.random.default_rng(0), broad=0.0)


def test_batch_targets(pool):
    idx = np.arange(min(len(pool), 12))
    b = make_batch(pool, idx)
    n = b.lengths
    assert b.features.shape[0] == idx.size and b.features.shape[2] % 8 == 0
    for r, i in enumerate(idx):
        s = pool.state[i]
        assert np.array_equal(b.state[r, : n[r]], s) and np.all(b.state[r, n[r]:] == -1)
        assert np.all(b.reg_mask[r, : n[r]][s == 0] == 0)
        a = pool.alpha[i]
        change = np.flatnonzero(a[1:] != a[:-1]) + 1
        if change.size:
            assert np.all(b.cp[r, change] == pytest.approx(1.0))
    rng = np.random.default_rng(1)
    cropped = make_batch(pool, idx, rng, p_crop=1.0, min_len=8)
    assert np.all(cropped.lengths <= n) and np.all(cropped.lengths >= 8)


def test_padding_does_not_change_outputs():
    torch.manual_seed(0)
    model = MotionNet(MotionNetConfig(widths=(8, 8, 16, 16), heads=2)).eval()
    feats, mask = random_tracks([21, 150], np.random.default_rng(0))
    alone, mask1 = random_tracks([21], np.random.default_rng(0))
    with torch.no_grad():
        both = model.predict(torch.from_numpy(feats), torch.from_numpy(mask))
        one = model.predict(torch.from_numpy(alone), torch.from_numpy(mask1))
    for b, o in zip(both, one):
        np.testing.assert_allclose(b[0, :21].numpy(), o[0, :21].numpy(), atol=1e-5)


@pytest.mark.slow
def test_tiny_training_export_parity_manifest(tmp_path):
    cfg = TrainConfig(steps=3, batch=6, experiments=1, eval_experiments=1, widths=(8, 8, 16, 16), refresh=10)
    model, info = train(cfg)
    assert info["steps"] == 3 and np.isfinite(info["final_loss"])
    assert set(info["metrics_frames"]) >= {"frame_alpha_mae", "frame_k_msle", "frame_state_accuracy"}
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, cfg, info, "test")
    model2, data = load_checkpoint(ckpt)
    entry = export_and_register(model2, tmp_path, train_config=data["train_config"], info=data["info"],
                                command="test", extra_metrics={"bench": {"x": 1.0}},
                                calibration_experiments=1)
    assert entry["parity_max_abs_diff"] <= 1e-4 and entry["opset"] >= 17
    assert len(entry["calibration"]["alpha_error_var"]) == 2
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == [MODEL_NAME]
    assert manifest["models"][0]["metrics"]["bench"] == {"x": 1.0}
    loaded = load_model(MODEL_NAME, folder=tmp_path, provider="cpu")
    rng = np.random.default_rng(2)
    tracks = [np.cumsum(rng.normal(0, 1, (n, 2)), axis=0) for n in (2, 5, 33, 120)]
    preds = predict_frames(tracks, loaded)
    assert [p.n for p in preds] == [2, 5, 33, 120]
    assert np.all(np.isnan(preds[0].alpha))  # too short
    for p in preds[1:]:
        assert np.all((p.alpha > 0) & (p.alpha < 2)) and np.all(p.K > 0)
        np.testing.assert_allclose(p.state_prob.sum(axis=1), 1.0, atol=1e-5)
        assert np.all((p.cp_prob >= 0) & (p.cp_prob <= 1))
