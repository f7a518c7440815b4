"""Cell tracking live: the time of each ``CellTracker.push`` (label image and intensity frame in, committed
frames out) and of ``finish`` on the shared CTC sequences: the defaults, the transformer scorer, and the
raw frames given as a foreground map (``foreground=``, smoothed by 2 px; cells/hypotheses.py).

    python benchmarks/bench_cells_live.py [--repeats 3]

Scenes: the shared sequences' ground-truth markers (``01_GT/TRA``, skipped when ``../shared/data`` is
missing) and a simulated 1024 x 1024 movie of about 50 cells (``training.cells.simulate_cells``, radius
14-20 px, its segmentation with misses, merges, splits and false objects). The masks are read into memory before timing, so the
times are those of features, scoring, linking and committing, not of reading TIFFs. Reports per frame
p50 / p99 / max of ``push`` (ms; the first push, which compiles nothing but warms caches, included), the
``finish`` time (the segmentation-error handling runs there), the frame size and the objects per frame.
Needs ``../shared/data/ctc``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from edgetrack.runtime.cells.tracker import CellTracker
from edgetrack.runtime.io.masks import open_images, open_masks

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc"


def _load(seq: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    masks, images = open_masks(seq / "01_GT" / "TRA"), open_images(seq / "01")
    n = min(len(masks), len(images))
    return np.stack([masks[t] for t in range(n)]), np.stack([images[t] for t in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| sequence | frame | objects per frame | scorer | push p50 / p99 / max (ms) | finish (ms) |")
    print("|---|---|---:|---|---|---:|")
    scenes = [(seq.name, *_load(seq)) for seq in sorted(DATA.iterdir())] if DATA.is_dir() else []
    from edgetrack.training.cells import simulate_cells

    sim = simulate_cells(seed=3, shape=(1024, 1024), n_frames=40, n_cells=50, radius_range=(14.0, 20.0))
    scenes.append(("simulated, segmentation errors", sim.masks, sim.images))
    for name, masks, images in scenes:
        per_frame = np.mean([len(np.unique(m)) - 1 for m in masks])
        for scorer in ("distance", "transformer", "distance + foreground"):
            pushes, finishes = [], []
            for _ in range(args.repeats):
                with_map = scorer.endswith("foreground")
                tracker = CellTracker(scorer=scorer.split()[0], hypotheses={"sigma": 2.0} if with_map else None)
                times = []
                for m, im in zip(masks, images):
                    start = time.perf_counter()
                    tracker.push(m, im, foreground=im if with_map else None)
                    times.append(time.perf_counter() - start)
                start = time.perf_counter()
                tracker.finish()
                finishes.append(time.perf_counter() - start)
                pushes.append(np.array(times) * 1e3)
            p = np.median(np.stack(pushes), axis=0)  # per frame, median over repeats
            print(f"| {name} | {masks.shape[1]}x{masks.shape[2]} | {per_frame:.0f} | {scorer} | "
                  f"{np.percentile(p, 50):.1f} / {np.percentile(p, 99):.1f} / {p.max():.1f} | "
                  f"{1e3 * np.median(finishes):.0f} |", flush=True)


if __name__ == "__main__":
    main()
