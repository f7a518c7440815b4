"""ONNX export of the calibrated DeepSPT ensemble, PyTorch/ONNX Runtime parity, weights file, manifest entry."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.motion.deepspt import LENGTH_MULTIPLE, MODES, channel_names, n_channels, pack_batch, prepare_channels
from edgetrack.runtime.models.onnx import file_sha256

from .model import CalibratedEnsemble, UNet1d, UNetConfig
from .sim import simulate_tracks

__all__ = ["OPSET", "INPUT_NAME", "OUTPUT_NAME", "export_onnx", "parity", "save_weights", "load_weights",
           "input_spec", "output_spec"]

OPSET = 17
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"


def _folded(ensemble: CalibratedEnsemble) -> CalibratedEnsemble:
    members = [m.folded() for m in ensemble.members]
    temps = [1.0 / float(v) for v in ensemble.inv_t]
    return CalibratedEnsemble(members, temps).eval()


def export_onnx(ensemble: CalibratedEnsemble, path: Path | str, opset: int = OPSET) -> None:
    """Write the ensemble (in the folded, batch-as-image layout) as ONNX with dynamic batch and length."""
    folded = _folded(ensemble)
    c = ensemble.members[0].cfg.in_channels
    example = torch.zeros(2, c, 4 * LENGTH_MULTIPLE)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(folded, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "length"}, OUTPUT_NAME: {0: "batch", 2: "length"}},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(buffer.getvalue())


def _random_batches(ndim: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Input batches for parity: noise of several shapes and real simulated tracks."""
    c = n_channels(ndim)
    out = [rng.normal(0, 1, (b, c, length)).astype(np.float32)
           for b, length in ((1, LENGTH_MULTIPLE), (3, 64), (17, 200), (2, 1008))]
    data = simulate_tracks(24, seed=rng, ndim=ndim)
    ch = prepare_channels(data.positions, data.offsets)
    length = int(-(-np.diff(data.offsets).max() // LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
    out.append(pack_batch(ch, data.offsets, np.arange(data.n_tracks), length))
    return out


@torch.no_grad()
def parity(ensemble: CalibratedEnsemble, path: Path | str, ndim: int, seed: int = 0) -> float:
    """Largest |PyTorch - ONNX Runtime| of the probabilities over random and simulated batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ensemble.eval()
    worst = 0.0
    for batch in _random_batches(ndim, np.random.default_rng(seed)):
        ref = ensemble(torch.from_numpy(batch)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        if ref.shape != got.shape:
            raise AssertionError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
        worst = max(worst, float(np.max(np.abs(ref - got))))
    return worst


def save_weights(ensemble: CalibratedEnsemble, path: Path | str) -> None:
    """PyTorch weights and architecture of the ensemble (for the parity test of a shipped model)."""
    payload = {"config": ensemble.members[0].cfg.to_dict(),
               "temperatures": [1.0 / float(v) for v in ensemble.inv_t],
               "state_dict": {k: v.detach().clone() for k, v in ensemble.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(buffer.getvalue())


def load_weights(path: Path | str) -> CalibratedEnsemble:
    """The ensemble saved by :func:`save_weights`, in eval mode."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    cfg = UNetConfig.from_dict(payload["config"])
    members = [UNet1d(cfg) for _ in payload["temperatures"]]
    ensemble = CalibratedEnsemble(members, payload["temperatures"])
    ensemble.load_state_dict(payload["state_dict"])
    return ensemble.eval()


def input_spec(ndim: int) -> list[dict]:
    return [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", n_channels(ndim), "length"],
             "channels": list(channel_names(ndim)), "length_multiple": LENGTH_MULTIPLE}]


def output_spec() -> list[dict]:
    return [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(MODES), "length"],
             "classes": list(MODES)}]


def sha256(path: Path | str) -> str:
    return file_sha256(path)
