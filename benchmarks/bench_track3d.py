"""3-D spot tracking against trackpy's 3-D locate + link on the same simulated movie, in one run.

    python benchmarks/bench_track3d.py                      # 100 stacks of 32 x 256 x 256, 300 spots, voxel 3:1
    python benchmarks/bench_track3d.py --frames 20          # a quick check

The movie: :func:`edgetrack.runtime.simulate.volumes.simulate_movie_3d` (voxel 0.3 x 0.1 x 0.1 um, PSF sigma
0.4 / 0.15 / 0.15 um, SNR 8, D 0.05 um^2/s at 0.1 s per stack: about 1 px rms step per axis). edgetrack:
``Tracker(ndim=3, z_scale=3)`` fed stack by stack through ``track_frames`` (the path of ``edgetrack track
--ndim 3``), linker lap, max_distance 5 px, max_gap 2. trackpy 0.7: ``locate`` on each stack (diameter 5 7 7,
minmass calibrated for its best detection F1 on another seed, as in ``bench_detect3d.py``), then ``link`` on
(z * 3, y, x) with search_range 5 and memory 1 (the same gap). Both are scored by
:func:`edgetrack.runtime.metrics.links.link_metrics` on (z * 3, y, x) within 2 px. Times are wall seconds of
the whole movie after a warm-up on 2 stacks; memory: the process RSS before, at the peak and after
edgetrack's run, and the bytes of one stack.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run_edgetrack(movie: np.ndarray, z_scale: float, psf: tuple[float, float, float]) -> tuple[pd.DataFrame, float, dict]:
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    def tracker() -> Tracker:
        return Tracker(ndim=3, z_scale=z_scale, max_distance=5.0, max_gap=2, linker="lap", detect={"psf_sigma": psf})

    warm = tracker()
    for _ in track_frames(warm, movie[:2]):
        pass
    warm.finish()
    peak = {"before": rss_mib(), "peak": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["peak"] = max(peak["peak"], rss_mib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    run = tracker()
    for _ in track_frames(run, movie):
        pass
    tracks = run.finish()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak["after"] = rss_mib()
    return tracks, seconds, peak


def run_trackpy(movie: np.ndarray, z_scale: float, diameter: tuple[int, int, int], minmass: float) -> tuple[pd.DataFrame, float]:
    import trackpy

    from bench_detect3d import trackpy_locate

    trackpy.quiet()
    for stack in movie[:2]:
        trackpy_locate(stack, diameter, minmass)
    start = time.perf_counter()
    parts = []
    for t, stack in enumerate(movie):
        found = trackpy_locate(stack, diameter, minmass)
        parts.append(found.assign(frame=t))
    found = pd.concat(parts, ignore_index=True)
    found["zs"] = found["z"] * z_scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linked = trackpy.link(found, 5.0, memory=1, pos_columns=["zs", "y", "x"])
    seconds = time.perf_counter() - start
    return linked.rename(columns={"particle": "track_id"})[["frame", "z", "y", "x", "track_id"]], seconds


def main() -> None:
    from bench_detect3d import calibrate_minmass

    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.simulate.volumes import simulate_movie_3d

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 256, 256], metavar=("Z", "Y", "X"))
    parser.add_argument("--spots", type=float, default=300.0)
    parser.add_argument("--snr", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    voxel, psf_um = (0.3, 0.1, 0.1), (0.4, 0.15, 0.15)
    z_scale = voxel[0] / voxel[2]
    psf = tuple(p / v for p, v in zip(psf_um, voxel))
    t0 = time.perf_counter()
    movie, truth = simulate_movie_3d(n_frames=args.frames, shape=tuple(args.shape), n_spots=args.spots, voxel_size=voxel,
                                     psf_sigma_um=psf_um, snr=args.snr, D=0.05, frame_interval=0.1, seed=args.seed)
    print(f"movie: {args.frames} stacks of {'x'.join(map(str, args.shape))} (voxel {voxel} um, {args.spots:g} spots, "
          f"SNR {args.snr:g}), {len(truth)} true points; simulated in {time.perf_counter() - t0:.1f} s", flush=True)
    calib = argparse.Namespace(shape=args.shape, spots=args.spots, voxel=list(voxel), psf=list(psf_um), snr=args.snr,
                               seed=args.seed, match_um=0.3)
    diameter = (5, 7, 7)
    minmass = calibrate_minmass(calib, np.array(voxel), diameter)
    scaled_truth = truth.assign(z=truth["z"] * z_scale)

    et_tracks, et_s, mem = run_edgetrack(movie, z_scale, psf)
    et = link_metrics(scaled_truth, et_tracks.assign(z=et_tracks["z"] * z_scale), max_distance=2.0)
    print(f"edgetrack: {args.frames / et_s:.1f} stacks/s ({1e3 * et_s / args.frames:.1f} ms/stack), link F1 "
          f"{et['f1']:.3f} (precision {et['precision']:.3f}, recall {et['recall']:.3f}), detection recall "
          f"{et['detection_recall']:.3f}, RMSE {et['rmse']:.3f} px; RSS {mem['before']:.0f} -> peak {mem['peak']:.0f} "
          f"-> {mem['after']:.0f} MiB (one stack is {movie[0].nbytes / 2**20:.1f} MiB)", flush=True)
    tp_tracks, tp_s = run_trackpy(movie, z_scale, diameter, minmass)
    tp = link_metrics(scaled_truth, tp_tracks.assign(z=tp_tracks["z"] * z_scale), max_distance=2.0)
    print(f"trackpy:   {args.frames / tp_s:.1f} stacks/s ({1e3 * tp_s / args.frames:.1f} ms/stack), link F1 "
          f"{tp['f1']:.3f} (precision {tp['precision']:.3f}, recall {tp['recall']:.3f}), detection recall "
          f"{tp['detection_recall']:.3f}, RMSE {tp['rmse']:.3f} px (diameter {diameter}, minmass {minmass:.1f})",
          flush=True)
    print(f"edgetrack / trackpy: {tp_s / et_s:.1f}x faster, link F1 {et['f1'] - tp['f1']:+.3f}")


if __name__ == "__main__":
    main()
