"""MAGIK against the distance-only baseline (and trackpy / LapTrack): link accuracy over crowding,
inference latency per window, node regression and global classification.

Crowding (as in Pineda et al. 2023, Extended Data Fig. 4): 30 particles in 32 x 32 px, D = 0.1
px^2/frame scaled by the frame interval dt (0.5 .. 32), so the crowding c = rho D dt runs from
0.0015 to 0.094 (rho = 30 / 1024 px^-2). Detections come from ``simulate_detections`` (5% missed,
0.1 px localisation error). Every method gets the same candidate radius
``max_distance = 4 sqrt(2 D dt) + 0.2`` px and gap closing over one missing frame; the distance
baseline gets the true step (``step_sigma = sqrt(2 D dt)``, an oracle setting) or the Tracker default
(``max_distance / 3``). MAGIK's scores go to the LAP, min-cost-flow (``flow``, the whole window
at once) and post-processing linkers. Each method runs with the Tracker's default ``min_score`` (1e-6) and with the
one value from ``--min-scores`` that is best for it over all crowding levels. Scores:
:func:`edgetrack.runtime.metrics.links.link_metrics` (link F1 and Jaccard).

    python benchmarks/bench_magik.py crowding --seeds 3 --frames 50
    python benchmarks/bench_magik.py latency
    python benchmarks/bench_magik.py nodes
    python benchmarks/bench_magik.py nodes --frames 200 --strides 50 25 --symmetries 1 4 8
    python benchmarks/bench_magik.py motion
    python benchmarks/bench_magik.py diffusion-map
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd

RHO = 30 / 32**2
DTS = (0.5, 1, 2, 4, 8, 16, 32)


def _tracks_edgetrack(det: pd.DataFrame, **options) -> pd.DataFrame:
    from edgetrack.runtime.stream.pipeline import link_detections

    return link_detections(det, **options)


def _tracks_trackpy(det: pd.DataFrame, md: float) -> pd.DataFrame:
    import trackpy

    trackpy.quiet()
    linked = trackpy.link(det[["frame", "y", "x"]].copy(), search_range=md, memory=1,
                          adaptive_stop=0.2 * md, adaptive_step=0.9)
    return linked.rename(columns={"particle": "track_id"})


def _tracks_laptrack(det: pd.DataFrame, md: float) -> pd.DataFrame:
    from laptrack import LapTrack

    lt = LapTrack(metric="sqeuclidean", cutoff=md**2, gap_closing_cutoff=md**2, gap_closing_max_frame_count=1,
                  splitting_cutoff=False, merging_cutoff=False)
    track_df, _, _ = lt.predict_dataframe(det[["frame", "y", "x"]].copy(), coordinate_cols=["y", "x"],
                                          only_coordinate_cols=False)
    return track_df.rename(columns={"track_id": "track_id"})[["frame", "y", "x", "track_id"]]


class _Holder:
    """The max_distance of the current movie, for the benchmark's fixed-radius magik scorer."""

    max_distance = 1.0


def _register_variants() -> None:
    from edgetrack.runtime.associate.registry import register_scorer, scorer_names
    from edgetrack.runtime.associate.magik import MagikScorer

    if "magik_allpairs" not in scorer_names():
        register_scorer("magik_allpairs", _allpairs)
        register_scorer("magik_exactmd", _exactmd)


def _allpairs():
    from edgetrack.runtime.associate.magik import MagikScorer

    return MagikScorer(chunk=0)


def _exactmd():
    from edgetrack.runtime.associate.magik import MagikScorer

    return MagikScorer(max_distance=_Holder.max_distance)


def crowding(args) -> list[dict]:
    from edgetrack.runtime.metrics.links import link_metrics
    from edgetrack.runtime.simulate.spots import simulate_detections

    _register_variants()
    et = _tracks_edgetrack
    methods = {
        "distance(oracle sigma)+lap": lambda det, md, s, ms: et(det, max_distance=md, step_sigma=s, linker="lap",
                                                                min_score=ms),
        "distance(default sigma)+lap": lambda det, md, s, ms: et(det, max_distance=md, linker="lap", min_score=ms),
        "distance(oracle sigma)+greedy": lambda det, md, s, ms: et(det, max_distance=md, step_sigma=s,
                                                                   linker="greedy", min_score=ms),
        "magik+lap": lambda det, md, s, ms: et(det, max_distance=md, scorer="magik", linker="lap", min_score=ms,
                                               window=args.window),
        "magik(all-pairs attention)+lap": lambda det, md, s, ms: et(det, max_distance=md, scorer="magik_allpairs",
                                                                    linker="lap", min_score=ms, window=args.window),
        "magik(exact max_distance)+lap": lambda det, md, s, ms: et(det, max_distance=md, scorer="magik_exactmd",
                                                                   linker="lap", min_score=ms, window=args.window),
        "magik+flow": lambda det, md, s, ms: et(det, max_distance=md, scorer="magik", linker="flow", min_score=ms,
                                                window=args.window),
        "magik+post": lambda det, md, s, ms: et(det, max_distance=md, scorer="magik", linker="magik_post",
                                                min_score=ms, window=args.window),
    }
    if args.peers:
        methods["trackpy"] = lambda det, md, s, ms: _tracks_trackpy(det, md)
        methods["laptrack"] = lambda det, md, s, ms: _tracks_laptrack(det, md)
    rows = []
    for dt in args.dts:
        d = 0.1 * dt
        step = math.sqrt(2 * d)
        md = 4 * step + 0.2
        _Holder.max_distance = md
        for seed in range(args.seeds):
            det, truth = simulate_detections(shape=(32, 32), n_spots=30, D_range=(d, d), n_frames=args.frames,
                                             seed=1000 + seed)
            for name, fn in methods.items():
                grid = [1e-6] if name in ("trackpy", "laptrack", "magik+post") else args.min_scores
                for ms in grid:
                    t0 = time.perf_counter()
                    tracks = fn(det, md, step, ms)
                    sec = time.perf_counter() - t0
                    m = link_metrics(truth, tracks, max_distance=0.5)
                    rows.append({"dt": dt, "c": round(RHO * d, 4), "seed": seed, "method": name, "min_score": ms,
                                 "f1": m["f1"], "jaccard": m["jaccard"], "seconds": sec})
    table = pd.DataFrame(rows)
    mean = table.groupby(["dt", "c", "method", "min_score"])[["f1", "jaccard"]].mean().reset_index()
    default = mean[mean["min_score"] == 1e-6].set_index(["dt", "c", "method"])[["f1", "jaccard"]]
    # per method, the one min_score with the best F1 averaged over all crowding levels (no per-level tuning)
    best_ms = mean.groupby(["method", "min_score"])["f1"].mean().reset_index()
    best_ms = best_ms.loc[best_ms.groupby("method")["f1"].idxmax()].set_index("method")["min_score"]
    tuned = mean[mean.apply(lambda r: r["min_score"] == best_ms[r["method"]], axis=1)]
    tuned = tuned.set_index(["dt", "c", "method"])[["f1", "jaccard"]]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.precision", 3):
        print("min_score = 1e-6 (the Tracker default), mean over seeds")
        print(default.unstack("method")["f1"].round(3).to_string())
        print(default.unstack("method")["jaccard"].round(3).to_string())
        print("min_score tuned per method (one value for all c):", best_ms.to_dict())
        print(tuned.unstack("method")["f1"].round(3).to_string())
        print(tuned.unstack("method")["jaccard"].round(3).to_string())
    return rows


def _window_nodes(n: int, rng: np.random.Generator, n_frames: int = 5, rho: float = 0.03):
    side = math.sqrt(n / n_frames / rho)
    frame = np.repeat(np.arange(n_frames), n // n_frames).astype(np.int64)
    y = rng.uniform(0, side, len(frame))
    x = rng.uniform(0, side, len(frame))
    return frame, y, x


def latency(args) -> list[dict]:
    import torch

    from edgetrack.runtime.graph.candidates import build_graph
    from edgetrack.runtime.associate.magik import graph_inputs
    from edgetrack.runtime.models.onnx import load_model
    from edgetrack.training.magik.export import INPUTS, Exported
    from edgetrack.training.magik.train import build_model

    torch.set_num_threads(args.threads)
    model = load_model("magik_link", provider="cpu", threads=args.threads)
    torch.manual_seed(0)
    eager = Exported(build_model("link"), "edge").eval()
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        frame, y, x = _window_nodes(n, rng)
        md = 4.0
        edges = build_graph(frame, y, x, md, 2)
        for chunk in (64, 0):
            t_build = time.perf_counter()
            g = graph_inputs(frame, y, x, edges, md, chunk)
            t_build = time.perf_counter() - t_build
            feed = g.inputs
            model.run(feed)
            ort_t = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model.run(feed)
                ort_t.append(time.perf_counter() - t0)
            tens = tuple(torch.from_numpy(feed[k]) for k in INPUTS)
            with torch.no_grad():
                eager(*tens)
                pt_t = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    eager(*tens)
                    pt_t.append(time.perf_counter() - t0)
            row = {"nodes": n, "edges": int(len(edges.src)), "chunk": chunk or "all-pairs",
                   "features_ms": 1e3 * t_build, "onnxruntime_ms": 1e3 * float(np.median(ort_t)),
                   "pytorch_eager_ms": 1e3 * float(np.median(pt_t)), "provider": model.provider}
            rows.append(row)
            print(row, flush=True)
    return rows


def nodes(args) -> dict:
    from edgetrack.runtime.associate.magik import predict_nodes
    from edgetrack.training.magik.data import NO_AUGMENT, diffusion_graph

    rng = np.random.default_rng(12345 if args.frames == 50 else 12345 + args.frames)
    combos = [(k, s) for s in args.strides for k in args.symmetries]
    errs = {c: [] for c in combos}
    seconds = {c: 0.0 for c in combos}
    for _ in range(args.videos):
        g = diffusion_graph(rng, NO_AUGMENT, n_frames=args.frames)
        det = pd.DataFrame({"frame": g.frame, "y": g.y, "x": g.x})
        for k, s in combos:
            t0 = time.perf_counter()
            out = predict_nodes(det, symmetries=k, stride=s)
            seconds[(k, s)] += time.perf_counter() - t0
            errs[(k, s)].append(np.abs(out["sqrt_2D"].to_numpy() - g.node_target[:, 0]))
    result = {}
    for k, s in combos:
        err = np.concatenate(errs[(k, s)])
        key = f"{args.frames} frames, symmetries {k}, stride {s}"
        result[key] = {"videos": args.videos, "detections": int(len(err)), "mae_sqrt_2D": float(err.mean()),
                       "median_abs_error": float(np.median(err)), "seconds": seconds[(k, s)]}
        print(f"{key}:", result[key], flush=True)
    return result


def diffusion_map(args) -> dict:
    """``magik-predict --task diffusion`` on edgetrack's own simulated movies: detections from
    ``edgetrack.locate``, each matched to the nearest true particle of its frame (within 1.5 px) for its
    true D; median ratio predicted / true D and correlations (of D, of log D, and of the per-particle mean),
    with the coordinates as they are (scale 1) and scaled from the movie's steps (scale auto)."""
    import edgetrack
    from scipy.spatial import cKDTree

    from edgetrack.runtime.associate.magik import predict_nodes
    from edgetrack.runtime.simulate.spots import simulate_movie

    result = {}
    for d_lo, d_hi in args.d_ranges:
        for seed in args.seeds:
            movie, truth = simulate_movie(n_frames=50, shape=(256, 256), n_spots=120, snr=10.0, seed=seed,
                                          D_range=(d_lo, d_hi))
            det = edgetrack.locate(movie)[["frame", "y", "x"]]
            true_d = np.full(len(det), np.nan)
            particle = np.full(len(det), -1)
            for f, rows in det.groupby("frame").indices.items():
                t = truth[truth["frame"] == f]
                dist, j = cKDTree(t[["y", "x"]].to_numpy()).query(det.iloc[rows][["y", "x"]].to_numpy())
                ok = dist < 1.5
                true_d[rows[ok]] = t["D"].to_numpy()[j[ok]]
                particle[rows[ok]] = t["track_id"].to_numpy()[j[ok]]
            ok = np.isfinite(true_d)
            for scale, k in [("1", 1)] + [("auto", k) for k in args.symmetries]:
                out = predict_nodes(det, scale=1.0 if scale == "1" else "auto", symmetries=k)
                pred = out["D"].to_numpy()[ok]
                truth_d = true_d[ok]
                per = pd.DataFrame({"p": particle[ok], "pred": pred, "true": truth_d}).groupby("p").mean()
                key = f"D {d_lo:g}-{d_hi:g}, seed {seed}, scale {scale}, symmetries {k}"
                result[key] = {
                    "scale": float(out.attrs["magik_scale"]), "matched_detections": int(ok.sum()),
                    "median_ratio": float(np.median(pred / truth_d)),
                    "corr_D": float(np.corrcoef(pred, truth_d)[0, 1]),
                    "corr_log_D": float(np.corrcoef(np.log(np.maximum(pred, 1e-9)), np.log(truth_d))[0, 1]),
                    "corr_particle_mean_D": float(np.corrcoef(per["pred"], per["true"])[0, 1]),
                    "pred_D_5_95": [float(np.percentile(pred, 5)), float(np.percentile(pred, 95))],
                }
                r = result[key]
                print(f"| {key} | {r['scale']:.3f} | {r['median_ratio']:.3f} | {r['corr_D']:.3f} | {r['corr_log_D']:.3f} | "
                      f"{r['corr_particle_mean_D']:.3f} | {r['pred_D_5_95'][0]:.2f}-{r['pred_D_5_95'][1]:.2f} |", flush=True)
    return result


def motion(args) -> dict:
    """Global motion model: accuracy on single-model videos, fraction MAE on mixed videos next to the
    constant 1/3 guess, and (where the model gives them) per-detection class accuracy."""
    from edgetrack.runtime.associate.magik import predict_global, predict_nodes
    from edgetrack.runtime.models.onnx import load_model
    from edgetrack.training.magik.data import MOTION_CLASSES, NO_AUGMENT, motion_graph

    per_node = "node_prob" in load_model("magik_motion").output_names
    rng = np.random.default_rng(12345)
    k = len(MOTION_CLASSES)
    cols = [f"p_{c}" for c in MOTION_CLASSES]
    conf = np.zeros((k, k), np.int64)
    frac, const = [], []
    node_hit = node_all = 0
    for i in range(args.videos):
        g = motion_graph(rng, NO_AUGMENT, mixed=0.0 if i % 2 == 0 else 1.0)
        det = pd.DataFrame({"frame": g.frame, "y": g.y, "x": g.x})
        out = predict_global(det)
        p = out[cols].to_numpy()[0]
        if per_node:
            node_p = predict_nodes(det, "magik_motion")[cols].to_numpy()
            node_hit += int((node_p.argmax(1) == g.node_target.argmax(1)).sum())
            node_all += len(node_p)
        if g.global_target.max() > 0.999:
            conf[int(np.argmax(g.global_target)), int(np.argmax(p))] += 1
        else:
            frac.append(float(np.abs(p - g.global_target).mean()))
            const.append(float(np.abs(1.0 / k - g.global_target).mean()))
    result = {"classes": list(MOTION_CLASSES), "accuracy": float(np.trace(conf) / max(1, conf.sum())),
              "confusion_rows_truth_cols_pred": conf.tolist(), "fraction_mae": float(np.mean(frac)) if frac else None,
              "constant_one_third_fraction_mae": float(np.mean(const)) if const else None,
              "node_accuracy": node_hit / node_all if node_all else None,
              "single_model_videos": int(conf.sum()), "mixed_videos": len(frac)}
    print(result)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("crowding")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--dts", type=float, nargs="+", default=list(DTS))
    p.add_argument("--window", type=int, default=3)
    p.add_argument("--min-scores", type=float, nargs="+", default=[1e-6, 1e-3, 0.01, 0.05])
    p.add_argument("--peers", action="store_true", help="also trackpy and LapTrack")
    p = sub.add_parser("latency")
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 2000])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("nodes")
    p.add_argument("--videos", type=int, default=20)
    p.add_argument("--symmetries", type=int, nargs="+", default=[1, 4, 8, 16],
                   help="predict_nodes(symmetries=K) for each K (1: the network alone)")
    p.add_argument("--frames", type=int, default=50,
                   help="frames per video (50: the paper's setup; longer videos are cut into blocks)")
    p.add_argument("--strides", type=int, nargs="+", default=[50],
                   help="predict_nodes(stride=S) for each S (50: blocks do not overlap)")
    p = sub.add_parser("motion")
    p.add_argument("--videos", type=int, default=60)
    p = sub.add_parser("diffusion-map")
    p.add_argument("--seeds", type=int, nargs="+", default=[21, 22])
    p.add_argument("--d-ranges", type=float, nargs=2, action="append", default=None,
                   help="D_LO D_HI px^2/frame (repeatable; default 0.5 2, 0.05 0.5, 0.02 2)")
    p.add_argument("--symmetries", type=int, nargs="+", default=[1, 8],
                   help="with scale auto, predict_nodes(symmetries=K) for each K (scale 1 rows use K = 1)")
    parser.add_argument("--json", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.what == "diffusion-map" and args.d_ranges is None:
        args.d_ranges = [(0.5, 2.0), (0.05, 0.5), (0.02, 2.0)]
    result = {"crowding": crowding, "latency": latency, "nodes": nodes, "motion": motion,
              "diffusion-map": diffusion_map}[args.what](args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
