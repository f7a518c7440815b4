"""Spot detection: edgetrack.runtime.detect.spots against trackpy.locate on simulated movies.

For each SNR a 512x512 movie with 500 spots (psf_sigma 1.5 px) is simulated; both detectors run
on the same frames in the same process, frame by frame (interleaved, so load changes hit both).
Accuracy: one-to-one matching within 2 px against the truth (edgetrack.runtime.metrics.links: most pairs
first, then the smallest summed distance); recall, precision and the radial RMSE (px) of matched
pairs. Speed: median per-frame time after warm-up (JIT compile excluded), edgetrack's DataFrame
API (``detect_spots``) against ``trackpy.locate``; wall-clock by default, ``--clock cpu`` for the
CPU time of the calling thread (less sensitive to other processes on a shared machine).

trackpy settings: ``diameter`` (default 7, i.e. about 4.7 sigma), default separation, noise_size
and percentile, and ``minmass`` chosen per SNR to maximise trackpy's F1 on a separate calibration
movie (another seed), so trackpy runs at its best fixed setting. edgetrack runs with its defaults.

Usage: python benchmarks/bench_detect.py [--frames N] [--snr 3 5 10 20] [--quick] [--clock cpu]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd

from edgetrack.runtime.detect.config import DetectConfig

from edgetrack.runtime.detect.spots import detect_spots
from edgetrack.runtime.metrics.links import localization_metrics
from edgetrack.runtime.simulate.spots import simulate_movie

MAX_DISTANCE = 2.0  # px, matching radius


def score(truth: pd.DataFrame, dets: dict[int, np.ndarray]) -> dict[str, float]:
    """Recall, precision, F1 and radial RMSE (px) over all frames of ``dets`` ({frame: (n, 2) y, x}),
    by :func:`edgetrack.runtime.metrics.links.localization_metrics` (one-to-one within MAX_DISTANCE)."""
    frames = sorted(dets)
    table = pd.DataFrame({
        "frame": np.concatenate([np.full(len(dets[t]), t, dtype=np.int64) for t in frames]),
        "y": np.concatenate([dets[t][:, 0] for t in frames]),
        "x": np.concatenate([dets[t][:, 1] for t in frames]),
    })
    m = localization_metrics(truth[truth["frame"].isin(frames)], table, MAX_DISTANCE)
    return {k: float(m[k]) for k in ("recall", "precision", "f1", "rmse")}


def _trackpy_locate(frame: np.ndarray, diameter: int, minmass: float) -> pd.DataFrame:
    import trackpy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trackpy.locate(frame, diameter, minmass=minmass)


def calibrate_minmass(snr: float, diameter: int, frames: int, seed: int) -> float:
    """trackpy minmass maximising its F1 on a calibration movie with a different seed."""
    movie, truth = _movie(snr, frames, seed)
    located = [_trackpy_locate(movie[t], diameter, 0.0) for t in range(frames)]
    all_mass = np.concatenate([df["mass"].to_numpy() for df in located])
    best, best_f1 = 0.0, -1.0
    for q in np.linspace(0.0, 0.95, 39):
        mm = float(np.quantile(all_mass, q)) if len(all_mass) else 0.0
        dets = {t: df.loc[df["mass"] >= mm, ["y", "x"]].to_numpy() for t, df in enumerate(located)}
        f1 = score(truth, dets)["f1"]
        if f1 > best_f1:
            best, best_f1 = mm, f1
    return best


def _movie(snr: float, frames: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    return simulate_movie(n_frames=frames, shape=(512, 512), n_spots=500, snr=snr, psf_sigma=1.5,
                          seed=seed, D_range=(0.5, 2.0), p_blink_off=0.0)


def run_snr(snr: float, frames: int, diameter: int, seed: int, calib_frames: int, clock=time.perf_counter) -> list[dict]:
    minmass = calibrate_minmass(snr, diameter, calib_frames, seed + 1000)
    movie, truth = _movie(snr, frames, seed)
    config = DetectConfig(psf_sigma=1.5)
    detect_spots(movie[0], config)  # JIT warm-up (compiled or loaded from the cache)
    _trackpy_locate(movie[0], diameter, minmass)
    ours: dict[int, np.ndarray] = {}
    theirs: dict[int, np.ndarray] = {}
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for t in range(frames):
        frame = movie[t]
        t0 = clock()
        df = detect_spots(frame, config, frame_index=t)
        t1 = clock()
        tp = _trackpy_locate(frame, diameter, minmass)
        t2 = clock()
        t_ours.append(t1 - t0)
        t_theirs.append(t2 - t1)
        ours[t] = df[["y", "x"]].to_numpy()
        theirs[t] = tp[["y", "x"]].to_numpy()
    ms_ours = 1e3 * float(np.median(t_ours))
    ms_theirs = 1e3 * float(np.median(t_theirs))
    return [
        {"snr": snr, "method": "edgetrack", **score(truth, ours), "ms": ms_ours, "speedup": ms_theirs / ms_ours},
        {"snr": snr, "method": f"trackpy (d={diameter}, minmass={minmass:.0f})", **score(truth, theirs),
         "ms": ms_theirs, "speedup": 1.0},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per SNR (default 20)")
    parser.add_argument("--snr", type=float, nargs="+", default=[3.0, 5.0, 10.0, 20.0], help="SNR values")
    parser.add_argument("--quick", action="store_true", help="5 frames per SNR, 2 calibration frames")
    parser.add_argument("--diameter", type=int, default=7, help="trackpy diameter (odd, px; default 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="per-frame time: wall clock (default) or CPU time of this thread")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    frames = 5 if args.quick else args.frames
    calib = 2 if args.quick else 4
    rows: list[dict] = []
    for snr in args.snr:
        rows.extend(run_snr(snr, frames, args.diameter, args.seed, calib, clock))
    print(f"512x512, 500 spots, psf_sigma 1.5 px, {frames} frames per SNR, seed {args.seed}; "
          f"matching: one-to-one within {MAX_DISTANCE:g} px; RMSE radial, px; {args.clock} time")
    print()
    print("| SNR | method | recall | precision | RMSE (px) | ms/frame (median) | speed ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['snr']:g} | {r['method']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['rmse']:.3f} "
              f"| {r['ms']:.2f} | {r['speedup']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
