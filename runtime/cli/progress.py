"""A minimal progress bar for long command-line work, written to a text stream (stderr by default)."""

from __future__ import annotations

import sys
import time
from typing import IO


class Progress:
    """Prints ``label  done/total  rate  eta`` on one line, at most every ``interval`` seconds.

    On a terminal the line is rewritten in place; elsewhere a line is printed about every 10%.
    ``enabled=False`` prints nothing. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, total: int | None, label: str = "", unit: str = "frames", *, enabled: bool = True,
                 stream: IO[str] | None = None, interval: float = 0.2) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_pct = 10

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last >= self.interval:
                self._last = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
        elif self.total:
            pct = 100 * self.done // self.total
            if pct >= self._next_pct:
                self._next_pct = (pct // 10 + 1) * 10
                self.stream.write(self._line(now) + "\n")
                self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            return f"{self.label} {self.done}/{self.total} {self.unit} {rate:.1f} {self.unit}/s eta {eta:.0f} s"
        return f"{self.label} {self.done} {self.unit} {rate:.1f} {self.unit}/s"

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\r" + self._line(time.perf_counter()) + "\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
