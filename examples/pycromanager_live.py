"""Track spots live while Micro-Manager acquires, through pycromanager.

Needs Micro-Manager running (with its pycromanager server enabled) and ``pip install pycromanager``::

    python examples/pycromanager_live.py --frames 500 --interval 0.05 --out live_tracks.csv

Without a microscope, ``--simulate`` drives the same image processor with simulated frames and
Micro-Manager-style metadata, the way pycromanager's processing thread calls it::

    python examples/pycromanager_live.py --simulate --frames 100 --out live_tracks.csv

While the acquisition runs, the main thread prints how many tracks have been committed so far: that
is where your own code would look at ``processor.tracks()`` (for example to decide where to image next).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from edgetrack.runtime.live.micromanager import MicroManagerTracker


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="time points to acquire")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between time points (0 = as fast as possible)")
    parser.add_argument("--max-distance", type=float, default=5.0, help="largest displacement per frame, px")
    parser.add_argument("--out", default=None, help="write the tracks as CSV here at the end")
    parser.add_argument("--simulate", action="store_true", help="no microscope: simulated frames and metadata")
    parser.add_argument("--directory", default=None, help="where Micro-Manager saves the data (None = not saved)")
    return parser.parse_args(argv)


def acquire_with_pycromanager(processor: MicroManagerTracker, args: argparse.Namespace) -> None:
    from pycromanager import Acquisition, multi_d_acquisition_events  # optional dependency, only here

    events = multi_d_acquisition_events(num_time_points=args.frames, time_interval_s=args.interval)
    kwargs = {"directory": args.directory, "name": "edgetrack_live"} if args.directory else {}
    with Acquisition(image_process_fn=processor, show_display=False, **kwargs) as acq:
        acq.acquire(events)


def acquire_simulated(processor: MicroManagerTracker, args: argparse.Namespace) -> None:
    """Call the processor from one thread with (image, metadata) pairs, as pycromanager does."""
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=args.frames, shape=(256, 256), n_spots=60, snr=8.0, seed=0)

    def processing_thread() -> None:
        start = time.perf_counter()
        for t, frame in enumerate(movie):
            pixels = frame.tobytes()  # what arrives from the camera: raw bytes plus a metadata dict
            metadata = {"Axes": {"time": t}, "Width": frame.shape[1], "Height": frame.shape[0],
                        "PixelType": "GRAY16", "BitDepth": 16, "PixelSize_um": 0.108,
                        "ElapsedTime-ms": 1000.0 * (time.perf_counter() - start), "ImageNumber": str(t)}
            image = np.frombuffer(pixels, dtype=np.uint16).reshape(metadata["Height"], metadata["Width"])
            image, metadata = processor(image, metadata)  # the image goes on to storage untouched
            if args.interval:
                time.sleep(args.interval)

    worker = threading.Thread(target=processing_thread)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        report(processor)


def report(processor: MicroManagerTracker) -> None:
    tracks = processor.tracks()
    n_tracks = tracks["track_id"].nunique() if len(tracks) else 0
    print(f"committed frames: {tracks['frame'].nunique() if len(tracks) else 0:5d}   tracks so far: {n_tracks}",
          file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    processor = MicroManagerTracker(max_distance=args.max_distance)
    if args.simulate:
        acquire_simulated(processor, args)
    else:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(1.0):
                report(processor)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            acquire_with_pycromanager(processor, args)
        finally:
            done.set()
            watcher.join()
    tracks = processor.finish()
    print(f"done: {len(tracks)} points in {tracks['track_id'].nunique() if len(tracks) else 0} tracks; "
          f"stats {processor.stats()}", file=sys.stderr)
    if processor.errors:
        print(f"{len(processor.errors)} image(s) not tracked, first: {processor.errors[0]}", file=sys.stderr)
    if args.out:
        tracks.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
