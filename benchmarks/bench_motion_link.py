"""Each track's own motion in the linker (``motion="adaptive"``): link F1 and whole tracks, same movies.

    python benchmarks/bench_motion_link.py [--seeds 3 4] [--frames 50]
    python benchmarks/bench_motion_link.py --uniform      # bench_speed's movies: F1 and linking CPU time

Simulated 256 x 256 movies (SNR 10) of the scenes of ``bench_stitch.py`` plus a mixed one (D from 0.05 to 8
px^2/frame), tracked by ``edgetrack.track`` with the plain step model and with the adaptive one, at the
default ``max_distance`` (6 px) and at 8 and 10 px; scored by ``link_metrics`` against the truth (2 px).
Prints one Markdown row per scene and setting (mean over the seeds) and the mean over the scenes.
The model's two constants (runtime/stream/motion.py) were chosen on seeds 1 and 2; report other seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import edgetrack
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.spots import simulate_movie

from bench_stitch import SCENES as STITCH_SCENES  # the same scenes (this folder is on the path when run)

SCENES = {**STITCH_SCENES, "mixed (D 0.05-8), 200 spots": dict(D_range=(0.05, 8.0), n_spots=200)}
SETTINGS = {
    "plain, 6 px": dict(),
    "adaptive, 6 px": dict(motion="adaptive"),
    "plain, 8 px": dict(max_distance=8.0),
    "adaptive, 8 px": dict(motion="adaptive", max_distance=8.0),
    "plain, 10 px": dict(max_distance=10.0),
    "adaptive, 10 px": dict(motion="adaptive", max_distance=10.0),
}


def uniform() -> None:
    """The movies of ``bench_speed.py`` (512 x 512, every particle at D = 1, seed 7, 60 frames) at 500 and
    2,000 spots: link F1 and the thread CPU time of ``Tracker.push_spots`` (detections made beforehand, so
    graph, scores, linking and commit only), best of 3, plain and adaptive, at 6 and 8 px."""
    from edgetrack.runtime.detect.spots import detect_spots_array
    from edgetrack.runtime.stream.tracker import Tracker

    print("| spots | setting | link F1 | linking ms/frame (thread CPU, best of 3) |")
    print("|---:|---|---:|---:|")
    for n in (500, 2000):
        movie, truth = simulate_movie(n_frames=60, shape=(512, 512), n_spots=n, snr=10.0, D_range=(1.0, 1.0), seed=7)
        spots = [detect_spots_array(f) for f in movie]
        for label, kw in (("plain, 6 px", {}), ("adaptive, 6 px", {"motion": "adaptive"}),
                          ("plain, 8 px", {"max_distance": 8.0}),
                          ("adaptive, 8 px", {"motion": "adaptive", "max_distance": 8.0})):
            best, tracks = float("inf"), None
            for _ in range(3):
                tracker = Tracker(**kw)
                start = time.thread_time()
                for s in spots:
                    tracker.push_spots(s)
                tracks = tracker.finish()
                best = min(best, (time.thread_time() - start) / len(spots) * 1e3)
            f1 = link_metrics(truth, tracks, max_distance=2.0)["f1"]
            print(f"| {n} | {label} | {f1:.4f} | {best:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--uniform", action="store_true", help="bench_speed's uniform movies instead of the scenes")
    args = parser.parse_args()
    if args.uniform:
        uniform()
        return
    print("| scene | " + " | ".join(SETTINGS) + " |")
    print("|---|" + "---:|" * len(SETTINGS))
    means: dict[str, list[float]] = {k: [] for k in SETTINGS}
    seconds: dict[str, float] = {k: 0.0 for k in SETTINGS}
    for label, options in SCENES.items():
        f1: dict[str, list[float]] = {k: [] for k in SETTINGS}
        whole: dict[str, list[float]] = {k: [] for k in SETTINGS}
        for seed in args.seeds:
            movie, truth = simulate_movie(n_frames=args.frames, shape=(256, 256), snr=10.0, seed=seed, **options)
            for name, kw in SETTINGS.items():
                start = time.perf_counter()
                tracks = edgetrack.track(movie, **kw)
                seconds[name] += time.perf_counter() - start
                m = link_metrics(truth, tracks)
                f1[name].append(m["f1"])
                whole[name].append(m["perfect_tracks"])
        cells = []
        for name in SETTINGS:
            means[name].append(float(np.mean(f1[name])))
            cells.append(f"{np.mean(f1[name]):.3f} / {np.mean(whole[name]):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    print("| **mean F1 over the scenes** | " + " | ".join(f"**{np.mean(v):.4f}**" for v in means.values()) + " |")
    print("| seconds, all movies | " + " | ".join(f"{s:.1f}" for s in seconds.values()) + " |")
    print(f"\nseeds {args.seeds}, {args.frames} frames; cells: link F1 / share of whole tracks")


if __name__ == "__main__":
    main()
