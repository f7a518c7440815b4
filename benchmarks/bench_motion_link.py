"""Each track's own motion in the linker (``motion="adaptive"``): link F1 and whole tracks, same movies.

    python benchmarks/bench_motion_link.py [--seeds 3 4] [--frames 50]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
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
