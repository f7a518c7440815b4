"""Export a trained MAGIK network to ONNX (dynamic nodes, edges and chunks), check parity, write the manifest."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgetrack.runtime.io.atomic import atomic_open, atomic_path
from edgetrack.runtime.graph.candidates import build_graph
from edgetrack.runtime.associate.magik import EDGE_FEATURES, NODE_FEATURES, graph_inputs
from edgetrack.runtime.models.onnx import file_sha256

from .model import Magik

__all__ = ["OPSET", "Exported", "output_name", "output_names", "export_onnx", "random_inputs", "parity", "update_manifest", "onnx_input_names",
           "input_spec", "output_spec"]

OPSET = 17
INPUTS = ("node_features", "edge_features", "edge_index", "node_mask")
_OUT = {"edge": "edge_prob", "node": "node_pred", "global": "global_pred"}


def output_name(kind: str) -> str:
    """The main ONNX output of a model kind: edge_prob (M,), node_pred (N, k) or global_pred (k,)."""
    return _OUT[kind]


def output_names(model: Magik, kind: str) -> list[str]:
    """All ONNX outputs of ``model`` exported as ``kind``: the main one, plus ``node_prob`` (N, k)
    for a global model whose global output is the mean of its per-node class probabilities."""
    names = [output_name(kind)]
    if kind == "global" and model.cfg.global_from_nodes:
        names.append("node_prob")
    return names


class Exported(nn.Module):
    """The network with its run-time outputs: link probability (sigmoid), node values, or class
    probabilities (softmax of the global decoder, or the mean of the per-node class probabilities
    together with those per-node probabilities)."""

    def __init__(self, model: Magik, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, node_features, edge_features, edge_index, node_mask):
        out = self.model(node_features, edge_features, edge_index, node_mask)
        if self.kind == "edge":
            return torch.sigmoid(out["edge_logit"])
        if self.kind == "node":
            return out["node_pred"]
        if self.model.cfg.global_from_nodes:
            return out["global_prob"], out["node_prob"]
        return torch.softmax(out["global_logit"], dim=-1)


def input_spec(names: list[str] | None = None) -> list[dict]:
    """The inputs of an exported model (``names``: those the ONNX graph kept; default all four)."""
    spec = [
        {"name": "node_features", "dtype": "float32", "shape": ["n_nodes", len(NODE_FEATURES)],
         "columns": list(NODE_FEATURES)},
        {"name": "edge_features", "dtype": "float32", "shape": ["n_edges", len(EDGE_FEATURES)],
         "columns": list(EDGE_FEATURES)},
        {"name": "edge_index", "dtype": "int64", "shape": [2, "n_edges"]},
        {"name": "node_mask", "dtype": "float32", "shape": ["n_chunks", "chunk"]},
    ]
    return [i for i in spec if names is None or i["name"] in names]


def onnx_input_names(path: Path | str) -> list[str]:
    """Names of the graph inputs of an ONNX file."""
    import onnx

    return [i.name for i in onnx.load(str(path)).graph.input]


def output_spec(kind: str, n_out: int, node_prob: bool = False) -> list[dict]:
    """Manifest description of the outputs (``node_prob``: a global model that also gives its
    per-node class probabilities, float32 (n_nodes, n_out))."""
    shape = {"edge": ["n_edges"], "node": ["n_nodes", n_out], "global": [n_out]}[kind]
    spec = [{"name": output_name(kind), "dtype": "float32", "shape": shape}]
    if node_prob:
        spec.append({"name": "node_prob", "dtype": "float32", "shape": ["n_nodes", n_out]})
    return spec


def random_inputs(n: int, rng: np.random.Generator, chunk: int = 64, max_distance: float = 4.0) -> dict[str, np.ndarray]:
    """Model inputs of a random graph of about ``n`` nodes (uniform points over a few frames)."""
    n_frames = 5
    side = max(8.0, float(np.sqrt(n / n_frames / 0.03)))
    frame = np.sort(rng.integers(0, n_frames, n)).astype(np.int64)
    y = rng.uniform(0, side, n)
    x = rng.uniform(0, side, n)
    edges = build_graph(frame, y, x, max_distance, 2)
    return graph_inputs(frame, y, x, edges, max_distance, chunk).inputs


def export_onnx(model: Magik, kind: str, path: Path | str, opset: int = OPSET) -> None:
    """Write ``model`` (eval mode) to ``path`` as ONNX with dynamic n_nodes, n_edges, n_chunks and chunk."""
    wrapped = Exported(model, kind).eval()
    example = random_inputs(150, np.random.default_rng(0), chunk=32)
    args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
    dynamic = {
        "node_features": {0: "n_nodes"}, "edge_features": {0: "n_edges"}, "edge_index": {1: "n_edges"},
        "node_mask": {0: "n_chunks", 1: "chunk"},
    }
    names = output_names(model, kind)
    out_name = names[0]
    if kind == "edge":
        dynamic[out_name] = {0: "n_edges"}
    elif kind == "node":
        dynamic[out_name] = {0: "n_nodes"}
    if "node_prob" in names:
        dynamic["node_prob"] = {0: "n_nodes"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, args, buffer, input_names=list(INPUTS), output_names=names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(buffer.getvalue())


@torch.no_grad()
def parity(model: Magik, kind: str, path: Path | str, sizes=(1, 7, 64, 300, 1000), chunks=(0, 16, 64),
           seed: int = 0) -> float:
    """Largest |PyTorch - ONNX Runtime| over random graphs of ``sizes`` nodes and attention ``chunks``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]  # an ablation without attention has no node_mask
    wrapped = Exported(model, kind).eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in sizes:
        for chunk in chunks:
            inputs = random_inputs(n, rng, chunk=chunk)
            refs = wrapped(*(torch.from_numpy(inputs[k]) for k in INPUTS))
            refs = refs if isinstance(refs, tuple) else (refs,)
            gots = session.run(None, {k: inputs[k] for k in names})
            if len(gots) != len(refs):
                raise AssertionError(f"ONNX gives {len(gots)} outputs, PyTorch {len(refs)}")
            for ref, got in zip((r.numpy() for r in refs), gots):
                if ref.shape != got.shape:
                    raise AssertionError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
                if ref.size:
                    worst = max(worst, float(np.max(np.abs(ref - got))))
    return worst


def software_versions() -> dict[str, str]:
    """The versions of edgetrack and of the libraries a model was trained and exported with."""
    import platform

    import onnx
    import torch

    from edgetrack import __version__

    return {"edgetrack": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def update_manifest(folder: Path | str, entry: dict) -> Path:
    """Add or replace ``entry`` (by name) in ``folder``/manifest.json (written atomically); an entry without
    ``versions`` gets :func:`software_versions` (every trainer exports through here)."""
    entry = {**entry, "versions": entry.get("versions") or software_versions()}
    path = Path(folder) / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"models": []}
    models = [m for m in data.get("models", []) if m.get("name") != entry["name"]]
    models.append(entry)
    data["models"] = sorted(models, key=lambda m: m["name"])
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def sha256(path: Path | str) -> str:
    return file_sha256(path)
