"""Command line of the DeepSPT training: ``python -m edgetrack.training.deepspt train --ndim 2 --seed 0 --out DIR``.

``train`` trains the ensemble on freshly simulated heterogeneous tracks, fits one temperature per
member on held-out tracks, exports the calibrated ensemble to ``DIR/deepspt_<n>d.onnx`` (opset 17,
dynamic batch and length), checks PyTorch / ONNX Runtime parity, saves the PyTorch weights next to
it (``deepspt_<n>d.pt``, used by the parity test of the shipped model), evaluates it on a test set
and writes its entry into ``DIR/manifest.json`` (command, seed and the measured metrics); the entry is
also printed on stdout as JSON.
Run it under ``nice -n 19``: it takes minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from edgetrack.runtime.errors import EdgetrackError

__all__ = ["main", "train_and_export", "evaluate_onnx"]


def evaluate_onnx(path: Path | str, ndim: int, n_tracks: int, seed: int, max_length: int = 600) -> dict:
    """Per-frame scores and calibration of an exported model on ``n_tracks`` fresh test tracks."""
    import numpy as np
    import onnxruntime as ort

    from edgetrack.runtime.motion.deepspt import predict_arrays

    from .evaluate import expected_calibration_error, frame_scores
    from .export import INPUT_NAME, OUTPUT_NAME
    from .sim import SimConfig, simulate_tracks
    from .train import seed_stream

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    test = simulate_tracks(n_tracks, SimConfig(ndim=ndim, max_length=max_length), seed_stream(seed, 3))
    probs = predict_arrays(test.tracks(), lambda b: session.run([OUTPUT_NAME], {INPUT_NAME: b})[0])
    labels = [test.labels[a:b] for a, b in zip(test.offsets[:-1], test.offsets[1:])]
    scores = frame_scores(labels, [p.argmax(axis=1) for p in probs])
    scores["ece"] = expected_calibration_error(np.concatenate(probs), test.labels)
    return scores


def train_and_export(ndim: int, seed: int, out: Path | str, *, name: str | None = None, command: str | None = None,
                     log: Callable[[str], None] | None = None, **options) -> dict:
    """Train, export, check parity, evaluate and update the manifest; returns the manifest entry.

    options: fields of :class:`~edgetrack.training.deepspt.train.TrainConfig` (members, epochs, ...).
    """
    from edgetrack.runtime.motion.deepspt import DEFAULT_MODELS, MIN_POINTS, MODES
    from edgetrack.training.magik.export import update_manifest

    from .export import OPSET, export_onnx, input_spec, output_spec, parity, save_weights, sha256
    from .train import TrainConfig, train_ensemble

    cfg = TrainConfig(ndim=ndim, seed=seed, **options)
    start = time.perf_counter()
    ensemble, info = train_ensemble(cfg, log=log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or DEFAULT_MODELS[ndim]
    path = out / f"{name}.onnx"
    export_onnx(ensemble, path)
    diff = parity(ensemble, path, ndim, seed=seed)
    if diff > 1e-4:
        raise EdgetrackError(f"ONNX export differs from PyTorch by {diff:.2e} (> 1e-4)")
    weights = out / f"{name}.pt"
    save_weights(ensemble, weights)
    metrics = evaluate_onnx(path, ndim, cfg.test_tracks, seed, cfg.max_length)
    if log is not None:
        log(f"test: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
            f"mean track accuracy {metrics['mean_track_accuracy']:.4f}, ECE {metrics['ece']:.4f}")
    entry = {
        "name": name,
        "task": "segmentation",
        "kind": "deepspt",
        "ndim": ndim,
        "file": path.name,
        "sha256": sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "inputs": input_spec(ndim),
        "outputs": output_spec(),
        "dynamic_axes": ["batch", "length"],
        "classes": list(MODES),
        "min_points": MIN_POINTS,
        "architecture": {**ensemble.members[0].cfg.to_dict(), "members": cfg.members,
                         "temperatures": [m["temperature"] for m in info["members"]]},
        "torch_weights": {"file": weights.name, "sha256": sha256(weights)},
        "training": {"command": command or "", "seed": seed, "config": cfg.to_dict(),
                     "train_seconds": info["train_seconds"], "total_seconds": round(time.perf_counter() - start, 1),
                     "members": info["members"]},
        "parity_max_abs_diff": diff,
        "metrics": {"test_tracks": cfg.test_tracks, "test_seed_stream": [seed, 3], **metrics},
    }
    update_manifest(out, entry)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgetrack.training.deepspt",
                                     description="Train and export the DeepSPT segmentation ensemble.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train, export to ONNX, check parity, update the manifest")
    tr.add_argument("--ndim", type=int, choices=(2, 3), required=True)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", required=True, help="folder of the exported models (manifest.json is updated)")
    tr.add_argument("--name", default=None, help="model name (default deepspt_2d / deepspt_3d)")
    for opt, typ in (("members", int), ("epochs", int), ("tracks-per-epoch", int), ("val-tracks", int),
                     ("test-tracks", int), ("base", int), ("growth", float), ("kernel", int), ("convs", int),
                     ("depth", int), ("lr", float), ("batch-points", int), ("threads", int), ("max-length", int)):
        tr.add_argument(f"--{opt}", type=typ, default=None)
    tr.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    options = {k: getattr(args, k) for k in ("members", "epochs", "tracks_per_epoch", "val_tracks", "test_tracks",
                                             "base", "growth", "kernel", "convs", "depth", "lr", "batch_points",
                                             "threads", "max_length") if getattr(args, k) is not None}
    command = "python -m edgetrack.training.deepspt " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        entry = train_and_export(args.ndim, args.seed, args.out, name=args.name, command=command, log=log, **options)
    except EdgetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(entry, indent=2))
    if not args.quiet:
        m = entry["metrics"]
        print(f"{entry['name']}: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, parity "
              f"{entry['parity_max_abs_diff']:.1e} -> {Path(args.out) / entry['file']}", file=sys.stderr)
    return 0
