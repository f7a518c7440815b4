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
        self._first: tuple[float, int] | None = None  # (time, count) of the first update: the rate starts there

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, self.done)
        if not self.enabled:
            return
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

    def rate(self, now: float | None = None) -> float | None:
        """Items per second since the first update (start-up and one-time compilation excluded), or None
        before two updates."""
        now = time.perf_counter() if now is None else now
        if self._first is None or self.done <= self._first[1] or now <= self._first[0]:
            return None
        return (self.done - self._first[1]) / (now - self._first[0])

    def _line(self, now: float) -> str:
        rate = self.rate(now)
        shown = f"{rate:.1f} {self.unit}/s" if rate is not None else f"- {self.unit}/s"
        if self.total:
            eta = f"eta {(self.total - self.done) / rate:.0f} s" if rate else "eta -"
            return f"{self.label} {self.done}/{self.total} {self.unit} {shown} {eta}"
        return f"{self.label} {self.done} {self.unit} {shown}"

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\r" + self._line(time.perf_counter()) + "\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
