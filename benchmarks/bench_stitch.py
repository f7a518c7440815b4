"""Fragment stitching (``edgetrack track --stitch``): link F1 and whole tracks with and without, same movies.

    python benchmarks/bench_stitch.py

Simulated 256 x 256 movies (SNR 10), tracked with the defaults (max_distance 6 px, max_gap 2), then
:func:`edgetrack.runtime.stream.stitch.stitch_tracks`; scored by ``link_metrics`` against the truth (2 px).
Scenes: fast particles (D 0.5-8 px^2/frame), half of them directed at 4 px/frame, blinking, the default
(D 0.5-2), and two crowded ones (300-400 particles) where joining is riskiest.
"""

from __future__ import annotations

import time

import edgetrack
from edgetrack.runtime.metrics.links import link_metrics
from edgetrack.runtime.simulate.spots import simulate_movie
from edgetrack.runtime.stream.stitch import stitch_tracks

SCENES = {
    "fast (D 0.5-8), 60 spots": dict(D_range=(0.5, 8.0), n_spots=60),
    "directed 4 px/frame (half), 60 spots": dict(motion_fractions=(0.5, 0.5, 0.0), speed=4.0, n_spots=60),
    "blinking (off 0.1, on 0.5), 150 spots": dict(p_blink_off=0.1, p_blink_on=0.5, n_spots=150),
    "default (D 0.5-2), 60 spots": dict(n_spots=60),
    "crowded fast (D 0.5-8), 300 spots": dict(D_range=(0.5, 8.0), n_spots=300),
    "crowded (D 0.5-2), 400 spots": dict(n_spots=400),
}


def main() -> None:
    print("scene | seed | F1 before -> after | precision | recall | whole tracks | tracks (truth) | stitch ms")
    for label, options in SCENES.items():
        for seed in (1, 2):
            movie, truth = simulate_movie(n_frames=50, shape=(256, 256), snr=10.0, seed=seed, **options)
            tracks = edgetrack.track(movie)
            start = time.perf_counter()
            joined = stitch_tracks(tracks)
            ms = 1e3 * (time.perf_counter() - start)
            a, b = link_metrics(truth, tracks), link_metrics(truth, joined)
            print(f"{label} | {seed} | {a['f1']:.3f} -> {b['f1']:.3f} | {a['precision']:.3f} -> {b['precision']:.3f} | "
                  f"{a['recall']:.3f} -> {b['recall']:.3f} | {a['perfect_tracks']:.3f} -> {b['perfect_tracks']:.3f} | "
                  f"{tracks['track_id'].nunique()} -> {joined['track_id'].nunique()} ({truth['track_id'].nunique()}) | "
                  f"{ms:.0f}", flush=True)


if __name__ == "__main__":
    main()
