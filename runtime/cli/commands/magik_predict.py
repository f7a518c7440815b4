"""``edgetrack magik-predict DETECTIONS --task diffusion --out map.csv``: MAGIK predictions without linking.

``--task diffusion`` writes the detections with ``sqrt_2D`` (px/frame^0.5) and ``D`` (px^2/frame)
per detection (a diffusion map); ``--task motion`` writes one row per block of frames with the
fraction of each motion model (FBM, CTRW, ATTM at alpha = 1) and the most likely one, or with
``--per-detection`` the detections with each one's probabilities ``p_fbm, p_ctrw, p_attm`` and
``label``.
"""

from __future__ import annotations

import argparse

HELP = "MAGIK node (diffusion map) or global (motion model) predictions from detections, without linking"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detections", help="CSV or Parquet table with columns frame, y, x (px)")
    parser.add_argument("--task", choices=["diffusion", "motion"], default="diffusion",
                        help="diffusion: per-detection sqrt(2D) and D; motion: per-video motion-model fractions")
    parser.add_argument("--out", required=True, help="output table (CSV, or Parquet by suffix)")
    parser.add_argument("--model", default=None, help="exported model name (default magik_<task>)")
    parser.add_argument("--provider", default=None, choices=["tensorrt", "cuda", "cpu"],
                        help="ONNX Runtime execution provider (default: the first that works of tensorrt, cuda, cpu)")
    parser.add_argument("--per-detection", action="store_true",
                        help="motion: one row per detection with its motion-model probabilities")
    parser.add_argument("--scale", default="auto", metavar="auto|FACTOR",
                        help="diffusion: coordinates are multiplied by FACTOR before the model sees them (auto: "
                             "from the movie's steps, 1 unless its particles move faster than the training videos')")
    parser.add_argument("--symmetries", type=int, default=None, choices=[1, 2, 4, 8, 16],
                        help="average the per-detection outputs over this many mirrored / swapped (16: also time "
                             "reversed) copies of each block (default: 4 for diffusion, 1 for motion)")
    parser.add_argument("--stride", type=int, default=None, metavar="FRAMES",
                        help="frames between block starts; shorter than the block, blocks overlap and each "
                             "detection is a weighted mean over them (default: half a block for diffusion, "
                             "a whole block for motion)")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.io.tables import read_table, write_table
    from edgetrack.runtime.associate.magik import DEFAULT_MODELS, predict_global, predict_nodes
    from edgetrack.runtime.cli.progress import Progress
    from edgetrack.runtime.models.onnx import load_model

    detections = read_table(args.detections, ("frame", "y", "x"))
    name = args.model or DEFAULT_MODELS[args.task]
    start = time.perf_counter()
    predict = predict_nodes if args.task == "diffusion" or args.per_detection else predict_global
    with Progress(None, f"magik-predict {args.task}", unit="blocks", enabled=not args.quiet) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update()

        if predict is predict_nodes:
            scale = args.scale if args.scale == "auto" else _factor(args.scale)
            table = predict(detections, name, provider=args.provider, progress=advance, scale=scale,
                            symmetries=args.symmetries, stride=args.stride)
        else:
            table = predict(detections, name, provider=args.provider, progress=advance)
    elapsed = time.perf_counter() - start
    write_table(table, args.out)
    if not args.quiet:
        provider = load_model(name, provider=args.provider).provider
        scaled = f" (coordinates x {table.attrs['magik_scale']:.3g})" if "magik_scale" in table.attrs else ""
        print(f"{args.task}: {len(detections)} detections in {elapsed:.2f} s with {name} on {provider}{scaled} "
              f"-> {args.out}", file=sys.stderr)
    return 0


def _factor(text: str) -> float:
    from edgetrack.runtime.errors import ConfigError

    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--scale must be 'auto' or a number > 0, got {text!r}") from None
