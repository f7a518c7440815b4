"""Ctrl-C that survives libraries which swallow it.

A ``KeyboardInterrupt`` raised while Numba loads a compiled function from its cache can be caught
there (it arrives wrapped in a ``SystemError`` that the loader treats as a cache miss), and the run
then carries on as if nothing happened. The command line therefore installs :func:`handling_sigint`,
which remembers every Ctrl-C, and long loops call :func:`check` between frames so a swallowed
interrupt is raised again at the next safe point. Library code never installs signal handlers.
SIGTERM and SIGHUP are handled the same way (a :class:`Terminated` KeyboardInterrupt), except inside
:func:`deferring_termination`, where ``edgetrack track`` polls :func:`terminated` between frames to
stop at a safe point and write what it committed.

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
_TERMINATED: list[int] = []  # the SIGTERM / SIGHUP that arrived (first one), inside handling_sigint
_DEFERRING = threading.Event()  # inside deferring_termination(): remember SIGTERM / SIGHUP, do not raise


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: the run stops like after Ctrl-C (temporary outputs are removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def termination_signals() -> tuple[int, ...]:
    """SIGTERM, and SIGHUP where the platform has it (not on Windows)."""
    return tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


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


def _on_termination(signum: int, frame: object) -> None:
    if not _TERMINATED:
        _TERMINATED.append(signum)
    if _DEFERRING.is_set():
        return  # the command stops at its next safe point (see deferring_termination)
    quiet_library_destructors()
    raise Terminated(signum)


@contextlib.contextmanager
def handling_sigint() -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt and is also remembered for :func:`check`.

    SIGTERM and SIGHUP (where the platform has it) raise :class:`Terminated`, a KeyboardInterrupt, so
    a terminated run cleans up its temporary files like an interrupted one instead of dying on the spot;
    inside :func:`deferring_termination` they are only remembered (:func:`terminated`).
    Outside the main thread (where Python forbids signal handlers) this does nothing.
    """
    _REQUESTED.clear()
    _TERMINATED.clear()
    try:
        previous = signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread of the main interpreter
        yield
        return
    others = {}
    for signum in termination_signals():
        with contextlib.suppress(ValueError, OSError):
            others[signum] = signal.signal(signum, _on_termination)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for signum, handler in others.items():
            signal.signal(signum, handler)
        _REQUESTED.clear()
        _TERMINATED.clear()


@contextlib.contextmanager
def deferring_termination() -> Iterator[None]:
    """Within the block SIGTERM / SIGHUP do not raise: the loop polls :func:`terminated` between frames
    and stops at a safe point (writing what it committed); the caller must poll it, also after the
    block. Ctrl-C still raises at once."""
    _DEFERRING.set()
    try:
        yield
    finally:
        _DEFERRING.clear()


def terminated() -> int | None:
    """The SIGTERM / SIGHUP number that arrived inside :func:`handling_sigint`, or None."""
    return _TERMINATED[0] if _TERMINATED else None


def requested() -> bool:
    """True when a Ctrl-C arrived inside :func:`handling_sigint` (even if something swallowed it)."""
    return _REQUESTED.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived, swallowed or not; cheap enough to call per frame."""
    if _REQUESTED.is_set():
        raise KeyboardInterrupt
