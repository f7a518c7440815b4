"""Speed of the AnDi simulators: seconds to simulate N trajectories of T frames per model.

Run:  python benchmarks/bench_andi_sim.py [--n 10000] [--frames 200] [--repeats 3]

Rows:
* ``fbm``: exact fractional Brownian motion (one random alpha per trajectory).
* theory models ``attm ctrw lw sbm`` (one random valid alpha per trajectory).
* the five phenomenological models through ``simulate``, with the challenge's random default
  parameters, ``n / 50`` experiments of 50 particles (whole trajectories, no field of view).
* ``challenge:<model>``: the same experiments made into challenge data (field of view, label
  filter, noise, change points, ensemble labels); the trajectory count is the number of
  pieces inside the fields of view.

Each row is timed ``--repeats`` times after one warm-up run (Numba compilation excluded) and the
median is printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgetrack.training.andi import challenge as C
from edgetrack.training.andi import models as M
from edgetrack.training.andi import theory as TH
from edgetrack.training.andi.fbm import fbm


def _time(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up (compiles Numba kernels on a fresh cache)
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="trajectories per model (default 10000)")
    ap.add_argument("--frames", type=int, default=200, help="frames per trajectory (default 200)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n, t = args.n, args.frames
    n_exp = max(1, n // C.N_PARTICLES)
    rows: list[tuple[str, int, float]] = []

    def seeded():
        return np.random.default_rng(args.seed)

    sec, out = _time(lambda: fbm(seeded().uniform(0.05, 1.95, n), 1.0, t, seeded()), args.repeats)
    rows.append(("fbm", out.shape[0], sec))
    for model in ("attm", "ctrw", "lw", "sbm"):
        lo, hi = TH.ALPHA_RANGES[model]
        alpha = np.random.default_rng(args.seed).uniform(max(lo, 0.05) + 1e-9, hi, n)
        sec, out = _time(lambda m=model, a=alpha: TH.simulate_theory(m, a, t, seeded()), args.repeats)
        rows.append((model, out.shape[0], sec))
    for model in C.PHENOM_MODELS:
        cfg_rng = np.random.default_rng(args.seed)
        cfgs = [C.challenge_config(model, cfg_rng) for _ in range(n_exp)]
        sec, out = _time(lambda c=cfgs: M.simulate(c, C.N_PARTICLES, t, seeded()), args.repeats)
        rows.append((model, out.n_trajectories, sec))
        sec, data = _time(
            lambda c=cfgs, m=model: C.challenge_dataset(m, n_exp, seeded(), configs=c, n_frames=t), args.repeats
        )
        rows.append((f"challenge:{model}", data.trajectories.n_trajectories, sec))

    print(f"{t} frames per trajectory; median of {args.repeats} runs after a warm-up\n")
    print("| model | trajectories | seconds | trajectories/s |")
    print("|---|---:|---:|---:|")
    for name, count, sec in rows:
        print(f"| {name} | {count} | {sec:.3f} | {count / sec:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
