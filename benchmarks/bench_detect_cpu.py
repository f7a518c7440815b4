"""Thread CPU time of spot detection per frame (issue 19), and a check that detections did not change.

The movies of ``bench_speed.py`` (512x512, SNR 10, PSF sigma 1.5 px, D = 1 px^2/frame, seed 0) at each
density; ``detect_spots_array`` on every frame, ``--repeats`` times after a warm-up. Thread CPU time
(``time.thread_time``) is much less sensitive than wall time to other processes on a shared machine;
the best and the median repeat are printed, with the per-pass profile (``timings``) of one more run.

``--save FILE`` writes the detections (one float64 (n, 6) array per frame and density) to an ``.npz``;
``--compare FILE`` compares them with a file saved before a change: identical bits, or the largest
difference per column and the frames whose spot count changed.

    python benchmarks/bench_detect_cpu.py --save /tmp/before.npz        # on the old code
    python benchmarks/bench_detect_cpu.py --compare /tmp/before.npz     # on the new code
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_speed import simulate
from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.spots import SPOT_FEATURES, detect_spots_array


def measure(n_spots: int, frames: int, repeats: int) -> tuple[list[float], dict[str, float], list[np.ndarray]]:
    """ms of thread CPU time per frame for each repeat, the per-pass profile (ms per frame), the detections."""
    movie, _ = simulate(n_spots, frames, seed=0)
    movie = np.ascontiguousarray(movie)
    cfg = DetectConfig()
    spots = [detect_spots_array(frame, cfg) for frame in movie]  # also the warm-up
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for frame in movie:
            detect_spots_array(frame, cfg)
        times.append(1e3 * (time.thread_time() - t0) / frames)
    timings: dict[str, float] = {}
    for frame in movie:
        detect_spots_array(frame, cfg, timings=timings)
    return times, {k: 1e3 * v / frames for k, v in timings.items()}, spots


def compare(name: str, old: list[np.ndarray], new: list[np.ndarray]) -> str:
    counts = sum(a.shape != b.shape for a, b in zip(old, new))
    if counts == 0 and all(np.array_equal(a, b) for a, b in zip(old, new)):
        return f"{name}: identical detections"
    same = [np.abs(a - b).max(axis=0) for a, b in zip(old, new) if a.shape == b.shape and len(a)]
    worst = np.max(same, axis=0) if same else np.zeros(len(SPOT_FEATURES))
    diff = ", ".join(f"{c} {v:.2g}" for c, v in zip(SPOT_FEATURES, worst))
    return f"{name}: {counts}/{len(old)} frames with another spot count; largest difference elsewhere: {diff}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spots", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--save", help="write the detections to this .npz")
    parser.add_argument("--compare", help="compare the detections with this .npz")
    args = parser.parse_args()
    saved: dict[str, np.ndarray] = {}
    reference = np.load(args.compare) if args.compare else None
    for n in args.spots:
        times, profile, spots = measure(n, args.frames, args.repeats)
        passes = ", ".join(f"{k} {v:.2f}" for k, v in sorted(profile.items(), key=lambda kv: -kv[1]))
        print(f"{n} spots ({np.mean([len(s) for s in spots]):.0f} found per frame): thread CPU ms/frame best "
              f"{min(times):.3f}, median {np.median(times):.3f}\n    profile (ms/frame): {passes}")
        for t, s in enumerate(spots):
            saved[f"{n}_{t}"] = s
        if reference is not None:
            old = [reference[f"{n}_{t}"] for t in range(args.frames)]
            print("    " + compare(f"against {args.compare}", old, spots))
    if args.save:
        np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
