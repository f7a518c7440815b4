"""Run time of ``edgetrack analyze --format andi`` on thousands of tracks of every length, short ones included.

    python benchmarks/bench_analyze.py --tracks 3000 --short 1100
    python benchmarks/bench_analyze.py --three-d      # alpha and K of free 3-D walks, z in voxels of 3 px

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


def three_d_check(n_tracks: int = 40, n: int = 150) -> None:
    """Free 3-D walks (per-coordinate K = 1 px^2/frame, alpha 1), z written in voxels of 3 px: the medians of
    ``analyze`` with the right z_scale, with z taken as px, and on the (y, x) projection alone."""
    import edgetrack

    rng = np.random.default_rng(0)
    parts = []
    for tid in range(n_tracks):
        p = 100 + np.cumsum(rng.normal(0, np.sqrt(2.0), (n, 3)), axis=0)
        parts.append(pd.DataFrame({"track_id": tid, "frame": np.arange(n), "y": p[:, 0], "x": p[:, 1], "z": p[:, 2] / 3}))
    tracks = pd.concat(parts, ignore_index=True)
    for label, table, z_scale in (("3-D, z_scale 3", tracks, 3.0), ("3-D, z as px", tracks, None),
                                  ("(y, x) only", tracks.drop(columns="z"), None)):
        r = edgetrack.analyze(table, z_scale=z_scale, extras=False)
        print(f"{label:15s} median alpha {r.frames['alpha'].median():.3f}, median K {r.frames['K'].median():.3f} "
              f"(truth 1, 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=3000)
    parser.add_argument("--short", type=int, default=1100, help="tracks of 1-2 points")
    parser.add_argument("--three-d", action="store_true", help="the 3-D check instead")
    args = parser.parse_args()
    if args.three_d:
        three_d_check()
        return
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
