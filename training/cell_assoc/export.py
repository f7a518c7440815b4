"""Export the cell association transformer to ONNX (dynamic number of tokens) and check parity."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.associate.cell_transformer import CELL_FEATURE_COLUMNS, INPUT_FEATURES, window_inputs

from .model import CellAssoc

__all__ = ["OPSET", "Exported", "export_onnx", "random_window", "parity", "input_spec", "output_spec"]

OPSET = 17


class Exported(nn.Module):
    """The network with its run-time output: the parental-softmax probabilities ``assoc`` (N, N)."""

    def __init__(self, model: CellAssoc) -> None:
        super().__init__()
        self.model = model

    def forward(self, coords: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(coords, features)


def random_window(n: int, rng: np.random.Generator, n_frames: int = 5) -> dict[str, np.ndarray]:
    """Model inputs of ``n`` random cell-like objects over ``n_frames`` frames (for export and parity)."""
    side = max(60.0, float(np.sqrt(max(n, 1) / n_frames)) * 30.0)
    frame = np.sort(rng.integers(0, n_frames, n)).astype(np.int64)
    area = rng.uniform(150, 450, n)
    r = np.sqrt(area / np.pi)
    values = np.column_stack([
        rng.uniform(0, side, n), rng.uniform(0, side, n), area, 2 * np.pi * r * rng.uniform(1.0, 1.2, n),
        rng.uniform(0, 0.8, n), rng.uniform(0.8, 1.0, n), rng.uniform(100, 1000, n),
        r * r / 4 * rng.uniform(0.7, 1.4, n), rng.normal(0, 5, n), r * r / 4 * rng.uniform(0.7, 1.4, n),
    ])
    inputs = window_inputs(frame, values, ("y", "x", *CELL_FEATURE_COLUMNS))
    return {"coords": inputs["coords"], "features": inputs["features"]}


def export_onnx(model: CellAssoc, path: Path | str, opset: int = OPSET) -> None:
    """Write ``model`` (eval mode) to ``path`` as ONNX with a dynamic number of tokens."""
    wrapped = Exported(model).eval()
    example = random_window(40, np.random.default_rng(0))
    args = (torch.from_numpy(example["coords"]), torch.from_numpy(example["features"]))
    dynamic = {"coords": {0: "n_objects"}, "features": {0: "n_objects"}, "assoc": {0: "n_objects", 1: "n_objects"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, args, buffer, input_names=["coords", "features"], output_names=["assoc"],
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(buffer.getvalue())


@torch.no_grad()
def parity(model: CellAssoc, path: Path | str, sizes=(1, 2, 17, 120, 400), seed: int = 0) -> float:
    """Largest |PyTorch - ONNX Runtime| of ``assoc`` over random windows of ``sizes`` objects."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped = Exported(model).eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in sizes:
        inputs = random_window(n, rng)
        ref = wrapped(torch.from_numpy(inputs["coords"]), torch.from_numpy(inputs["features"])).numpy()
        got = session.run(None, inputs)[0]
        if ref.shape != got.shape:
            raise AssertionError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
        if ref.size:
            worst = max(worst, float(np.max(np.abs(ref - got))))
    return worst


def input_spec() -> list[dict]:
    """The inputs of the exported model."""
    return [
        {"name": "coords", "dtype": "float32", "shape": ["n_objects", 3], "columns": ["t", "y", "x"],
         "units": "frames from the window's first; cell diameters from the window's mean position"},
        {"name": "features", "dtype": "float32", "shape": ["n_objects", len(INPUT_FEATURES)],
         "columns": list(INPUT_FEATURES)},
    ]


def output_spec() -> list[dict]:
    """The output of the exported model."""
    return [{"name": "assoc", "dtype": "float32", "shape": ["n_objects", "n_objects"],
             "note": "P[i, j]: object i (earlier frame) is j's ancestor-or-self; parental softmax per child "
                     "and earlier frame with +1 in the denominator; 0 where t_i >= t_j or beyond radius"}]
