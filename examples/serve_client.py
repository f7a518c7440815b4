"""Send a movie to a running ``edgetrack serve`` and write the tracks it returns.

Start the server in one terminal, then run the client in another::

    edgetrack serve --port 7878
    python examples/serve_client.py movie.tif --port 7878 --out tracks.csv

This is the whole protocol seen from a client: connect, HELLO (options), one FRAME message per image,
UPDATE messages coming back as frames are committed (``window - 1`` frames later), END, ENDED.
A client in Java, C# or LabVIEW does the same with the byte layout of docs/serve-protocol.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from edgetrack.runtime.io.readers import open_movie
from edgetrack.runtime.live.client import Dropped, RemoteError, RemoteUpdate, TrackClient


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", help="TIFF, folder of frames, .npy, .ome.tif or .zarr")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7878)
    parser.add_argument("--out", default=None, help="CSV of the tracks received")
    parser.add_argument("--max-distance", type=float, default=5.0, help="largest displacement per frame, px")
    parser.add_argument("--fps", type=float, default=0.0, help="send at this frame rate (0 = as fast as allowed)")
    parser.add_argument("--lossless", action="store_true",
                        help="wait for the server instead of letting it drop frames (flow control)")
    parser.add_argument("--name", default="example")
    args = parser.parse_args(argv)

    movie = open_movie(args.movie)
    client = TrackClient(args.port, args.host, name=args.name, tracker={"max_distance": args.max_distance})
    if args.lossless:  # never more frames in flight than the server's queue holds
        client.max_in_flight = int(client.ready["queue_frames"])
    n_updates = n_dropped = 0
    start = time.perf_counter()
    with client:
        for i, image in enumerate(movie):
            if args.fps > 0:
                time.sleep(max(0.0, start + i / args.fps - time.perf_counter()))
            client.send_frame(image)
            for event in client.poll():
                if isinstance(event, RemoteUpdate):
                    n_updates += 1
                elif isinstance(event, Dropped):
                    n_dropped += 1
                elif isinstance(event, RemoteError):
                    print(f"server: {event.code}: {event.message}", file=sys.stderr)
        summary = client.end()
        tracks = client.tracks()
    print(f"sent {len(movie)} frames in {time.perf_counter() - start:.2f} s; committed "
          f"{summary['frames_committed']}, dropped {summary['frames_dropped']}; {len(tracks)} points in "
          f"{tracks['track_id'].nunique() if len(tracks) else 0} tracks", file=sys.stderr)
    if args.out:
        tracks.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
