"""Speed against trackpy (issue 19): frames per second, link F1, latency and a per-stage profile, one run.

For each density (spots per 512x512 frame) one movie is simulated with the recipe of
``bench_tracking.py`` (SNR 10, PSF sigma 1.5 px, particles appear, leave and re-enter) but with
every particle at D = 1 px^2/frame, and tracked, in the same process and interleaved repeat by
repeat, by

* edgetrack ``Tracker.push`` frame by frame (one thread: detection, graph, scores, linking, commit),
  timed after a two-frame warm-up; every ``push`` call is timed on its own for the latency
  (push of frame t -> its return with the committed update of frame t - window + 1);
* edgetrack's pipeline, the path ``edgetrack track`` takes (``track_frames``: the next frames are
  detected on worker threads while the current one is linked; frames commit in order; the spot width
  measured on the first frame, its default since 2026-12-03, inside the timing);
* trackpy 0.7: ``trackpy.batch`` (locate) + ``trackpy.link`` with the settings that gave trackpy
  its best link F1 on a calibration movie of the same recipe (another seed), found by the sweep
  ``--sweep`` and written below in TRACKPY_SETTINGS; once with ``processes=1`` and once with
  ``processes=2`` (its own two-core path).

Speeds are medians over ``--repeats``; the ratios are taken within each repeat (same load for
both) and their median is printed. Link F1 against the simulator's truth (points matched within
2 px, :func:`edgetrack.runtime.metrics.links.link_metrics`). The profile comes from the
``Tracker.push`` runs (``Tracker.timings`` on): milliseconds per frame of each stage and of each
detection pass, medians over the repeats.

    python benchmarks/bench_speed.py                       # 100, 500, 2000 spots, 200 frames, 3 repeats
    python benchmarks/bench_speed.py --spots 500 --frames 50 --repeats 1   # a quick check
    python benchmarks/bench_speed.py --sweep               # re-derive TRACKPY_SETTINGS
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

SHAPE = (512, 512)
SNR = 10.0
D = 1.0  # px^2 / frame
MAX_DISTANCE = 6.0  # px, edgetrack's candidate radius
MAX_GAP = 2  # frames (trackpy memory = MAX_GAP - 1)
LINKER = "lap"
MATCH_DISTANCE = 2.0  # px, truth matching radius of the link F1

#: trackpy's best-F1 settings per density, from ``--sweep`` (calibration movie: seed 1, 40 frames).
TRACKPY_SETTINGS: dict[int, dict[str, float]] = {
    100: {"diameter": 5, "minmass": 80.0, "search_range": 6.0, "memory": 0},
    500: {"diameter": 5, "minmass": 40.0, "search_range": 5.0, "memory": 0},
    2000: {"diameter": 5, "minmass": 40.0, "search_range": 5.0, "memory": 0},
}
#: The grid of ``--sweep``: minmass as a fraction of the median trackpy mass of the true spots (rounded to
#: 10 counts); diameter 3 was tried too and finds nothing useful (link F1 0 at every density).
SWEEP = {"diameter": (5, 7), "minmass_fraction": (0.1, 0.25, 0.5), "search_range": (4.0, 5.0, 6.0),
         "memory": (0, 1)}


def simulate(n_spots: int, frames: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    from edgetrack.runtime.simulate.spots import simulate_movie

    return simulate_movie(n_frames=frames, shape=SHAPE, n_spots=n_spots, snr=SNR, D_range=(D, D), seed=seed)


def link_f1(truth: pd.DataFrame, tracks: pd.DataFrame) -> float:
    from edgetrack.runtime.metrics.links import link_metrics

    return float(link_metrics(truth, tracks, max_distance=MATCH_DISTANCE)["f1"])


def tracker_options() -> dict:
    return {"max_distance": MAX_DISTANCE, "max_gap": MAX_GAP, "linker": LINKER}


def warm_up(movie: np.ndarray) -> None:
    """Compile / load every Numba kernel outside the timings (both paths)."""
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(**tracker_options())
    for frame in movie[:3]:
        tracker.push(frame)
    tracker.finish()
    for _ in track_frames(Tracker(**tracker_options()), movie[:3]):
        pass


def run_push(movie: np.ndarray) -> dict:
    """``Tracker.push`` frame by frame: seconds, per-push latencies (s), tracks, and the profile
    (``Tracker.timings``: some 30 clock reads per frame, a few microseconds)."""
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(**tracker_options())
    tracker.timings = {}
    latency = np.empty(len(movie))
    t0 = time.perf_counter()
    for i, frame in enumerate(movie):
        s = time.perf_counter()
        tracker.push(frame)
        latency[i] = time.perf_counter() - s
    tracks = tracker.finish()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "latency": latency, "tracks": tracks, "timings": tracker.timings}


def run_pipeline(movie: np.ndarray) -> dict:
    """The path ``edgetrack track`` takes (``track_frames``, default prefetch and detection threads; the spot
    width measured on the first frame, ``psf_sigma="auto"``, as ``edgetrack track`` does by default)."""
    from edgetrack.runtime.stream.pipeline import track_frames
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(**tracker_options(), detect={"psf_sigma": "auto"})
    t0 = time.perf_counter()
    for _ in track_frames(tracker, movie):
        pass
    tracks = tracker.finish()
    return {"seconds": time.perf_counter() - t0, "tracks": tracks}


def trackpy_locate(movie: np.ndarray, diameter: int, minmass: float, processes: int = 1) -> pd.DataFrame:
    import trackpy as tp

    tp.quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.batch(movie, diameter, minmass=minmass, processes=processes)


def trackpy_link(features: pd.DataFrame, search_range: float, memory: int) -> pd.DataFrame | None:
    import trackpy as tp

    try:
        linked = tp.link(features, search_range, memory=memory, adaptive_stop=0.5 * search_range, adaptive_step=0.9)
    except Exception:  # noqa: BLE001 - trackpy gives up on oversized subnetworks: no result at that setting
        return None
    return linked.rename(columns={"particle": "track_id"})


def run_trackpy(movie: np.ndarray, settings: dict, processes: int) -> dict:
    t0 = time.perf_counter()
    features = trackpy_locate(movie, int(settings["diameter"]), float(settings["minmass"]), processes)
    t1 = time.perf_counter()
    linked = trackpy_link(features, float(settings["search_range"]), int(settings["memory"]))
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "locate_seconds": t1 - t0, "link_seconds": t2 - t1, "tracks": linked}


def true_spot_mass(movie: np.ndarray, truth: pd.DataFrame, diameter: int) -> float:
    """Median trackpy mass of the true spots of frame 0 (the scale of the minmass sweep)."""
    import trackpy as tp
    from scipy.spatial import cKDTree

    f = tp.locate(movie[0], diameter, minmass=0)
    t0 = truth[truth.frame == 0]
    d, i = cKDTree(f[["y", "x"]].to_numpy()).query(t0[["y", "x"]].to_numpy(), distance_upper_bound=1.5)
    ok = np.isfinite(d)
    return float(np.median(f["mass"].to_numpy()[i[ok]])) if ok.any() else 0.0


def sweep(n_spots: int, frames: int) -> tuple[dict, pd.DataFrame]:
    """trackpy's link F1 over the SWEEP grid on a calibration movie (seed 1); the best setting and all rows."""
    movie, truth = simulate(n_spots, frames, seed=1)
    rows = []
    for diameter in SWEEP["diameter"]:
        scale = true_spot_mass(movie, truth, diameter)
        for fraction in SWEEP["minmass_fraction"]:
            minmass = round(fraction * scale, -1)
            features = trackpy_locate(movie, diameter, minmass)
            for search_range, memory in itertools.product(SWEEP["search_range"], SWEEP["memory"]):
                linked = trackpy_link(features, search_range, memory)
                f1 = link_f1(truth, linked) if linked is not None else float("nan")
                rows.append({"diameter": diameter, "minmass": minmass, "search_range": search_range,
                             "memory": memory, "f1": f1})
                print(f"  sweep {n_spots}: {rows[-1]}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    best = table.loc[table["f1"].idxmax()]
    settings = {"diameter": int(best["diameter"]), "minmass": float(best["minmass"]),
                "search_range": float(best["search_range"]), "memory": int(best["memory"])}
    return settings, table


PROFILE_STAGES = ("detect", "graph", "score", "link", "commit")


def profile_rows(timings: dict[str, float], frames: int, total: float) -> dict[str, float]:
    """ms per frame of each stage, each detection pass, and what the stages leave (validation, sorting)."""
    out = {k: 1000.0 * timings.get(k, 0.0) / frames for k in PROFILE_STAGES}
    out["other"] = 1000.0 * total / frames - sum(out.values())
    passes = sorted((k for k in timings if k.startswith("detect.")), key=lambda k: -timings[k])
    for k in passes:
        out[k] = 1000.0 * timings[k] / frames
    return out


def measure(n_spots: int, frames: int, repeats: int, seed: int, two_process_trackpy: bool) -> tuple[dict, dict]:
    movie, truth = simulate(n_spots, frames, seed)
    settings = TRACKPY_SETTINGS.get(n_spots, TRACKPY_SETTINGS[min(TRACKPY_SETTINGS, key=lambda k: abs(k - n_spots))])
    warm_up(movie)
    trackpy_locate(movie[:2], int(settings["diameter"]), float(settings["minmass"]))  # trackpy's numba, if any
    runs: dict[str, list] = {"push": [], "pipe": [], "tp1": [], "tp2": []}
    f1: dict[str, float] = {}
    latency, profiles = [], []
    for r in range(repeats):
        push = run_push(movie)
        pipe = run_pipeline(movie)
        tp1 = run_trackpy(movie, settings, processes=1)
        runs["push"].append(push["seconds"])
        runs["pipe"].append(pipe["seconds"])
        runs["tp1"].append(tp1["seconds"])
        latency.append(push["latency"])
        profiles.append(profile_rows(push["timings"], frames, push["seconds"]))
        if r == 0:
            f1["push"] = link_f1(truth, push["tracks"])
            f1["points"] = len(push["tracks"])
            f1["pipe"] = link_f1(truth, pipe["tracks"])
            f1["tp"] = link_f1(truth, tp1["tracks"]) if tp1["tracks"] is not None else float("nan")
            runs["tp_locate"] = [tp1["locate_seconds"]]
            runs["tp_link"] = [tp1["link_seconds"]]
        if two_process_trackpy:
            runs["tp2"].append(run_trackpy(movie, settings, processes=2)["seconds"])
        print(f"  {n_spots} spots, repeat {r + 1}/{repeats}: push {frames / push['seconds']:.1f} fps, "
              f"pipeline {frames / pipe['seconds']:.1f}, trackpy {frames / tp1['seconds']:.1f}"
              + (f", trackpy x2 {frames / runs['tp2'][-1]:.1f}" if two_process_trackpy else ""),
              file=sys.stderr, flush=True)
    lat = np.concatenate(latency) * 1000.0
    med = {k: float(np.median(v)) for k, v in runs.items() if v}
    row = {
        "spots": n_spots, "frames": frames,
        "push_fps": frames / med["push"], "pipe_fps": frames / med["pipe"], "tp_fps": frames / med["tp1"],
        "push/tp": float(np.median(np.array(runs["tp1"]) / np.array(runs["push"]))),
        "pipe/tp": float(np.median(np.array(runs["tp1"]) / np.array(runs["pipe"]))),
    }
    if two_process_trackpy:
        row["tp2_fps"] = frames / med["tp2"]
        row["pipe/tp2"] = float(np.median(np.array(runs["tp2"]) / np.array(runs["pipe"])))
    row.update({"et_f1": f1["push"], "pipe_f1": f1["pipe"], "tp_f1": f1["tp"],
                "lat_p50_ms": float(np.percentile(lat, 50)), "lat_p99_ms": float(np.percentile(lat, 99)),
                "lat_max_ms": float(lat.max()),
                "tp_locate_ms": 1000.0 * med["tp_locate"] / frames, "tp_link_ms": 1000.0 * med["tp_link"] / frames})
    prof_row = {"spots": n_spots, "push_ms": 1000.0 * med["push"] / frames, "spots_per_frame": f1["points"] / frames}
    prof_row.update(pd.DataFrame(profiles).median().to_dict())
    return row, prof_row


def markdown(table: pd.DataFrame) -> str:
    try:
        return table.to_markdown(index=False, floatfmt=".3g")
    except ImportError:
        return table.to_string(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spots", type=int, nargs="+", default=[100, 500, 2000], help="densities (spots per frame)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-trackpy-2", action="store_true", help="skip trackpy.batch(processes=2)")
    parser.add_argument("--sweep", action="store_true", help="re-derive trackpy's best settings and stop")
    parser.add_argument("--sweep-frames", type=int, default=40)
    args = parser.parse_args()

    if args.sweep:
        for n in args.spots:
            settings, _ = sweep(n, args.sweep_frames)
            print(f"{n}: {settings},")
        return
    rows, profiles = [], []
    for n in args.spots:
        row, prof = measure(n, args.frames, args.repeats, args.seed, not args.no_trackpy_2)
        rows.append(row)
        profiles.append(prof)
    print(f"\n{args.frames} frames of {SHAPE[0]}x{SHAPE[1]}, SNR {SNR:g}, D {D:g} px^2/frame; edgetrack linker "
          f"{LINKER}, max_distance {MAX_DISTANCE:g}, max_gap {MAX_GAP}; medians of {args.repeats} repeats; "
          f"cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print("trackpy settings: " + "; ".join(f"{n}: {TRACKPY_SETTINGS.get(n)}" for n in args.spots) + "\n")
    print(markdown(pd.DataFrame(rows)))
    print("\nProfile (Tracker.push, ms per frame, medians of the repeats):\n")
    print(markdown(pd.DataFrame(profiles).set_index("spots").T.reset_index().rename(columns={"index": "stage"})))


if __name__ == "__main__":
    main()
