"""Real beads (trackpy's bulk_water video): speed, and how many of trackpy's links edgetrack reproduces.

There is no ground truth; trackpy's result with the settings of its own walkthrough (diameter 11,
minmass 20, invert, search_range 5, memory 3) is taken as the reference. edgetrack runs with the
equivalent settings (invert, max_distance 5, max_gap 4) and a PSF sigma matched to diameter 11.
Reported: frames/s of each (same frames in memory, same run), the fraction of trackpy's links that
edgetrack reproduces (link recall against trackpy) and the fraction of edgetrack's links that trackpy
also has (link precision), with points matched within 1.5 px.

    python benchmarks/bench_bulk_water.py [--data ../shared/data/bulk_water]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bulk_water"))
    parser.add_argument("--psf-sigma", type=float, default=2.5)
    parser.add_argument("--snr-threshold", type=float, default=4.5)
    parser.add_argument("--linker", default="lap")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import trackpy as tp

    from edgetrack.runtime.io.readers import open_movie
    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.stream.tracker import Tracker

    tp.quiet()
    frames = np.stack([f.astype(np.float32) for f in open_movie(args.data)])
    print(f"{len(frames)} frames of {frames.shape[1]}x{frames.shape[2]} px from {args.data}; edgetrack psf_sigma "
          f"{args.psf_sigma}, snr_threshold {args.snr_threshold}, linker {args.linker}")

    def edgetrack_run():
        tracker = Tracker(invert=True, max_distance=5.0, max_gap=4, window=3, linker=args.linker,
                          detect={"psf_sigma": args.psf_sigma, "snr_threshold": args.snr_threshold})
        for f in frames:
            tracker.push(f)
        return tracker.finish()

    def trackpy_run():
        f = tp.batch(frames, 11, minmass=20, invert=True, processes=1)
        return tp.link(f, 5, memory=3).rename(columns={"particle": "track_id"})

    edgetrack_run()  # warm-up (Numba cache)
    times_et, times_tp = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        et = edgetrack_run()
        times_et.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = trackpy_run()
        times_tp.append(time.perf_counter() - t0)
    fps_et = len(frames) / np.median(times_et)
    fps_tp = len(frames) / np.median(times_tp)
    m = link_metrics(ref, et, max_distance=1.5)
    print(f"| | edgetrack | trackpy |\n|---|---:|---:|")
    print(f"| frames/s (median of {args.repeats}) | {fps_et:.1f} | {fps_tp:.1f} |")
    print(f"| detections per frame | {len(et) / len(frames):.1f} | {len(ref) / len(frames):.1f} |")
    print(f"| tracks | {et.track_id.nunique()} | {ref.track_id.nunique()} |")
    print(f"\nspeed ratio edgetrack/trackpy: {fps_et / fps_tp:.1f}x")
    print(f"trackpy's detections found by edgetrack (within 1.5 px): {m['detection_recall']:.3f}; "
          f"edgetrack's found by trackpy: {m['detection_precision']:.3f}")
    print(f"trackpy's links reproduced by edgetrack: {m['recall']:.3f}; edgetrack's links also in trackpy: "
          f"{m['precision']:.3f}")


if __name__ == "__main__":
    main()
