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
    parser.add_argument("--vip", default=None, metavar="LABELS.tif",
                        help="a label image of one frame marking particles of interest (the challenge's VIP frame): "
                             "their tracks are matched (vip.csv) and the andi file lists them alone, by label")
    parser.add_argument("--vip-frame", type=int, default=None, metavar="N",
                        help="frame of the tracks the VIP image shows (default: the table's first frame)")
    parser.add_argument("--vip-distance", type=float, default=3.0, metavar="PX",
                        help="farthest a VIP's centroid may be from its track's point, px (default 3)")
    parser.add_argument("--z-scale", type=float, default=None, metavar="RATIO",
                        help="3-D tracks with z in voxels: the z voxel size over the pixel size (3 for 0.3 um steps and "
                             "0.1 um pixels); default: z is in the units of y and x")
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
    matches = None
    if args.vip is not None:
        from edgetrack.runtime.motion.vip import match_vips, read_vip_labels

        matches = match_vips(tracks, read_vip_labels(args.vip), frame=args.vip_frame, max_distance=args.vip_distance)
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
                            progress=advance, z_scale=args.z_scale)
    for bar in bars.values():
        bar.close()
    notes = list(result.notes)
    andi_lines = None
    if matches is not None:
        from edgetrack.runtime.motion.vip import vip_andi_rows

        n_frames = int(tracks["frame"].max() - tracks["frame"].min() + 1) if len(tracks) else 0
        andi_lines = vip_andi_rows(result, matches, n_frames)
        missing = matches.loc[matches["track_id"] < 0, "vip"].tolist()
        notes.append(f"VIPs: {len(matches) - len(missing)} of {len(matches)} matched to a track"
                     + (f"; no track within {args.vip_distance:g} px of VIP(s) {missing[:20]}"
                        f"{' ...' if len(missing) > 20 else ''} (their andi lines are filled)" if missing else ""))
    paths = write_analysis(result, args.out, andi=args.format == "andi", fov=args.fov, andi_lines=andi_lines)
    if matches is not None:
        paths.append(write_table(matches, Path(args.out) / "vip.csv"))
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
