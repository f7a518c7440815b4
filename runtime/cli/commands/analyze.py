"""``edgetrack analyze TRACKS --out DIR``: per-frame alpha, K, state and change points of every track,
with segment and ensemble tables (and the 2nd AnDi Challenge files with ``--format andi``)."""

from __future__ import annotations

import argparse

HELP = "characterise motion: per-frame alpha, K, diffusive state, change points, segments, ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tracks", help="CSV or Parquet track table with columns track_id, frame, y, x (px)")
    parser.add_argument("--out", required=True, help="output folder (frames.csv, segments.csv, ensemble.csv)")
    parser.add_argument("--format", choices=("csv", "andi"), default="csv",
                        help="andi: also write the challenge files (andi/fov_N.txt, andi/ensemble_labels.txt)")
    parser.add_argument("--fov", type=int, default=0,
                        help="field-of-view number in the challenge file name (default 0)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                        help="um per px: K in the tables becomes um^2/...")
    parser.add_argument("--frame-interval", type=float, default=None, metavar="S",
                        help="seconds per frame: K in the tables becomes .../s^alpha")
    parser.add_argument("--cp-method", default=None,
                        help="change points: combined (default), network (fastest), binseg, window or pelt")
    parser.add_argument("--min-dwell", type=int, default=None, metavar="FRAMES",
                        help="shortest segment and state run, frames (default 4)")
    parser.add_argument("--max-states", type=int, default=4,
                        help="most states in the ensemble (BIC chooses; default 4)")
    parser.add_argument("--classifier", default=None, metavar="MODEL.onnx",
                        help="also classify every track with this exported classifier (needs the fingerprints)")
    parser.add_argument("--models", default=None, metavar="DIR", help="folder of exported models (default: installed)")
    parser.add_argument("--provider", default=None, help="ONNX Runtime provider: cuda, tensorrt or cpu (default: best)")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.cli.progress import Progress
    from pathlib import Path

    from edgetrack.runtime.motion.analyze import TRACK_COLUMNS, analyze_tracks, write_analysis
    from edgetrack.runtime.errors import ModelError
    from edgetrack.runtime.io.tables import read_table, write_table
    from edgetrack.runtime.motion.segments import SegmentConfig

    options = {}
    if args.cp_method is not None:
        options["method"] = args.cp_method
    if args.min_dwell is not None:
        options["min_dwell"] = args.min_dwell
    cfg = SegmentConfig.from_dict(options)
    tracks = read_table(args.tracks, TRACK_COLUMNS[1:])
    start = time.perf_counter()
    bars: dict[str, Progress] = {}

    def advance(stage: str, done: int, total: int) -> None:  # one bar per stage: network, then segments
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = Progress(total, f"analyze {stage}", unit="tracks", enabled=not args.quiet)
        bar.update(done - bar.done)

    result = analyze_tracks(tracks, config=cfg, max_states=args.max_states, folder=args.models,
                            provider=args.provider, pixel_size=args.pixel_size, frame_interval=args.frame_interval,
                            progress=advance)
    for bar in bars.values():
        bar.close()
    notes = list(result.notes)
    paths = write_analysis(result, args.out, andi=args.format == "andi", fov=args.fov)
    if args.classifier is not None:
        try:
            from edgetrack.runtime.motion.classifier import apply_classifier
            from edgetrack.runtime.motion.fingerprints import fingerprint_table
        except ImportError as exc:
            notes.append(f"classification left out: {exc}")
        else:
            try:
                features = fingerprint_table(tracks[[c for c in ("track_id", "frame", "y", "x", "z")
                                                     if c in tracks.columns]])
                labels = apply_classifier(args.classifier, features)
            except ModelError as exc:
                notes.append(f"classification left out: {exc}")
            else:
                paths.append(write_table(labels, Path(args.out) / "classes.csv"))
    elapsed = time.perf_counter() - start
    for note in notes:
        print(f"edgetrack analyze: {note}", file=sys.stderr)
    if not args.quiet:
        n_tracks = len(result.tracks)
        print(f"analysed {n_tracks} tracks ({len(result.segments)} segments, {len(result.ensemble)} ensemble states, "
              f"K in {result.K_unit}) in {elapsed:.2f} s -> {args.out}", file=sys.stderr)
    return 0
