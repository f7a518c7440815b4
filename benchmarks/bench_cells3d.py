"""Cells from 3-D label masks (issue 20): TRA, division F1 and ms per stack on simulated 3-D movies.

Each movie is :func:`~edgetrack.runtime.simulate.volumes.simulate_cells_3d` (ellipsoidal cells that move,
grow and divide; anisotropic voxels (1.0, 0.5, 0.5) um, z twice as coarse), tracked by
:func:`~edgetrack.runtime.cells.tracker.track_cells` with ``ndim=3`` at its defaults (distance scorer,
greedy linker with divisions, max_distance one median sphere-equivalent diameter of the first stack)
and scored with :func:`~edgetrack.runtime.metrics.ctc.ctc_scores` against the simulator's own labels
and lineage (perfect segmentation: this measures the linking and the division detection only).
``features ms`` is the 3-D feature pass per stack, ``track ms`` scoring, linking and id rebuilding per
stack (the first run of a process compiles Numba; a warm-up movie is tracked first).

    nice -n 19 python benchmarks/bench_cells3d.py
    nice -n 19 python benchmarks/bench_cells3d.py --frames 30 --shape 32 128 128 --cells 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from edgetrack.runtime.cells.tracker import CellTracker
from edgetrack.runtime.io.masks import ctc_result
from edgetrack.runtime.metrics.ctc import ctc_scores
from edgetrack.runtime.simulate.volumes import simulate_cells_3d

VOXEL = (1.0, 0.5, 0.5)


def run_one(n_frames: int, shape: tuple[int, int, int], n_cells: int, division_rate: float, seed: int) -> dict:
    """Simulate, track and score one movie; returns the scores and timings."""
    movie = simulate_cells_3d(n_frames=n_frames, shape=shape, n_cells=n_cells, voxel_size=VOXEL,
                              division_rate=division_rate, seed=seed)
    tracker = CellTracker(ndim=3, voxel_size=VOXEL)
    start = time.perf_counter()
    for stack in movie.labels:
        tracker.push(stack)
    tracks = tracker.finish()
    elapsed = time.perf_counter() - start
    res, lineage = ctc_result(tracks, movie.labels)
    scores = ctc_scores(movie.labels, movie.lineage, res, lineage)
    return {"seed": seed, "objects": len(tracks), "gt_divisions": int((movie.lineage["parent"] > 0).sum() // 2),
            "TRA": scores["TRA"], "LNK": scores["LNK"], "division_f1": scores["division_f1"],
            "division_tp": scores["division_tp"], "division_fp": scores["division_fp"],
            "division_fn": scores["division_fn"], "max_distance_px": tracker.max_distance,
            "ms_per_stack": 1e3 * elapsed / n_frames,
            "features_ms": 1e3 * tracker.seconds["features"] / n_frames,
            "track_ms": 1e3 * tracker.seconds["tracking"] / n_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 128, 128), metavar=("Z", "Y", "X"))
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--division-rate", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=(0, 1, 2))
    args = parser.parse_args()
    run_one(3, (8, 32, 32), 2, 0.0, 0)  # warm-up: Numba compilation
    rows = [run_one(args.frames, tuple(args.shape), args.cells, args.division_rate, s) for s in args.seeds]
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in ("TRA", "LNK", "division_f1", "ms_per_stack",
                                                                  "features_ms", "track_ms")}
    print("mean", json.dumps({k: round(v, 4) for k, v in mean.items()}))


if __name__ == "__main__":
    main()
