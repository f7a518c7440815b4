"""Cold start of `edgetrack track`: seconds to the first committed frame and to the end, with an empty
Numba cache, as right after `pip install`.

It DELETES the Numba cache files of the edgetrack it imports, so run it with a throwaway install:

    python -m venv /tmp/cold && /tmp/cold/bin/pip install dist/edgetrack-*.whl
    /tmp/cold/bin/python benchmarks/bench_coldstart.py MOVIE.tif [--no-warmup]

--no-warmup: without the helper process that compiles the linking kernels meanwhile.
"""

from __future__ import annotations

import glob
import io
import os
import pathlib
import sys
import tempfile
import time


class _Stamp(io.TextIOBase):
    """stderr that notes when the first frame is reported committed."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.first: float | None = None

    def write(self, s: str) -> int:
        if "tracking 1/" in s and self.first is None:
            self.first = time.perf_counter() - self.t0
        return len(s)


def main() -> None:
    t0 = time.perf_counter()
    import edgetrack.runtime.cli.app as app

    if "--no-warmup" in sys.argv:
        app.WARMUP_COMMANDS = frozenset()
    site = pathlib.Path(app.__file__).parents[2]
    for f in glob.glob(str(site / "**" / "*.nb[ic]"), recursive=True):
        os.remove(f)
    stamp = _Stamp(t0)
    sys.stderr = stamp
    out = pathlib.Path(tempfile.mkdtemp()) / "tracks.csv"
    code = app.main(["track", sys.argv[1], "--out", str(out)])
    total = time.perf_counter() - t0
    sys.stderr = sys.__stderr__
    first = f"{stamp.first:.1f} s" if stamp.first is not None else "never"
    print(f"exit {code}: first frame committed at {first}, finished at {total:.1f} s")


if __name__ == "__main__":  # the compile helper is started with 'spawn': it must not run this again
    main()
