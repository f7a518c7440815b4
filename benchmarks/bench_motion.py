"""Motion characterisation (2nd AnDi Challenge, trajectory track): the exported network with its
post-processing against the naive baseline, on freshly simulated held-out experiments.

Run:  python benchmarks/bench_motion.py [--experiments 20] [--seed 2024] [--hard] [--json FILE]

* **default**: for each of the five phenomenological models, ``--experiments`` experiments with
  the challenge's random default settings (one field of view each, tracks = the ground-truth
  trajectories with localisation noise 0.12 px). Every experiment is analysed on its own, as
  ``edgetrack analyze`` would (one track table per field of view).
* **hard** (``--hard``): nine fixed experiments of harder settings in the spirit of the
  challenge's benchmark (small contrasts between states, three states, fast switching, directed
  motion, slow subdiffusion, small compartments), ``--hard-fovs`` fields of view each.

Scores (:mod:`edgetrack.runtime.metrics.motion`, the challenge's definitions): change-point RMSE
and JSC, alpha MAE, K MSLE and state F1 over all tracks of a row (segments paired as the
challenge does); ensemble W1 distances of alpha and K per field of view, averaged.
Baseline: alpha and K from a straight-line fit of log MSD against log lag over lags 1-5, state
free, no change point; its ensemble is one state with the frame-weighted mean and variance.
Throughput: tracks per second of :func:`edgetrack.runtime.motion.analyze.analyze_tracks` (network,
post-processing and ensemble; model loading excluded) on this CPU.

``--cp-methods network,binseg,window,pelt,combined`` also compares the change-point methods on
the first ``--cp-fovs`` fields of view of each model (default settings): JSC, RMSE and speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from edgetrack.runtime.motion.analyze import analyze_tracks
from edgetrack.runtime.models.onnx import load_model
from edgetrack.runtime.motion.network import MODEL_NAME, msd_fit
from edgetrack.runtime.metrics.motion import SegmentLabels, ensemble_distances, single_trajectory_scores
from edgetrack.runtime.motion.segments import SegmentConfig
from edgetrack.training.andi import PHENOM_MODELS, challenge_dataset
from edgetrack.training.andi.models import (Confinement, Dimerization, ImmobileTraps, MultiState, SingleState,
                                            Trajectories)
from edgetrack.training.andi_model.data import fov_table, tracks_of

_L = 1.8 * 128.0
METRICS = ("cp_rmse", "cp_jsc", "alpha_mae", "k_msle", "state_f1", "ens_w1_alpha", "ens_w1_K")


def hard_experiments() -> dict[str, tuple[str, object, float]]:
    """Nine harder experiments: name -> (model, configuration, localisation noise px)."""
    a = lambda m: (m, 0.01)  # noqa: E731
    k = lambda m: (m, 0.01 * m)  # noqa: E731
    return {
        "1 single, slow subdiffusion": ("single_state", SingleState(alpha=a(0.3), K=k(0.05), L=_L), 0.12),
        "2 single, directed": ("single_state", SingleState(alpha=(1.93, 0.0005), K=k(0.3), L=_L), 0.12),
        "3 multi, low contrast": ("multi_state", MultiState(M=((0.98, 0.02), (0.02, 0.98)), alpha=(a(1.0), a(0.7)),
                                                           K=(k(1.0), k(0.3)), L=_L), 0.12),
        "4 multi, three states": ("multi_state", MultiState(
            M=((0.97, 0.015, 0.015), (0.015, 0.97, 0.015), (0.015, 0.015, 0.97)),
            alpha=(a(1.2), a(0.8), a(0.4)), K=(k(2.0), k(0.5), k(0.05)), L=_L), 0.12),
        "5 multi, fast switching": ("multi_state", MultiState(M=((0.92, 0.08), (0.08, 0.92)), alpha=(a(1.4), a(0.5)),
                                                             K=(k(1.0), k(0.1)), L=_L), 0.12),
        "6 traps, subdiffusive": ("immobile_traps", ImmobileTraps(alpha=a(0.6), K=k(0.2), L=_L, r=1.0, Pu=0.05,
                                                                  Pb=1.0, n_traps=200), 0.12),
        "7 dimers, low contrast": ("dimerization", Dimerization(alpha=(a(1.0), a(0.6)), K=(k(1.0), k(0.5)), L=_L,
                                                                r=1.0, Pu=0.02, Pb=1.0), 0.12),
        "8 confinement, small": ("confinement", Confinement(alpha=(a(1.0), a(0.8)), K=(k(1.0), k(0.3)), L=_L, r=3.0,
                                                            n_compartments=40, trans=0.3), 0.12),
        "9 confinement, directed": ("confinement", Confinement(alpha=((1.95, 0.0005), a(0.5)), K=(k(0.5), k(0.05)),
                                                               L=_L, r=6.0, n_compartments=30, trans=0.1), 0.2),
    }


def truth_labels(tr: Trajectories, rows: np.ndarray) -> dict[int, SegmentLabels]:
    all_rows = tr.segment_rows()
    return {j: SegmentLabels.from_row([j] + all_rows[i][1:])[1] for j, i in enumerate(rows)}


def baseline(table: pd.DataFrame) -> tuple[dict[int, SegmentLabels], np.ndarray]:
    preds, a_all, k_all, w_all = {}, [], [], []
    for tid, g in table.groupby("track_id", sort=True):
        pos = g[["y", "x"]].to_numpy()
        alpha, K = msd_fit(pos)
        preds[int(tid)] = SegmentLabels([], len(g), [alpha], [K], [2])
        if np.isfinite(alpha) and np.isfinite(K):
            a_all.append(alpha)
            k_all.append(K)
            w_all.append(len(g))
    w = np.asarray(w_all, dtype=float)
    a, k = np.asarray(a_all), np.asarray(k_all)
    ma, mk = np.average(a, weights=w), np.average(k, weights=w)
    va, vk = np.average((a - ma) ** 2, weights=w), np.average((k - mk) ** 2, weights=w)
    ens = np.array([[ma], [va], [mk], [vk], [w.sum()]])
    return preds, ens


def model_predictions(table: pd.DataFrame, model,
                      cfg: SegmentConfig) -> tuple[dict[int, SegmentLabels], np.ndarray, float]:
    t0 = time.perf_counter()
    res = analyze_tracks(table, config=cfg, model=model, extras=False)
    seconds = time.perf_counter() - t0
    preds = {}
    for t, s in zip(res.tracks, res.track_segments):
        preds[int(t.track_id)] = SegmentLabels(s.change_points, t.length, s.alpha, s.K, s.state)
    return preds, res.summary.matrix, seconds


def score_fovs(fovs: list[tuple[pd.DataFrame, dict, np.ndarray]], predict) -> tuple[dict[str, float], float, int]:
    """Pooled single-trajectory scores and mean ensemble distances over fields of view."""
    truth, pred, w1a, w1k = {}, {}, [], []
    seconds, n_tracks = 0.0, 0
    for f, (table, true, ens_true) in enumerate(fovs):
        p, ens, sec = predict(table)
        seconds += sec
        n_tracks += len(true)
        for j in true:
            truth[(f, j)] = true[j]
            pred[(f, j)] = p[j]
        da, dk = ensemble_distances(ens_true, ens, size_support=10**5)
        w1a.append(da)
        w1k.append(dk)
    s = single_trajectory_scores(truth, pred)
    scores = {"cp_rmse": s.cp_rmse, "cp_jsc": s.cp_jsc, "alpha_mae": s.alpha_mae, "k_msle": s.k_msle,
              "state_f1": s.state_f1, "ens_w1_alpha": float(np.mean(w1a)), "ens_w1_K": float(np.mean(w1k))}
    return scores, seconds, n_tracks


def fovs_of(data) -> list[tuple[pd.DataFrame, dict, np.ndarray]]:
    tr = data.trajectories
    tracks = tracks_of(data, 0)
    out = []
    for e in range(len(data.configs)):
        rows = np.flatnonzero(tr.experiment == e)
        if rows.size == 0:
            continue
        out.append((fov_table(tracks, rows, tr.first_frame), truth_labels(tr, rows), data.ensembles[e]))
    return out


def evaluate_rows(rows: dict[str, list], model, cfg: SegmentConfig, baseline_too: bool = True) -> tuple[dict, float]:
    """{row name: fovs} -> {row: {"model": scores, "baseline": scores}}, and tracks/s of analyze."""
    results, secs, n = {}, 0.0, 0
    for name, fovs in rows.items():
        ms, sec, nt = score_fovs(fovs, lambda t: model_predictions(t, model, cfg))
        results[name] = {"model": ms, "n_tracks": nt, "n_fovs": len(fovs)}
        if baseline_too:
            results[name]["baseline"] = score_fovs(fovs, lambda t: (*baseline(t), 0.0))[0]
        secs += sec
        n += nt
    return results, n / max(secs, 1e-9)


def _mean(results: dict, who: str) -> dict[str, float]:
    return {m: float(np.mean([r[who][m] for r in results.values()])) for m in METRICS}


def markdown(results: dict, title: str) -> str:
    lines = [f"### {title}", "", "| experiment | tracks | who | " + " | ".join(METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for name, r in results.items():
        for who in ("model", "baseline"):
            vals = " | ".join(f"{r[who][m]:.3f}" for m in METRICS)
            lines.append(f"| {name} | {r['n_tracks']} | {who} | {vals} |")
    for who in ("model", "baseline"):
        vals = " | ".join(f"{v:.3f}" for v in _mean(results, who).values())
        lines.append(f"| **mean** | | {who} | {vals} |")
    return "\n".join(lines)


def default_rows(n_experiments: int, seed: int) -> dict[str, list]:
    return {m: fovs_of(challenge_dataset(m, n_experiments, np.random.default_rng([seed, k])))
            for k, m in enumerate(PHENOM_MODELS)}


def hard_rows(n_fovs: int, seed: int) -> dict[str, list]:
    rows = {}
    for k, (name, (model, cfg, noise)) in enumerate(hard_experiments().items()):
        data = challenge_dataset(model, n_fovs, np.random.default_rng([seed, 100 + k]), configs=[cfg] * n_fovs,
                                 noise_sigma=noise)
        rows[name] = fovs_of(data)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=20, help="experiments (FOVs) per model, default settings")
    ap.add_argument("--hard", action="store_true", help="also the nine harder experiments")
    ap.add_argument("--no-default", action="store_true", help="skip the default-settings rows")
    ap.add_argument("--hard-fovs", type=int, default=10, help="fields of view per hard experiment")
    ap.add_argument("--seed", type=int, default=2024, help="seed of the held-out data (training uses others)")
    ap.add_argument("--folder", default=None, help="exported models folder (default: the installed one)")
    ap.add_argument("--method", default=None, help="change-point method (default: SegmentConfig's)")
    ap.add_argument("--cp-methods", default=None, help="comma-separated change-point methods to compare")
    ap.add_argument("--cp-fovs", type=int, default=3, help="FOVs per model for the change-point comparison")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    model = load_model(MODEL_NAME, folder=args.folder, provider="cpu", threads=1)
    cfg = SegmentConfig() if args.method is None else SegmentConfig(method=args.method)
    out = {"seed": args.seed, "config": cfg.to_dict()}
    if not args.no_default:
        res, tps = evaluate_rows(default_rows(args.experiments, args.seed), model, cfg)
        print(markdown(res, f"Challenge default settings ({args.experiments} FOVs per model, seed {args.seed})"))
        print(f"\nanalyze throughput: {tps:.0f} tracks/s (1 thread)\n")
        out["default"] = res
        out["default_mean"] = {"model": _mean(res, "model"), "baseline": _mean(res, "baseline")}
        out["tracks_per_second"] = tps
    if args.cp_methods:
        sub = {m: fovs[: args.cp_fovs] for m, fovs in default_rows(args.experiments, args.seed).items()}
        lines = ["| method | cp_jsc | cp_rmse | alpha_mae | state_f1 | tracks/s |", "|---|---|---|---|---|---|"]
        out["cp_methods"] = {}
        for method in args.cp_methods.split(","):
            mres, mtps = evaluate_rows(sub, model, SegmentConfig(method=method.strip()), baseline_too=False)
            mean = _mean(mres, "model")
            out["cp_methods"][method] = {**mean, "tracks_per_second": mtps}
            lines.append(f"| {method} | {mean['cp_jsc']:.3f} | {mean['cp_rmse']:.2f} | {mean['alpha_mae']:.3f} | "
                         f"{mean['state_f1']:.3f} | {mtps:.0f} |")
        print(f"### Change-point methods ({args.cp_fovs} FOVs per model)\n\n" + "\n".join(lines) + "\n")
    if args.hard:
        hres, _ = evaluate_rows(hard_rows(args.hard_fovs, args.seed), model, cfg)
        print(markdown(hres, f"Harder settings (nine experiments, {args.hard_fovs} FOVs each)"))
        out["hard"] = hres
        out["hard_mean"] = {"model": _mean(hres, "model"), "baseline": _mean(hres, "baseline")}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
