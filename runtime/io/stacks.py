"""Z-stacks over time, (T, Z, Y, X), read one stack at a time, with the voxel size when the file has it.

:func:`open_stacks` opens a TIFF or OME-TIFF whose axes name Z (ImageJ hyperstacks and OME-TIFF do), a
``.npy`` file or an in-memory array of shape (T, Z, Y, X). A file with several channels is refused with
its axes listed unless ``channel`` chooses one; axes are never guessed (a 4-D TIFF without axis names
is refused). ``stacks[t]`` is the (Z, Y, X) stack of time point t. ``stacks.voxel_size_um`` is
``(z, y, x)`` in micrometres from OME-XML (``PhysicalSizeZ/Y/X``) or ImageJ metadata (``spacing`` and
the resolution tags), None when the file does not say; ``stacks.frame_interval_s`` likewise.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import numpy as np

from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.movie import Movie

__all__ = ["Stacks", "open_stacks", "max_projection"]

_LENGTH_UM = {"µm": 1.0, "um": 1.0, "micron": 1.0, "micrometer": 1.0, "nm": 1e-3, "nanometer": 1e-3,
              "mm": 1e3, "millimeter": 1e3, "m": 1e6, "meter": 1e6}


class Stacks(Movie):
    """(T, Z, Y, X) data read one (Z, Y, X) stack at a time (see :func:`open_stacks`): a
    :class:`~edgetrack.runtime.io.movie.Movie` whose frames are z-stacks, with the voxel size (um, z, y, x)
    and frame interval (s) where known."""

    def __init__(self, source: str, n_frames: int, stack_shape: tuple[int, int, int],
                 reader: Callable[[int], np.ndarray], voxel_size_um: tuple[float, float, float] | None = None,
                 frame_interval_s: float | None = None) -> None:
        super().__init__(source, n_frames, tuple(stack_shape), reader)
        self.voxel_size_um = voxel_size_um
        self.frame_interval_s = frame_interval_s

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """(Z, Y, X) of every stack (the movie's ``frame_shape``)."""
        return self.frame_shape


def _from_array(source: str, arr: np.ndarray) -> Stacks:
    if arr.ndim != 4:
        raise InputError(f"{source}: a 3-D movie must have shape (T, Z, Y, X), got {arr.shape}")
    if 0 in arr.shape:
        raise InputError(f"{source}: the movie is empty (shape {arr.shape})")
    return Stacks(source, arr.shape[0], tuple(int(s) for s in arr.shape[1:]), lambda t: arr[t])


def _length(value: str | None, unit: str | None) -> float | None:
    if value is None:
        return None
    try:
        v = float(value) * _LENGTH_UM.get((unit or "µm").strip().lower().replace("\\u00b5", "µ"), float("nan"))
    except ValueError:
        return None
    return v if np.isfinite(v) and v > 0 else None


def _ome_voxel(xml: str) -> tuple[tuple[float, float, float] | None, float | None]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None, None
    sizes = [_length(pixels.get(f"PhysicalSize{a}"), pixels.get(f"PhysicalSize{a}Unit")) for a in "ZYX"]
    voxel = tuple(sizes) if all(s is not None for s in sizes) else None
    interval = pixels.get("TimeIncrement")
    try:
        dt = float(interval) if interval is not None else None
    except ValueError:
        dt = None
    return voxel, dt if dt is not None and dt > 0 else None


def _imagej_voxel(tif) -> tuple[tuple[float, float, float] | None, float | None]:
    meta = tif.imagej_metadata or {}
    dt = meta.get("finterval")
    dt = float(dt) if isinstance(dt, (int, float)) and dt > 0 else None
    unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
    spacing = meta.get("spacing")
    try:
        tag = tif.pages[0].tags.get("XResolution")
        num, den = tag.value if tag is not None else (0, 0)
        xy = _length(str(den / num), unit) if num > 0 and den > 0 and unit not in ("", "pixel") else None
    except (AttributeError, TypeError, ValueError, IndexError, ZeroDivisionError):
        xy = None
    z = _length(str(spacing), unit) if spacing is not None and unit not in ("", "pixel") else None
    return ((z, xy, xy) if z is not None and xy is not None else None), dt


def _open_tiff(path: Path, channel: int | None) -> Stacks:
    from edgetrack.runtime.io.ome import tiff_series

    tif, axes, shape, pages = tiff_series(path)
    sizes = dict(zip(axes, shape))
    described = ", ".join(f"{a}={sizes[a]}" for a in axes)
    if "S" in axes:
        raise InputError(f"{path}: RGB (axes {described}) cannot be tracked in 3-D; save one channel")
    if "Z" not in axes or "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: a 3-D movie needs named axes Z, Y and X, the file has {described} "
                         "(save it as an ImageJ hyperstack or an OME-TIFF with a Z axis, or give a (T, Z, Y, X) .npy)")
    plane_axes = [a for a in axes if a not in "YX"]
    for other in plane_axes:
        if other not in "TZC" and sizes[other] > 1:
            raise InputError(f"{path}: unsupported axis {other!r} ({described}): cannot tell time from it")
    n_c = sizes.get("C", 1)
    if n_c > 1 and channel is None:
        raise InputError(f"{path}: {n_c} channels ({described}): choose one with --channel C (channel=)")
    c = 0 if channel is None else int(channel)
    if not 0 <= c < n_c:
        raise InputError(f"{path}: channel {c} asked for, the file has {n_c} ({described})")
    plane_shape = [sizes[a] for a in plane_axes]
    n_t, n_z = sizes.get("T", 1), sizes["Z"]
    if len(pages) < int(np.prod(plane_shape)):
        raise FileReadError(f"{path}: {int(np.prod(plane_shape))} planes declared but {len(pages)} pages present")

    def read(t: int) -> np.ndarray:
        planes = []
        for z in range(n_z):
            index = tuple(t if a == "T" else z if a == "Z" else c if a == "C" else 0 for a in plane_axes)
            planes.append(pages[int(np.ravel_multi_index(index, plane_shape))].asarray())
        return np.stack(planes)

    voxel, dt = _ome_voxel(tif.ome_metadata) if tif.ome_metadata else (None, None)
    if voxel is None and dt is None:
        voxel, dt = _imagej_voxel(tif)
    return Stacks(str(path), n_t, (n_z, sizes["Y"], sizes["X"]), read, voxel, dt)


def open_stacks(source: str | os.PathLike[str] | np.ndarray, *, channel: int | None = None) -> Stacks:
    """Open a (T, Z, Y, X) movie for reading one z-stack at a time (see the module docstring)."""
    if isinstance(source, np.ndarray):
        if channel is not None:
            raise InputError("channel selects a channel of a file; slice an in-memory array yourself")
        return _from_array("array", source)
    path = Path(source)
    if not path.exists():
        raise FileReadError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception as exc:
            raise FileReadError(f"{path}: not a readable .npy file ({exc})") from None
        if channel is not None:
            raise InputError(f"{path}: a .npy (T, Z, Y, X) array has no channels to choose")
        return _from_array(str(path), arr)
    if suffix in (".tif", ".tiff"):
        return _open_tiff(path, channel)
    raise FileReadError(f"{path}: 3-D movies are read from TIFF / OME-TIFF with a Z axis or (T, Z, Y, X) .npy, "
                        f"not '{suffix}'")


def max_projection(stacks: Stacks):
    """The maximum projection along z of every stack, as a 2-D :class:`~edgetrack.runtime.io.movie.Movie`
    (read lazily; ``source`` is the stacks' own, so a TIFF's pixel size is still found)."""
    return Movie(stacks.source, len(stacks), tuple(stacks.stack_shape[1:]), lambda t: stacks[t].max(axis=0))
