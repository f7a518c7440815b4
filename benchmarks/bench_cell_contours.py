"""Cells with a contour (boundary) map: TRA with the labels alone, with a foreground map, and with a
foreground and a contour map (``CellTracker.push(..., foreground=, contours=)``, cells/contours.py).

* ``sim``: simulated movies (``simulate_cells``, 256 x 256, 30 frames, 20 cells, merge rate 0.1, split rate
  0.05), the raw frames as the foreground (sigma 1), and two contour maps: ``network`` (the true boundaries
  blurred by 1 px, doubled, Gaussian noise of 0.1, clipped to [0, 1]: what a boundary network gives) and
  ``noise`` (smoothed uniform noise: a map that knows nothing).
* ``ctc``: the shared CTC sequences segmented by ``bench_cells_seg.segment_frame`` at its settings and at two
  others (sigma 1.5 / seeds 6 px apart, sigma 3 / 12 px), the three combined by ``contours_from_labels``;
  the labels are the first segmentation, the foreground the raw frame smoothed by 2 px (``raw``) or the
  three segmentations' share (``share``). Needs ``../shared/data`` and scikit-image.

    python benchmarks/bench_cell_contours.py sim --seeds 1 2 3
    python benchmarks/bench_cell_contours.py ctc --cache /tmp/edgetrack-seg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from edgetrack.runtime.cells.contours import contours_from_labels
from edgetrack.runtime.cells.fragments import relabel_masks
from edgetrack.runtime.cells.tracker import CellTracker
from edgetrack.runtime.io.masks import ctc_result
from edgetrack.runtime.metrics.ctc import ctc_scores


def tra_of(masks, images, true_masks, lineage, foreground=None, contours=None, sigma=1.0) -> tuple[dict, float]:
    """CTC scores of CellTracker on ``masks`` (T, H, W) with the given maps (callables of t, or None), and the
    chooser + tracking seconds per frame."""
    tracker = CellTracker(hypotheses={"sigma": sigma} if foreground is not None else None)
    chosen, seconds = [], 0.0
    for t, (m, im) in enumerate(zip(masks, images)):
        fg = None if foreground is None else foreground(t)
        ct = None if contours is None else contours(t)
        t0 = time.perf_counter()
        tracker.push(m, im, foreground=fg, contours=ct)
        seconds += time.perf_counter() - t0
        chosen.append(tracker.chosen_labels)
    tracks = tracker.finish()
    res, res_lineage = ctc_result(tracks, relabel_masks(np.stack(chosen), tracker.merged_labels))
    return ctc_scores(true_masks, lineage, res, res_lineage), seconds / len(masks)


def run_sim(seeds: list[int]) -> None:
    from edgetrack.training.cells import simulate_cells

    for seed in seeds:
        sim = simulate_cells(seed=seed, shape=(256, 256), n_frames=30, n_cells=20, merge_rate=0.1, split_rate=0.05)
        rng = np.random.default_rng(seed)

        def network(t):
            _, edge = contours_from_labels([sim.true_masks[t]])
            return np.clip(ndi.gaussian_filter(edge, 1.0) * 2 + rng.normal(0, 0.1, edge.shape), 0, 1)

        def noise(t):
            return np.clip(ndi.gaussian_filter(rng.random(sim.masks[t].shape), 1.0) * 2 - 0.5, 0, 1)

        def raw(t):
            return sim.images[t]

        row = {}
        for name, fg, ct in (("labels", None, None), ("foreground", raw, None), ("foreground + network contours", raw, network),
                             ("foreground + noise contours", raw, noise)):
            s, sec = tra_of(sim.masks, sim.images, sim.true_masks, sim.lineage, fg, ct)
            row[name] = s["TRA"]
            print(f"sim seed {seed}: {name:30s} TRA {s['TRA']:.4f}  division F1 {s['division_f1']:.3f}  "
                  f"{1e3 * sec:.1f} ms/frame", flush=True)


def run_ctc(cache: Path | None) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_cells import SEQUENCES, DATA
    from bench_cells_seg import load_raw, segment_frame, segment_movie
    from edgetrack.runtime.detect.filters import gaussian_smooth

    variants = {"a": {"sigma": 1.5, "min_distance": 6}, "b": {"sigma": 3.0, "min_distance": 12}}
    for name in SEQUENCES:
        if not (DATA / name / "01").is_dir():
            print(f"{name}: not found under {DATA}, skipped", file=sys.stderr)
            continue
        images, gt, lineage = load_raw(name)
        seg, _ = segment_movie(name, images, cache)
        others = []
        for key, kw in variants.items():
            path = None if cache is None else cache / f"{name}-seg-{key}.npy"
            if path is not None and path.exists():
                others.append(np.load(path))
                continue
            masks = np.stack([segment_frame(im, **kw) for im in images])
            if path is not None:
                np.save(path, masks)
            others.append(masks)
        maps = [contours_from_labels([seg[t], others[0][t], others[1][t]]) for t in range(len(seg))]

        def raw(t):
            return gaussian_smooth(np.asarray(images[t], np.float32), 2.0)

        for label, fg, ct in (("raw foreground", raw, None), ("raw foreground + contours", raw, lambda t: maps[t][1]),
                              ("share foreground + contours", lambda t: maps[t][0], lambda t: maps[t][1])):
            s, sec = tra_of(seg, images, gt, lineage, fg, ct, sigma=0.0)
            print(f"{name}: {label:28s} TRA {s['TRA']:.4f}  division F1 {s['division_f1']:.3f}  "
                  f"{1e3 * sec:.1f} ms/frame", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("sim")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p = sub.add_parser("ctc")
    p.add_argument("--cache", type=Path, default=None, help="keep the segmentations here as .npy")
    args = parser.parse_args(argv)
    if args.what == "sim":
        run_sim(args.seeds)
    else:
        run_ctc(args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
