"""``edgetrack link DETECTIONS.csv --out tracks.csv``: link a detection table into tracks."""

from __future__ import annotations

import argparse

from edgetrack.runtime.cli.options import add_progress_arguments, add_tracker_arguments, tracker_options

HELP = "link detections (CSV/Parquet with frame, y, x [+ features]) into tracks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detections", help="CSV or Parquet table with columns frame, y, x (+ numeric features)")
    parser.add_argument("--out", required=True, help="output table of tracks (CSV, or Parquet by suffix)")
    add_tracker_arguments(parser)
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.io.tables import read_table, write_table
    from edgetrack.runtime.stream.pipeline import link_detections

    detections = read_table(args.detections, ("frame", "y", "x"))
    start = time.perf_counter()
    tracks = link_detections(detections, **tracker_options(args))
    elapsed = time.perf_counter() - start
    write_table(tracks, args.out)
    if not args.quiet:
        n_tracks = tracks["track_id"].nunique() if len(tracks) else 0
        print(f"linked {len(detections)} detections in {elapsed:.2f} s: {n_tracks} tracks -> {args.out}",
              file=sys.stderr)
    return 0
