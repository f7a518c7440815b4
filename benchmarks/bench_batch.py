"""Batch tracking on Dask distributed against a serial loop: wall time, speed-up, identical outputs.

Run:  python benchmarks/bench_batch.py [--movies 12] [--frames 300] [--size 128] [--workers 2]

Rows (each on the same simulated movies, written as TIFFs to a temporary folder):
* ``serial``: a plain loop: ``open_movie`` -> ``stream.pipeline.track_movie`` -> ``write_table`` per movie.
* ``LocalCluster``: ``batch(..., workers=N)``: the embedded cluster of N processes, 1 thread each;
  ``work`` is the time from the cluster being up to the last movie recorded (start-up left out).
* ``scheduler``: ``batch(..., scheduler=ADDRESS)`` against a real ``dask scheduler`` and N ``dask worker``
  processes started with subprocess (already up: no start-up in the time).
* ``worker killed``: the same, with the worker process tracking a movie SIGKILLed mid-run (its nanny
  starts a new one; Dask reruns the task).
* ``rerun``: ``edgetrack batch`` again on a finished folder, in a fresh process (nothing to do, no cluster).

Every Dask row checks that each ``tracks.csv`` is byte-identical to the serial loop's.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import tifffile

from edgetrack.runtime.batch import batch
from edgetrack.runtime.io.readers import open_movie
from edgetrack.runtime.io.tables import write_table
from edgetrack.runtime.simulate.spots import simulate_movie
from edgetrack.runtime.stream.pipeline import track_movie


def make_movies(folder: Path, n: int, frames: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        movie, _ = simulate_movie(n_frames=frames, shape=(size, size), n_spots=40, seed=100 + i)
        path = folder / f"movie{i:02d}.tif"
        tifffile.imwrite(path, movie)
        paths.append(path)
    return paths


def serial(paths: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in paths:
        (out / path.stem).mkdir(exist_ok=True)
        write_table(track_movie(open_movie(path)), out / path.stem / "tracks.csv")
    return time.perf_counter() - start


def identical(paths: list[Path], out: Path, reference: Path) -> bool:
    return all((out / p.stem / "tracks.csv").read_bytes() == (reference / p.stem / "tracks.csv").read_bytes()
               for p in paths)


def timed_batch(paths, out, **kwargs) -> tuple[float, float, object]:
    marks: dict[str, float] = {}

    def progress(kind: str, info: dict) -> None:
        if kind == "cluster":
            marks["up"] = time.perf_counter()

    start = time.perf_counter()
    result = batch(paths, out, progress=progress, **kwargs)
    end = time.perf_counter()
    return end - start, end - marks.get("up", start), result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_scheduler(workers: int, folder: Path) -> tuple[str, list[subprocess.Popen]]:
    import distributed

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(folder / "dask.log", "w")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT)]
    for i in range(workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
                                      stdout=log, stderr=subprocess.STDOUT))
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def kill_one_worker(address: str, killed: list[int]) -> None:
    import distributed

    with distributed.Client(address, timeout=30) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = [w for w, keys in client.processing().items()
                    if any(str(k).startswith("edgetrack-track-") for k in keys)]
            if busy:
                time.sleep(0.5)
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movies", type=int, default=12)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=128, help="frame side, px")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgetrack-bench-batch-") as tmp:
        tmp = Path(tmp)
        paths = make_movies(tmp / "plate", args.movies, args.frames, args.size)
        track_movie(open_movie(paths[0]))  # warm the Numba cache (compilation left out of every row)
        t_serial = serial(paths, tmp / "serial")
        frames = args.movies * args.frames
        rows.append(("serial loop", t_serial, t_serial, "-", "reference"))

        wall, work, result = timed_batch(paths, tmp / "local", workers=args.workers, dashboard_address=":0")
        rows.append((f"LocalCluster, {args.workers} workers", wall, work, len(result.done),
                     identical(paths, tmp / "local", tmp / "serial")))

        address, procs = start_scheduler(args.workers, tmp)
        try:
            wall, work, result = timed_batch(paths, tmp / "remote", scheduler=address)
            rows.append((f"dask scheduler + {args.workers} dask workers", wall, work, len(result.done),
                         identical(paths, tmp / "remote", tmp / "serial")))
            killed: list[int] = []
            thread = threading.Thread(target=kill_one_worker, args=(address, killed), daemon=True)
            thread.start()
            wall, work, result = timed_batch(paths, tmp / "killed", scheduler=address)
            thread.join(timeout=60)
            rows.append((f"same, 1 worker SIGKILLed mid-run ({len(killed)} killed)", wall, work, len(result.done),
                         identical(paths, tmp / "killed", tmp / "serial")))
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

        code = ("import sys, time; t = time.perf_counter(); "
                "from edgetrack.runtime.cli import app; app.COMMANDS.setdefault('batch', 'batch'); "
                f"c = app.main(['batch', {str(tmp / 'plate' / '*.tif')!r}, '--out', {str(tmp / 'local')!r}, "
                "'--quiet']); print(c, 'distributed' in sys.modules, time.perf_counter() - t)")
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        wall = time.perf_counter() - start
        rows.append((f"rerun, nothing left (exit {out[0]}, distributed imported: {out[1]})", wall, float(out[2]), 0,
                     "-"))

    print(f"{args.movies} movies x {args.frames} frames of {args.size}x{args.size} px ({frames} frames), "
          f"{os.cpu_count()} cores\n")
    print("| run | wall s | work s | speed-up (wall / work) | movies tracked | identical to serial |")
    print("|---|---:|---:|---:|---:|---|")
    for name, wall, work, done, same in rows:
        speed = "1.00 / 1.00" if name == "serial loop" else (
            "-" if done == 0 else f"{t_serial / wall:.2f} / {t_serial / work:.2f}")
        print(f"| {name} | {wall:.2f} | {work:.2f} | {speed} | {done} | {same} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
