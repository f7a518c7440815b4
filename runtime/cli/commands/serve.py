"""``edgetrack serve``: track frames sent by other programs (Java, C#, LabVIEW, Python) over localhost TCP."""

from __future__ import annotations

import argparse

from edgetrack.runtime.cli.options import add_detect_arguments, add_tracker_arguments, detect_options, tracker_options

HELP = "serve live tracking on a localhost TCP port (protocol: docs/serve-protocol.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7878, help="TCP port (default 7878; 0 = any free port)")
    parser.add_argument("--port-file", default=None, metavar="FILE",
                        help="write the port actually used to FILE once listening (useful with --port 0)")
    parser.add_argument("--token-file", default=None, metavar="FILE",
                        help="write the server's token to FILE (0600) instead of serve-PORT.token in the per-user "
                             "runtime folder (~/.local/share/edgetrack/runtime on Linux)")
    parser.add_argument("--queue-frames", type=int, default=8, metavar="N",
                        help="frames per client waiting to be tracked; newer frames are dropped beyond (default 8)")
    parser.add_argument("--max-clients", type=int, default=8, help="authenticated clients served at once (default 8)")
    parser.add_argument("--max-per-address", type=int, default=24, metavar="N",
                        help="connections at once from one client address (default 24)")
    parser.add_argument("--max-frame-mib", type=float, default=64.0, metavar="MIB",
                        help="largest message accepted, MiB (default 64)")
    parser.add_argument("--max-memory-mib", type=float, default=2048.0, metavar="MIB",
                        help="memory budget for received frames and tracker windows, MiB; when full the server "
                             "stops reading from clients, then refuses (default 2048)")
    parser.add_argument("--max-rows", type=int, default=100_000, metavar="N",
                        help="most rows per SPOTS message and detections per frame (default 100000)")
    parser.add_argument("--largest-window", type=int, default=64, metavar="FRAMES",
                        help="largest window a client may ask for (default 64)")
    parser.add_argument("--largest-gap", type=int, default=64, metavar="FRAMES",
                        help="largest max_gap a client may ask for (default 64)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help="also write each session's committed tracks to DIR/RUN-sessionNNNN-NAME.csv and list "
                             "the sessions in DIR/RUN-sessions.csv (DIR is created if missing)")
    parser.add_argument("--allow-remote-shutdown", action="store_true",
                        help="accept SHUTDOWN messages carrying the token (default: stop with Ctrl-C / SIGTERM only)")
    parser.add_argument("--no-remote-shutdown", action="store_true",
                        help="refuse SHUTDOWN messages (the default; kept for older scripts)")
    add_detect_arguments(parser)
    add_tracker_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from edgetrack.runtime.io.atomic import atomic_open
    from edgetrack.runtime.live.serve import ServeConfig, TrackServer

    tracker = tracker_options(args)
    if tracker.get("step_sigma") is None:
        tracker.pop("step_sigma")
    tracker["invert"] = args.invert
    detect = {k: v for k, v in detect_options(args).items() if v is not None}
    config = ServeConfig(host=args.host, port=args.port, queue_frames=args.queue_frames,
                         max_clients=args.max_clients, max_per_address=args.max_per_address,
                         max_frame_mib=args.max_frame_mib, max_memory_mib=args.max_memory_mib, max_rows=args.max_rows,
                         largest_window=args.largest_window, largest_gap=args.largest_gap, out_dir=args.out_dir,
                         token_file=args.token_file,
                         allow_shutdown=args.allow_remote_shutdown and not args.no_remote_shutdown,
                         tracker=tracker, detect=detect)
    server = TrackServer(config).start()
    host, port = server.address
    if args.port_file:
        with atomic_open(args.port_file, "w") as handle:
            handle.write(f"{port}\n")
    if not args.quiet:
        print(f"edgetrack serve: listening on {host}:{port} (queue {config.queue_frames} frames per client, "
              f"drop policy: newest; memory budget {config.max_memory_mib:g} MiB); token in {server.token_path}; "
              f"Ctrl-C to stop", file=sys.stderr, flush=True)

    def on_signal(signum, _frame) -> None:
        server.request_shutdown()

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), on_signal)
    server.serve_forever()
    if not args.quiet:
        done = server.finished_sessions
        print(f"edgetrack serve: stopped after {len(done)} session(s), "
              f"{sum(s['frames_committed'] for s in done)} frames committed, "
              f"{sum(s['frames_dropped'] for s in done)} dropped", file=sys.stderr, flush=True)
    return 0
