"""The spot width measured on the frame (``psf_sigma="auto"``) against the fixed 1.5 px default.

    python benchmarks/bench_psf_auto.py [--frames 40] [--seed 0] [--andi-raw /tmp/andi-bench/raw_seed11_fovs2]

1. The estimate on simulated frames (512 x 512, 300 spots, SNR 6) rendered with spot sigmas from 0.8 to 2.5 px.
2. Link F1 of ``edgetrack.track`` with ``detect={"psf_sigma": 1.5}`` and with ``"auto"``, same movies, same run:
   spot sigma 1.0 / 1.5 / 2.2 px x 100 / 500 spots, 512 x 512, ``--frames`` frames, D = 1 px^2/frame.
3. With ``--andi-raw`` (a folder rendered by ``bench_andi_video.py``): the detector's recall on the AnDi
   challenge's videos by the distance to the nearest other particle, fixed 1.5 px against the width measured
   on each video's first frame (matches within 1 px, one-to-one, every other frame).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

BINS = (0.0, 1.5, 2.5, 3.5, 5.0, 8.0, np.inf)


def estimates(seed: int) -> None:
    from edgetrack.runtime.detect.psf import estimate_psf_sigma
    from edgetrack.runtime.simulate.spots import simulate_movie

    print("1. estimate on one frame (512 x 512, 300 spots, SNR 6)")
    print("| rendered sigma px | measured px | spots fitted | IQR px | ms |")
    print("|---:|---:|---:|---:|---:|")
    for sigma in (0.8, 1.0, 1.5, 2.0, 2.5):
        movie, _ = simulate_movie(n_frames=1, shape=(512, 512), n_spots=300, snr=6.0, psf_sigma=sigma, seed=seed)
        estimate_psf_sigma(movie[0])  # compile
        start = time.perf_counter()
        est = estimate_psf_sigma(movie[0])
        ms = 1e3 * (time.perf_counter() - start)
        print(f"| {sigma:g} | {est.sigma:.3f} | {est.n_spots} | {est.spread:.3f} | {ms:.0f} |", flush=True)


def link_f1(frames: int, seed: int) -> None:
    import edgetrack
    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.simulate.spots import simulate_movie

    print(f"\n2. link F1, 512 x 512, {frames} frames, SNR 6, D = 1")
    print("| spot sigma px | spots | fixed 1.5 px | auto | measured px |")
    print("|---:|---:|---:|---:|---:|")
    for sigma in (1.0, 1.5, 2.2):
        for n in (100, 500):
            movie, truth = simulate_movie(n_frames=frames, shape=(512, 512), n_spots=n, snr=6.0, psf_sigma=sigma,
                                          D_range=(1.0, 1.0), seed=seed + int(10 * sigma) + n)
            f1 = {}
            for p in (1.5, "auto"):
                f1[p] = link_metrics(truth, edgetrack.track(movie, detect={"psf_sigma": p}), max_distance=2.0)["f1"]
            tracker = edgetrack.Tracker(detect={"psf_sigma": "auto"})
            tracker.measure_psf(movie[0])
            print(f"| {sigma:g} | {n} | {f1[1.5]:.4f} | {f1['auto']:.4f} | {tracker.detect_config.psf_sigma:.3f} |",
                  flush=True)


def andi_recall(raw: Path) -> None:
    import tifffile
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    from edgetrack.runtime.detect.config import DetectConfig
    from edgetrack.runtime.detect.psf import estimate_psf_sigma
    from edgetrack.runtime.detect.spots import detect_spots_array

    hits = {k: np.zeros(len(BINS) - 1) for k in ("fixed", "auto")}
    total = np.zeros(len(BINS) - 1)
    false = {"fixed": 0, "auto": 0}
    sigmas = []
    for video in sorted(raw.glob("videos_exp_*_fov_*.tiff")):
        with tifffile.TiffFile(video) as tif:
            movie = np.stack([np.squeeze(p.asarray()) for p in tif.pages][1:]).astype(np.float32)
        trajs = pd.read_csv(raw / video.name.replace("videos_", "trajs_").replace(".tiff", ".csv"))
        auto = estimate_psf_sigma(movie[0]).sigma
        sigmas.append(auto)
        configs = {"fixed": DetectConfig(psf_sigma=1.5), "auto": DetectConfig(psf_sigma=auto)}
        first = trajs[trajs["frame"] == 0][["x", "y"]].to_numpy()
        spots = detect_spots_array(movie[0], configs["auto"])[:, :2]
        shifts, counts = np.unique(np.round((spots[:, None] - first[None]).reshape(-1, 2)), axis=0, return_counts=True)
        shift = shifts[counts.argmax()]  # the video is an integer crop of the simulated box
        for t in range(0, len(movie), 2):
            truth = trajs[trajs["frame"] == t][["x", "y"]].to_numpy() + shift
            inside = np.all((truth >= 0) & (truth < movie.shape[1:]), axis=1)
            truth = truth[inside]
            if len(truth) < 2:
                continue
            nearest = cKDTree(truth).query(truth, k=2)[0][:, 1]
            k = np.digitize(nearest, BINS) - 1
            total += np.bincount(k, minlength=len(BINS) - 1)[: len(BINS) - 1]
            for name, cfg in configs.items():
                found = detect_spots_array(movie[t], cfg)[:, :2]
                d = np.linalg.norm(truth[:, None] - found[None], axis=2)
                d[d > 1.0] = 1e6
                r, c = linear_sum_assignment(d)
                ok = np.zeros(len(truth), bool)
                ok[r[d[r, c] < 1.0]] = True
                false[name] += len(found) - int(ok.sum())
                hits[name] += np.bincount(k[ok], minlength=len(BINS) - 1)[: len(BINS) - 1]
    print(f"\n3. recall on the AnDi videos of {raw} (measured sigma per video: "
          f"{min(sigmas):.2f}-{max(sigmas):.2f} px)")
    heads = [f"{BINS[i]:g}-{BINS[i + 1]:g} px" for i in range(len(BINS) - 1)]
    print("| detector | " + " | ".join(heads) + " | all | false |")
    print("|---|" + "---:|" * (len(heads) + 2))
    print("| particles | " + " | ".join(str(int(v)) for v in total) + f" | {int(total.sum())} | |")
    for name in ("fixed", "auto"):
        rec = hits[name] / np.maximum(total, 1)
        print(f"| {'fixed 1.5 px' if name == 'fixed' else 'auto'} | " + " | ".join(f"{v:.3f}" for v in rec)
              + f" | {hits[name].sum() / total.sum():.3f} | {false[name]} |")


def crowded(frames: int) -> None:
    """bench_speed.py's movies (1.5 px spots, 100 / 500 / 2,000 per frame): link F1 with the fixed width,
    with auto as shipped (a measure within KEEP_WITHIN of the guess keeps it), and with that band off."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_speed

    from edgetrack.runtime.detect import psf
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    print(f"\n4. crowded fields, bench_speed's movies ({frames} frames, seed 0)")
    print("| spots | measured px | fixed 1.5 px | auto (shipped) | auto, band off |")
    print("|---:|---:|---:|---:|---:|")
    shipped = psf.KEEP_WITHIN
    for n in (100, 500, 2000):
        movie, truth = bench_speed.simulate(n, frames, 0)
        row = {}
        for name, detect, band in (("fixed", {"psf_sigma": 1.5}, shipped), ("auto", {"psf_sigma": "auto"}, shipped),
                                   ("off", {"psf_sigma": "auto"}, 0.0)):
            psf.KEEP_WITHIN = band
            try:
                tracker = Tracker(**bench_speed.tracker_options(), detect=detect)
                for _ in track_frames(tracker, movie):
                    pass
                tracks = tracker.finish()
            finally:
                psf.KEEP_WITHIN = shipped
            row[name] = bench_speed.link_f1(truth, tracks)
            if name == "off":
                row["sigma"] = tracker.psf_estimate.sigma
        print(f"| {n} | {row['sigma']:.3f} | {row['fixed']:.4f} | {row['auto']:.4f} | {row['off']:.4f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--andi-raw", type=Path, default=None,
                        help="a raw_seed*_fovs* folder of bench_andi_video.py (videos + trajectories)")
    parser.add_argument("--crowded-frames", type=int, default=0,
                        help="also run bench_speed's movies (100-2,000 spots) for this many frames, band on and off")
    args = parser.parse_args(argv)
    estimates(args.seed)
    link_f1(args.frames, args.seed)
    if args.andi_raw is not None:
        andi_recall(args.andi_raw)
    if args.crowded_frames:
        crowded(args.crowded_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
