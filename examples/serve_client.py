"""Send a movie to a running ``edgetrack serve`` and write the tracks it returns.

Start the server in one terminal, then run the client in another::

    edgetrack serve --port 7878
    python examples/serve_client.py movie.tif --port 7878 --out tracks.csv

This is the whole protocol seen from a client: connect, HELLO (options), one FRAME message per image,
UPDATE messages coming back as frames are committed (``window - 1`` frames later), END, ENDED.
A client in Java, C# or LabVIEW does the same with the byte layout of docs/serve-protocol.md.

By default nothing is lost: the client never has more frames in flight than the server's queue
holds (flow control), so it waits for the server instead of letting it drop frames. ``--allow-drops``
sends as fast as the movie is read (a live camera that cannot wait); the frames the server then
drops are counted and printed. The server's token is read from where a local server writes it.
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
    parser.add_argument("--allow-drops", action="store_true",
                        help="do not wait for the server: frames it cannot keep up with are dropped (counted)")
    parser.add_argument("--lossless", action="store_true", help="wait for the server (the default; kept for scripts)")
    parser.add_argument("--token-file", default=None, help="the server's token file (default: found by itself)")
    parser.add_argument("--name", default="example")
    args = parser.parse_args(argv)

    movie = open_movie(args.movie)
    client = TrackClient(args.port, args.host, name=args.name, tracker={"max_distance": args.max_distance},
                         token_file=args.token_file)
    lossless = not args.allow_drops
    if lossless:  # never more frames in flight than the server's queue holds: nothing is dropped
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
    n_dropped = len(client.dropped)  # every Dropped event, also those that arrived after the last poll
    print(f"sent {len(movie)} frames in {time.perf_counter() - start:.2f} s "
          f"({'lossless' if lossless else 'drops allowed'}); tracked {summary['frames_tracked']}, "
          f"dropped {summary['frames_dropped']} (DROPPED messages: {n_dropped}); {len(tracks)} points in "
          f"{tracks['track_id'].nunique() if len(tracks) else 0} tracks", file=sys.stderr)
    if summary["frames_dropped"]:
        print(f"warning: {summary['frames_dropped']} of {len(movie)} frames were dropped by the server "
              f"(frames {client.dropped[:10]}{' ...' if n_dropped > 10 else ''}); run without --allow-drops to "
              "lose none", file=sys.stderr)
    if args.out:
        tracks.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
