"""Run time of ``edgetrack analyze --format andi`` on thousands of tracks of every length, short ones included.

    python benchmarks/bench_analyze.py --tracks 3000 --short 1100

Writes a table of random walks (``--short`` tracks of 1-2 points, the rest 3-200 points, starts spread
over 200 frames), runs the command line as a user would, and prints its wall time, peak RSS and whether
every track got a line in ``andi/fov_0.txt``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n_tracks: int, n_short: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_mid = (n_tracks - n_short) * 7 // 19
    lengths = np.concatenate([rng.integers(1, 3, n_short), rng.integers(3, 20, n_mid),
                              rng.integers(20, 200, n_tracks - n_short - n_mid)])
    parts = []
    for tid, n in enumerate(lengths):
        p = rng.uniform(0, 500, 2) + np.cumsum(rng.normal(0, 1, (n, 2)), axis=0)
        f0 = int(rng.integers(0, 200))
        parts.append(pd.DataFrame({"track_id": tid, "frame": np.arange(f0, f0 + n), "y": p[:, 0], "x": p[:, 1]}))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=3000)
    parser.add_argument("--short", type=int, default=1100, help="tracks of 1-2 points")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = make_table(args.tracks, args.short)
        path = Path(tmp) / "tracks.csv"
        table.to_csv(path, index=False)
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "edgetrack.runtime.cli", "analyze", str(path), "--out",
                              str(Path(tmp) / "r"), "--format", "andi", "--quiet"], capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        lines = (Path(tmp) / "r" / "andi" / "fov_0.txt").read_text().splitlines() if run.returncode == 0 else []
        print(f"analyze --format andi: {args.tracks} tracks ({args.short} of 1-2 points), {len(table)} points: "
              f"exit {run.returncode}, {wall:.2f} s wall, peak RSS {peak:.0f} MiB, {len(lines)} andi lines")
        if run.returncode:
            print(run.stderr[-2000:])


if __name__ == "__main__":
    main()
