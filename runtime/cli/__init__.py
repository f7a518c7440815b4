"""The ``edgetrack`` command line: one module per sub-command under ``commands``, shared options, progress."""

from __future__ import annotations

from edgetrack.runtime.cli.app import main

__all__ = ["main"]
