"""``edgetrack track MOVIE --out tracks.csv``: detect spots and link them, frame by frame.

``edgetrack track --masks MASKS [--images IMAGES] --format ctc|csv|napari --out OUT``: track the
objects of label masks (cells), with divisions, and write a Cell Tracking Challenge result folder,
a CSV of tracks or napari tracks.
"""

from __future__ import annotations

import argparse

from edgetrack.runtime.cells import defaults as cells
from edgetrack.runtime.cli.options import (SPOTS, add_detect_arguments, add_progress_arguments, add_tracker_arguments,
                                          detect_options, tracker_options)

HELP = ("track spots in a movie (multi-page TIFF, folder of TIFF/PNG frames, or .npy) and write tracks as CSV; "
        "or track cells in label masks (--masks) and write CTC, CSV or napari tracks")

# defaults that differ between the spot path and the --masks path (None in the parser = not given)
SPOT_DEFAULTS = {key: SPOTS[key] for key in ("max_distance", "window", "linker", "max_children")}
MASK_DEFAULTS = {"window": cells.WINDOW, "linker": cells.LINKER, "max_children": cells.MAX_CHILDREN}  # max_distance: from the data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("movie", nargs="?", help="multi-page TIFF, folder of TIFF/PNG frames, or .npy (T, H, W)")
    parser.add_argument("--out", required=True,
                        help="output: CSV of tracks (frame, y, x, track_id, features); with --format ctc a "
                             "result folder; with --format napari a CSV plus <stem>.graph.json")
    g = parser.add_argument_group("cells (label masks)")
    g.add_argument("--masks", metavar="MASKS",
                   help="label masks instead of a movie: a CTC folder (maskTTT.tif / man_trackTTT.tif), a folder "
                        "of 2-D TIFFs, a stacked TIFF or .npy (T, H, W); objects are tracked with divisions "
                        "(--max-children 1 turns them off); defaults there: --linker greedy, --window 4, "
                        "--max-distance one median cell diameter of the first frame with objects")
    g.add_argument("--images", metavar="IMAGES", help="raw images matching --masks (for mean_intensity)")
    g.add_argument("--format", choices=("csv", "ctc", "napari"), default="csv",
                   help="output format: csv (default), ctc (a Cell Tracking Challenge result folder: maskTTT.tif "
                        "+ res_track.txt), napari (tracks CSV + division graph JSON); ctc and napari need --masks")
    g = parser.add_argument_group("movie planes (multi-channel or z-stack files are refused unless chosen)")
    g.add_argument("--channel", type=int, default=None, metavar="C", help="the channel to track (0-based)")
    g.add_argument("--z", type=int, default=None, metavar="Z", help="the z plane to track (0-based)")
    add_detect_arguments(parser)
    add_tracker_arguments(parser)
    parser.set_defaults(**{key: None for key in SPOT_DEFAULTS})
    add_progress_arguments(parser)


def _with_defaults(args: argparse.Namespace, defaults: dict) -> dict:
    options = tracker_options(args)
    for key, value in defaults.items():
        if options.get(key) is None:
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    from edgetrack.runtime.errors import ConfigError

    if args.masks is not None:
        if args.movie is not None:
            raise ConfigError("give either a MOVIE (spots) or --masks (cells), not both")
        return _run_masks(args)
    if args.movie is None:
        raise ConfigError("give a MOVIE to track spots, or --masks MASKS to track cells")
    if args.images is not None:
        raise ConfigError("--images goes with --masks")
    if args.format != "csv":
        raise ConfigError(f"--format {args.format} needs --masks (the spot path writes CSV)")
    return _run_spots(args)


def _run_spots(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.io.atomic import atomic_open
    from edgetrack.runtime.cli.interrupt import check as check_interrupt
    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.cli.progress import Progress
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker
    from edgetrack.runtime.stream.writer import UpdateWriter

    movie = open_movie(args.movie, channel=args.channel, z=args.z)
    tracker = Tracker(detect=detect_options(args), invert=args.invert, keep_results=False,
                      **_with_defaults(args, SPOT_DEFAULTS))
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


def _run_masks(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.io.masks import open_images, open_masks, write_ctc_result
    from edgetrack.runtime.cells.tracker import CellTracker
    from edgetrack.runtime.errors import InputError
    from edgetrack.runtime.cli.interrupt import check as check_interrupt
    from edgetrack.runtime.io.tables import write_table
    from edgetrack.runtime.io.napari import write_napari
    from edgetrack.runtime.cli.progress import Progress

    masks = open_masks(args.masks)
    images = open_images(args.images) if args.images is not None else None
    if images is not None and len(images) != len(masks):
        raise InputError(f"{args.images}: {len(images)} frames, but {args.masks} has {len(masks)}")
    options = _with_defaults(args, MASK_DEFAULTS)
    divisions = options.pop("max_children") == 2
    tracker = CellTracker(divisions=divisions, **options)
    start = time.perf_counter()
    with Progress(len(masks), "tracking", enabled=not args.quiet) as bar:
        for t in range(len(masks)):
            tracker.push(masks[t], None if images is None else images[t])
            bar.update()
            check_interrupt()
    tracks = tracker.finish()
    check_interrupt()  # before the output replaces the previous one
    if args.format == "ctc":
        write_ctc_result(tracks, masks, args.out)
    elif args.format == "napari":
        write_napari(tracks, args.out)
    else:
        write_table(tracks, args.out)
    elapsed = time.perf_counter() - start
    if not args.quiet:
        n_div = int((tracks["parent_track_id"] >= 0).sum())
        print(f"tracked {len(masks)} frames in {elapsed:.2f} s ({1e3 * elapsed / max(len(masks), 1):.1f} ms/frame): "
              f"{len(tracks)} objects in {tracks['track_id'].nunique()} tracks, {n_div} daughter tracks "
              f"(max_distance {tracker.max_distance or 0:.1f} px) -> {args.out}", file=sys.stderr)
    return 0
