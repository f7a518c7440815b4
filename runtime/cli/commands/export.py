"""``edgetrack export TRACKS --format napari --out FILE``: tracks in another tool's layout."""

from __future__ import annotations

import argparse

HELP = "export tracks for another tool (napari: track_id, t, y, x CSV plus the division graph as JSON)"

FORMATS = ("napari",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tracks", help="tracks CSV/Parquet (frame, y, x, track_id[, parent_track_id], ...)")
    parser.add_argument("--format", choices=FORMATS, default="napari", help="target layout (default napari)")
    parser.add_argument("--out", required=True,
                        help="output CSV; the division graph goes beside it as <stem>.graph.json")
    parser.add_argument("--quiet", action="store_true", help="no summary line")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgetrack.runtime.io.tables import read_table
    from edgetrack.runtime.io.napari import to_napari, write_napari

    tracks = read_table(args.tracks, ("frame", "y", "x", "track_id"))
    out, graph_path = write_napari(tracks, args.out)
    if not args.quiet:
        data, graph = to_napari(tracks)
        n_tracks = len(set(data[:, 0].astype(int))) if len(data) else 0
        print(f"wrote {len(data)} points in {n_tracks} tracks -> {out}; {len(graph)} division link(s) -> "
              f"{graph_path}", file=sys.stderr)
    return 0
