"""Reading movies and tables, writing tables.

Movies are read lazily, one frame at a time: a multi-page TIFF (memory-mapped when it is stored
uncompressed), a folder of single-frame TIFF or PNG files (sorted by the numbers in their names),
or a ``.npy`` stack. Every problem becomes a :class:`FileReadError` or :class:`InputError` that names
the file and frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import FileReadError, InputError, OutputError

FRAME_SUFFIXES = (".tif", ".tiff", ".png")
_DIGITS = re.compile(r"(\d+)")


def _natural_key(path: Path) -> tuple:
    parts = _DIGITS.split(path.name)
    return tuple(int(p) if p.isdigit() else p.lower() for p in parts)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Collapse an RGB(A) image (H, W, 3 or 4) to luminance (H, W), float32; 2-D input is returned as is."""
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image


class Movie:
    """A movie opened for lazy, frame-by-frame reading.

    ``len(movie)`` is the number of frames, ``movie.frame_shape`` is (H, W), ``movie[i]`` is frame i as a
    2-D array (original dtype, colour collapsed to grey), and iterating yields the frames in order.
    Use :func:`open_movie` to create one.
    """

    def __init__(self, source: str, n_frames: int, frame_shape: tuple[int, ...], reader) -> None:
        self.source = source
        self._n = n_frames
        self.frame_shape = frame_shape
        self._reader = reader

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> np.ndarray:
        if not -self._n <= index < self._n:
            raise IndexError(f"frame {index} out of range for a movie of {self._n} frames")
        index %= self._n
        try:
            frame = self._reader(index)
        except (OSError, ValueError, RuntimeError) as exc:
            raise FileReadError(f"{self.source}: cannot read frame {index}: {exc}") from None
        frame = to_grey(np.asarray(frame))
        if frame.shape != self.frame_shape:
            raise InputError(
                f"{self.source}: frame {index} has shape {frame.shape}, expected {self.frame_shape} "
                "like the first frame"
            )
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self._n):
            yield self[i]


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's own log lines while reading: its problems reach the user as our one-line errors."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_tiff(path: Path) -> Movie:
    with _quiet_tifffile():
        return _open_tiff_quietly(path)


def _open_tiff_quietly(path: Path) -> Movie:
    import tifffile

    try:
        data = tifffile.memmap(str(path), mode="r")
    except Exception:  # compressed or non-contiguous: fall back to page-by-page reading
        data = None
    if data is not None:
        arr = data
        if arr.ndim > 3 and arr.shape[-1] not in (3, 4):
            arr = arr.reshape((-1,) + arr.shape[-2:])  # leading axes (T, Z, C, ...) flattened into frames
        return _movie_from_array(str(path), arr)
    try:
        tif = tifffile.TiffFile(str(path))
        series = tif.series[0]
        shape = tuple(series.shape)
    except Exception as exc:
        raise FileReadError(f"{path}: not a readable TIFF ({exc})") from None
    frame_shape = shape[-2:]
    if len(shape) >= 3 and shape[-1] in (3, 4) and len(shape) in (3, 4) and series.axes[-1] == "S":
        frame_shape = shape[-3:-1]
        n = int(np.prod(shape[:-3])) if len(shape) > 3 else 1
    else:
        n = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    n_pages = len(series.pages)
    if n_pages != n:
        raise FileReadError(f"{path}: {n} frames declared but {n_pages} pages present (truncated file?)")

    def read(i: int) -> np.ndarray:
        with _quiet_tifffile():
            return series.pages[i].asarray()

    return Movie(str(path), n, tuple(frame_shape), read)


def _movie_from_array(source: str, arr: np.ndarray) -> Movie:
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        pass  # (T, H, W, C): colour, collapsed per frame
    elif arr.ndim != 3:
        raise InputError(f"{source}: expected frames of 2 dimensions (T, H, W), got an array of shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(f"{source}: the movie is empty (shape {arr.shape})")
    frame_shape = tuple(arr.shape[1:3])
    return Movie(source, arr.shape[0], frame_shape, lambda i: arr[i])


def _check_numbering(folder: Path, files: list[Path]) -> None:
    """Frames numbered in their names (``frame_007.png``) must be consecutive: a gap is a missing frame."""
    numbers = []
    for f in files:
        found = _DIGITS.findall(f.stem)
        if not found:
            return  # names without numbers: plain sorted order
        numbers.append(int(found[-1]))
    numbers_arr = np.array(numbers)
    if len(set(numbers)) != len(numbers):
        return  # numbers that repeat are not frame numbers (e.g. a common prefix); keep sorted order
    steps = np.diff(numbers_arr)
    if len(steps) and (steps > 1).any():
        expected = set(range(int(numbers_arr.min()), int(numbers_arr.max()) + 1))
        missing = sorted(expected - set(numbers))
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"{folder}: frame number(s) {shown} missing from the sequence "
                         f"{numbers[0]}..{numbers[-1]} ({len(missing)} file(s) absent)")


def _open_folder(path: Path) -> Movie:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()), key=_natural_key)
    if not files:
        raise FileReadError(f"{path}: no frames found (expected files ending in {', '.join(FRAME_SUFFIXES)})")

    _check_numbering(path, files)

    def read(i: int) -> np.ndarray:
        f = files[i]
        try:
            if f.suffix.lower() == ".png":
                import imageio.v3 as iio

                return iio.imread(f)
            import tifffile

            with _quiet_tifffile():
                return tifffile.imread(str(f))
        except Exception as exc:
            raise FileReadError(f"{f}: cannot read frame {i}: {exc}") from None

    first = to_grey(np.asarray(read(0)))
    if first.ndim != 2:
        raise InputError(f"{files[0]}: expected a 2-D frame, got shape {first.shape}")
    return Movie(str(path), len(files), tuple(first.shape), read)


def open_movie(source: str | os.PathLike[str] | np.ndarray) -> Movie:
    """Open a movie for frame-by-frame reading.

    ``source`` is a multi-page TIFF (``.tif``/``.tiff``), a folder of single-frame TIFF/PNG files, a
    ``.npy`` file holding a (T, H, W) array, or an in-memory (T, H, W) array. OME-TIFF (``.ome.tif``)
    and zarr stores (``.zarr``: OME-Zarr or a plain (T, Y, X) array) are read by
    :mod:`edgetrack.runtime.io_ome` (first channel and z plane; physical units in ``movie.units``).
    """
    if isinstance(source, np.ndarray):
        return _movie_from_array("array", source)
    path = Path(source)
    if not path.exists():
        raise FileReadError(f"{path}: no such file or folder")
    if path.is_dir():
        from .io_ome import is_zarr, open_ome_zarr

        if is_zarr(path):  # OME-Zarr or a plain zarr array (T, Y, X)
            return open_ome_zarr(path)
        return _open_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        if path.stat().st_size == 0:
            raise FileReadError(f"{path}: the file is empty")
        if path.name.lower().endswith((".ome.tif", ".ome.tiff")):
            from .io_ome import open_ome_tiff

            return open_ome_tiff(path)  # one channel and z plane, with physical units
        return _open_tiff(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise FileReadError(f"{path}: not a readable .npy file ({exc})") from None
        return _movie_from_array(str(path), arr)
    if suffix == ".png":
        return _open_folder_single(path)
    raise FileReadError(f"{path}: unsupported movie format '{suffix}' (use a TIFF, a folder of TIFF/PNG frames or .npy)")


def _open_folder_single(path: Path) -> Movie:
    import imageio.v3 as iio

    try:
        img = to_grey(np.asarray(iio.imread(path)))
    except Exception as exc:
        raise FileReadError(f"{path}: cannot read ({exc})") from None
    return _movie_from_array(str(path), img[None])


# ----------------------------------------------------------------------------------------- tables

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
    return check_table(table, required, source=str(path))


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
