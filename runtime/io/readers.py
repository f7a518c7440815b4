"""Opening movies: multi-page TIFF, folders of TIFF / PNG frames, .npy stacks, OME-TIFF and OME-Zarr.

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

import numpy as np

from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.movie import Movie, to_grey

FRAME_SUFFIXES = (".tif", ".tiff", ".png")
_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> tuple:
    parts = _DIGITS.split(path.name)
    return tuple(int(p) if p.isdigit() else p.lower() for p in parts)


@contextlib.contextmanager
def quiet_tifffile():
    """Silence tifffile's own log lines while reading: its problems reach the user as our one-line errors."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_tiff(path: Path) -> Movie:
    with quiet_tifffile():
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
    if n == 0 or 0 in frame_shape:
        raise InputError(f"{path}: the movie has no frames (shape {shape})")
    n_pages = len(series.pages)
    if n_pages > n:
        raise FileReadError(f"{path}: {n} frames declared but {n_pages} pages present")
    contiguous = _contiguous_tail(path, tif, series, n) if n_pages < n else None

    def read(i: int) -> np.ndarray:
        if i < n_pages:
            with quiet_tifffile():
                return series.pages[i].asarray()
        if contiguous is not None:
            return contiguous(i)
        raise FileReadError(f"{path}: frame {i} is missing: {n} frames declared but only {n_pages} readable "
                            "(truncated file?)")

    return Movie(str(path), n, tuple(frame_shape), read)


def _contiguous_tail(path: Path, tif, series, n: int):
    """For a truncated uncompressed TIFF whose frames are stored one after another (tifffile, ImageJ): a reader
    of frame i straight from its offset, failing with a clear error for the frames past the end of the file."""
    page = series.pages[0]
    try:
        contiguous = page.is_contiguous  # a bool, or (offset, bytes) in older tifffile versions
        if isinstance(contiguous, tuple):
            offset, nbytes = contiguous
        elif contiguous:
            offset, nbytes = int(page.dataoffsets[0]), int(sum(page.databytecounts))
        else:
            return None
        dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
        shape = tuple(page.shape)
    except (AttributeError, TypeError, ValueError):
        return None
    if offset is None or nbytes != int(np.prod(shape)) * dtype.itemsize or page.compression != 1:
        return None
    complete = max(0, (path.stat().st_size - offset) // nbytes)

    def read(i: int) -> np.ndarray:
        if i >= complete:
            raise FileReadError(f"{path}: frame {i} is missing: the file ends after {min(complete, n)} complete "
                                f"frames of the {n} declared (truncated file?)")
        with open(path, "rb") as fh:
            fh.seek(offset + i * nbytes)
            data = fh.read(nbytes)
        return np.frombuffer(data, dtype).reshape(shape)

    return read


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


def check_numbering(folder: Path, files: list[Path]) -> None:
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
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()), key=natural_key)
    if not files:
        raise FileReadError(f"{path}: no frames found (expected files ending in {', '.join(FRAME_SUFFIXES)})")

    check_numbering(path, files)

    def read(i: int) -> np.ndarray:
        f = files[i]
        try:
            if f.suffix.lower() == ".png":
                import imageio.v3 as iio

                return iio.imread(f)
            import tifffile

            with quiet_tifffile():
                return tifffile.imread(str(f))
        except Exception as exc:
            raise FileReadError(f"{f}: cannot read frame {i}: {exc}") from None

    first = to_grey(np.asarray(read(0)))
    if first.ndim != 2:
        raise InputError(f"{files[0]}: expected a 2-D frame, got shape {first.shape}")
    return Movie(str(path), len(files), tuple(first.shape), read)


def open_movie(source: str | os.PathLike[str] | np.ndarray, *, channel: int | None = None,
               z: int | None = None, scene: int | str | None = None) -> Movie:
    """Open a movie for frame-by-frame reading.

    ``source`` is a multi-page TIFF (``.tif``/``.tiff``), a folder of single-frame TIFF/PNG files, a
    ``.npy`` file holding a (T, H, W) array, or an in-memory (T, H, W) array. OME-TIFF (``.ome.tif``),
    TIFFs whose axes name channels or planes (ImageJ hyperstacks) and zarr stores (``.zarr``: OME-Zarr or
    a plain (T, Y, X) array) are read by :mod:`edgetrack.runtime.io.ome` (physical units in ``movie.units``).

    Vendor files (``.nd2``, ``.czi``, ``.lif``, and any other suffix an installed bioio plugin reads that
    no reader here takes) are read through bioio (:mod:`edgetrack.runtime.io.bioio_reader`, the ``bioio``
    extra); ``scene`` (an index or a name) chooses one scene of such a file, and a file of several scenes
    is refused without it.

    Dimensions are never guessed: a movie with more than one channel (C) or z plane (Z) is refused with
    its axes listed unless ``channel`` / ``z`` (0-based) choose one; a 4-D TIFF whose extra axis is unnamed
    is refused as well.
    """
    if isinstance(source, np.ndarray):
        if channel is not None or z is not None or scene is not None:
            raise InputError("channel / z / scene select planes of a file; slice an in-memory array yourself")
        return _movie_from_array("array", source)
    path = Path(source)
    if not path.exists():
        raise FileReadError(f"{path}: no such file or folder")
    if path.is_file():
        from edgetrack.runtime.io.bioio_reader import reads_with_bioio

        chosen = scene is not None and str(scene) != "0"  # not the one scene the built-in readers read
        if reads_with_bioio(path) or (chosen and reads_with_bioio(path, others_too=True)):
            return _open_with_bioio(path, channel, z, scene)
        if chosen:
            raise InputError(f"{path}: scene {scene!r} asked for, but this file is read as a single scene (scenes "
                             "are chosen in files read through bioio: .nd2, .czi, .lif, and OME-TIFF with the "
                             'bioio-ome-tiff plugin; pip install "edgetrack[bioio]")')
    if path.is_dir():
        from edgetrack.runtime.io.ome import is_zarr, open_ome_zarr

        if is_zarr(path):  # OME-Zarr or a plain zarr array (T, Y, X)
            return _one_plane(open_ome_zarr(path, channel=channel or 0, z=z or 0), channel, z)
        _no_planes(path, channel, z)
        return _open_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        if path.stat().st_size == 0:
            raise FileReadError(f"{path}: the file is empty")
        axes, sizes, shape = _tiff_axes(path)
        if 0 in shape:
            raise InputError(f"{path}: the movie has no frames (a TIFF of shape {shape}: 0 pages of image data)")
        if path.name.lower().endswith((".ome.tif", ".ome.tiff")) or {"C", "Z"} & set(axes):
            from edgetrack.runtime.io.ome import open_ome_tiff

            return _one_plane(open_ome_tiff(path, channel=channel or 0, z=z or 0), channel, z)
        extra = [a for a in axes if a not in "YXS" and sizes[a] > 1]
        if len(extra) > 1:
            raise InputError(f"{path}: {_describe(axes, sizes)}: cannot tell which axis is time and which are channels "
                             "or planes; save it as a (T, Y, X) stack or an OME-TIFF with named axes")
        _no_planes(path, channel, z)
        return _open_tiff(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise FileReadError(f"{path}: not a readable .npy file ({exc})") from None
        _no_planes(path, channel, z)
        return _movie_from_array(str(path), arr)
    if suffix == ".png":
        return _open_folder_single(path)
    from edgetrack.runtime.io.bioio_reader import reads_with_bioio

    if reads_with_bioio(path, others_too=True):  # a suffix an installed bioio plugin claims
        try:
            return _open_with_bioio(path, channel, z, scene)
        except FileReadError as exc:
            raise FileReadError(f"{path}: unsupported movie format '{suffix}' or a damaged file: "
                                f"{str(exc).removeprefix(f'{path}: ')}") from None
    raise FileReadError(f"{path}: unsupported movie format '{suffix}' (use a TIFF, a folder of TIFF/PNG frames or .npy; "
                        'vendor formats such as .nd2, .czi, .lif: pip install "edgetrack[bioio]")')


def _open_with_bioio(path: Path, channel: int | None, z: int | None, scene: int | str | None) -> Movie:
    from edgetrack.runtime.io.bioio_reader import open_bioio

    return _one_plane(open_bioio(path, channel=channel or 0, z=z or 0, scene=scene), channel, z)


def _describe(axes: str, sizes: dict[str, int]) -> str:
    return f"axes {axes} (" + ", ".join(f"{a}={sizes[a]}" for a in axes) + ")"


def _tiff_axes(path: Path) -> tuple[str, dict[str, int], tuple[int, ...]]:
    """The axes of a TIFF's first series as tifffile names them (T, Z, C, Y, X, S, Q unknown, ...)."""
    import tifffile

    try:
        with quiet_tifffile(), tifffile.TiffFile(str(path)) as tif:
            series = tif.series[0]
            axes = series.axes.upper()
            shape = tuple(int(v) for v in series.shape)
    except Exception as exc:
        raise FileReadError(f"{path}: not a readable TIFF ({exc})") from None
    return axes, dict(zip(axes, shape)), shape


def _one_plane(movie: Movie, channel: int | None, z: int | None) -> Movie:
    """Refuse a movie of several channels or planes unless the caller chose one (OME-TIFF / OME-Zarr)."""
    n_c, n_z = getattr(movie, "n_channels", 1), getattr(movie, "n_z", 1)
    axes = getattr(movie, "axes", "")
    missing = []
    if n_c > 1 and channel is None:
        missing.append(f"a channel (--channel 0..{n_c - 1}, channel=)")
    if n_z > 1 and z is None:
        missing.append(f"a z plane (--z 0..{n_z - 1}, z=)")
    if missing:
        raise InputError(f"{movie.source}: axes {axes} with {n_c} channel(s) and {n_z} z plane(s): choose "
                         + " and ".join(missing) + "; edgetrack does not guess which to track"
                         + (" (or track the stacks in 3-D: --ndim 3, ndim=3)" if n_z > 1 and z is None else ""))
    return movie


def _no_planes(path: Path, channel: int | None, z: int | None) -> None:
    if (channel is not None and channel != 0) or (z is not None and z != 0):
        raise InputError(f"{path}: has no channel or z axis to choose from (channel={channel}, z={z})")


def _open_folder_single(path: Path) -> Movie:
    import imageio.v3 as iio

    try:
        img = to_grey(np.asarray(iio.imread(path)))
    except Exception as exc:
        raise FileReadError(f"{path}: cannot read ({exc})") from None
    return _movie_from_array(str(path), img[None])


