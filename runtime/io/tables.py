"""Tables in and out: CSV (or Parquet with pyarrow) read and checked, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import FileReadError, InputError, OutputError
from edgetrack.runtime.io.atomic import atomic_path


def read_table(path: str | os.PathLike[str], required: Sequence[str] = ("frame", "y", "x")) -> pd.DataFrame:
    """Read a CSV (or Parquet) table and check it: required columns present, numeric, finite.

    ``frame`` (when required) must hold whole numbers >= 0 and is returned as int64.
    """
    path = Path(path)
    if not path.is_file():
        raise FileReadError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise FileReadError(f"{path}: not a readable table ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    except ImportError as exc:
        raise FileReadError(f"{path}: reading Parquet needs pyarrow ({exc})") from None
    return check_table(from_trackpy_names(table, str(path)), required, source=str(path))


def check_table(table: pd.DataFrame, required: Sequence[str] = ("frame", "y", "x"), source: str = "table") -> pd.DataFrame:
    """Validate a table in memory as :func:`read_table` does; returns a copy with ``frame`` as int64."""
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{source}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, table.columns)) or 'none'})"
        )
    table = table.copy()
    for col in required:
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: column '{col}' has a non-numeric value {table[col].iloc[row]!r} at row {row}")
        arr = values.to_numpy(dtype=np.float64)
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise InputError(f"{source}: column '{col}' has {int(nonfinite.sum())} NaN/inf value(s), first at row {row}")
        if col == "frame":
            if (arr < 0).any() or (arr != np.round(arr)).any():
                raise InputError(f"{source}: column 'frame' must hold whole numbers >= 0")
            table[col] = arr.astype(np.int64)
        else:
            table[col] = arr
    return table


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a table atomically as CSV, or Parquet when the name ends in ``.parquet``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            if path.suffix.lower() == ".parquet":
                table.to_parquet(tmp, index=False)
            else:
                table.to_csv(tmp, index=False)
        except ImportError as exc:
            raise OutputError(f"{path}: writing Parquet needs pyarrow ({exc})") from None
    return path


# trackpy's names for edgetrack's columns: accepted on input, written on request
TRACKPY_NAMES = {"track_id": "particle", "eccentricity": "ecc"}


def from_trackpy_names(table: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """``particle`` -> ``track_id`` and ``ecc`` -> ``eccentricity`` where edgetrack's column is absent.

    A table with both ``particle`` and ``track_id`` keeps ``track_id`` (``particle`` stays a column).
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{source}: expected a pandas DataFrame, got {type(table).__name__}")
    renames = {theirs: ours for ours, theirs in TRACKPY_NAMES.items()
               if theirs in table.columns and ours not in table.columns}
    return table.rename(columns=renames) if renames else table


def to_trackpy_names(table: pd.DataFrame) -> pd.DataFrame:
    """The same table with trackpy's names (``particle``, ``ecc``), for trackpy's own tools."""
    renames = {ours: theirs for ours, theirs in TRACKPY_NAMES.items()
               if ours in table.columns and theirs not in table.columns}
    return table.rename(columns=renames)
