"""Command line of MAGIK training: ``python -m edgetrack.training.magik train --task link --seed 0 --out DIR``.

``train`` trains one network on freshly simulated graphs, evaluates it on held-out graphs,
exports it to ``DIR/<name>.onnx`` (opset 17, dynamic numbers of nodes, edges and chunks), checks
PyTorch / ONNX Runtime parity on random graphs and writes its entry into ``DIR/manifest.json``
(with the command and seed that reproduce it and the measured metrics).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from edgetrack.runtime.errors import EdgetrackError

__all__ = ["main", "train_and_export"]


def train_and_export(task: str, seed: int, out: Path | str, *, name: str | None = None, steps: int | None = None,
                     chunk: int | None = None, receptive_field: bool = True, attention: bool = True,
                     eval_graphs: int = 40, threads: int = 1, command: str | None = None, mixed: float | None = None,
                     crowded: float = 0.0,
                     parity_sizes: tuple[int, ...] = (1, 7, 64, 300, 1000), log=None) -> dict:
    """Train, export, check parity (random graphs of ``parity_sizes`` nodes) and update the manifest;
    returns the manifest entry."""
    from edgetrack.runtime.associate.magik import DEFAULT_MODELS

    from .data import DIFFUSION_GRAPH, MOTION_GRAPH
    from .export import OPSET, export_onnx, input_spec, onnx_input_names, output_spec, parity, sha256, update_manifest
    from .train import TASKS, TrainConfig, train

    cfg = TrainConfig(task=task, seed=seed, steps=steps, chunk=chunk, receptive_field=receptive_field,
                      attention=attention, eval_graphs=eval_graphs, threads=threads, mixed=mixed,
                      crowded=crowded)
    model, info = train(cfg, log=log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or DEFAULT_MODELS[task]
    path = out / f"{name}.onnx"
    kind = TASKS[task]["kind"]
    export_onnx(model, kind, path)
    diff = parity(model, kind, path, sizes=parity_sizes)
    pooled = bool(model.cfg.global_from_nodes)
    n_out = {"edge": 1, "node": model.cfg.node_out, "global": model.cfg.node_out if pooled else model.cfg.global_out}[kind]
    graph = {"link": {"max_distance": None, "max_gap": 2, "frames": None},
             "diffusion": dict(DIFFUSION_GRAPH), "motion": dict(MOTION_GRAPH)}[task]
    entry = {
        "name": name,
        "task": task,
        "kind": kind,
        "file": path.name,
        "sha256": sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "inputs": input_spec(onnx_input_names(path)),
        "outputs": output_spec(kind, n_out, node_prob=pooled),
        "dynamic_axes": ["n_nodes", "n_edges", "n_chunks", "chunk"],
        "attention_chunk": cfg.attention_chunk,
        "graph": graph,
        "architecture": {k: v for k, v in model.cfg.to_dict().items()},
        "training": {"command": command or "", "seed": seed, "steps": info["steps"],
                     **({"mixed_share": cfg.mixed_share} if task == "motion" else {}),
                     **({"crowded_share": cfg.crowded} if task == "link" and cfg.crowded > 0 else {}),
                     "train_seconds": info["train_seconds"], "final_loss": info["final_loss"]},
        "metrics": {k: v for k, v in info.items() if k.startswith("metrics")},
        "parity_max_abs_diff": diff,
    }
    if "targets" in TASKS[task]:
        entry["targets"] = list(TASKS[task]["targets"])
    if "classes" in TASKS[task]:
        entry["classes"] = list(TASKS[task]["classes"])
    if diff > 1e-4:
        raise EdgetrackError(f"parity check failed: max |PyTorch - ONNX| = {diff:.2e} > 1e-4 ({path})")
    update_manifest(out, entry)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgetrack.training.magik",
                                     description="Train MAGIK graph networks and export them to ONNX.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one model, export it to ONNX and add it to the manifest")
    p.add_argument("--task", required=True, choices=["link", "diffusion", "motion"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder of the exported models (manifest.json is updated)")
    p.add_argument("--name", default=None, help="model name (default magik_<task>)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps, one graph each (default per task)")
    p.add_argument("--chunk", type=int, default=None, help="attention chunk (0 = all pairs; default per task)")
    p.add_argument("--no-receptive-field", action="store_true", help="ablation: every edge weighs 1")
    p.add_argument("--no-attention", action="store_true", help="ablation: no gated self-attention")
    p.add_argument("--eval-graphs", type=int, default=40, help="held-out graphs for the metrics")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--mixed", type=float, default=None,
                   help="motion: share of mixed-model training videos (default 0.6)")
    p.add_argument("--crowded", type=float, default=0.0,
                   help="link: share of crowded training windows (crowding rho D 0.015 .. 0.15; default 0)")
    p.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m edgetrack.training.magik " + " ".join(shlex.quote(a) for a in argv_list)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        entry = train_and_export(args.task, args.seed, args.out, name=args.name, steps=args.steps, chunk=args.chunk,
                                 receptive_field=not args.no_receptive_field, attention=not args.no_attention,
                                 eval_graphs=args.eval_graphs, threads=args.threads, command=command, log=log,
                                 mixed=args.mixed, crowded=args.crowded)
    except EdgetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"exported {entry['name']} ({entry['size_bytes'] / 1e6:.2f} MB, parity {entry['parity_max_abs_diff']:.1e}): "
        f"{entry['metrics']}")
    return 0
