"""Ctrl-C that survives libraries which swallow it.

A ``KeyboardInterrupt`` raised while Numba loads a compiled function from its cache can be caught
there (it arrives wrapped in a ``SystemError`` that the loader treats as a cache miss), and the run
then carries on as if nothing happened. The command line therefore installs :func:`handling_sigint`,
which remembers every Ctrl-C, and long loops call :func:`check` between frames so a swallowed
interrupt is raised again at the next safe point. Library code never installs signal handlers.

A Ctrl-C that lands while Numba compiles can also leave a half-built llvmlite object behind, whose
destructor then fails and Python prints an "Exception ignored in ..." traceback after the run has
already ended cleanly. From the first Ctrl-C on, :func:`quiet_library_destructors` drops those
reports (only for objects of llvmlite and Numba; everything else reaches the previous hook).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_REQUESTED = threading.Event()


#: Top-level packages whose failing destructors are silenced after a Ctrl-C.
_QUIET_PACKAGES = ("llvmlite", "numba")


def quiet_library_destructors() -> None:
    """Install a ``sys.unraisablehook`` that drops unraisable exceptions of llvmlite / Numba objects.

    Idempotent; every other unraisable exception goes to the hook that was installed before.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_edgetrack_quiet", False):
        return

    def hook(unraisable) -> None:
        module = getattr(unraisable.object, "__module__", None) or ""
        if module.split(".")[0] in _QUIET_PACKAGES:
            return
        previous(unraisable)

    hook._edgetrack_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _on_sigint(signum: int, frame: object) -> None:
    _REQUESTED.set()
    quiet_library_destructors()
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
