"""Speed of the candidate graph (vs scipy cKDTree) and of the linkers on a streaming-sized window.

Run:  python benchmarks/bench_graph.py [--repeats 7] [--sizes 1000 10000 100000]

Table 1, build_graph with max_gap=1 on two frames of N/2 uniform points each (square sized for
DENSITY points per px^2 per frame, max_distance 6 px) against the fairest scipy equivalent:
cKDTree of frame t and of frame t+1 (both built inside the timing, as build_graph builds its cell
list) and ``tree_t.sparse_distance_matrix(tree_t1, r, output_type="ndarray")``, which returns
exactly the cross-frame pairs with their distances (query_pairs over the union would also find,
and then have to discard, the same-frame pairs). scipy's pairs come unsorted and without dy, dx;
build_graph's are sorted by (dst, src) and carry dt, dy, dx. Both edge sets are checked equal.

Table 2, edges_into_frame per streaming call: 500 new points against the 2 previous frames.

Table 3, linkers per call on a window of 5 frames x 500 Brownian objects (sigma 1 px/frame,
max_gap 2, distance scores) in square fields of 512, 256, 160 and 128 px, and two locking
patterns: only the newest frame undecided, or every frame but the oldest undecided (what the
streaming Tracker does with window 4).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.spatial import cKDTree

from edgetrack.runtime.associate.distance import DistanceScorer
from edgetrack.runtime.graph.candidates import build_graph, edges_into_frame
from edgetrack.runtime.link.registry import get_linker

DENSITY = 0.002  # points per px^2 per frame (about 500 spots in a 512 x 512 field)
MAX_DISTANCE = 6.0


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (Numba compile / cache load)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def two_frames(n: int, rng: np.random.Generator):
    half = n // 2
    side = np.sqrt(half / DENSITY)
    frame = np.repeat(np.array([0, 1], dtype=np.int64), [half, n - half])
    y = rng.uniform(0, side, n)
    x = rng.uniform(0, side, n)
    return frame, y, x


def bench_graph(sizes, repeats: int, rng: np.random.Generator) -> list[str]:
    rows = [
        "| detections | edges | build_graph (ms) | cKDTree x2 + sparse_distance_matrix (ms) | speed-up |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        frame, y, x = two_frames(n, rng)
        a = frame == 0
        pa = np.column_stack([y[a], x[a]])
        pb = np.column_stack([y[~a], x[~a]])
        ia = np.nonzero(a)[0]
        ib = np.nonzero(~a)[0]

        def ours():
            return build_graph(frame, y, x, MAX_DISTANCE, 1)

        def scipy_pairs():
            return cKDTree(pa).sparse_distance_matrix(cKDTree(pb), MAX_DISTANCE, output_type="ndarray")

        e = ours()
        ref = scipy_pairs()
        ours_set = set(zip(e.src.tolist(), e.dst.tolist()))
        ref_set = set(zip(ia[ref["i"]].tolist(), ib[ref["j"]].tolist()))
        if ours_set != ref_set:
            raise SystemExit(f"edge sets differ at n={n}: {len(ours_set)} vs {len(ref_set)}")
        t_ours = median_time(ours, repeats)
        t_ref = median_time(scipy_pairs, repeats)
        rows.append(f"| {n:,} | {len(e.src):,} | {t_ours * 1e3:.3f} | {t_ref * 1e3:.3f} | {t_ref / t_ours:.1f}x |")
    return rows


def bench_stream(repeats: int, rng: np.random.Generator) -> list[str]:
    per = 500
    frame, y, x = two_frames(3 * per, rng)
    frame = np.repeat(np.arange(3, dtype=np.int64), per)
    past = slice(0, 2 * per)
    new = slice(2 * per, 3 * per)

    def call():
        return edges_into_frame(frame[past], y[past], x[past], y[new], x[new], 2, MAX_DISTANCE, 2)

    t = median_time(call, repeats * 20)
    return [
        "| call | new | past | edges | time per call (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| edges_into_frame, max_gap 2 | {per} | {2 * per} | {len(call().src):,} | {t * 1e3:.3f} |",
    ]


def brownian_window(per: int, n_frames: int, side: float, rng: np.random.Generator):
    start = rng.uniform(0, side, (per, 2))
    steps = rng.normal(0.0, 1.0, (n_frames, per, 2))
    steps[0] = 0.0
    pos = start[None] + np.cumsum(steps, axis=0)
    frame = np.repeat(np.arange(n_frames, dtype=np.int64), per)
    return frame, pos[:, :, 0].ravel(), pos[:, :, 1].ravel()


def bench_linkers(repeats: int, rng: np.random.Generator) -> list[str]:
    per, n_frames = 500, 5
    rows = [
        "| field (px) | nodes | edges | undecided frames | linker | time per call (ms) |",
        "|---:|---:|---:|---|---|---:|",
    ]
    scorer = DistanceScorer(step_sigma=1.0)
    for side in (512.0, 256.0, 160.0, 128.0):
        frame, y, x = brownian_window(per, n_frames, side, rng)
        e = build_graph(frame, y, x, MAX_DISTANCE, 2)
        score = scorer.score(e)
        n = frame.size
        # Commit the older frames with a first LAP pass, as a streaming tracker would have done.
        full = get_linker("lap")(frame, e.src, e.dst, e.dt, score, np.full(n, -2, np.int64),
                                 np.zeros(n, np.int64), dist=e.dist)
        for label, first_open in (("newest only", n_frames - 1), ("all but oldest", 1)):
            locked = np.where(frame < first_open, full, -2).astype(np.int64)
            locked[frame == 0] = -1
            children = np.bincount(locked[locked >= 0], minlength=n).astype(np.int64)
            for name in ("greedy", "lap"):
                linker = get_linker(name)

                def call():
                    return linker(frame, e.src, e.dst, e.dt, score, locked, children, dist=e.dist)

                t = median_time(call, repeats * 10)
                rows.append(f"| {side:.0f} | {n:,} | {len(e.src):,} | {label} | {name} | {t * 1e3:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for table in (bench_graph(args.sizes, args.repeats, rng), bench_stream(args.repeats, rng),
                  bench_linkers(args.repeats, rng)):
        print("\n".join(table))
        print()


if __name__ == "__main__":
    main()
