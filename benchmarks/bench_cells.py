"""Cell tracking on Cell Tracking Challenge data: TRA, LNK, division F1 and ms per frame.

The ground-truth TRA markers of each sequence (``01_GT/TRA/man_trackTTT.tif``) are used as the
segmentation, so detection is perfect and only linking is judged. The markers' labels are the
ground-truth identities, so the trackers only ever see each frame's objects (centroid and shape
features, the label kept aside to map the result back): nothing ties a label across frames.

Methods (all with max_distance = one median equivalent diameter of the first frame, as
``track_cells`` chooses it, and gap closing over one missing frame):

* ``edgetrack <scorer>/<linker>``: :func:`edgetrack.runtime.cells.tracker.CellTracker` (the streaming Tracker,
  window 4) with the distance scorer (or ``--scorer transformer``) and the linkers greedy and ilp
  with divisions, lap (one-to-one: no divisions).
* ``laptrack``: LapTrack's ``predict_dataframe`` on the same centroids, squared-Euclidean costs
  cut off at max_distance^2 for links, gap closing (1 frame) and splitting.
* ``nn-lap``: a nearest-neighbour frame-to-frame LAP baseline (scipy ``linear_sum_assignment`` on the
  centroid distance, links up to max_distance, no gaps, no divisions).

Scores are :func:`edgetrack.runtime.metrics.ctc.ctc_scores` against ``01_GT/TRA`` (markers +
``man_track.txt``). Before them, two sanity checks: the ground truth against itself gives TRA 1, and
the ground truth with one link broken (the longest track cut after its first frame into a new
track without a parent) costs exactly one missing edge, AOGM 1.5.

Times: ``track ms/frame`` is scoring + linking only (the objects' features are ready), ``features
ms/frame`` is :func:`~edgetrack.runtime.cells.features.frame_features` on the 1024x1024 (GOWT1) or
690x628 (SIM+) masks. A last section times ``frame_features`` against
``skimage.measure.regionprops_table`` on a synthetic 1024x1024 frame with 100 objects.

``--drop 0.05`` removes each ground-truth object with probability 0.05 (seeded) before tracking, as a
segmenter's misses would, and still scores against the full ground truth; ``--fill-gaps`` then puts the
objects missing inside a track back (:func:`~edgetrack.runtime.cells.gaps.fill_gaps`) before scoring,
as ``edgetrack track --format ctc`` does by default.

    nice -n 19 python benchmarks/bench_cells.py
    nice -n 19 python benchmarks/bench_cells.py --scorer transformer --linkers greedy ilp --peers
    nice -n 19 python benchmarks/bench_cells.py --drop 0.05 --fill-gaps --linkers greedy ilp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ctc"
SEQUENCES = ("Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")
MAX_GAP = 2  # edges span 1..2 frames: one missing frame is bridged


def load(name: str, use_images: bool):
    from edgetrack.runtime.io.masks import open_images, open_masks, read_ctc_lineage

    gt = DATA / name / "01_GT" / "TRA"
    masks = np.stack(list(open_masks(gt)))
    images = None
    if use_images and (DATA / name / "01").is_dir():
        images = np.stack(list(open_images(DATA / name / "01")))
    return masks, images, read_ctc_lineage(gt)


def sanity(masks: np.ndarray, lineage: pd.DataFrame) -> dict:
    from edgetrack.runtime.metrics.ctc import ctc_scores

    self_score = ctc_scores(masks, lineage, masks, lineage)
    longest = lineage.assign(n=lineage.end - lineage.start).sort_values(["n", "label"]).iloc[-1]
    new = int(lineage.label.max()) + 1
    broken = masks.copy()
    later = broken[longest.start + 1:]
    later[later == longest.label] = new
    broken_lin = pd.concat([lineage, pd.DataFrame([(new, longest.start + 1, longest.end, 0)],
                                                  columns=list(lineage.columns))], ignore_index=True)
    broken_lin.loc[broken_lin.label == longest.label, "end"] = longest.start
    broken_lin.loc[broken_lin.parent == longest.label, "parent"] = new
    b = ctc_scores(masks, lineage, broken, broken_lin)
    expected = 1.0 - 1.5 / b["AOGM_0"]
    return {"self_TRA": self_score["TRA"], "broken_AOGM": b["AOGM"], "broken_TRA": b["TRA"],
            "expected_TRA": expected, "ok": self_score["TRA"] == 1.0 and b["AOGM"] == 1.5
            and abs(b["TRA"] - expected) < 1e-12}


def drop_objects(masks: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of ``masks`` with each object (label of a frame) removed with probability ``fraction``."""
    rng = np.random.default_rng(seed)
    out = masks.copy()
    for t in range(len(out)):
        labels = np.unique(out[t])
        labels = labels[labels > 0]
        gone = labels[rng.random(len(labels)) < fraction]
        if len(gone):
            out[t][np.isin(out[t], gone)] = 0
    return out


def features_of(masks: np.ndarray, images: np.ndarray | None) -> tuple[list[pd.DataFrame], float]:
    from edgetrack.runtime.cells.features import frame_features

    t0 = time.perf_counter()
    tables = [frame_features(masks[t], None if images is None else images[t], frame=t) for t in range(len(masks))]
    return tables, time.perf_counter() - t0


def run_cell_tracker(tables: list[pd.DataFrame], scorer: str, linker: str, max_distance: float, **options):
    """A CellTracker (window 4, gaps of one frame, ``options`` as CellTracker takes them) fed the ready
    features of every frame and flushed; returns it (``finish()`` gives the tracks)."""
    from edgetrack.runtime.cells.tracker import CellTracker

    tracker = CellTracker(scorer=scorer, linker=linker, max_distance=max_distance, max_gap=MAX_GAP, window=4,
                          **options)
    for tab in tables:
        tracker.push_objects(tab)
    tracker.flush()
    return tracker


def run_edgetrack(tables: list[pd.DataFrame], scorer: str, linker: str, max_distance: float) -> tuple[pd.DataFrame, float]:
    """CellTracker on ready features (so its ``seconds['tracking']`` is scoring + linking only)."""
    tracker = run_cell_tracker(tables, scorer, linker, max_distance)
    tracks = tracker.finish()
    return tracks, tracker.seconds["tracking"]


def run_laptrack(objects: pd.DataFrame, max_distance: float) -> tuple[pd.DataFrame, float]:
    from laptrack import LapTrack

    cutoff = float(max_distance) ** 2
    lt = LapTrack(cutoff=cutoff, gap_closing_cutoff=cutoff, gap_closing_max_frame_count=MAX_GAP - 1,
                  splitting_cutoff=cutoff, merging_cutoff=False)
    t0 = time.perf_counter()
    track_df, split_df, _ = lt.predict_dataframe(objects[["frame", "y", "x", "label"]].reset_index(drop=True),
                                                 coordinate_cols=["y", "x"], frame_col="frame",
                                                 only_coordinate_cols=False)
    seconds = time.perf_counter() - t0
    tracks = track_df[["frame", "label", "track_id"]].copy()
    parent = dict(zip(split_df["child_track_id"], split_df["parent_track_id"]))
    tracks["parent_track_id"] = tracks["track_id"].map(parent).fillna(-1).astype(np.int64)
    return tracks.reset_index(drop=True), seconds


def run_nn_lap(tables: list[pd.DataFrame], max_distance: float) -> tuple[pd.DataFrame, float]:
    """Frame-to-frame LAP on centroid distance (cut off at max_distance): no gaps, no divisions."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    t0 = time.perf_counter()
    track_of: list[np.ndarray] = []
    next_id = 0
    big = 1e9
    for t, tab in enumerate(tables):
        ids = np.full(len(tab), -1, np.int64)
        if t > 0 and len(tab) and len(tables[t - 1]):
            cost = cdist(tables[t - 1][["y", "x"]].to_numpy(), tab[["y", "x"]].to_numpy())
            cost[cost > max_distance] = big
            rows, cols = linear_sum_assignment(cost)
            ok = cost[rows, cols] < big
            ids[cols[ok]] = track_of[t - 1][rows[ok]]
        fresh = ids < 0
        ids[fresh] = next_id + np.arange(fresh.sum())
        next_id += int(fresh.sum())
        track_of.append(ids)
    seconds = time.perf_counter() - t0
    tracks = pd.DataFrame({"frame": np.concatenate([tab["frame"].to_numpy() for tab in tables]),
                           "label": np.concatenate([tab["label"].to_numpy() for tab in tables]),
                           "track_id": np.concatenate(track_of)})
    tracks["parent_track_id"] = -1
    return tracks, seconds


def score_columns(s: dict) -> dict:
    """The columns of a result row from :func:`~edgetrack.runtime.metrics.ctc.ctc_scores`' dict."""
    return {"TRA": s["TRA"], "LNK": s["LNK"], "division_f1": s["division_f1"], "div_tp": s["division_tp"],
            "div_fp": s["division_fp"], "div_fn": s["division_fn"],
            **{k: s[k] for k in ("NS", "FN", "FP", "ED", "EA", "EC")}}


def features_speed(repeats: int = 10) -> dict:
    """frame_features vs regionprops_table on a synthetic 1024x1024 frame with 100 objects (ms)."""
    from skimage.measure import regionprops_table
    from skimage.segmentation import expand_labels

    from edgetrack.runtime.cells.features import frame_features

    rng = np.random.default_rng(0)
    labels = np.zeros((1024, 1024), np.int32)
    labels[rng.integers(0, 1024, 100), rng.integers(0, 1024, 100)] = rng.choice(np.arange(1, 1000), 100, replace=False)
    labels = expand_labels(labels, 40)
    image = rng.integers(0, 4000, labels.shape).astype(np.uint16)
    frame_features(labels, image)  # compile / load the cache
    t0 = time.perf_counter()
    for _ in range(repeats):
        frame_features(labels, image)
    ours = (time.perf_counter() - t0) / repeats
    props = ("label", "centroid", "area", "perimeter", "eccentricity", "solidity", "intensity_mean", "inertia_tensor")
    t0 = time.perf_counter()
    for _ in range(max(1, repeats // 5)):
        regionprops_table(labels, image, properties=props)
    theirs = (time.perf_counter() - t0) / max(1, repeats // 5)
    return {"n_objects": int(len(np.unique(labels)) - 1), "covered": float((labels > 0).mean()),
            "edgetrack_ms": 1e3 * ours, "regionprops_ms": 1e3 * theirs, "speedup": theirs / ours}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    parser.add_argument("--scorer", default="distance", help="edgetrack scorer: distance (default) or transformer")
    parser.add_argument("--linkers", nargs="+", default=["greedy", "lap", "ilp"])
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                        help="also run LapTrack and the nearest-neighbour LAP baseline (default on)")
    parser.add_argument("--images", action=argparse.BooleanOptionalAction, default=True,
                        help="read the raw images for mean_intensity (default on)")
    parser.add_argument("--features-speed", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--drop", type=float, default=0.0, help="remove each object with this probability first")
    parser.add_argument("--seed", type=int, default=0, help="seed of --drop")
    parser.add_argument("--fill-gaps", action="store_true", help="fill the objects missing inside tracks")
    args = parser.parse_args(argv)

    from edgetrack.runtime.io.masks import ctc_result
    from edgetrack.runtime.cells.tracker import default_max_distance
    from edgetrack.runtime.metrics.ctc import ctc_scores

    rows = []
    for name in args.sequences:
        if not (DATA / name / "01_GT" / "TRA").is_dir():
            print(f"{name}: {DATA / name / '01_GT' / 'TRA'} not found, skipped", file=sys.stderr)
            continue
        masks, images, lineage = load(name, args.images)
        check = sanity(masks, lineage)
        print(f"{name}: {len(masks)} frames {masks.shape[1]}x{masks.shape[2]}, {len(lineage)} tracks; sanity: "
              f"GT vs GT TRA {check['self_TRA']:.6f}, one link broken AOGM {check['broken_AOGM']} "
              f"TRA {check['broken_TRA']:.6f} (expected {check['expected_TRA']:.6f}) -> "
              f"{'ok' if check['ok'] else 'FAILED'}", flush=True)
        seen = masks
        if args.drop > 0:
            seen = drop_objects(masks, args.drop, args.seed)
            kept = sum(len(np.unique(m)) - 1 for m in seen) / max(1, sum(len(np.unique(m)) - 1 for m in masks))
            print(f"  dropped objects with p={args.drop:g} (seed {args.seed}): {100 * kept:.1f}% kept", flush=True)
        tables, feat_s = features_of(seen, images)
        first = next(tab for tab in tables if len(tab))
        max_distance = default_max_distance(first["area"].to_numpy())
        objects = pd.concat(tables, ignore_index=True)
        methods = [(f"edgetrack {args.scorer}/{linker}", lambda linker=linker: run_edgetrack(
            tables, args.scorer, linker, max_distance)) for linker in args.linkers]
        if args.peers:
            methods += [("laptrack", lambda: run_laptrack(objects, max_distance)),
                        ("nn-lap", lambda: run_nn_lap(tables, max_distance))]
        for label, method in methods:
            try:
                tracks, seconds = method()
            except Exception as exc:  # report the failure of one method and go on
                print(f"  {label}: failed: {type(exc).__name__}: {exc}", flush=True)
                rows.append({"sequence": name, "method": label, "error": f"{type(exc).__name__}: {exc}"})
                continue
            result_masks = seen
            if args.fill_gaps and "label" in tracks.columns:
                from edgetrack.runtime.cells.gaps import fill_gaps

                tracks, result_masks = fill_gaps(tracks, seen, max_gap=MAX_GAP)
            res, res_lineage = ctc_result(tracks, result_masks)
            s = ctc_scores(masks, lineage, res, res_lineage)
            row = {"sequence": name, "method": label, **score_columns(s), "AOGM": s["AOGM"],
                   "track_ms_per_frame": 1e3 * seconds / len(masks),
                   "features_ms_per_frame": 1e3 * feat_s / len(masks), "max_distance": max_distance}
            rows.append(row)
            print(f"  {label:28s} TRA {row['TRA']:.4f}  LNK {row['LNK']:.4f}  div F1 {row['division_f1']:.3f} "
                  f"({row['div_tp']}/{row['div_fp']}/{row['div_fn']} tp/fp/fn)  AOGM {row['AOGM']:.1f} "
                  f"[ED {row['ED']} EA {row['EA']} EC {row['EC']}]  track {row['track_ms_per_frame']:.2f} ms/frame  "
                  f"features {row['features_ms_per_frame']:.2f} ms/frame", flush=True)
    if args.features_speed:
        fs = features_speed()
        print(f"features on 1024x1024, {fs['n_objects']} objects ({100 * fs['covered']:.0f}% of the pixels): "
              f"edgetrack {fs['edgetrack_ms']:.1f} ms, regionprops_table {fs['regionprops_ms']:.1f} ms "
              f"({fs['speedup']:.1f}x)", flush=True)
        rows.append({"section": "features_speed", **fs})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
