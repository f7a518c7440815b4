"""Command line of the motion network: ``python -m edgetrack.training.andi_model train --seed 0 --out DIR``.

``train`` trains the network on freshly simulated AnDi Challenge experiments, saves a checkpoint
(``--checkpoint``, optional), exports ``DIR/andi_motion.onnx`` (opset 17, dynamic batch and
length), checks PyTorch / ONNX Runtime parity and writes its entry into ``DIR/manifest.json``.
``export`` does the last three steps again from a checkpoint (for instance after other models
were added to the manifest, or to record benchmark metrics with ``--metrics``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

from edgetrack.runtime.errors import EdgetrackError

__all__ = ["main", "export_and_register", "save_checkpoint", "load_checkpoint"]

PARITY_TOLERANCE = 1e-4


def save_checkpoint(path: Path | str, model, cfg, info: dict, command: str) -> None:
    import torch

    from edgetrack.runtime.io.atomic import atomic_path

    with atomic_path(Path(path)) as tmp:
        torch.save({"state_dict": model.state_dict(), "model_config": model.cfg.to_dict(),
                    "train_config": cfg.to_dict(), "info": info, "command": command}, tmp)


def load_checkpoint(path: Path | str):
    """(model in eval mode, checkpoint dict) from a file written by :func:`save_checkpoint`."""
    import torch

    from .model import MotionNet, MotionNetConfig

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise EdgetrackError(f"cannot read checkpoint {path}: {exc}") from None
    cfg = dict(ckpt["model_config"])
    cfg["widths"] = tuple(cfg["widths"])
    model = MotionNet(MotionNetConfig(**cfg))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def export_and_register(model, out: Path | str, *, train_config: dict, info: dict, command: str,
                        name: str | None = None, extra_metrics: dict | None = None,
                        calibration_experiments: int = 20) -> dict:
    """Export ``model`` to ``out/<name>.onnx``, check parity, measure its error variance for the
    run-time shrinkage (:func:`~.export.calibrate`), add its manifest entry; returns the entry."""
    from edgetrack.runtime.models.onnx import file_sha256
    from edgetrack.runtime.motion.network import MODEL_NAME
    from edgetrack.training.magik.export import update_manifest

    from .export import OPSET, calibrate, export_onnx, input_spec, output_spec, parity

    name = name or MODEL_NAME
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.onnx"
    export_onnx(model, path)
    diff = parity(model, path)
    if diff > PARITY_TOLERANCE:
        raise EdgetrackError(f"parity check failed: max |PyTorch - ONNX| = {diff:.2e} > {PARITY_TOLERANCE} ({path})")
    metrics = {k: v for k, v in info.items() if k.startswith("metrics")}
    if extra_metrics:
        metrics.update(extra_metrics)
    entry = {
        "name": name,
        "task": "motion_per_frame",
        "kind": "sequence",
        "file": path.name,
        "sha256": file_sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "inputs": input_spec(),
        "outputs": output_spec(),
        "dynamic_axes": ["batch", "length"],
        "architecture": {k: list(v) if isinstance(v, tuple) else v for k, v in model.cfg.to_dict().items()},
        "training": {"command": command, "seed": train_config.get("seed"), "config": train_config,
                     "steps": info.get("steps"), "train_seconds": info.get("train_seconds"),
                     "final_loss": info.get("final_loss"), "parameters": info.get("parameters")},
        "metrics": metrics,
        "parity_max_abs_diff": diff,
        "calibration": calibrate(model, n_experiments=calibration_experiments),
        "units": {"K": "px^2/frame^alpha (per-coordinate MSD 2 K t^alpha)", "alpha": "1"},
    }
    update_manifest(out, entry)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgetrack.training.andi_model",
                                     description="Train the per-frame motion network and export it to ONNX.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train, export to ONNX and add to the manifest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder of the exported models (manifest.json is updated)")
    p.add_argument("--checkpoint", default=None, help="also save the PyTorch weights here (.pt)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 8000)")
    p.add_argument("--batch", type=int, default=None, help="tracks per step (default 48)")
    p.add_argument("--experiments", type=int, default=None, help="experiments per model per simulated pool")
    p.add_argument("--broad", type=float, default=None,
                   help="fraction of experiments with wider settings than the challenge defaults (default 0.4)")
    p.add_argument("--eval-experiments", type=int, default=None, help="held-out experiments per model")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    p.add_argument("--quiet", action="store_true")
    e = sub.add_parser("export", help="export a checkpoint to ONNX and (re)write its manifest entry")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--metrics", default=None, help="JSON file of extra metrics (e.g. from bench_motion.py)")
    args = parser.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m edgetrack.training.andi_model " + " ".join(shlex.quote(a) for a in argv_list)

    def log(msg: str) -> None:
        if not getattr(args, "quiet", False):
            print(msg, file=sys.stderr, flush=True)

    try:
        if args.command == "train":
            from .train import TrainConfig, train

            options = {"seed": args.seed, "steps": args.steps, "batch": args.batch, "experiments": args.experiments,
                       "broad": args.broad,
                       "eval_experiments": args.eval_experiments, "threads": args.threads}
            cfg = TrainConfig.from_dict({k: v for k, v in options.items() if v is not None})
            model, info = train(cfg, log=log)
            if args.checkpoint:
                save_checkpoint(args.checkpoint, model, cfg, info, command)
            entry = export_and_register(model, args.out, train_config=cfg.to_dict(), info=info, command=command)
        else:
            model, ckpt = load_checkpoint(args.checkpoint)
            extra = json.loads(Path(args.metrics).read_text(encoding="utf-8")) if args.metrics else None
            entry = export_and_register(model, args.out, train_config=ckpt["train_config"], info=ckpt["info"],
                                        command=ckpt["command"], extra_metrics=extra)
    except EdgetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"exported {entry['name']} ({entry['size_bytes'] / 1e6:.2f} MB, parity {entry['parity_max_abs_diff']:.1e})")
    return 0
