"""``edgetrack export TRACKS --format napari|geff|trackmate --out OUT``: tracks in another tool's layout."""

from __future__ import annotations

import argparse

HELP = ("export tracks for another tool: napari (track_id, t, y, x CSV plus the division graph as JSON), geff "
        "(the tracking graph format of motile, ultrack, traccuracy) or trackmate (XML for Fiji's TrackMate)")

FORMATS = ("napari", "geff", "trackmate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tracks", help="tracks CSV/Parquet (frame, y, x, track_id[, parent_track_id], ...)")
    parser.add_argument("--format", choices=FORMATS, default="napari", help="target layout (default napari)")
    parser.add_argument("--out", required=True,
                        help="output: napari a CSV (the division graph goes beside it as <stem>.graph.json); "
                             "geff a zarr folder (tracks.geff); trackmate an XML file")
    g = parser.add_argument_group("units (geff, trackmate; the data stay in px and frames for geff)")
    g.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="size of one pixel in --space-unit (default unit: micrometer for geff, µm for trackmate)")
    g.add_argument("--frame-interval", type=float, default=None, metavar="S",
                   help="time between frames in --time-unit (default unit: second for geff, sec for trackmate)")
    g.add_argument("--space-unit", default=None, help="unit of --pixel-size")
    g.add_argument("--time-unit", default=None, help="unit of --frame-interval")
    g.add_argument("--image", default=None, help="trackmate: the movie the tracks belong to (TrackMate opens it)")
    parser.add_argument("--quiet", action="store_true", help="no summary line")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgetrack.runtime.errors import ConfigError
    from edgetrack.runtime.io.tables import read_table

    tracks = read_table(args.tracks, ("frame", "y", "x", "track_id"))
    if args.format == "napari":
        given = [f"--{k.replace('_', '-')}" for k in ("pixel_size", "frame_interval", "space_unit", "time_unit", "image")
                 if getattr(args, k) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: not used by --format napari (geff and trackmate take units)")
        return _napari(tracks, args)
    summary = export_tracks(tracks, args.out, args.format, pixel_size=args.pixel_size,
                            frame_interval=args.frame_interval, space_unit=args.space_unit, time_unit=args.time_unit,
                            image=args.image)
    if not args.quiet:
        print(summary, file=sys.stderr)
    return 0


def export_tracks(tracks, out, fmt: str, *, pixel_size=None, frame_interval=None, space_unit=None, time_unit=None,
                  image=None) -> str:
    """Write ``tracks`` as geff or TrackMate XML to ``out``; returns a one-line summary (used by track too)."""
    import numpy as np

    units = {"pixel_size": pixel_size, "frame_interval": frame_interval}
    if fmt == "geff":
        from edgetrack.runtime.errors import ConfigError
        from edgetrack.runtime.io.geff import write_geff

        if image is not None:
            raise ConfigError("--image goes with --format trackmate")
        units.update({k: v for k, v in (("space_unit", space_unit), ("time_unit", time_unit)) if v is not None})
        path = write_geff(tracks, out, **units)
    else:
        from edgetrack.runtime.io.trackmate import write_trackmate

        path = write_trackmate(tracks, out, space_unit=space_unit, time_unit=time_unit, image=image, **units)
    n_tracks = int(np.unique(tracks["track_id"]).size) if len(tracks) else 0
    divisions = int((tracks.groupby("track_id")["parent_track_id"].max() >= 0).sum()) \
        if "parent_track_id" in tracks.columns and len(tracks) else 0
    return f"wrote {len(tracks)} points in {n_tracks} tracks ({divisions} daughter tracks) -> {path} ({fmt})"


def _napari(tracks, args: argparse.Namespace) -> int:
    import sys

    from edgetrack.runtime.io.napari import to_napari, write_napari

    out, graph_path = write_napari(tracks, args.out)
    if not args.quiet:
        data, graph = to_napari(tracks)
        n_tracks = len(set(data[:, 0].astype(int))) if len(data) else 0
        print(f"wrote {len(data)} points in {n_tracks} tracks -> {out}; {len(graph)} division link(s) -> "
              f"{graph_path}", file=sys.stderr)
    return 0
