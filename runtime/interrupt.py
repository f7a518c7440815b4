"""Ctrl-C that survives libraries which swallow it.

A ``KeyboardInterrupt`` raised while Numba loads a compiled function from its cache can be caught
there (it arrives wrapped in a ``SystemError`` that the loader treats as a cache miss), and the run
then carries on as if nothing happened. The command line therefore installs :func:`handling_sigint`,
which remembers every Ctrl-C, and long loops call :func:`check` between frames so a swallowed
interrupt is raised again at the next safe point. Library code never installs signal handlers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_REQUESTED = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    _REQUESTED.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def handling_sigint() -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt and is also remembered for :func:`check`.

    Outside the main thread (where Python forbids signal handlers) this does nothing.
    """
    _REQUESTED.clear()
    try:
        previous = signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread of the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _REQUESTED.clear()


def requested() -> bool:
    """True when a Ctrl-C arrived inside :func:`handling_sigint` (even if something swallowed it)."""
    return _REQUESTED.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived, swallowed or not; cheap enough to call per frame."""
    if _REQUESTED.is_set():
        raise KeyboardInterrupt
