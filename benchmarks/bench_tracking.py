"""End-to-end tracking against trackpy on simulated movies: link F1 and frames per second.

For each density (spots per 512x512 frame) one movie is simulated (D 0.5-2 px^2/frame, SNR 10, PSF
sigma 1.5 px) and tracked by

* edgetrack: ``Tracker.push`` frame by frame (detection + graph + linking), timed after a one-frame
  warm-up, and the ``edgetrack track`` command on the same movie written as a TIFF (wall time of the
  whole process: start-up, reading, writing the CSV);
* trackpy: ``trackpy.batch`` (locate, diameter 7) then ``trackpy.link`` (search_range = max_distance,
  memory = max_gap - 1), with minmass set to half the median mass trackpy measures on the true spots
  of the first frame (a truth-informed setting, generous to trackpy).

Both are scored with :func:`edgetrack.runtime.metrics.links.link_metrics` against the simulator's truth.
``speedup`` compares the two on one core. With ``--two-cores`` both also get two: edgetrack's prefetch
pipeline (``track_frames``: the next frames are detected in a worker thread while this one is linked,
the path ``edgetrack track`` takes) against ``trackpy.batch(processes=2)`` plus ``trackpy.link``
(``speedup_2cores``).

    python benchmarks/bench_tracking.py --spots 100 500 2000 --frames 100 --two-cores
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def run_edgetrack(movie: np.ndarray, **options) -> tuple[pd.DataFrame, float]:
    from edgetrack.runtime.stream.tracker import Tracker

    warm = Tracker(**options)  # compile / load the Numba cache outside the timing
    warm.push(movie[0])
    warm.push(movie[1])
    warm.finish()
    tracker = Tracker(**options)
    t0 = time.perf_counter()
    for frame in movie:
        tracker.push(frame)
    tracks = tracker.finish()
    return tracks, time.perf_counter() - t0


def run_edgetrack_pipeline(movie: np.ndarray, **options) -> tuple[pd.DataFrame, float]:
    """The path ``edgetrack track`` takes: detection of the next frames in a worker thread while linking."""
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    list(track_frames(Tracker(**options), movie[:2]))  # warm-up outside the timing
    tracker = Tracker(**options)
    t0 = time.perf_counter()
    for _ in track_frames(tracker, movie, prefetch=2):
        pass
    tracks = tracker.finish()
    return tracks, time.perf_counter() - t0


def run_edgetrack_cli(movie: np.ndarray, tmp: Path, **options) -> tuple[pd.DataFrame, float]:
    import tifffile

    path = tmp / "movie.tif"
    tifffile.imwrite(path, movie)
    out = tmp / "tracks.csv"
    cmd = [sys.executable, "-m", "edgetrack.runtime.cli.app", "track", str(path), "--out", str(out), "--quiet",
           "--max-distance", str(options["max_distance"]), "--max-gap", str(options["max_gap"]),
           "--linker", options["linker"]]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return pd.read_csv(out), time.perf_counter() - t0


def trackpy_minmass(movie: np.ndarray, truth: pd.DataFrame, diameter: int) -> float:
    import trackpy as tp

    f = tp.locate(movie[0], diameter, minmass=0)
    t0 = truth[truth.frame == 0]
    from scipy.spatial import cKDTree

    d, i = cKDTree(f[["y", "x"]].to_numpy()).query(t0[["y", "x"]].to_numpy(), distance_upper_bound=1.5)
    ok = np.isfinite(d)
    return 0.5 * float(np.median(f["mass"].to_numpy()[i[ok]])) if ok.any() else 0.0


def run_trackpy(movie: np.ndarray, minmass: float, diameter: int, search_range: float, memory: int,
                processes: int = 1):
    import trackpy as tp

    tp.quiet()
    t0 = time.perf_counter()
    f = tp.batch(movie, diameter, minmass=minmass, processes=processes)
    t1 = time.perf_counter()
    try:
        linked = tp.link(f, search_range, memory=memory, adaptive_stop=0.5 * search_range, adaptive_step=0.9)
        status = "ok"
    except Exception as exc:  # trackpy gives up on oversized subnetworks
        linked, status = None, f"failed: {type(exc).__name__}"
    t2 = time.perf_counter()
    if linked is not None:
        linked = linked.rename(columns={"particle": "track_id"})
    return linked, t1 - t0, t2 - t1, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spots", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--snr", type=float, default=10.0)
    parser.add_argument("--linker", default="lap")
    parser.add_argument("--max-distance", type=float, default=6.0)
    parser.add_argument("--max-gap", type=int, default=2)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the edgetrack command")
    parser.add_argument("--two-cores", action="store_true",
                        help="also time both on two cores: edgetrack's prefetch pipeline (as `edgetrack track` runs) "
                             "against trackpy.batch(processes=2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.simulate.spots import simulate_movie

    rows = []
    for n in args.spots:
        movie, truth = simulate_movie(n_frames=args.frames, shape=(512, 512), n_spots=n, snr=args.snr,
                                      D_range=(0.5, 2.0), seed=args.seed)
        opts = dict(max_distance=args.max_distance, max_gap=args.max_gap, linker=args.linker)
        tracks, t_et = run_edgetrack(movie, **opts)
        m_et = link_metrics(truth, tracks, max_distance=2.0)
        row = {"spots": n, "frames": args.frames}
        row.update({"et_f1": m_et["f1"], "et_jaccard": m_et["jaccard"], "et_fps": args.frames / t_et})
        if args.two_cores:
            pipe_tracks, t_pipe = run_edgetrack_pipeline(movie, **opts)
            row["et_pipe_f1"] = link_metrics(truth, pipe_tracks, max_distance=2.0)["f1"]
            row["et_pipe_fps"] = args.frames / t_pipe
        if not args.no_cli:
            with tempfile.TemporaryDirectory() as tmp:
                cli_tracks, t_cli = run_edgetrack_cli(movie, Path(tmp), **opts)
            row["et_cli_fps"] = args.frames / t_cli
        diameter = 7
        minmass = trackpy_minmass(movie, truth, diameter)
        linked, t_loc, t_link, status = run_trackpy(movie, minmass, diameter, args.max_distance, args.max_gap - 1)
        row["tp_status"] = status
        if linked is not None:
            m_tp = link_metrics(truth, linked, max_distance=2.0)
            row.update({"tp_f1": m_tp["f1"], "tp_jaccard": m_tp["jaccard"]})
        row["tp_fps"] = args.frames / (t_loc + t_link)
        row["tp_locate_ms"] = 1000 * t_loc / args.frames
        row["speedup"] = row["et_fps"] / row["tp_fps"]
        if args.two_cores:
            _, t_loc2, t_link2, _ = run_trackpy(movie, minmass, diameter, args.max_distance, args.max_gap - 1,
                                                processes=2)
            row["tp2_fps"] = args.frames / (t_loc2 + t_link2)
            row["speedup_2cores"] = row["et_pipe_fps"] / row["tp2_fps"]
        rows.append(row)
        print(row, file=sys.stderr, flush=True)

    table = pd.DataFrame(rows)
    print(f"\nedgetrack linker={args.linker}, max_distance={args.max_distance}, max_gap={args.max_gap}, "
          f"SNR {args.snr}, {args.frames} frames of 512x512, cpu_count={os.cpu_count()}\n")
    print(table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table.to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
