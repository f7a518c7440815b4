"""Exception classes raised by edgetrack.

Every error that comes from bad input, a bad model file or an unwritable output is an
:class:`EdgetrackError`; the command line turns these into a one-line message and exit code 2.
"""

from __future__ import annotations


class EdgetrackError(Exception):
    """Base class of every error edgetrack raises on purpose."""


class InputError(EdgetrackError, ValueError):
    """Input data is malformed: wrong shape, dtype, NaN, missing columns, inconsistent frames."""


class FileReadError(EdgetrackError, OSError):
    """A file could not be opened or decoded (missing, truncated, corrupt, unsupported)."""


class OutputError(EdgetrackError, OSError):
    """An output could not be written (path not writable, disk full)."""


class ConfigError(EdgetrackError, ValueError):
    """A configuration has an unknown key or a value out of range."""


class ModelError(EdgetrackError, RuntimeError):
    """An exported model is missing, corrupt, of the wrong kind or fails its checksum."""


class DegradedWarning(UserWarning):
    """A stage fell back to a cheaper method to stay within its time budget (the message says which and why)."""
