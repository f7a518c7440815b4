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
    python benchmarks/bench_serve.py soak4 --clients 4 --seconds 180        # 4 lossless clients at once
    python benchmarks/bench_serve.py soak4 --clients 4 --total-frames 100000 --seconds 3600  # 100,000 frames
    python benchmarks/bench_serve.py hostile --max-memory-mib 256           # peak RSS under hostile clients
    python benchmarks/bench_serve.py cases                                   # the issue-15 cases, one line each

soak4     ``--clients`` lossless clients at once for ``--seconds`` (256 x 256 frames, ``--spots`` spots):
          frames sent, tracked, dropped (each must be reported), frames without an outcome, server RSS.
hostile   a server with ``--max-memory-mib``; clients that announce 64 MiB frames and trickle them, send
          SPOTS of ``--max-rows`` rows as fast as they can, and 3 SPOTS of 10^6 rows; server peak RSS
          (sampled every 50 ms) against its idle RSS and the budget.
cases     in-process, against whichever edgetrack is imported (so it also runs on the code before
          the fix): session isolation, limits, slow prefixes, outcomes at END, file names across
          restarts, nested JSON, changing SPOTS columns, a missing --out-dir.
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


TOKEN_FILE: list = [None]  # the token file of the server process in use


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class ServerProcess:
    """``edgetrack serve`` in a child process on a free loopback port."""

    def __init__(self, queue_frames: int, window: int, extra: list[str] | None = None) -> None:
        self.folder = tempfile.TemporaryDirectory()
        port_file = Path(self.folder.name) / "port"
        self.token_file = Path(self.folder.name) / "token"
        self.proc = subprocess.Popen([sys.executable, "-m", "edgetrack.runtime.cli.app", "serve", "--port", "0",
                                      "--port-file", str(port_file), "--queue-frames", str(queue_frames),
                                      "--token-file", str(self.token_file),
                                      "--window", str(window), "--max-distance", "5", "--quiet", *(extra or [])])
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

    client = TrackClient(port, keep=False, on_event=on_event, name=f"rate{rate:g}", token_file=TOKEN_FILE[0])
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
        TOKEN_FILE[0] = server.token_file
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
                             timeout=120.0, name="soak", token_file=server.token_file)
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

def run_soak4(args: argparse.Namespace) -> None:
    """``--clients`` lossless clients at once for ``--seconds``: nothing dropped unreported, memory flat."""
    import threading

    from edgetrack.runtime.live.client import Dropped, RemoteUpdate, TrackClient
    from edgetrack.runtime.simulate.spots import simulate_movie

    frames, _ = simulate_movie(n_frames=args.movie_frames, shape=(256, 256), n_spots=args.spots, snr=8.0, seed=1)
    server = ServerProcess(args.queue_frames, args.windows[0])
    stop = time.perf_counter() + args.seconds
    results: dict[int, dict] = {}

    def one(k: int) -> None:
        tracked: set[int] = set()
        dropped: set[int] = set()
        counts = {"updates": 0, "twice": 0}

        def on_event(event) -> None:
            if isinstance(event, RemoteUpdate):
                counts["updates"] += 1
                if event.frame in tracked:
                    counts["twice"] += 1
                tracked.add(event.frame)
            elif isinstance(event, Dropped):
                dropped.add(event.frame)

        client = TrackClient(server.port, keep=False, on_event=on_event, max_in_flight=args.queue_frames,
                             timeout=120.0, name=f"soak{k}", token_file=server.token_file)
        sent = 0
        quota = -(-args.total_frames // args.clients) if args.total_frames else None
        while time.perf_counter() < stop and (quota is None or sent < quota):
            client.send_frame(frames[sent % len(frames)])
            sent += 1
        summary = client.end()
        client.close()
        no_outcome = sum(1 for i in range(sent) if i not in tracked and i not in dropped)
        results[k] = {"sent": sent, "summary": summary, "no_outcome": no_outcome, "dropped_msgs": len(dropped),
                      "twice": counts["twice"]}

    try:
        samples = [(0.0, rss_mib(server.proc.pid))]
        threads = [threading.Thread(target=one, args=(k,)) for k in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(min(5.0, args.seconds / 30))
            samples.append((time.perf_counter() - start, rss_mib(server.proc.pid)))
        elapsed = time.perf_counter() - start
        total = sum(r["sent"] for r in results.values())
        print(f"\nsoak4: {args.clients} clients at once, {total} frames of 256x256 uint16 ({args.spots} spots) in "
              f"{elapsed:.1f} s ({total / elapsed:.1f} fps in all)")
        for k, r in sorted(results.items()):
            sm = r["summary"]
            print(f"  client {k}: sent {r['sent']}, tracked {sm['frames_tracked']}, committed {sm['frames_committed']}, "
                  f"dropped {sm['frames_dropped']} (DROPPED messages {r['dropped_msgs']}), without an outcome "
                  f"{r['no_outcome']}, committed twice {r['twice']}")
        rss = np.array([v for _, v in samples])
        warm = rss[min(3, len(rss) - 1)]
        print(f"server RSS MiB: idle {rss[0]:.1f}, after warm-up {warm:.1f}, peak {rss.max():.1f}, end {rss[-1]:.1f}; "
              f"growth from warm-up to end {rss[-1] - warm:+.1f} MiB")
        print("  " + ", ".join(f"{t:.0f}s:{v:.0f}" for t, v in samples[:: max(1, len(samples) // 12)]))
    finally:
        server.close()


def run_hostile(args: argparse.Namespace) -> None:
    """Peak server RSS under hostile clients, against the idle RSS and the --max-memory-mib budget."""
    import socket
    import threading

    from edgetrack.runtime.live.protocol import PREFIX, Msg, encode, read_token_file

    server = ServerProcess(args.queue_frames, args.windows[0], ["--max-memory-mib", str(args.max_memory_mib)])
    token = read_token_file(server.token_file)
    peak = [0.0]
    idle = rss_mib(server.proc.pid)
    done = threading.Event()
    replies: dict[str, int] = {}

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(server.proc.pid))
            time.sleep(0.05)

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        for part in encode(Msg.HELLO, {"token": token, "tracker": {"max_distance": 5.0}}):
            sock.sendall(part)
        return sock

    def trickle(k: int) -> None:  # announce a 64 MiB frame, send it at 4 MiB/s
        sock = connect()
        body = b'{"frame":0,"shape":[4096,4096],"dtype":"uint32"}'
        try:
            sock.sendall(PREFIX.pack(b"ETRK", 1, Msg.FRAME, len(body), 64 << 20) + body)
            chunk = bytes(1 << 20)
            for _ in range(64):
                sock.sendall(chunk)
                time.sleep(0.25)
        except OSError:
            replies["trickle_cut"] = replies.get("trickle_cut", 0) + 1
        sock.close()

    def flood(k: int) -> None:  # SPOTS of max rows as fast as possible, 40 messages
        sock = connect()
        rng = np.random.default_rng(k)
        try:
            for t in range(40):
                table = np.column_stack([rng.uniform(0, 20000, args.max_rows), rng.uniform(0, 20000, args.max_rows)])
                for part in encode(Msg.SPOTS, {"frame": t, "columns": ["y", "x"], "rows": args.max_rows},
                                   table.tobytes()):
                    sock.sendall(part)
        except OSError:
            pass
        time.sleep(2)
        sock.close()

    def million(k: int) -> None:  # the case: 3 SPOTS of 10^6 rows
        sock = connect()
        rng = np.random.default_rng(100 + k)
        try:
            for t in range(3):
                table = rng.uniform(0, 20000, (1_000_000, 2))
                for part in encode(Msg.SPOTS, {"frame": t, "columns": ["y", "x"], "rows": 1_000_000}, table.tobytes()):
                    sock.sendall(part)
        except OSError:
            pass
        sock.settimeout(5)
        try:
            data = sock.recv(1 << 16)
            replies["million_reply"] = data.count(b"too_many_rows")
        except OSError:
            pass
        sock.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    threads = ([threading.Thread(target=trickle, args=(k,)) for k in range(6)]
               + [threading.Thread(target=flood, args=(k,)) for k in range(2)]
               + [threading.Thread(target=million, args=(0,))])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    sampler.join()
    print(f"\nhostile: budget {args.max_memory_mib:g} MiB; 6 clients trickling 64 MiB frames, 2 flooding SPOTS of "
          f"{args.max_rows} rows, 1 sending 3 SPOTS of 10^6 rows; {time.perf_counter() - start:.1f} s")
    print(f"server RSS MiB: idle {idle:.1f}, peak {peak[0]:.1f} (peak - idle {peak[0] - idle:.1f} against the budget "
          f"{args.max_memory_mib:g}); replies {replies}")
    server.close()


def run_cases(args: argparse.Namespace) -> None:
    """The numbered cases of issue 15, in-process, against the edgetrack that is imported."""
    import json
    import socket
    import struct
    import tracemalloc

    import edgetrack.runtime.stream.tracker as tracker_module
    from edgetrack.runtime.live import protocol
    from edgetrack.runtime.live.serve import TrackServer

    tmp = Path(tempfile.mkdtemp())
    movie = make_frames(30, 40)[:, :128, :128].copy()

    def token_of(port: int):
        finder = getattr(protocol, "default_token_path", None)
        return protocol.read_token_file(finder(port)) if finder else None

    def raw(port: int, hello: bool = True, **options) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.settimeout(10)
        if hello:
            send(sock, 1, {"token": token_of(port), "tracker": {"max_distance": 5.0, **options}})
        return sock

    def send(sock, kind, header, payload=b""):
        body = json.dumps(header).encode()
        sock.sendall(struct.pack("<4sHHIQ", b"ETRK", 1, kind, len(body), len(payload)) + body + payload)

    def frame(sock, t, image):
        send(sock, 2, {"frame": t, "shape": list(image.shape), "dtype": image.dtype.name}, image.tobytes())

    def messages(sock, until=68, seconds=10.0):
        out = []
        end = time.monotonic() + seconds
        sock.settimeout(0.5)
        while time.monotonic() < end:
            try:
                kind, header, _ = protocol.read_message(sock, max_payload=1 << 30, message_timeout=5,
                                                        should_stop=lambda: time.monotonic() > end)
            except Exception:
                if out and out[-1][0] == until:
                    break
                if time.monotonic() >= end:
                    break
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        break
                except socket.timeout:
                    pass
                except OSError:
                    break
                continue
            out.append((kind, header))
            if kind == until:
                break
        return out

    def line(case: str, text: str) -> None:
        print(f"case {case}: {text}", flush=True)

    # 1. a non-edgetrack exception in one session
    real_edges = tracker_module.edges_into_frame

    def edges(*a, **k):
        if a[5] >= 600:
            raise RuntimeError("injected fault")
        return real_edges(*a, **k)

    out1 = tmp / "out1"
    out1.mkdir()
    tracker_module.edges_into_frame = edges
    try:
        with TrackServer(port=0, out_dir=str(out1)) as server:
            port = server.address[1]
            victim = raw(port)
            for t in range(6):
                frame(victim, t, movie[t])
            frame(victim, 600, movie[6])
            send(victim, 4, {})
            got = messages(victim, seconds=8)
            kinds = [k for k, _ in got]
            errs = [h.get("code") for k, h in got if k == 67]
            other = raw(port)
            for t in range(10):
                frame(other, t, movie[t])
            send(other, 4, {})
            got2 = messages(other, seconds=20)
            victim.close()
            other.close()
        parts = [p.name for p in out1.iterdir() if p.name.endswith(".part")]
        line("1", f"victim got {'ENDED' if 68 in kinds else 'no ENDED within 8 s (hangs)'}, errors {errs}; "
                  f"bystander committed {next((h['frames_committed'] for k, h in got2 if k == 68), None)}; "
                  f".part files left: {len(parts)}")
    finally:
        tracker_module.edges_into_frame = real_edges

    # 2. memory: a declared 64 MiB payload with 10 bytes sent; a window of 1000; SPOTS of 200,000 rows
    a, b = socket.socketpair()
    a.settimeout(0.1)
    b.sendall(struct.pack("<4sHHIQ", b"ETRK", 1, 2, 2, 64 << 20) + b"{}" + b"0123456789")
    tracemalloc.start()
    try:
        protocol.read_message(a, max_payload=64 << 20, message_timeout=0.5)
    except Exception:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    a.close()
    b.close()
    with TrackServer(port=0) as server:
        port = server.address[1]
        sock = raw(port, window=1000)
        ready = messages(sock, until=64, seconds=5)
        sock.close()
        sock = raw(port)
        rows = 200_000
        table = np.random.default_rng(0).uniform(0, 20000, (rows, 2))
        send(sock, 3, {"frame": 0, "columns": ["y", "x"], "rows": rows}, table.tobytes())
        send(sock, 4, {})
        got = messages(sock, seconds=60)
        sock.close()
    line("2", f"64 MiB declared, 10 bytes sent: {peak / 2**20:.1f} MiB allocated while waiting; HELLO window 1000: "
              f"{[h.get('code', 'READY') for k, h in ready if k in (64, 67)]}; SPOTS of {rows} rows: "
              f"{[h.get('code') for k, h in got if k == 67] or 'accepted'}")

    # 3. 8 sockets sending 10 of 20 prefix bytes, then a real client
    with TrackServer(port=0, max_clients=8, message_timeout=2.0) as server:
        port = server.address[1]
        lorises = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        for s_ in lorises:
            s_.sendall(struct.pack("<4sHHIQ", b"ETRK", 1, 1, 2, 0)[:10])
        time.sleep(0.3)
        sock = raw(port)
        got = messages(sock, until=64, seconds=5)
        sock.close()
        time.sleep(3.0)
        alive = 0
        for s_ in lorises:
            s_.settimeout(0.2)
            try:
                while True:
                    if not s_.recv(4096):
                        break
            except socket.timeout:
                alive += 1
            except OSError:
                pass
            s_.close()
    line("3", f"real client after 8 half-prefix sockets: {[h.get('code', 'READY') for k, h in got if k in (64, 67)]}; "
              f"half-prefix sockets still open 3 s after message_timeout: {alive} of 8")

    # 4. outcomes of frames dropped near the end
    real_detect = tracker_module.detect_spots_array

    def slow(image, config):
        time.sleep(0.05)
        return real_detect(image, config)

    tracker_module.detect_spots_array = slow
    try:
        with TrackServer(port=0, queue_frames=1) as server:
            sock = raw(server.address[1])
            for t in range(12):
                frame(sock, t, movie[t])
            send(sock, 4, {})
            got = messages(sock, seconds=20)
            sock.close()
    finally:
        tracker_module.detect_spots_array = real_detect
    updated = {h["frame"] for k, h in got if k == 65}
    dropped = {h["frame"] for k, h in got if k == 66}
    line("4", f"12 frames, {len(dropped)} DROPPED, UPDATE for {len(updated)} indices; frames with no UPDATE: "
              f"{sorted(set(range(12)) - updated)}; with neither UPDATE nor DROPPED: "
              f"{sorted(set(range(12)) - updated - dropped)}")

    # 5. restart with the same out_dir
    out5 = tmp / "out5"
    out5.mkdir()
    for _ in range(2):
        with TrackServer(port=0, out_dir=str(out5)) as server:
            sock = raw(server.address[1])
            frame(sock, 0, movie[0])
            send(sock, 4, {})
            messages(sock)
            sock.close()
    line("5", f"2 runs x 1 session in one out_dir: files {sorted(p.name for p in out5.iterdir())}")

    # 12. nested JSON, SPOTS columns that change, a missing out_dir
    with TrackServer(port=0) as server:
        port = server.address[1]
        sock = raw(port, hello=False)
        body = b"[" * 5000 + b"]" * 5000
        sock.sendall(struct.pack("<4sHHIQ", b"ETRK", 1, 1, len(body), 0) + body)
        got = messages(sock, until=67, seconds=3)
        sock.close()
        sock = raw(port)
        send(sock, 3, {"frame": 0, "columns": ["y", "x", "mass"], "rows": 1}, np.ones(3).tobytes())
        send(sock, 3, {"frame": 1, "columns": ["y", "x", "mass", "extra"], "rows": 1}, np.ones(4).tobytes())
        send(sock, 4, {})
        got2 = messages(sock)
        sock.close()
    try:
        TrackServer(port=0, out_dir=str(tmp / "missing" / "dir")).start(warm_up=False).shutdown()
        missing = "created"
    except Exception as exc:
        missing = f"{type(exc).__name__}: {exc}"
    line("12", f"HELLO nested 5000 deep: {[h.get('code') for k, h in got if k == 67] or 'no reply'}; SPOTS columns "
               f"changed: {[h.get('code') for k, h in got2 if k == 67] or 'accepted silently'}; missing out_dir: {missing}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["latency", "drops", "soak", "soak4", "hostile", "cases"])
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 100, 1000], help="frames per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending time per rate")
    parser.add_argument("--min-frames", type=int, default=100, help="at least this many frames per rate")
    parser.add_argument("--windows", type=int, nargs="+", default=[3], help="tracker windows to measure")
    parser.add_argument("--queue-frames", type=int, default=8, help="server queue per client")
    parser.add_argument("--spots", type=int, default=100, help="spots per frame")
    parser.add_argument("--movie-frames", type=int, default=100, help="distinct simulated frames (replayed)")
    parser.add_argument("--frames", type=int, default=36000, help="soak: frames to stream")
    parser.add_argument("--every", type=int, default=2000, help="soak: RSS sample interval, frames")
    parser.add_argument("--clients", type=int, default=4, help="soak4: clients at once")
    parser.add_argument("--total-frames", type=int, default=0,
                        help="soak4: stop once the clients sent this many frames in all (0: run for --seconds)")
    parser.add_argument("--max-memory-mib", type=float, default=256.0, help="hostile: the server's budget")
    parser.add_argument("--max-rows", type=int, default=100_000, help="hostile: rows per flooding SPOTS")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPU(s); python {sys.version.split()[0]}", flush=True)
    if args.mode == "soak":
        run_soak(args)
    elif args.mode == "soak4":
        run_soak4(args)
    elif args.mode == "hostile":
        run_hostile(args)
    elif args.mode == "cases":
        run_cases(args)
    else:
        run_rates(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
