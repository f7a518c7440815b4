"""Cell tracking from a real (classical) segmentation of CTC raw frames: TRA, DET, division F1, ms per frame.

Each raw frame ``../shared/data/ctc/<seq>/01/tTTT.tif`` is segmented by :func:`segment_frame`
(scikit-image: Gaussian, Li threshold, holes filled and specks removed, watershed of the distance
transform from its maxima), so the trackers see the merges, splits, misses and extra objects such a
pipeline really makes. Nothing is written into the repository (``--cache DIR`` keeps the masks as
``.npy`` there for reruns). The segmentation's errors against the ground-truth TRA markers are
counted per frame (:func:`segmentation_errors`) and reported as rates.

Methods, all on the same masks and features (raw frames as intensity), max_distance one median
equivalent diameter of the first frame, gap closing over one missing frame:

* ``edgetrack distance/<linker> <config>``: :class:`~edgetrack.runtime.cells.tracker.CellTracker`
  (``bench_cells.run_cell_tracker``) with the distance scorer, linkers greedy and ilp, and the
  segmentation-error handling off (``raw``: ``min_track_length=1, check_divisions=False,
  merge_fragments=False``), at its defaults (``default``), and with each handling alone (``--ablation``).
* ``nn-lap``: frame-to-frame nearest-centroid assignment (``bench_cells.run_nn_lap``).

Scores: :func:`edgetrack.runtime.metrics.ctc.ctc_scores` against ``01_GT/TRA``; DET is the CTC
detection measure from the same counts, ``1 - min(5 NS + 10 FN + FP, 10 |V|) / (10 |V|)``.
``track ms/frame`` is scoring, linking and the handling (features are ready).

    nice -n 19 python benchmarks/bench_cells_seg.py --cache /tmp/edgetrack-seg
    nice -n 19 python benchmarks/bench_cells_seg.py --cache /tmp/edgetrack-seg --ablation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_cells import DATA, SEQUENCES, features_of, run_cell_tracker, run_nn_lap, score_columns

RAW = {"min_track_length": 1, "check_divisions": False, "merge_fragments": False}
ALONE = {"flicker": {**RAW, "min_track_length": 2}, "divisions": {**RAW, "check_divisions": True},
         "fragments": {**RAW, "merge_fragments": True}}


def segment_frame(image: np.ndarray, *, sigma: float = 2.0, min_area: int = 40, min_distance: int = 9) -> np.ndarray:
    """Label image int32 (H, W) of the nuclei of one fluorescence frame (H, W).

    sigma: Gaussian smoothing, px; min_area: objects (and holes) up to this size are dropped (filled),
    px^2; min_distance: between two watershed seeds (maxima of the smoothed distance transform), px.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_li
    from skimage.morphology import remove_small_holes, remove_small_objects
    from skimage.segmentation import watershed

    smooth = gaussian(np.asarray(image, np.float64), sigma=sigma, preserve_range=True)
    foreground = smooth > threshold_li(smooth)
    foreground = remove_small_holes(foreground, max_size=min_area)
    foreground = remove_small_objects(foreground, max_size=min_area)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(foreground), 1.0)  # one seed per blob
    components, _ = ndi.label(foreground)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    seeds = np.zeros(foreground.shape, np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-distance, seeds, mask=foreground).astype(np.int32)
    unseeded = foreground & (labels == 0)  # a component without a maximum keeps a label of its own
    if unseeded.any():
        extra, _ = ndi.label(unseeded)
        labels[unseeded] = extra[unseeded] + labels.max()
    return labels


def segmentation_errors(gt: np.ndarray, seg: np.ndarray, *, split_fraction: float = 0.1) -> dict:
    """Segmentation errors of one frame against ground-truth markers (both (H, W) label images).

    A marker is *found* by the object covering more than half of its pixels (the CTC match), *missed*
    otherwise. A *merge* is an object that finds two or more markers (one per extra marker); a *split*
    is a marker overlapped by two or more objects that each cover at least ``split_fraction`` of it; an
    *extra* object overlaps no marker; an *unmatched* object finds none (extra objects, fragments and
    partial covers).
    """
    g = gt.ravel().astype(np.int64)
    s = seg.ravel().astype(np.int64)
    markers = np.unique(g[g > 0])
    objects = np.unique(s[s > 0])
    inside = g > 0
    base = int(s.max()) + 1
    pairs, counts = np.unique(g[inside] * base + s[inside], return_counts=True)
    pg, ps = pairs // base, pairs % base
    marker_area = np.bincount(g[inside], minlength=int(g.max()) + 1)
    frac = counts / marker_area[pg]
    hit = ps > 0
    found = hit & (frac > 0.5)
    finds = np.bincount(ps[found], minlength=base)
    covers = np.bincount(pg[hit & (frac >= split_fraction)], minlength=int(g.max()) + 1)
    touched = np.zeros(base, bool)
    touched[ps[hit]] = True
    return {"markers": len(markers), "objects": len(objects), "missed": int(len(markers) - found.sum()),
            "merges": int(np.maximum(finds - 1, 0).sum()), "splits": int((covers[markers] >= 2).sum()),
            "extra": int((~touched[objects]).sum()), "unmatched": int((finds[objects] == 0).sum())}


def load_raw(name: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(raw frames (T, H, W), ground-truth TRA markers (T, H, W), lineage) of ``<name>/01``."""
    from edgetrack.runtime.io.masks import open_images, open_masks, read_ctc_lineage

    gt = DATA / name / "01_GT" / "TRA"
    return np.stack(list(open_images(DATA / name / "01"))), np.stack(list(open_masks(gt))), read_ctc_lineage(gt)


def segment_movie(name: str, images: np.ndarray, cache: Path | None) -> tuple[np.ndarray, float]:
    """Segmented masks of every frame (read from ``cache`` when there), and the seconds per frame."""
    path = None if cache is None else cache / f"{name}-seg.npy"
    if path is not None and path.exists():
        return np.load(path), float("nan")
    t0 = time.perf_counter()
    out = []
    for t, image in enumerate(images):
        out.append(segment_frame(image))
        if (t + 1) % 20 == 0 or t + 1 == len(images):
            print(f"  segmented {t + 1}/{len(images)} frames", file=sys.stderr, flush=True)
    masks = np.stack(out)
    seconds = (time.perf_counter() - t0) / len(images)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, masks)
    return masks, seconds


def choose_hypotheses(seg: np.ndarray, images: np.ndarray, sigma: float = 2.0) -> tuple[np.ndarray, float, dict]:
    """The objects :class:`~edgetrack.runtime.cells.hypotheses.SegmentChooser` chooses among ``seg`` and the
    components of the smoothed raw frames (the segmentation's own foreground map), seconds per frame, counts."""
    from skimage.filters import gaussian

    from edgetrack.runtime.cells.hypotheses import SegmentChooser

    chooser = SegmentChooser()
    t0 = time.perf_counter()
    out = np.stack([chooser.push(s, gaussian(np.asarray(im, np.float64), sigma=sigma, preserve_range=True))
                    for s, im in zip(seg, images)])
    seconds = (time.perf_counter() - t0) / len(seg)
    counts = pd.DataFrame(chooser.counts).sum().to_dict()
    return out, seconds, {k: int(v) for k, v in counts.items()}


def error_rates(gt: np.ndarray, seg: np.ndarray) -> dict:
    """:func:`segmentation_errors` summed over frames, with rates per marker (and per object for extras)."""
    total = pd.DataFrame([segmentation_errors(gt[t], seg[t]) for t in range(len(gt))]).sum().to_dict()
    rates = {f"{k}_per_marker": total[k] / max(1, total["markers"]) for k in ("missed", "merges", "splits")}
    rates.update({f"{k}_per_object": total[k] / max(1, total["objects"]) for k in ("extra", "unmatched")})
    return {**{k: int(v) for k, v in total.items()}, **rates}


def det_score(s: dict) -> float:
    """CTC DET from the counts of :func:`ctc_scores`."""
    aogm_d = 5.0 * s["NS"] + 10.0 * s["FN"] + 1.0 * s["FP"]
    aogm_d0 = 10.0 * s["n_vertices"]
    return 1.0 - min(aogm_d, aogm_d0) / aogm_d0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    parser.add_argument("--linkers", nargs="+", default=["greedy", "ilp"])
    parser.add_argument("--cache", type=Path, help="keep the segmented masks here as .npy (outside the repo)")
    parser.add_argument("--ablation", action="store_true", help="also run each segmentation-error handling alone")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--hypotheses", action="store_true",
                        help="also choose among the labels and coarser objects of the smoothed raw frames "
                             "(cells/hypotheses.py, what edgetrack track --foreground does) before tracking")
    parser.add_argument("--fill-gaps", action="store_true",
                        help="also score the defaults (and the hypotheses) with gap filling (what edgetrack track --format ctc does)")
    args = parser.parse_args(argv)

    from edgetrack.runtime.cells.fragments import relabel_masks
    from edgetrack.runtime.cells.tracker import default_max_distance
    from edgetrack.runtime.io.masks import ctc_result
    from edgetrack.runtime.metrics.ctc import ctc_scores

    from edgetrack.runtime.cells.gaps import fill_gaps

    configs = {"raw": RAW, "default": {}, **(ALONE if args.ablation else {})}
    if args.fill_gaps:
        configs["default filled"] = {}
    rows = []
    for name in args.sequences:
        if not (DATA / name / "01").is_dir() or not (DATA / name / "01_GT" / "TRA").is_dir():
            print(f"{name}: raw frames or 01_GT/TRA not found under {DATA / name}, skipped", file=sys.stderr)
            continue
        images, gt, lineage = load_raw(name)
        seg, seg_s = segment_movie(name, images, args.cache)
        err = error_rates(gt, seg)
        rows.append({"sequence": name, "section": "segmentation", "seconds_per_frame": seg_s, **err})
        print(f"{name}: {len(seg)} frames {seg.shape[1]}x{seg.shape[2]}; segmentation ({seg_s * 1e3:.0f} ms/frame): "
              f"{err['markers']} markers, {err['objects']} objects; missed {100 * err['missed_per_marker']:.1f}%, "
              f"merges {100 * err['merges_per_marker']:.1f}%, splits {100 * err['splits_per_marker']:.1f}% of "
              f"markers; extra {100 * err['extra_per_object']:.1f}%, unmatched "
              f"{100 * err['unmatched_per_object']:.1f}% of objects", flush=True)
        tables, _ = features_of(seg, images)
        first = next(tab for tab in tables if len(tab))
        max_distance = default_max_distance(first["area"].to_numpy())
        methods = []
        for linker in args.linkers:
            for cname, options in configs.items():
                def method(linker=linker, options=options, tables=tables, seg=seg, max_distance=max_distance,
                           fill=cname.endswith("filled")):
                    tracker = run_cell_tracker(tables, "distance", linker, max_distance, **options)
                    tracks, masks = tracker.finish(), relabel_masks(seg, tracker.merged_labels)
                    if fill:
                        tracks, masks = fill_gaps(tracks, masks)
                    return tracks, masks, tracker.seconds["tracking"]
                methods.append((f"edgetrack distance/{linker} {cname}", method))
        def nearest(tables=tables, seg=seg, max_distance=max_distance):
            tracks, seconds = run_nn_lap(tables, max_distance)
            return tracks, seg, seconds
        methods.append(("nn-lap", nearest))
        if args.hypotheses:
            chosen, choose_s, counts = choose_hypotheses(seg, images)
            err_h = error_rates(gt, chosen)
            rows.append({"sequence": name, "section": "hypotheses", "seconds_per_frame": choose_s, **err_h, **counts})
            print(f"  hypotheses ({choose_s * 1e3:.0f} ms/frame; kept {counts['kept']}, coarser {counts['coarser']}, "
                  f"added {counts['added']}): missed {100 * err_h['missed_per_marker']:.1f}%, splits "
                  f"{100 * err_h['splits_per_marker']:.1f}%, merges {100 * err_h['merges_per_marker']:.1f}%, "
                  f"extra {100 * err_h['extra_per_object']:.1f}% of {err_h['objects']} objects", flush=True)
            tables_h, _ = features_of(chosen, images)
            for linker in args.linkers:
                for fill in (False, True) if args.fill_gaps else (False,):
                    def chosen_method(linker=linker, tables=tables_h, masks=chosen, fill=fill):
                        tracker = run_cell_tracker(tables, "distance", linker, max_distance)
                        tracks, masks = tracker.finish(), relabel_masks(masks, tracker.merged_labels)
                        if fill:
                            tracks, masks = fill_gaps(tracks, masks)
                        return tracks, masks, tracker.seconds["tracking"]
                    methods.append((f"edgetrack distance/{linker} hypotheses{' filled' if fill else ''}", chosen_method))

            def nearest_h(tables=tables_h, masks=chosen, max_distance=max_distance):
                tracks, seconds = run_nn_lap(tables, max_distance)
                return tracks, masks, seconds
            methods.append(("nn-lap on the hypotheses", nearest_h))
        for label, method in methods:
            tracks, result_masks, seconds = method()
            res, res_lineage = ctc_result(tracks, result_masks)
            s = ctc_scores(gt, lineage, res, res_lineage)
            row = {"sequence": name, "method": label, **score_columns(s), "DET": det_score(s),
                   "track_ms_per_frame": 1e3 * seconds / len(seg), "max_distance": max_distance}
            rows.append(row)
            print(f"  {label:36s} TRA {row['TRA']:.4f}  DET {row['DET']:.4f}  LNK {row['LNK']:.4f}  "
                  f"div F1 {row['division_f1']:.3f} ({row['div_tp']}/{row['div_fp']}/{row['div_fn']} tp/fp/fn)  "
                  f"[NS {row['NS']} FN {row['FN']} FP {row['FP']} ED {row['ED']} EA {row['EA']} EC {row['EC']}]  "
                  f"track {row['track_ms_per_frame']:.2f} ms/frame", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
