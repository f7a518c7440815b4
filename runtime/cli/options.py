"""Command-line options shared by the commands that track or link."""

from __future__ import annotations

import argparse
import dataclasses

from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.psf import AUTO, is_auto
from edgetrack.runtime.link.registry import linker_names
from edgetrack.runtime.associate.registry import scorer_names
from edgetrack.runtime.stream.config import TrackerConfig

SPOTS = {f.name: f.default for f in dataclasses.fields(TrackerConfig)}  # one source for every default
DETECT = {f.name: f.default for f in dataclasses.fields(DetectConfig)}


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """Linking options (px, frames), mapped onto :class:`~edgetrack.runtime.stream.config.TrackerConfig`."""
    g = parser.add_argument_group("linking")
    g.add_argument("--max-distance", type=float, default=SPOTS["max_distance"], metavar="PX",
                   help=f"largest displacement between linked detections, px (default {SPOTS['max_distance']:g})")
    g.add_argument("--max-gap", type=int, default=SPOTS["max_gap"], metavar="FRAMES",
                   help=f"links may span up to this many frames (1 = no gap closing; default {SPOTS['max_gap']})")
    g.add_argument("--window", type=int, default=SPOTS["window"], metavar="FRAMES",
                   help=f"frames held before committing (latency window-1; default {SPOTS['window']})")
    g.add_argument("--linker", default=SPOTS["linker"], choices=linker_names(),
                   help=f"linker (default {SPOTS['linker']}; see the README's table of linkers)")
    g.add_argument("--max-children", type=int, default=SPOTS["max_children"], choices=(1, 2),
                   help=f"2 allows divisions (linkers greedy, flow, ilp, magik_post; default {SPOTS['max_children']})")
    g.add_argument("--gap-penalty", type=float, default=SPOTS["gap_penalty"],
                   help=f"score factor per skipped frame; set it near the missed-detection rate (default {SPOTS['gap_penalty']})")
    g.add_argument("--scorer", default=SPOTS["scorer"], choices=scorer_names(),
                   help=f"edge scorer (default {SPOTS['scorer']}; transformer is for cells)")
    g.add_argument("--step-sigma", type=float, default=None, metavar="PX",
                   help="expected rms step per axis per frame, px (default max-distance/3)")
    g.add_argument("--motion", default=SPOTS["motion"], choices=("none", "adaptive"),
                   help="adaptive: score each link with its track's own step size and drift, learnt as it is "
                        "tracked (distance scorer; pair it with a larger --max-distance for fast particles; "
                        f"default {SPOTS['motion']})")


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
        "motion": args.motion,
    }


def add_detect_arguments(parser: argparse.ArgumentParser, psf_default: float | str | None = DETECT["psf_sigma"]) -> None:
    """Spot detection options, mapped onto :class:`~edgetrack.runtime.detect.config.DetectConfig`.

    ``psf_default=None`` leaves ``--psf-sigma`` unset when not given: the command chooses (``track`` measures
    2-D spots, ``auto``, and takes the fixed default in z-stacks).
    """
    g = parser.add_argument_group("detection")
    if psf_default is None:
        shown = f"auto for 2-D movies, {DETECT['psf_sigma']:g} px for z-stacks"
    else:
        shown = psf_default if isinstance(psf_default, str) else f"{psf_default:g}"
    g.add_argument("--psf-sigma", type=psf_sigma_value, default=psf_default, metavar="PX|auto",
                   help=f"expected spot sigma, px, or 'auto' to measure it on the first frames (default {shown})")
    g.add_argument("--threshold", type=float, default=None,
                   help="absolute threshold on the filtered image (default: from the estimated noise)")
    g.add_argument("--snr-threshold", type=float, default=None,
                   help="threshold in multiples of the estimated noise (default: the detector's)")
    g.add_argument("--invert", action="store_true", help="dark spots on a bright background")


def psf_sigma_value(text: str) -> float | str:
    """``--psf-sigma``: a number of px, or ``auto``."""
    if is_auto(text):
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a sigma in px or 'auto', got {text!r}") from None


def detect_options(args: argparse.Namespace) -> dict:
    options = {"psf_sigma": args.psf_sigma, "threshold": args.threshold}
    if args.snr_threshold is not None:
        options["snr_threshold"] = args.snr_threshold
    return options


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
