"""``edgetrack batch "plate/*.tif" --out results/``: track many movies on Dask distributed, resumably.

Each movie becomes ``results/<name>/tracks.csv`` (with ``--analyze`` also ``frames.csv, segments.csv,
ensemble.csv``); ``results/edgetrack-batch.json`` records what is done, so a rerun does only what is left.
An embedded Dask LocalCluster runs the work (``--workers N``), or any running scheduler
(``--scheduler tcp://HOST:8786``: dask-jobqueue, Kubernetes, ``dask scheduler``). See docs/batch.md.
"""

from __future__ import annotations

import argparse

from edgetrack.runtime.cli.options import (add_detect_arguments, add_progress_arguments, add_tracker_arguments,
                                          detect_options, tracker_options)

HELP = ("track many movies (glob patterns, e.g. \"plate/*.tif\") on Dask distributed into one folder per movie; "
        "resumable: a rerun does only what is left")

EXIT_FAILED = 1  # some movie failed (now or before); the others have their outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="movies or glob patterns (quote them: \"plate/*.tif\"; ** is recursive); a folder is "
                             "one movie (a folder of frames, a zarr store)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: DIR/<name>/tracks.csv per movie and the manifest DIR/edgetrack-batch.json")
    parser.add_argument("--analyze", action="store_true",
                        help="also characterise motion: DIR/<name>/frames.csv, segments.csv, ensemble.csv")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="UM", help="with --analyze: K in um^2")
    parser.add_argument("--frame-interval", type=float, default=None, metavar="S", help="with --analyze: K per s")
    g = parser.add_argument_group("cluster")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of the embedded Dask LocalCluster, 1 thread each "
                            "(default one per core, at most one per movie)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running Dask scheduler (tcp://HOST:8786), or its scheduler file (*.json "
                            "from dask scheduler --scheduler-file), instead of the embedded cluster")
    g.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to reach --scheduler (default 10)")
    g.add_argument("--dashboard-address", default=":8787", metavar="[HOST]:PORT",
                   help="dashboard of the embedded cluster (default :8787; another free port when taken)")
    g.add_argument("--retry-failed", action="store_true",
                   help="run again the movies that failed before (otherwise they are listed and skipped while "
                        "their input and parameters are unchanged)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a task that raised unexpectedly is rerun (default 2; a lost worker's task is "
                        "always rerun elsewhere)")
    g.add_argument("--chunk-frames", type=int, default=None, metavar="FRAMES",
                   help="split movies longer than this into chunks detected in parallel, then linked in order "
                        "(the same tracks as one streaming run)")
    g = parser.add_argument_group("movie planes")
    g.add_argument("--channel", type=int, default=None, metavar="C", help="the channel to track (0-based)")
    g.add_argument("--z", type=int, default=None, metavar="Z", help="the z plane to track (0-based)")
    add_detect_arguments(parser)
    add_tracker_arguments(parser)
    add_progress_arguments(parser)


class Reporter:
    """The batch's progress on stderr: one line rewritten in place on a terminal (movies and frames),
    a line per finished movie elsewhere (cluster logs)."""

    def __init__(self, enabled: bool, stream=None) -> None:
        import sys
        import threading
        import time

        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lock = threading.Lock()
        self.clock = time.perf_counter
        self.start = self.clock()
        self.work_start = self.start  # when the cluster was up: the frame rate counts from there
        self.movies = (0, 0)
        self.frames = (0, 0)
        self.failed = 0
        self.last = 0.0

    def line(self) -> str:
        done, total = self.movies
        frames, frames_total = self.frames
        elapsed = self.clock() - self.start
        text = f"batch: movies {done}/{total}"
        if self.failed:
            text += f" ({self.failed} failed)"
        if frames_total:
            rate = frames / max(self.clock() - self.work_start, 1e-9)
            text += f", frames {frames}/{frames_total} ({rate:.0f}/s)"
        return text + f", {elapsed:.0f} s"

    def print(self, text: str) -> None:
        if self.enabled:
            with self.lock:
                if self.tty:
                    self.stream.write("\r\033[K")
                self.stream.write(text + "\n")
                self.stream.flush()

    def redraw(self, force: bool = False) -> None:
        if not (self.enabled and self.tty):
            return
        with self.lock:
            now = self.clock()
            if force or now - self.last >= 0.2:
                self.last = now
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "plan":
            self.movies = (0, info["run"])
            self.print(f"batch: {info['total']} movies: {info['run']} to track, {info['done_before']} done before"
                       + (f", {len(info['failed_before'])} failed before (skipped; --retry-failed runs them)"
                          if info["failed_before"] else ""))
            for name, error in info["failed_before"].items():
                self.print(f"  failed before: {name}: {error}")
        elif kind == "cluster":
            self.work_start = self.clock()
            kind_text = "embedded LocalCluster" if info["embedded"] else "scheduler"
            self.print(f"batch: {kind_text} {info['scheduler']} with {info['workers']} workers; dashboard: "
                       f"{info['dashboard'] or 'not available (pip install bokeh)'}")
            self.redraw(force=True)
        elif kind == "frames":
            self.frames = (info["done"], info["total"])
            self.redraw()
        elif kind == "movie":
            self.movies = (info["done"], info["total"])
            if info["status"] != "done":
                self.failed += 1
                self.print(f"  failed: {info['name']}: {info['error']}")
            elif not self.tty:
                self.print(self.line() + f" ({info['name']} done)")
            self.redraw(force=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            with self.lock:
                self.stream.write("\r\033[K")
                self.stream.flush()


def run(args: argparse.Namespace) -> int:
    import sys

    from edgetrack.runtime.batch.run import batch

    analyze: bool | dict = bool(args.analyze)
    if args.analyze:
        options = {k: v for k, v in (("pixel_size", args.pixel_size), ("frame_interval", args.frame_interval))
                   if v is not None}
        analyze = options or True
    reporter = Reporter(enabled=not args.quiet)
    try:
        result = batch(args.inputs, args.out, analyze=analyze, workers=args.workers, scheduler=args.scheduler,
                       retry_failed=args.retry_failed, chunk_frames=args.chunk_frames, detect=detect_options(args),
                       channel=args.channel, z=args.z, retries=args.retries, timeout=args.timeout,
                       dashboard_address=args.dashboard_address, progress=reporter, invert=args.invert,
                       **tracker_options(args))
    finally:
        reporter.close()
    if not args.quiet:
        print(f"batch: {result.summary()}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED
