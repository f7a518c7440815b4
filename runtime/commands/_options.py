"""Command-line options shared by the commands that track or link."""

from __future__ import annotations

import argparse


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """Linking options (px, frames), mapped onto :class:`~edgetrack.runtime.stream.TrackerConfig`."""
    g = parser.add_argument_group("linking")
    g.add_argument("--max-distance", type=float, default=6.0, metavar="PX",
                   help="largest displacement between linked detections, px (default 6)")
    g.add_argument("--max-gap", type=int, default=2, metavar="FRAMES",
                   help="links may span up to this many frames (1 = no gap closing; default 2)")
    g.add_argument("--window", type=int, default=3, metavar="FRAMES",
                   help="frames held before committing (latency window-1; default 3)")
    g.add_argument("--linker", default="lap",
                   help="linker: lap (default), greedy, flow (exact min-cost flow), ilp (CP-SAT), magik_post")
    g.add_argument("--max-children", type=int, default=1, choices=(1, 2),
                   help="2 allows divisions (linkers greedy, flow, ilp, magik_post; default 1)")
    g.add_argument("--gap-penalty", type=float, default=0.5,
                   help="score factor per skipped frame; set it near the missed-detection rate (default 0.5)")
    g.add_argument("--scorer", default="distance", help="edge scorer: distance (default) or magik")
    g.add_argument("--step-sigma", type=float, default=None, metavar="PX",
                   help="expected rms step per axis per frame, px (default max-distance/3)")


def tracker_options(args: argparse.Namespace) -> dict:
    return {
        "max_distance": args.max_distance,
        "max_gap": args.max_gap,
        "window": args.window,
        "linker": args.linker,
        "step_sigma": args.step_sigma,
        "max_children": args.max_children,
        "gap_penalty": args.gap_penalty,
        "scorer": args.scorer,
    }


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    """Spot detection options, mapped onto :class:`~edgetrack.runtime.detect.DetectConfig`."""
    g = parser.add_argument_group("detection")
    g.add_argument("--psf-sigma", type=float, default=1.5, metavar="PX", help="expected spot sigma, px (default 1.5)")
    g.add_argument("--threshold", type=float, default=None,
                   help="absolute threshold on the filtered image (default: from the estimated noise)")
    g.add_argument("--snr-threshold", type=float, default=None,
                   help="threshold in multiples of the estimated noise (default: the detector's)")
    g.add_argument("--invert", action="store_true", help="dark spots on a bright background")


def detect_options(args: argparse.Namespace) -> dict:
    options = {"psf_sigma": args.psf_sigma, "threshold": args.threshold}
    if args.snr_threshold is not None:
        options["snr_threshold"] = args.snr_threshold
    return options


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
