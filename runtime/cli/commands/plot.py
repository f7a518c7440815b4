"""``edgetrack plot TRACKS --movie MOVIE --out tracks.png``: tracks over a frame, motion maps, overlays."""

from __future__ import annotations

import argparse

HELP = "draw tracks over a movie frame (PNG/SVG/PDF), a map of a motion property, and a GIF/MP4 overlay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tracks", help="tracks CSV/Parquet (frame, y, x, track_id, ...)")
    parser.add_argument("--out", required=True, help="picture of the tracks (.png, .svg, .pdf)")
    parser.add_argument("--movie", default=None, help="the movie the tracks come from (drawn underneath; for tracks "
                        "with z, a (T, Z, Y, X) movie drawn as each stack's maximum projection: --color-by z)")
    parser.add_argument("--frame", default="first", help="movie frame underneath: first, last or an index (default first)")
    parser.add_argument("--color-by", default="track_id", metavar="COLUMN",
                        help="track_id (a colour per track, default) or a numeric column, e.g. alpha, K, state")
    parser.add_argument("--values", default=None, metavar="CSV",
                        help="per-point table to join on (track_id, frame), e.g. 'edgetrack analyze' frames.csv")
    parser.add_argument("--map", default=None, metavar="COLUMN", help="also draw the median of COLUMN per spatial bin")
    parser.add_argument("--map-out", default=None, metavar="FILE", help="picture of the map (default OUT_map_COLUMN.png)")
    parser.add_argument("--bin-px", type=float, default=16.0, help="map bin size, px (default 16)")
    parser.add_argument("--animate", default=None, metavar="FILE",
                        help="also write an overlay animation (.gif; .mp4 when imageio-ffmpeg is installed)")
    parser.add_argument("--fps", type=float, default=10.0, help="animation frame rate (default 10)")
    parser.add_argument("--tail", type=int, default=10, help="frames of each track drawn behind it (default 10)")
    parser.add_argument("--max-frames", type=int, default=100,
                        help="animate at most this many frames, evenly spaced over the movie (default 100)")
    parser.add_argument("--min-length", type=int, default=2, help="do not draw tracks shorter than this (default 2)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                        help="µm per px (default: from the movie's metadata; scale bar and µm units)")
    parser.add_argument("--frame-interval", type=float, default=None, metavar="S",
                        help="s per frame (default: from the movie's metadata)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of the pictures (default 150)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _frame_index(text: str, n_frames: int) -> int:
    from edgetrack.runtime.errors import InputError

    if text == "first":
        return 0
    if text == "last":
        return n_frames - 1
    try:
        index = int(text)
    except ValueError:
        raise InputError(f"--frame must be first, last or an integer, got {text!r}") from None
    if not -n_frames <= index < n_frames:
        raise InputError(f"--frame {index} is outside the movie's {n_frames} frames")
    return index % n_frames


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from edgetrack.runtime.errors import InputError
    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.io.tables import read_table
    from edgetrack.runtime.io.ome import movie_units
    from edgetrack.runtime.plot.tracks import mp4_available, overlay_frames, plot_tracks, plot_value_map, save_figure, write_animation

    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    tracks = read_table(args.tracks, ("frame", "y", "x", "track_id"))
    if args.values:
        values = read_table(args.values, ("track_id", "frame"))
        extra = [c for c in values.columns if c not in ("track_id", "frame")]
        tracks = tracks.drop(columns=[c for c in extra if c in tracks.columns]).merge(
            values[["track_id", "frame", *extra]], on=["track_id", "frame"], how="left")
    movie = None
    if args.movie and "z" in tracks.columns:  # 3-D tracks: drawn over the maximum projection of each z-stack
        from edgetrack.runtime.io.stacks import max_projection, open_stacks

        movie = max_projection(open_stacks(args.movie))
    elif args.movie:
        movie = open_movie(args.movie)
    units = movie_units(movie if movie is not None else None, args.pixel_size, args.frame_interval)
    image = None
    index = None
    if movie is not None:
        index = _frame_index(args.frame, len(movie))
        image = np.asarray(movie[index])
        shape = tuple(movie.frame_shape)
    else:
        shape = (int(np.ceil(tracks["y"].max() + 1)) if len(tracks) else 1,
                 int(np.ceil(tracks["x"].max() + 1)) if len(tracks) else 1)
    title = None
    if index is not None:
        n = tracks[tracks["frame"] >= 0].groupby("track_id").size()
        title = f"{int((n >= args.min_length).sum())} tracks over frame {index}"
    fig = plot_tracks(tracks, image, color_by=args.color_by, units=units, min_length=args.min_length,
                      title=title, shape=shape, dpi=args.dpi)
    save_figure(fig, args.out)
    say(f"tracks -> {args.out}" + (f" (pixel size {units.pixel_size_um:g} µm from {units.source})"
                                    if units.pixel_size_um else ""))
    if args.map:
        map_out = args.map_out or str(Path(args.out).with_name(f"{Path(args.out).stem}_map_{args.map}.png"))
        fig = plot_value_map(tracks, args.map, shape, bin_px=args.bin_px, image=image, units=units, dpi=args.dpi)
        save_figure(fig, map_out)
        say(f"map of {args.map} -> {map_out}")
    if args.animate:
        if movie is None:
            raise InputError("--animate needs --movie")
        if args.max_frames < 1 or args.tail < 0:
            raise InputError("--max-frames must be >= 1 and --tail >= 0")
        if Path(args.animate).suffix.lower() == ".mp4" and not mp4_available():
            say(f"skipping {args.animate}: MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                "use a .gif name for a GIF")
            return 0
        n = len(movie)
        frames = np.unique(np.linspace(0, n - 1, min(n, args.max_frames)).round().astype(int))
        write_animation(overlay_frames(movie, tracks, frames, color_by=args.color_by, tail=args.tail, units=units),
                        args.animate, fps=args.fps)
        say(f"overlay of {len(frames)} frames -> {args.animate}")
    return 0
