"""Command line: ``python -m edgetrack.training.cell_assoc train --seed 0 --out exported_models/ [--steps N]``.

``train`` simulates cell movies, trains the association transformer, evaluates it on held-out
movies against the distance-only baseline, exports ``OUT/<name>.onnx`` (opset 17, dynamic number of
objects), checks PyTorch / ONNX Runtime parity and writes the model's entry into ``OUT/manifest.json``
(with the command and seed that reproduce it and the measured metrics).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable, Sequence

from edgetrack.runtime.errors import EdgetrackError

__all__ = ["main", "train_and_export"]


def train_and_export(seed: int, out: Path | str, *, name: str = "cell_assoc", command: str | None = None,
                     parity_sizes: tuple[int, ...] = (1, 2, 17, 120, 400), log: Callable[[str], None] | None = None,
                     train_movies=None, held_out=None, **options) -> dict:
    """Train (options: those of :class:`~edgetrack.training.cell_assoc.train.TrainConfig`), export,
    check parity and update the manifest; returns the manifest entry. train_movies / held_out:
    labelled movies to use instead of simulated ones (see :func:`~edgetrack.training.cell_assoc.train.train`)."""
    from edgetrack.training.magik.export import sha256, update_manifest

    from .export import OPSET, export_onnx, input_spec, output_spec, parity
    from .train import TrainConfig, train

    cfg = TrainConfig.from_dict({"seed": seed, **options})
    model, info = train(cfg, log=log, movies=train_movies, held_out=held_out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.onnx"
    export_onnx(model, path)
    diff = parity(model, path, sizes=parity_sizes)
    if diff > 1e-4:
        raise EdgetrackError(f"parity check failed: max |PyTorch - ONNX| = {diff:.2e} > 1e-4 ({path})")
    entry = {
        "name": name,
        "task": "cell_assoc",
        "kind": "pairs",
        "file": path.name,
        "sha256": sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": OPSET,
        "inputs": input_spec(),
        "outputs": output_spec(),
        "dynamic_axes": ["n_objects"],
        "window_frames": int(max(cfg.frames)),
        "radius": float(model.cfg.radius),
        "architecture": model.cfg.to_dict(),
        "training": {"command": command or "", "seed": seed, "steps": info["steps"], "batch": cfg.batch,
                     "movies": cfg.movies, "size_jitter": cfg.size_jitter,
                     "division_jitter": cfg.division_jitter, "train_seconds": info["train_seconds"], "final_loss": info["final_loss"]},
        "metrics": info.get("metrics", {}),
        "parity_max_abs_diff": diff,
    }
    update_manifest(out, entry)
    return entry


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from edgetrack.runtime.models.onnx import clear_cache

    from .data import movie_pool
    from .evaluate import evaluate_tracking, time_model

    scorers = args.scorers.split(",")
    if args.folder is not None:  # the transformer of another folder, under its own scorer name
        from edgetrack.runtime.associate.registry import register_scorer, scorer_names
        from edgetrack.runtime.associate.cell_transformer import TransformerScorer

        folder = str(Path(args.folder).resolve())
        name = f"transformer[{folder}]"
        if name not in scorer_names():
            register_scorer(name, lambda **o: TransformerScorer(folder=folder, **o))
        scorers = [name if s == "transformer" else s for s in scorers]
    clear_cache()
    movies = movie_pool(args.movies, np.random.default_rng(np.random.SeedSequence(entropy=args.seed, spawn_key=(7,))))
    tables = []
    for min_score in args.min_score or [0.05, 0.5]:
        table = evaluate_tracking(movies, scorers=tuple(scorers), linkers=tuple(args.linkers.split(",")),
                                  max_distance_diameters=args.max_distance, min_score=min_score)
        table.insert(2, "min_score", min_score)
        tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(result[["scorer", "linker", "min_score", "link_precision", "link_recall", "link_f1", "division_precision",
                      "division_recall", "division_f1", "division_n_true", "ms_per_frame"]].round(4).to_string(index=False))
    if "transformer" in args.scorers.split(","):
        print("ONNX Runtime, 4 frames x 100 objects:", time_model(folder=args.folder, threads=1), "(1 thread);",
              time_model(folder=args.folder), "(default threads)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgetrack.training.cell_assoc",
                                     description="Train the cell association transformer and export it to ONNX.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train, export to ONNX and add the model to the manifest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder of the exported models (manifest.json is updated)")
    p.add_argument("--name", default="cell_assoc", help="model name (default cell_assoc)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 3000)")
    p.add_argument("--batch", type=int, default=None, help="windows per step (default 4)")
    p.add_argument("--movies", type=int, default=None, help="simulated training movies (default 160)")
    p.add_argument("--eval-movies", type=int, default=None, help="held-out movies for the metrics (default 12)")
    p.add_argument("--width", type=int, default=None, help="token width d (default 64)")
    p.add_argument("--size-jitter", type=float, default=None,
                   help="per-object probability of a large size change in training (default 0)")
    p.add_argument("--division-jitter", type=float, default=None,
                   help="the same for objects next to a division only (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quiet", action="store_true")
    e = sub.add_parser("evaluate", help="track held-out simulated movies with each scorer and linker; "
                                        "print link / division scores and the model's ms per window")
    e.add_argument("--seed", type=int, default=1, help="seed of the held-out movies (training uses 0 and its spawns)")
    e.add_argument("--movies", type=int, default=8, help="held-out movies (simulator settings varied as in training)")
    e.add_argument("--folder", default=None, help="folder of the exported model (default: the installed models)")
    e.add_argument("--scorers", default="distance,transformer")
    e.add_argument("--linkers", default="greedy,ilp")
    e.add_argument("--min-score", type=float, action="append", default=None,
                   help="Tracker min_score (repeat to sweep; default 0.05 and 0.5)")
    e.add_argument("--max-distance", type=float, default=1.5, help="Tracker max_distance in cell diameters")
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return _evaluate(args)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m edgetrack.training.cell_assoc " + " ".join(shlex.quote(a) for a in argv_list)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    options: dict = {"threads": args.threads}
    for key in ("steps", "batch", "movies", "eval_movies", "size_jitter", "division_jitter"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.width is not None:
        options["arch"] = {"d": args.width, "d_assoc": args.width}
    try:
        entry = train_and_export(args.seed, args.out, name=args.name, command=command, log=log, **options)
    except EdgetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"exported {entry['name']} ({entry['size_bytes'] / 1e6:.2f} MB, parity {entry['parity_max_abs_diff']:.1e}): "
        f"{entry['metrics']}")
    return 0
