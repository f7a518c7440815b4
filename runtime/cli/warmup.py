"""The first run after installing: compile the linking kernels in a second process while this one
compiles the detection kernels, and say so in one line.

Numba compiles each kernel on its first call and caches it on disk (``cache=True``); one process
compiles one kernel at a time. On a cold cache the detection kernels (about half the compile time)
and the candidate-graph and linking kernels (the other half) are independent, so a helper process
compiles the second half on another core and writes it to the same cache; this process then loads
it from there instead of compiling it again. Later runs find everything cached and start nothing.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import IO

__all__ = ["COMPILE_SECONDS", "announce_and_warm"]

# measured on one core of the 2-core CI machine (benchmarks/RESULTS.md, cold start): detection kernels,
# candidate graph + LAP / greedy kernels; the message quotes the larger, as both halves run at once
COMPILE_SECONDS = {"detect": 15, "link": 12}


def _compile_link_kernels() -> None:  # pragma: no cover - runs in the helper process
    """Compile (and cache) the graph, scorer and lap / greedy kernels on a tiny synthetic stream."""
    import numpy as np
    import pandas as pd

    from edgetrack.runtime.stream.tracker import Tracker

    rng = np.random.default_rng(0)
    points = rng.uniform(5, 60, size=(12, 2))
    for linker in ("lap", "greedy"):
        tracker = Tracker(linker=linker, max_distance=6.0, keep_results=True)
        for t in range(5):
            step = points + rng.normal(0, 0.5, points.shape) * t
            tracker.push(pd.DataFrame({"y": step[:, 0], "x": step[:, 1]}), frame=t)
        tracker.finish()


def announce_and_warm(stream: IO[str] | None = None, quiet: bool = False) -> multiprocessing.process.BaseProcess | None:
    """When the Numba cache is cold: print one line and start the helper process; None otherwise.

    The helper is a daemon (it ends with this process) started with ``spawn``, so it shares no state.
    """
    from edgetrack.runtime.info import numba_cache_state

    try:
        folder, warm = numba_cache_state()
    except Exception:  # no numba: the command itself will say what is missing
        return None
    if warm:
        return None
    seconds = max(COMPILE_SECONDS.values())
    stream = stream if stream is not None else sys.stderr
    if not quiet:
        print(f"edgetrack: first run on this installation: compiling the kernels for this machine "
              f"(about {seconds} s on two cores, then cached in {folder})", file=stream, flush=True)
    try:
        process = multiprocessing.get_context("spawn").Process(target=_compile_link_kernels, daemon=True,
                                                               name="edgetrack-compile")
        process.start()
    except OSError:  # no processes allowed here: this process compiles everything itself
        return None
    return process
