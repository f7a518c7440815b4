"""Linkers side by side: greedy, LAP, min-cost flow and the CP-SAT ILP, streaming and offline.

Detections are simulated directly (no rendering): Brownian particles, D 0.5-2 px^2/frame, dividing
with probability ``--division-rate`` per frame, 5% of detections missed, 0.1 px localisation
error. Every linker runs in the streaming :class:`~edgetrack.runtime.stream.tracker.Tracker` (window 3,
max_gap 2, max_distance 6 px, distance scorer), with its default costs.

Sections (``--sections``):

* ``accuracy``: link F1 and division F1 (:func:`~edgetrack.runtime.metrics.links.link_metrics`) per linker
  and density, for the Tracker's default gap penalty (0.5) and one matched to the 5% miss rate (0.05).
* ``timing``: wall time of each linker call (one call per committed frame) against the number of
  detections in the window (``--window-sizes``, about 5 frames' worth each): median and 99th
  percentile over ``--frames`` windows, and the number of ILP time-outs (default 1 s limit).
* ``offline``: the whole movie as one window (``runtime/offline.py``) against the streaming result on
  the same detections: the objective (:func:`~edgetrack.runtime.link.costs.link_cost`, in nats, of
  each answer on the full graph; lower is better) and link/division F1.

    nice -n 19 python benchmarks/bench_linkers.py --sections accuracy offline timing
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

GRAPH = dict(max_distance=6.0, max_gap=2)
# (label, linker, max_children)
LINKER_SET = [
    ("greedy", "greedy", 1),
    ("greedy+div", "greedy", 2),
    ("lap", "lap", 1),
    ("flow", "flow", 1),
    ("flow+div", "flow", 2),
    ("ilp+div", "ilp", 2),
]


def simulate(n_spots: int, frames: int, size: int, division_rate: float, seed: int):
    from edgetrack.runtime.simulate.spots import simulate_detections

    return simulate_detections(n_frames=frames, shape=(size, size), n_spots=n_spots, D_range=(0.5, 2.0),
                               division_rate=division_rate, miss_rate=0.05, localization_error=0.1, seed=seed)


def scores(truth: pd.DataFrame, tracks: pd.DataFrame) -> dict:
    from edgetrack.runtime.metrics.links import link_metrics

    m = link_metrics(truth, tracks, max_distance=2.0)
    return {"f1": m["f1"], "div_f1": m.get("division_f1", float("nan")),
            "div_pred": m.get("n_pred_divisions", 0), "div_truth": m.get("n_truth_divisions", 0)}


def stream(det: pd.DataFrame, linker: str, max_children: int, gap_penalty: float) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Streaming tracks, the parent det_id of every detection (Tracker numbering) and the wall time."""
    from edgetrack.runtime.stream.tracker import Tracker

    tracker = Tracker(linker=linker, max_children=max_children, gap_penalty=gap_penalty, **GRAPH)
    parent = np.full(len(det), -3, np.int64)
    det = det.sort_values("frame", kind="stable")
    frames = det["frame"].to_numpy()
    bounds = np.searchsorted(frames, np.arange(int(frames.max()) + 2))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ILP time-outs are counted in the timing section
        for f in range(len(bounds) - 1):
            for u in tracker.push(det.iloc[bounds[f]:bounds[f + 1]], frame=f):
                parent[u.det_id] = u.parent_det_id
        for u in tracker.flush():
            parent[u.det_id] = u.parent_det_id
    elapsed = time.perf_counter() - t0
    return tracker.results(), parent, elapsed


def _chosen(args) -> list[tuple[str, str, int]]:
    return [entry for entry in LINKER_SET if entry[0] in args.linkers]


def section_accuracy(args) -> pd.DataFrame:
    rows = []
    for n in args.spots:
        det, truth = simulate(n, args.frames, args.size, args.division_rate, args.seed)
        for gp in (0.5, 0.05):
            for label, linker, mc in _chosen(args):
                tracks, _, sec = stream(det, linker, mc, gp)
                row = {"spots/frame": n, "density/px2": n / args.size**2, "gap_penalty": gp, "linker": label}
                row.update(scores(truth, tracks))
                row["s/frame"] = sec / args.frames
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def section_timing(args) -> pd.DataFrame:
    from edgetrack.runtime.link.costs import IlpTimeoutWarning
    from edgetrack.runtime.link.registry import LINKERS, get_linker

    rows = []
    for target in args.window_sizes:
        # a window holds 5 frames (3 undecided + max_gap 2): aim at target / 5 detections per frame
        guess = target / 5.0
        trial, _ = simulate(max(1, round(guess)), 10, args.size, args.division_rate, args.seed)
        n_spots = max(1, round(guess * guess / (len(trial) / 10.0)))
        det, _ = simulate(n_spots, args.frames + 10, args.size, args.division_rate, args.seed)
        for label, linker, mc in _chosen(args):
            calls: list[tuple[int, float, bool]] = []
            inner = get_linker(linker)

            def timed(*a, _inner=inner, **k):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    t = time.perf_counter()
                    out = _inner(*a, **k)
                    sec = time.perf_counter() - t
                calls.append((len(a[0]), sec, any(issubclass(w.category, IlpTimeoutWarning) for w in caught)))
                return out

            LINKERS["_timed"] = timed
            try:
                stream(det, "_timed", mc, 0.5)
            finally:
                del LINKERS["_timed"]
            calls = calls[10:]  # the first windows are not full yet
            n_nodes = np.array([c[0] for c in calls])
            sec = np.array([c[1] for c in calls])
            rows.append({"target": target, "linker": label, "windows": len(calls),
                         "detections (median)": int(np.median(n_nodes)), "median ms": 1000 * np.median(sec),
                         "p99 ms": 1000 * np.percentile(sec, 99), "max ms": 1000 * sec.max(),
                         "time-outs": int(sum(c[2] for c in calls))})
            print(rows[-1], file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def section_offline(args) -> pd.DataFrame:
    from edgetrack.runtime.link.flow import link_flow
    from edgetrack.runtime.link.ilp import link_ilp
    from edgetrack.runtime.link.costs import IlpConfig, link_cost
    from edgetrack.runtime.stream.offline import offline_graph, tracks_from_parents

    rows = []
    for n in args.spots:
        det, truth = simulate(n, args.frames, args.size, args.division_rate, args.seed)
        for gp in (0.5, 0.05):
            graph = offline_graph(det, gap_penalty=gp, **GRAPH)
            nn = graph.node_frame.size
            e = graph.edges
            full = (graph.node_frame, e.src, e.dst, e.dt, graph.score, np.full(nn, -2, np.int64), np.zeros(nn, np.int64))
            config = IlpConfig()
            for mc in (1, 2):
                t = time.perf_counter()
                optimum = link_flow(*full, max_children=mc)
                t_flow = time.perf_counter() - t
                best = link_cost(*full, optimum, max_children=mc, config=config)
                entries = [("offline flow", optimum, t_flow)]
                if mc == 2:
                    t = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ilp, info = link_ilp(*full, max_children=2, config=IlpConfig(time_limit=args.offline_time_limit),
                                             return_info=True)
                    entries.append((f"offline ilp ({info.status})", ilp, time.perf_counter() - t))
                linkers = [("lap", 1), ("flow", 1)] if mc == 1 else [("greedy", 2), ("flow", 2), ("ilp", 2)]
                for linker, _ in linkers:
                    _, parent, sec = stream(det, linker, mc, gp)
                    entries.append((f"stream {linker}", parent, sec))
                for label, parent, sec in entries:
                    cost = link_cost(*full, parent, max_children=mc, config=config)
                    tracks = tracks_from_parents(graph.node_frame, graph.values, graph.columns, parent, mc > 1)
                    row = {"spots/frame": n, "gap_penalty": gp, "max_children": mc, "answer": label,
                           "objective (nats)": cost / config.cost_scale,
                           "above optimum (nats)": (cost - best) / config.cost_scale, "seconds": sec}
                    row.update(scores(truth, tracks))
                    rows.append(row)
                    print(row, file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["accuracy", "offline", "timing"],
                        choices=["accuracy", "offline", "timing"])
    parser.add_argument("--spots", type=int, nargs="+", default=[125, 375, 750], help="spots per frame (accuracy, offline)")
    parser.add_argument("--size", type=int, default=256, help="field of view, px (square)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--division-rate", type=float, default=0.01)
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    parser.add_argument("--timing-size", type=int, default=512, help="field of view of the timing section, px")
    parser.add_argument("--timing-frames", type=int, default=110)
    parser.add_argument("--offline-time-limit", type=float, default=120.0, help="CP-SAT time limit of the offline ILP, s")
    parser.add_argument("--linkers", nargs="+", default=[label for label, _, _ in LINKER_SET],
                        choices=[label for label, _, _ in LINKER_SET], help="accuracy and timing sections")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header = (f"divisions {args.division_rate}/frame, 5% missed, max_distance {GRAPH['max_distance']} px, "
              f"max_gap {GRAPH['max_gap']}, window 3, seed {args.seed}, cpu_count={os.cpu_count()}")
    for section in args.sections:
        if section == "accuracy":
            table = section_accuracy(args)
            print(f"\n## accuracy ({args.frames} frames of {args.size}x{args.size} px; {header})\n")
        elif section == "timing":
            timing_args = argparse.Namespace(**{**vars(args), "size": args.timing_size, "frames": args.timing_frames})
            table = section_timing(timing_args)
            print(f"\n## solve time per window ({args.timing_frames} frames of {args.timing_size}x{args.timing_size} px; "
                  f"{header})\n")
        else:
            table = section_offline(args)
            print(f"\n## offline optimum vs streaming ({args.frames} frames of {args.size}x{args.size} px; {header})\n")
        print(_markdown(table), flush=True)


def _markdown(table: pd.DataFrame) -> str:
    try:
        return table.to_markdown(index=False, floatfmt=".6g")
    except ImportError:
        return table.to_string(index=False)


if __name__ == "__main__":
    main()
