"""``edgetrack doctor``: what this installation has and can do, and how to fix what is missing."""

from __future__ import annotations

import argparse

HELP = "check the installation: versions, ONNX Runtime providers per model, Numba cache, GPU, optional features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-models", action="store_true", help="skip opening and timing the shipped models")
    parser.add_argument("--provider", choices=("cuda", "tensorrt", "cpu"), default=None,
                        help="open the models with this provider only (default: the best that works)")


def run(args: argparse.Namespace) -> int:
    from edgetrack.runtime.info import show_info

    return show_info(models=not args.no_models, provider=args.provider)
