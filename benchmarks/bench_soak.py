"""Memory over a long stream: push N frames of detections through ``Tracker.push`` and sample RSS.

Detections come from particles doing random walks in a 512x512 field (a fixed number alive at a time,
replaced as they leave), generated on the fly so the benchmark itself holds nothing. The tracker runs
with ``keep_results=False`` (the streaming consumer takes the updates), which is how a day-long
acquisition uses it. Resident memory (VmRSS, Linux) is printed every ``--every`` frames.

    python benchmarks/bench_soak.py --frames 100000 --spots 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; falls back to ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stream(n_frames: int, n_spots: int, size: float, step: float, seed: int):
    """Yield (y, x) DataFrames of random walkers, one per frame."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, size, size=(n_spots, 2))
    for _ in range(n_frames):
        pos += rng.normal(0, step, size=pos.shape)
        out = (pos < 0) | (pos >= size)
        gone = out.any(axis=1)
        pos[gone] = rng.uniform(0, size, size=(int(gone.sum()), 2))
        yield pd.DataFrame({"y": pos[:, 0], "x": pos[:, 1]})


def run(n_frames: int, n_spots: int, every: int, linker: str, seed: int = 0) -> list[tuple[int, float, float]]:
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(keep_results=False, linker=linker, max_distance=6.0)
    samples = []
    n_points = 0
    t0 = time.perf_counter()
    for t, dets in enumerate(stream(n_frames, n_spots, 512.0, 1.0, seed), start=1):
        for update in tracker.push(dets):
            n_points += len(update)
        if t % every == 0 or t == 1:
            samples.append((t, rss_mib(), time.perf_counter() - t0))
    for update in tracker.flush():
        n_points += len(update)
    assert n_points == n_frames * n_spots
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--spots", type=int, default=200)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--linker", default="lap")
    args = parser.parse_args()
    samples = run(args.frames, args.spots, args.every, args.linker)
    print("| frames pushed | RSS (MiB) | elapsed (s) |")
    print("|---:|---:|---:|")
    for t, rss, el in samples:
        print(f"| {t} | {rss:.1f} | {el:.1f} |")
    first_after_warm = samples[1][1] if len(samples) > 1 else samples[0][1]
    print(f"\nRSS growth from frame {samples[1][0] if len(samples) > 1 else 1} to {samples[-1][0]}: "
          f"{samples[-1][1] - first_after_warm:+.1f} MiB")


if __name__ == "__main__":
    main()
