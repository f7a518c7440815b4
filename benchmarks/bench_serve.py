"""``edgetrack serve`` on loopback: end-to-end latency, the frame rate where drops start, memory over an hour.

The server runs as its own process (``python -m edgetrack.runtime.cli.app serve --port 0``), the client
(:class:`edgetrack.runtime.live.client.TrackClient`) in this one. Frames are 512 x 512 uint16
simulated spot images (``--spots`` spots, SNR 8), made once and replayed in a loop (frame indices keep
increasing; at each loop boundary the particles jump, which only ends tracks).

latency   frames sent on a fixed clock at each ``--rates`` for ``--seconds``. For every frame that was
          not dropped: *commit latency* = arrival of its UPDATE - its send time (what a client waits for a
          final result: it includes the ``window - 1`` later frames the tracker needs, i.e.
          (window - 1) / rate seconds); *processing latency* = arrival of UPDATE t - send time of frame
          t + window - 1 (the frame whose tracking committed t: detection + linking + transport).
          Median and 99th percentile, frames dropped.
drops     the same at rising rates, reporting the fraction dropped; the onset is the lowest rate with drops.
soak      ``--frames`` frames as fast as the server takes them without drops (client flow control,
          ``max_in_flight = queue_frames``); the server's resident memory (VmRSS) every ``--every`` frames.
          36,000 frames is one hour of a 10 frames/s acquisition.

    python benchmarks/bench_serve.py latency --rates 10 100 1000
    python benchmarks/bench_serve.py drops --rates 25 50 75 100 125 150 200 300
    python benchmarks/bench_serve.py soak --frames 36000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class ServerProcess:
    """``edgetrack serve`` in a child process on a free loopback port."""

    def __init__(self, queue_frames: int, window: int) -> None:
        self.folder = tempfile.TemporaryDirectory()
        port_file = Path(self.folder.name) / "port"
        self.proc = subprocess.Popen([sys.executable, "-m", "edgetrack.runtime.cli.app", "serve", "--port", "0",
                                      "--port-file", str(port_file), "--queue-frames", str(queue_frames),
                                      "--window", str(window), "--max-distance", "5", "--quiet"])
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.folder.cleanup()


def make_frames(n: int, spots: int) -> np.ndarray:
    from edgetrack.runtime.simulate.spots import simulate_movie

    movie, _ = simulate_movie(n_frames=n, shape=(512, 512), n_spots=spots, snr=8.0, seed=0)
    return movie


def paced_run(port: int, frames: np.ndarray, rate: float, n_send: int) -> dict:
    """Send ``n_send`` frames at ``rate`` per second; return latency statistics (ms) and drops."""
    from edgetrack.runtime.live.client import Dropped, RemoteUpdate, TrackClient

    arrivals: dict[int, float] = {}
    dropped: set[int] = set()

    def on_event(event) -> None:
        if isinstance(event, RemoteUpdate):
            arrivals[event.frame] = event.received
        elif isinstance(event, Dropped):
            dropped.add(event.frame)

    client = TrackClient(port, keep=False, on_event=on_event, name=f"rate{rate:g}")
    latency = int(client.ready["latency_frames"])
    sent = np.zeros(n_send)
    start = time.perf_counter() + 0.05
    late = 0
    for i in range(n_send):
        due = start + i / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            if due - now > 0.002:
                time.sleep(due - now - 0.001)
        if now - due > 1.0 / rate:
            late += 1  # the client itself could not keep the clock (send blocked)
        sent[i] = time.perf_counter()
        client.send_frame(frames[i % len(frames)])
    summary = client.end()
    client.close()
    ok = [i for i in range(n_send) if i not in dropped and i in arrivals]
    commit = np.array([arrivals[i] - sent[i] for i in ok]) * 1000.0
    proc_idx = [i for i in ok if i + latency < n_send and i + latency not in dropped]
    processing = np.array([arrivals[i] - sent[i + latency] for i in proc_idx]) * 1000.0
    actual_rate = (n_send - 1) / (sent[-1] - sent[0]) if n_send > 1 else float("nan")

    def stats(values: np.ndarray) -> tuple[float, float]:
        return (float(np.median(values)), float(np.percentile(values, 99))) if len(values) else (float("nan"),) * 2

    return {"rate": rate, "actual_rate": actual_rate, "sent": n_send, "dropped": len(dropped),
            "committed": summary["frames_committed"], "commit_ms": stats(commit), "processing_ms": stats(processing),
            "late_sends": late, "latency_frames": latency}


def report(rows: list[dict], window: int) -> None:
    print(f"\nwindow {window} (commit waits for {window - 1} later frame(s)); 512x512 uint16; times in ms")
    print("rate fps | achieved | frames | dropped | commit median | commit p99 | processing median | processing p99")
    for r in rows:
        print(f"{r['rate']:8g} | {r['actual_rate']:8.1f} | {r['sent']:6d} | {r['dropped']:7d} | "
              f"{r['commit_ms'][0]:13.1f} | {r['commit_ms'][1]:10.1f} | {r['processing_ms'][0]:17.1f} | "
              f"{r['processing_ms'][1]:14.1f}")
    sys.stdout.flush()


def run_rates(args: argparse.Namespace) -> None:
    frames = make_frames(args.movie_frames, args.spots)
    for window in args.windows:
        server = ServerProcess(args.queue_frames, window)
        try:
            rows = []
            for rate in args.rates:
                n_send = max(args.min_frames, int(round(rate * args.seconds)))
                rows.append(paced_run(server.port, frames, rate, n_send))
                print(f"  rate {rate:g}: dropped {rows[-1]['dropped']}/{n_send}, server RSS "
                      f"{rss_mib(server.proc.pid):.0f} MiB", file=sys.stderr, flush=True)
            report(rows, window)
            onset = [r["rate"] for r in rows if r["dropped"] > 0]
            print(f"drops start at: {onset[0] if onset else 'none up to'} fps "
                  f"(first rate with dropped frames; queue {args.queue_frames} frames)")
        finally:
            server.close()


def run_soak(args: argparse.Namespace) -> None:
    from edgetrack.runtime.live.client import TrackClient

    frames = make_frames(args.movie_frames, args.spots)
    server = ServerProcess(args.queue_frames, args.windows[0])
    committed = [0]

    def on_event(event) -> None:
        if hasattr(event, "values"):
            committed[0] += 1

    try:
        client = TrackClient(server.port, keep=False, on_event=on_event, max_in_flight=args.queue_frames,
                             timeout=120.0, name="soak")
        samples = [(0, rss_mib(server.proc.pid))]
        start = time.perf_counter()
        for i in range(args.frames):
            client.send_frame(frames[i % len(frames)])
            if (i + 1) % args.every == 0:
                samples.append((i + 1, rss_mib(server.proc.pid)))
                elapsed = time.perf_counter() - start
                print(f"  {i + 1:6d} frames  {elapsed:7.1f} s  {(i + 1) / elapsed:6.1f} fps  server RSS "
                      f"{samples[-1][1]:7.1f} MiB", file=sys.stderr, flush=True)
        summary = client.end()
        elapsed = time.perf_counter() - start
        client.close()
        rss = np.array([s[1] for s in samples])
        after_warm = rss[min(2, len(rss) - 1):]
        print(f"\nsoak: {args.frames} frames of 512x512 uint16 in {elapsed:.1f} s ({args.frames / elapsed:.1f} fps, "
              f"lossless: dropped {summary['frames_dropped']}, committed {summary['frames_committed']})")
        print(f"server RSS MiB: start {rss[0]:.1f}, after {samples[min(2, len(samples) - 1)][0]} frames "
              f"{after_warm[0]:.1f}, peak {rss.max():.1f}, end {rss[-1]:.1f}; "
              f"growth from there to the end {rss[-1] - after_warm[0]:+.1f} MiB")
        for n, value in samples:
            print(f"  {n:6d} {value:8.1f}")
    finally:
        server.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["latency", "drops", "soak"])
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 100, 1000], help="frames per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending time per rate")
    parser.add_argument("--min-frames", type=int, default=100, help="at least this many frames per rate")
    parser.add_argument("--windows", type=int, nargs="+", default=[3], help="tracker windows to measure")
    parser.add_argument("--queue-frames", type=int, default=8, help="server queue per client")
    parser.add_argument("--spots", type=int, default=100, help="spots per frame")
    parser.add_argument("--movie-frames", type=int, default=100, help="distinct simulated frames (replayed)")
    parser.add_argument("--frames", type=int, default=36000, help="soak: frames to stream")
    parser.add_argument("--every", type=int, default=2000, help="soak: RSS sample interval, frames")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPU(s); python {sys.version.split()[0]}", flush=True)
    if args.mode == "soak":
        run_soak(args)
    else:
        run_rates(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
