"""``edgetrack track MOVIE --out tracks.csv``: detect spots and link them, frame by frame.

``edgetrack track --masks MASKS [--images IMAGES] --format ctc|csv|napari|geff --out OUT``: track the
objects of label masks (cells), with divisions, and write a Cell Tracking Challenge result folder,
a CSV of tracks, napari tracks or a geff graph (``--format geff`` works on the spot path too).
With ``--ndim 3 [--voxel-size Z Y X]`` the masks are (T, Z, Y, X) label stacks (CTC 3-D results, csv).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgetrack.runtime.cells import defaults as cells
from edgetrack.runtime.cli.options import (DETECT, SPOTS, add_detect_arguments, add_progress_arguments,
                                          add_tracker_arguments, detect_options, tracker_options)
from edgetrack.runtime.detect.psf import AUTO, KEEP_WITHIN, is_auto

HELP = ("track spots in a movie (multi-page TIFF, folder of TIFF/PNG frames, or .npy) and write tracks as CSV; "
        "or track cells in label masks (--masks) and write CTC, CSV or napari tracks")

# defaults that differ between the spot path and the --masks path (None in the parser = not given)
SPOT_DEFAULTS = {key: SPOTS[key] for key in ("max_distance", "window", "linker", "max_children")}
MASK_DEFAULTS = {"window": cells.WINDOW, "linker": cells.LINKER, "max_children": cells.MAX_CHILDREN}  # max_distance: from the data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("movie", nargs="?", help="multi-page TIFF, folder of TIFF/PNG frames, or .npy (T, H, W)")
    parser.add_argument("--out", required=True,
                        help="output: CSV of tracks (frame, y, x, track_id, features); with --format ctc a "
                             "result folder; with --format napari a CSV plus <stem>.graph.json; with --format "
                             "geff a geff zarr folder")
    g = parser.add_argument_group("cells (label masks)")
    g.add_argument("--masks", metavar="MASKS",
                   help="label masks instead of a movie: a CTC folder (maskTTT.tif / man_trackTTT.tif), a folder "
                        "of 2-D TIFFs, a stacked TIFF or .npy (T, H, W); objects are tracked with divisions "
                        "(--max-children 1 turns them off); defaults there: --linker greedy, --window 4, "
                        "--max-distance one median cell diameter of the first frame with objects")
    g.add_argument("--images", metavar="IMAGES", help="raw images matching --masks (for mean_intensity)")
    g.add_argument("--foreground", metavar="MAPS",
                   help="foreground maps matching --masks (probabilities, or intensities): each frame's objects are "
                        "chosen among the masks' labels and the maps' coarser components (fragments joined, missed "
                        "cells added) to fit the frame before (cells/hypotheses.py)")
    g.add_argument("--foreground-sigma", type=float, default=0.0, metavar="PX",
                   help="Gaussian smoothing of --foreground first, px (2 for raw fluorescence frames; default 0)")
    g.add_argument("--contours", metavar="MAPS",
                   help="boundary maps matching --masks (high between cells: a boundary probability, or any map "
                        "scaled by its percentiles; needs --foreground): objects are also cut where a boundary "
                        "stronger than --contour-level runs through them, so merged cells come apart (cells/contours.py)")
    g.add_argument("--contour-level", type=float, default=0.5, metavar="X",
                   help="boundary strength in (0, 1) that separates two objects (default 0.5)")
    g.add_argument("--fill-gaps", action=argparse.BooleanOptionalAction, default=None,
                   help="give an object missing inside a track (a gap the tracker bridged) a mask in the missing "
                        "frames: its neighbour's mask moved along the track, rows marked filled=True "
                        "(default: on for --format ctc, off otherwise)")
    g.add_argument("--format", choices=("csv", "ctc", "napari", "geff"), default="csv",
                   help="output format: csv (default), ctc (a Cell Tracking Challenge result folder: maskTTT.tif "
                        "+ res_track.txt), napari (tracks CSV + division graph JSON), geff (a tracking graph, "
                        "needs edgetrack[geff]; on the spot path the CSV streams to OUT.csv first); ctc and "
                        "napari need --masks")
    g = parser.add_argument_group("movie planes (multi-channel or z-stack files are refused unless chosen)")
    g.add_argument("--channel", type=int, default=None, metavar="C", help="the channel to track (0-based)")
    g.add_argument("--z", type=int, default=None, metavar="Z", help="the z plane to track (0-based)")
    g.add_argument("--scene", default=None, metavar="S",
                   help="the scene (stage position, well) of a vendor file (.nd2, .czi, .lif): its 0-based index or "
                        "its name; a file of several scenes is refused without it")
    parser.add_argument("--stitch", action="store_true",
                        help="spots: afterwards, join track fragments whose jump fits their own motion (a fast "
                             "particle's step beyond --max-distance, or a hole longer than --max-gap, up to 3 frames); "
                             "helps sparse, fast or blinking particles, can cost a little in crowded fields")
    g = parser.add_argument_group("3-D: z-stacks over time (T, Z, Y, X)")
    g.add_argument("--ndim", type=int, choices=(2, 3), default=2,
                   help="3: track spots in 3-D in a TIFF / OME-TIFF with a Z axis or a (T, Z, Y, X) .npy; the CSV "
                        "has frame, z, y, x, track_id (z in voxels; z_um, y_um, x_um when the voxel size is known); "
                        "with --masks: cells in (T, Z, Y, X) label stacks (--format csv or ctc)")
    g.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="voxel size in um (default: from the file's metadata, else isotropic); --max-distance stays "
                        "in (y, x) px, a z step counting Z / X px")
    g.add_argument("--psf-sigma-z", type=float, default=None, metavar="VOXELS",
                   help="expected spot sigma along z, in z voxels (default: the 3-D detector's 1.3)")
    g = parser.add_argument_group("stopping and resuming (spots)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="FRAMES",
                   help="save the tracker's state to OUT.checkpoint.npz every FRAMES frames (a killed run can "
                        "then --resume); a run stopped by SIGTERM, SIGHUP or an unreadable frame always saves "
                        "one, and writes what it committed to OUT")
    g.add_argument("--resume", action="store_true",
                   help="continue the run stopped with OUT.checkpoint.npz; the result is identical to an "
                        "uninterrupted run's")
    add_detect_arguments(parser, psf_default=None)  # 2-D: measured (auto); z-stacks: the fixed default
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

    if args.format == "geff":  # before any tracking: the output needs the geff package
        from edgetrack.runtime.io.geff import require_geff

        require_geff()
    if args.masks is not None:
        if args.movie is not None:
            raise ConfigError("give either a MOVIE (spots) or --masks (cells), not both")
        return _run_masks(args)
    if args.movie is None:
        raise ConfigError("give a MOVIE to track spots, or --masks MASKS to track cells")
    if args.images is not None:
        raise ConfigError("--images goes with --masks")
    if args.format not in ("csv", "geff"):
        raise ConfigError(f"--format {args.format} needs --masks (the spot path writes CSV or geff)")
    if args.ndim == 3:
        if args.stitch:
            raise ConfigError("--stitch is for 2-D spots (not --ndim 3)")
        return _run_stacks(args)
    if args.voxel_size is not None or args.psf_sigma_z is not None:
        raise ConfigError("--voxel-size and --psf-sigma-z go with --ndim 3")
    return _run_spots(args)


def _run_stacks(args: argparse.Namespace) -> int:
    """``edgetrack track --ndim 3``: spots in z-stacks; the CSV is written when the movie is done."""
    import sys
    import time

    from edgetrack.runtime.api import volume_columns
    from edgetrack.runtime.cli.interrupt import check as check_interrupt
    from edgetrack.runtime.cli.progress import Progress
    from edgetrack.runtime.errors import ConfigError
    from edgetrack.runtime.io.stacks import open_stacks
    from edgetrack.runtime.io.tables import write_table
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    for given, name in ((args.z, "--z"), (args.scene, "--scene"), (args.checkpoint_every, "--checkpoint-every")):
        if given is not None:
            raise ConfigError(f"{name} does not go with --ndim 3")
    if args.resume:
        raise ConfigError("--resume does not go with --ndim 3 (3-D runs keep no checkpoint)")
    if args.psf_sigma is None:  # not given: z-stacks take the fixed lateral default
        args.psf_sigma = DETECT["psf_sigma"]
    elif is_auto(args.psf_sigma):
        raise ConfigError("--psf-sigma auto measures 2-D spots; give the lateral sigma of z-stacks in px")
    stacks = open_stacks(args.movie, channel=args.channel)
    voxel = tuple(args.voxel_size) if args.voxel_size is not None else stacks.voxel_size_um
    if voxel is not None and (len(voxel) != 3 or not all(v > 0 for v in voxel) or voxel[1] != voxel[2]):
        raise ConfigError(f"--voxel-size must be three sizes > 0 in um with Y = X (square pixels), got {voxel}")
    z_scale = voxel[0] / voxel[2] if voxel is not None else 1.0
    detect = {"psf_sigma": (args.psf_sigma_z if args.psf_sigma_z is not None else 1.3, args.psf_sigma, args.psf_sigma)}
    for key, value in detect_options(args).items():
        if key != "psf_sigma" and value is not None:
            detect[key] = value
    tracker = Tracker(ndim=3, z_scale=z_scale, detect=detect, invert=args.invert,
                      **_with_defaults(args, SPOT_DEFAULTS))
    start = time.perf_counter()
    with Progress(len(stacks), "tracking z-stacks", enabled=not args.quiet) as bar:
        def between() -> bool:
            bar.update()
            check_interrupt()
            return False

        for _ in track_frames(tracker, stacks, between=between):
            pass
    tracks = volume_columns(tracker.finish(), voxel)
    check_interrupt()  # before the output replaces the previous one
    if args.format == "geff":
        from edgetrack.runtime.io.geff import write_geff

        write_geff(tracks, args.out)
    else:
        write_table(tracks, args.out)
    if not args.quiet:
        elapsed = time.perf_counter() - start
        where = (f"voxel {voxel[0]:g} x {voxel[1]:g} x {voxel[2]:g} um" if voxel is not None
                 else "voxel size unknown: isotropic voxels assumed")
        print(f"tracked {len(stacks)} stacks of {'x'.join(map(str, stacks.stack_shape))} in {elapsed:.2f} s "
              f"({1e3 * elapsed / max(len(stacks), 1):.1f} ms/stack): {len(tracks)} points in "
              f"{tracks['track_id'].nunique() if len(tracks) else 0} tracks ({where}) -> {args.out}", file=sys.stderr)
    return 0


def checkpoint_path(out: str) -> Path:
    """Where ``edgetrack track --out OUT`` keeps its checkpoint: ``OUT.checkpoint.npz``."""
    return Path(f"{out}.checkpoint.npz")


def _run_spots(args: argparse.Namespace) -> int:
    import sys
    import time

    from edgetrack.runtime.cli.interrupt import check as check_interrupt
    from edgetrack.runtime.cli.interrupt import deferring_termination, signal_name, terminated
    from edgetrack.runtime.cli.progress import Progress
    from edgetrack.runtime.errors import ConfigError, FileReadError
    from edgetrack.runtime.io.atomic import atomic_open
    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.stream.checkpoint import save_checkpoint
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker
    from edgetrack.runtime.stream.writer import UpdateWriter

    geff_out = None
    if args.format == "geff":  # track to OUT.csv as usual (checkpoints, --resume), then convert
        geff_out, args.out = args.out, f"{args.out}.csv"
    every = args.checkpoint_every
    if every is not None and every < 1:
        raise ConfigError(f"--checkpoint-every must be at least 1 frame, got {every}")
    if args.psf_sigma is None:  # not given: measure the spot width on the first frames
        args.psf_sigma = AUTO
    movie = open_movie(args.movie, channel=args.channel, z=args.z, scene=args.scene)
    tracker = Tracker(detect=detect_options(args), invert=args.invert, keep_results=False,
                      **_with_defaults(args, SPOT_DEFAULTS))
    ckpt = checkpoint_path(args.out)
    prefix, resumed, leftover = b"", {"n_points": 0, "max_track": -1}, None
    if args.resume:
        tracker, prefix, resumed, leftover = _resume(args, ckpt, tracker, movie)
    first = tracker.frames_pushed
    movie_meta = {"source": str(args.movie), "n_frames": len(movie), "frame_shape": list(movie.frame_shape)}
    stop: dict = {}
    start = time.perf_counter()
    with atomic_open(args.out, "w", newline="", encoding="utf-8") as handle, \
            Progress(len(movie), "tracking", enabled=not args.quiet) as bar, deferring_termination():
        writer = UpdateWriter(handle)
        writer.resume_from(prefix, resumed["n_points"], resumed["max_track"])
        bar.update(first)

        def between() -> bool:  # after each frame's push: a consistent point
            bar.update()
            check_interrupt()
            if every is not None and tracker.frames_pushed % every == 0:
                position = writer.position()
                _fsync(handle)
                save_checkpoint(tracker, ckpt, {**position, "movie": movie_meta, "partial": handle.name})
            signum = terminated()
            if signum is not None:
                stop["signal"] = signum
                return True
            return False

        frames = (movie[i] for i in range(first, len(movie)))
        try:
            for update in track_frames(tracker, frames, flush=False, between=between):
                writer.write([update])
        except FileReadError as exc:  # a truncated or unreadable frame: keep what was committed
            stop["error"] = exc
        if not stop and terminated() is not None:
            stop["signal"] = terminated()
        if not stop:
            for update in tracker.flush():
                writer.write([update])
            check_interrupt()  # before the output replaces the previous one
        position = writer.position()
        writer.close()
        n_points, tracks = writer.n_points, writer.n_tracks
    if stop:
        save_checkpoint(tracker, ckpt, {**position, "movie": movie_meta, "partial": None})
        where = (f"stopped before frame {tracker.frames_pushed} of {len(movie)}: frames 0..{tracker.frames_committed - 1} "
                 f"committed ({n_points} points in {tracks} tracks) written to {args.out}, the state to {ckpt}; "
                 "rerun with --resume to continue")
        if "error" in stop:
            raise FileReadError(f"{stop['error']}; {where} once the movie is readable")
        print(f"edgetrack track: {signal_name(stop['signal'])}: {where}", file=sys.stderr)
        return 128 + int(stop["signal"])
    for stale in (ckpt, leftover):
        if stale is not None:
            stale.unlink(missing_ok=True)
    n_joins = 0
    if args.stitch:  # the whole table is final: join fragments, then replace the CSV in one step
        from edgetrack.runtime.io.tables import read_table, write_table
        from edgetrack.runtime.stream.stitch import stitch_tracks

        options = _with_defaults(args, SPOT_DEFAULTS)
        table = read_table(args.out, ("frame", "y", "x", "track_id"))
        stitched = stitch_tracks(table, tracker_max_distance=options["max_distance"],
                                 tracker_max_gap=options.get("max_gap"))
        n_joins = table["track_id"].nunique() - stitched["track_id"].nunique()
        tracks = stitched["track_id"].nunique()
        write_table(stitched.drop(columns="stitched"), args.out)
    if geff_out is not None:
        from edgetrack.runtime.io.geff import write_geff
        from edgetrack.runtime.io.tables import read_table

        write_geff(read_table(args.out, ("frame", "y", "x", "track_id")), geff_out)
        Path(args.out).unlink()
        args.out = geff_out
    elapsed = time.perf_counter() - start
    if not args.quiet:
        done = len(movie) - first
        print(f"tracked {done} frames in {elapsed:.2f} s ({done / max(elapsed, 1e-9):.1f} frames/s)"
              f"{f' (resumed at frame {first})' if args.resume else ''}: "
              f"{n_points} points in {tracks} tracks{f' ({n_joins} fragments joined)' if args.stitch else ''} "
              f"-> {args.out}", file=sys.stderr)
        if tracker.psf_estimate is not None:
            est = tracker.psf_estimate
            used = tracker.detect_config.psf_sigma
            kept = (f"; detected with the default {used:g} px (within {KEEP_WITHIN:.0%} of it)"
                    if abs(used - est.sigma) > 1e-3 else "")
            print(f"spot sigma measured (--psf-sigma auto): {est.sigma:.3f} px on {est.n_spots} isolated spots "
                  f"(interquartile range {est.spread:.3f} px){kept}", file=sys.stderr)
    return 0


def _fsync(handle) -> None:
    import os

    try:
        os.fsync(handle.fileno())
    except (OSError, AttributeError, ValueError):
        pass  # not a real file: nothing more durable to do


def _resume(args: argparse.Namespace, ckpt: Path, fresh, movie):
    """The checkpointed tracker, the output bytes it had written, its counters, and a leftover partial file."""
    import hashlib

    from edgetrack.runtime.errors import ConfigError, InputError
    from edgetrack.runtime.stream.checkpoint import load_checkpoint, read_checkpoint_meta

    if not ckpt.is_file():
        raise InputError(f"--resume: no checkpoint {ckpt} (a run stopped by SIGTERM, SIGHUP or an unreadable frame "
                         "writes one, and --checkpoint-every N saves one every N frames)")
    meta = read_checkpoint_meta(ckpt)
    tracker = load_checkpoint(ckpt)
    now = {**fresh.config.to_dict(), **{f"detect.{k}": v for k, v in fresh.detect_config.to_dict().items()}}
    then = {**tracker.config.to_dict(), **{f"detect.{k}": v for k, v in tracker.detect_config.to_dict().items()}}
    if fresh.psf_tries:  # --psf-sigma auto: the stopped run's measured (or still pending) sigma stands
        now.pop("detect.psf_sigma")
    changed = [f"{k} {then.get(k)!r} (checkpoint) vs {now.get(k)!r} (now)" for k in sorted(now) if now[k] != then.get(k)]
    if changed:
        raise ConfigError(f"--resume: the options differ from the stopped run's: {'; '.join(changed)}")
    try:
        size, digest = int(meta["bytes"]), str(meta["sha256"])
        counters = {"n_points": int(meta["n_points"]), "max_track": int(meta["max_track"])}
        shape = [int(v) for v in meta["movie"]["frame_shape"]]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{ckpt}: not a checkpoint of edgetrack track (no output position)") from None
    if shape != list(movie.frame_shape):
        raise InputError(f"--resume: {args.movie} has frames of shape {tuple(movie.frame_shape)}, the stopped run's "
                         f"had {tuple(shape)}")
    if len(movie) < tracker.frames_pushed:
        raise InputError(f"--resume: {args.movie} has {len(movie)} frames, the stopped run had already read "
                         f"{tracker.frames_pushed}")
    candidates = [Path(args.out)] + ([Path(meta["partial"])] if meta.get("partial") else [])
    for candidate in candidates:  # the output of a stopped run, or the partial file of a killed one
        try:
            with open(candidate, "rb") as fh:
                prefix = fh.read(size)
        except OSError:
            continue
        if len(prefix) == size and hashlib.sha256(prefix).hexdigest() == digest:
            return tracker, prefix, counters, (candidate if candidate != Path(args.out) else None)
    raise InputError(f"--resume: {args.out} does not start with the {size} bytes the checkpoint {ckpt} expects "
                     "(changed, or written by another run); run without --resume to start again")


def _run_masks(args: argparse.Namespace) -> int:
    import sys
    import time

    import numpy as np

    from edgetrack.runtime.io.masks import open_images, open_masks, write_ctc_result
    from edgetrack.runtime.cells.tracker import CellTracker
    from edgetrack.runtime.errors import InputError
    from edgetrack.runtime.cli.interrupt import check as check_interrupt
    from edgetrack.runtime.io.tables import write_table
    from edgetrack.runtime.io.napari import write_napari
    from edgetrack.runtime.cli.progress import Progress

    if args.ndim == 3:
        masks, images, volume = _open_masks_3d(args)
    else:
        masks = open_masks(args.masks)
        images = open_images(args.images) if args.images is not None else None
        volume = {}
    if images is not None and len(images) != len(masks):
        raise InputError(f"{args.images}: {len(images)} frames, but {args.masks} has {len(masks)}")
    foreground = None
    if args.foreground is not None:
        from edgetrack.runtime.errors import ConfigError

        if args.ndim == 3:
            raise ConfigError("--foreground is for 2-D label images (not --ndim 3)")
        foreground = open_images(args.foreground)
        if len(foreground) != len(masks):
            raise InputError(f"{args.foreground}: {len(foreground)} frames, but {args.masks} has {len(masks)}")
    contours = None
    if args.contours is not None:
        from edgetrack.runtime.errors import ConfigError

        if foreground is None:
            raise ConfigError("--contours goes with --foreground (the maps the objects are chosen from)")
        contours = open_images(args.contours)
        if len(contours) != len(masks):
            raise InputError(f"{args.contours}: {len(contours)} frames, but {args.masks} has {len(masks)}")
    options = _with_defaults(args, MASK_DEFAULTS)
    divisions = options.pop("max_children") == 2
    hypotheses = ({"sigma": args.foreground_sigma, "contour_level": args.contour_level} if foreground is not None
                  else None)
    tracker = CellTracker(divisions=divisions, **volume, hypotheses=hypotheses, **options)
    chosen = []  # the objects tracked, where they were chosen with --foreground (the CTC output draws them)
    start = time.perf_counter()
    with Progress(len(masks), "tracking", enabled=not args.quiet) as bar:
        for t in range(len(masks)):
            if foreground is None:
                tracker.push(masks[t], None if images is None else images[t])
            else:
                tracker.push(masks[t], None if images is None else images[t], foreground=foreground[t],
                             contours=None if contours is None else contours[t])
                chosen.append(tracker.chosen_labels.astype(np.uint16 if tracker.chosen_labels.max() < 65536
                                                           else np.int32))
            bar.update()
            check_interrupt()
    tracks = tracker.finish()
    if foreground is not None:
        masks = np.stack(chosen) if chosen else masks
    if len(tracker.merged_labels):  # fragments of one cell joined: their pixels carry the kept label
        from edgetrack.runtime.cells.fragments import relabel_masks

        masks = relabel_masks(masks, tracker.merged_labels)
    fill = args.format == "ctc" and args.ndim == 2 if args.fill_gaps is None else args.fill_gaps
    if fill:
        from edgetrack.runtime.cells.gaps import fill_gaps

        tracks, masks = fill_gaps(tracks, masks)
    check_interrupt()  # before the output replaces the previous one
    if args.format == "ctc":
        write_ctc_result(tracks, masks, args.out)
    elif args.format == "napari":
        write_napari(tracks, args.out)
    elif args.format == "geff":
        from edgetrack.runtime.io.geff import write_geff

        write_geff(tracks, args.out)
    else:
        write_table(tracks, args.out)
    elapsed = time.perf_counter() - start
    if not args.quiet:
        n_div = int((tracks["parent_track_id"] >= 0).sum())
        print(f"tracked {len(masks)} frames in {elapsed:.2f} s ({1e3 * elapsed / max(len(masks), 1):.1f} ms/frame): "
              f"{len(tracks)} objects in {tracks['track_id'].nunique()} tracks, {n_div} daughter tracks"
              f"{', %d filled in gaps' % int(tracks['filled'].sum()) if fill else ''} "
              f"(max_distance {tracker.max_distance or 0:.1f} px) -> {args.out}", file=sys.stderr)
    return 0


def _open_masks_3d(args: argparse.Namespace):
    """``--masks --ndim 3``: (label stacks, image stacks or None, the CellTracker's ndim and voxel_size)."""
    from edgetrack.runtime.errors import ConfigError
    from edgetrack.runtime.io.masks import open_masks_3d, open_volumes
    from edgetrack.runtime.io.stacks import open_stacks

    if args.format not in ("csv", "ctc"):
        raise ConfigError(f"--format {args.format} does not go with --masks --ndim 3 (use csv or ctc)")
    if args.fill_gaps:
        raise ConfigError("--fill-gaps is 2-D (it moves masks in y, x) and does not go with --ndim 3")
    masks = open_masks_3d(args.masks)
    voxel = args.voxel_size
    if voxel is None and Path(args.masks).is_file():
        voxel = open_stacks(args.masks).voxel_size_um
    images = open_volumes(args.images) if args.images is not None else None
    return masks, images, {"ndim": 3, "voxel_size": None if voxel is None else tuple(voxel)}
