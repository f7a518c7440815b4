"""``edgetrack track MOVIE --out tracks.csv``: detect spots and link them, frame by frame."""

from __future__ import annotations

import argparse

from ._options import (add_detect_arguments, add_progress_arguments, add_tracker_arguments, detect_options,
                       tracker_options)

HELP = "track spots in a movie (multi-page TIFF, folder of TIFF/PNG frames, or .npy) and write tracks as CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("movie", help="multi-page TIFF, folder of TIFF/PNG frames, or .npy (T, H, W)")
    parser.add_argument("--out", required=True, help="output CSV of tracks: frame, y, x, track_id, features")
    add_detect_arguments(parser)
    add_tracker_arguments(parser)
    add_progress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from ..atomic import atomic_open
    from ..interrupt import check as check_interrupt
    from ..io import open_movie
    from ..progress import Progress
    from ..pipeline import track_frames
    from ..stream import Tracker
    from ..track_writer import UpdateWriter

    movie = open_movie(args.movie)
    tracker = Tracker(detect=detect_options(args), invert=args.invert, keep_results=False, **tracker_options(args))
    n_points = 0
    tracks: set = set()
    start = time.perf_counter()
    with atomic_open(args.out, "w", newline="") as handle, \
            Progress(len(movie), "tracking", enabled=not args.quiet) as bar:
        writer = UpdateWriter(handle)
        for update in track_frames(tracker, movie):
            writer.write([update])
            bar.update()
            check_interrupt()
        check_interrupt()  # before the output replaces the previous one
        writer.close()
        n_points = writer.n_points
        tracks = writer.n_tracks
    elapsed = time.perf_counter() - start
    if not args.quiet:
        print(f"tracked {len(movie)} frames in {elapsed:.2f} s ({len(movie) / elapsed:.1f} frames/s): "
              f"{n_points} points in {tracks} tracks -> {args.out}", file=sys.stderr)
    return 0
