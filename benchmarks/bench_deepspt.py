"""DeepSPT temporal segmentation: per-frame accuracy and F1 on held-out simulated tracks against a
rolling-MSD baseline, calibration, and the time per 200-frame track in batch.

Run:  nice -n 19 python benchmarks/bench_deepspt.py [--ndim 2 3] [--tracks 2000] [--timing-tracks 1000]

Accuracy: ``--tracks`` fresh heterogeneous tracks per dimension from
:func:`edgetrack.training.deepspt.sim.simulate_tracks` (default parameters, DeepSPT's generator: 80 % switching,
5-600 points, D over four decades, localisation error sqrt(D)/Q with Q in [1, 16]) drawn
from a seed stream the training never used. The exported ensemble (ONNX Runtime, through
:func:`edgetrack.runtime.motion.deepspt.segment_arrays`) is scored per frame: pooled accuracy, macro F1
over the four modes, F1 per mode, mean per-track accuracy and the expected calibration error
of its probabilities. Baselines: the rolling-MSD classifier of
:mod:`edgetrack.training.deepspt.baseline` with DeepSPT's settings (20-point window, alpha
thresholds 0.7 / 1.3) and with its window and thresholds tuned for accuracy on ``--tune-tracks``
separate tracks. Secondary test sets narrow one range of the simulator each (low localisation
error, small confinement, strong drift, no switches, long tracks) to show where the errors come from.

Speed: ``--timing-tracks`` tracks of exactly 200 points, segmented in one call (batched by
length; ONNX Runtime's default threads, and one thread), best and median of ``--repeats`` calls,
per track; also the
DataFrame path :func:`segment_tracks` (sorting, gap check, output table included). The 1-minute
load average of the machine is printed with it (this machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import pandas as pd

from edgetrack.runtime.motion.deepspt import segment_arrays, segment_tracks
from edgetrack.runtime.models.onnx import load_model
from edgetrack.training.deepspt.baseline import RollingMSD, rolling_msd_modes, tune_rolling_msd
from edgetrack.training.deepspt.evaluate import expected_calibration_error, frame_scores
from edgetrack.training.deepspt.sim import SimConfig, simulate_tracks
from edgetrack.training.deepspt.train import seed_stream

BENCH_SEED = 20240917  # seed stream of the benchmark tracks (training uses the model's own seed)


def _labels(data) -> list[np.ndarray]:
    return [data.labels[a:b] for a, b in zip(data.offsets[:-1], data.offsets[1:])]


#: Track-length bins (points, [low, high)) of the accuracy breakdown.
LENGTH_BINS: tuple[tuple[int, int], ...] = ((5, 50), (50, 100), (100, 200), (200, 400), (400, 601))


def accuracy_by_length(truth: list[np.ndarray], pred: list[np.ndarray]) -> list[dict]:
    """Per-frame accuracy and directed recall of the tracks in each of :data:`LENGTH_BINS`."""
    out = []
    for lo, hi in LENGTH_BINS:
        sel = [i for i, t in enumerate(truth) if lo <= len(t) < hi]
        if not sel:
            continue
        t = np.concatenate([truth[i] for i in sel])
        p = np.concatenate([pred[i] for i in sel])
        directed = t == 1
        out.append({"lengths": f"{lo}-{hi - 1}", "tracks": len(sel), "frames": int(t.size),
                    "accuracy": float(np.mean(t == p)),
                    "directed_recall": float(np.mean(p[directed] == 1)) if directed.any() else float("nan")})
    return out


def accuracy_rows(ndim: int, n_tracks: int, n_tune: int) -> list[dict]:
    test = simulate_tracks(n_tracks, SimConfig(ndim=ndim), seed_stream(BENCH_SEED, ndim, 0))
    tune = simulate_tracks(n_tune, SimConfig(ndim=ndim), seed_stream(BENCH_SEED, ndim, 1))
    truth = _labels(test)
    tracks = test.tracks()
    rows = []
    t0 = time.perf_counter()
    probs = segment_arrays(tracks)
    elapsed = time.perf_counter() - t0
    s = frame_scores(truth, [p.argmax(axis=1) for p in probs])
    s["ece"] = expected_calibration_error(np.concatenate(probs), test.labels)
    rows.append({"method": f"DeepSPT ensemble (deepspt_{ndim}d, ONNX)", **s, "seconds": elapsed,
                 "by_length": accuracy_by_length(truth, [p.argmax(axis=1) for p in probs])})
    default = RollingMSD()
    t0 = time.perf_counter()
    pred = rolling_msd_modes(tracks, default)
    rows.append({"method": "rolling MSD, DeepSPT settings (w 20, 0.7 / 1.3)", **frame_scores(truth, pred),
                 "seconds": time.perf_counter() - t0})
    best, tune_acc = tune_rolling_msd(tune.tracks(), _labels(tune))
    t0 = time.perf_counter()
    pred = rolling_msd_modes(tracks, best)
    rows[0]["tuned_baseline"] = best
    rows.append({"method": (f"rolling MSD, tuned (w {best.window}, {best.alpha_restricted} / {best.alpha_directed}, "
                            f"curvature {best.curvature})"), **frame_scores(truth, pred),
                 "seconds": time.perf_counter() - t0, "tune_accuracy": tune_acc})
    return rows


#: Secondary test sets (same simulator, one range narrowed each) to show where the errors come from.
REGIMES: dict[str, dict] = {
    "low localisation error (Q 4-16)": {"Q_range": (4.0, 16.0)},
    "small confinement (axes 0.05-0.1)": {"confinement_size_range": (0.05, 0.1)},
    "strong drift (N_v 5-100)": {"drift_length_range": (5.0, 100.0)},
    "homogeneous tracks (no switches)": {"switching_fraction": 0.0},
    "long tracks (300-600 points)": {"min_length": 300},
    "tracks of 20-400 points (the earlier test range)": {"min_length": 20, "max_length": 400},
}


def regime_rows(ndim: int, n_tracks: int, baseline: RollingMSD) -> list[dict]:
    rows = []
    for k, (name, overrides) in enumerate(REGIMES.items()):
        data = simulate_tracks(n_tracks, SimConfig(ndim=ndim, **overrides), seed_stream(BENCH_SEED, ndim, 10 + k))
        truth = _labels(data)
        probs = segment_arrays(data.tracks())
        s = frame_scores(truth, [p.argmax(axis=1) for p in probs])
        b = frame_scores(truth, rolling_msd_modes(data.tracks(), baseline))
        rows.append({"regime": name, "accuracy": s["accuracy"], "macro_f1": s["macro_f1"],
                     "baseline_accuracy": b["accuracy"], "baseline_macro_f1": b["macro_f1"]})
    return rows


def timing(ndim: int, n_tracks: int, repeats: int) -> dict:
    data = simulate_tracks(n_tracks, SimConfig(ndim=ndim, min_length=200, max_length=200),
                           seed_stream(BENCH_SEED, ndim, 2))
    tracks = data.tracks()
    model = load_model(f"deepspt_{ndim}d")
    out = {"ndim": ndim, "tracks": n_tracks, "provider": model.provider, "cpu_count": os.cpu_count()}
    for label, threads in (("default_threads", None), ("one_thread", 1)):
        segment_arrays(tracks[:16], threads=threads)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            segment_arrays(tracks, threads=threads)
            times.append(time.perf_counter() - t0)
        out[f"{label}_best_ms_per_track"] = 1e3 * min(times) / n_tracks
        out[f"{label}_median_ms_per_track"] = 1e3 * statistics.median(times) / n_tracks
    cols = ("y", "x") if ndim == 2 else ("z", "y", "x")
    table = pd.DataFrame(data.positions, columns=list(cols))
    table.insert(0, "frame", np.concatenate([np.arange(200)] * n_tracks))
    table.insert(0, "track_id", np.repeat(np.arange(n_tracks), 200))
    df_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        segment_tracks(table)
        df_times.append(time.perf_counter() - t0)
    out["dataframe_best_ms_per_track"] = 1e3 * min(df_times) / n_tracks
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ndim", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--tune-tracks", type=int, default=500)
    parser.add_argument("--regime-tracks", type=int, default=500)
    parser.add_argument("--timing-tracks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    results = {"accuracy": {}, "regimes": {}, "timing": {}}
    for ndim in args.ndim:
        rows = accuracy_rows(ndim, args.tracks, args.tune_tracks)
        results["accuracy"][ndim] = rows
        print(f"\n{ndim}-D, {args.tracks} test tracks ({rows[0]['n_frames']} frames)\n")
        print("| method | accuracy | macro F1 | mean track acc. | F1 normal / directed / confined / subdiff. | ECE |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            f1 = " / ".join(f"{v:.3f}" for v in r["f1"].values())
            ece = f"{r['ece']:.3f}" if "ece" in r else "-"
            print(f"| {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['mean_track_accuracy']:.3f} "
                  f"| {f1} | {ece} |")
        print("\nconfusion (rows true, columns predicted) of the ensemble:", rows[0]["confusion"])
        print("\n| track length (points) | tracks | frames | ensemble accuracy | directed recall |")
        print("|---|---|---|---|---|")
        for b in rows[0]["by_length"]:
            print(f"| {b['lengths']} | {b['tracks']} | {b['frames']} | {b['accuracy']:.3f} | "
                  f"{b['directed_recall']:.3f} |")
        regimes = regime_rows(ndim, args.regime_tracks, rows[0].pop("tuned_baseline"))
        results["regimes"][ndim] = regimes
        print(f"\n{ndim}-D, narrower test sets ({args.regime_tracks} tracks each): ensemble vs tuned rolling MSD\n")
        print("| test set | accuracy | macro F1 | rolling MSD accuracy | rolling MSD macro F1 |")
        print("|---|---|---|---|---|")
        for r in regimes:
            print(f"| {r['regime']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['baseline_accuracy']:.3f} "
                  f"| {r['baseline_macro_f1']:.3f} |")
        t = timing(ndim, args.timing_tracks, args.repeats)
        results["timing"][ndim] = t
        print(f"\ntime per 200-frame track, {t['tracks']} tracks in one call ({t['provider']}): "
              f"default threads best {t['default_threads_best_ms_per_track']:.3f} ms "
              f"(median {t['default_threads_median_ms_per_track']:.3f}); one thread best "
              f"{t['one_thread_best_ms_per_track']:.3f} ms (median {t['one_thread_median_ms_per_track']:.3f}); "
              f"segment_tracks on a DataFrame best {t['dataframe_best_ms_per_track']:.3f} ms "
              f"(load average {t['load_average_1min']:.1f} on {t['cpu_count']} CPUs)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2, default=float)


if __name__ == "__main__":
    main()
