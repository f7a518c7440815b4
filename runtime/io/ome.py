"""OME-TIFF and OME-Zarr movies, read lazily frame by frame, with their physical units.

:func:`~edgetrack.runtime.io.readers.open_movie` sends ``*.ome.tif(f)`` files here and ``*.zarr`` folders
(OME-NGFF 0.4 with zarr v2, 0.5 with zarr v3, or a plain zarr array ``(T, Y, X)``). The movie is the
time series of one channel and one z plane (``channel=0, z=0`` unless chosen); each frame is read
from disk (one TIFF page, or the zarr chunks it touches) only when asked for.

Physical units come from the metadata where present and are returned in micrometres per pixel and
seconds per frame: OME-XML ``Pixels@PhysicalSizeX``/``TimeIncrement`` (or the median step of the
planes' ``DeltaT``), the OME-NGFF ``scale`` of the ``x`` and ``t`` axes with their units, or
ImageJ's ``finterval`` and resolution tags in a plain TIFF. :func:`movie_units` applies the
``--pixel-size`` / ``--frame-interval`` overrides. Everything inside edgetrack stays in px and frames.
"""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.movie import Movie

# unit name (OME-XML symbol or OME-NGFF/UDUNITS name) -> factor to micrometres / seconds
_LENGTH_UM = {"pm": 1e-6, "picometer": 1e-6, "Å": 1e-4, "angstrom": 1e-4, "nm": 1e-3, "nanometer": 1e-3,
              "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "micrometer": 1.0, "mm": 1e3, "millimeter": 1e3,
              "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6}
_TIME_S = {"ns": 1e-9, "nanosecond": 1e-9, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "microsecond": 1e-6,
           "ms": 1e-3, "millisecond": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0,
           "h": 3600.0, "hour": 3600.0}


@dataclasses.dataclass(frozen=True)
class PhysicalUnits:
    """Pixel size (µm/px) and frame interval (s/frame); None where unknown. ``source`` says where from."""

    pixel_size_um: float | None = None
    frame_interval_s: float | None = None
    source: str = "none"


class OmeMovie(Movie):
    """A :class:`~edgetrack.runtime.io.movie.Movie` of one channel and z plane, with ``units`` and ``axes``."""

    def __init__(self, source: str, n_frames: int, frame_shape: tuple[int, ...], reader: Callable[[int], Any],
                 units: PhysicalUnits, axes: str, channel: int, z: int, n_channels: int, n_z: int) -> None:
        super().__init__(source, n_frames, frame_shape, reader)
        self.units = units
        self.axes = axes
        self.channel = channel
        self.z = z
        self.n_channels = n_channels
        self.n_z = n_z


def _scaled(value: Any, unit: Any, table: dict[str, float]) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(v) or v <= 0:
        return None
    if unit is None or unit == "":
        return v
    factor = table.get(str(unit).strip()) or table.get(str(unit).strip().lower())
    return v * factor if factor is not None else None


def _pick(name: str, index: int, size: int, path: Path) -> int:
    if int(index) != index or not 0 <= index < size:
        raise InputError(f"{path}: {name} {index} does not exist (the file has {size})")
    return int(index)


# ----------------------------------------------------------------------------------------- OME-TIFF

def _ome_xml_units(xml: str) -> PhysicalUnits | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    size = _scaled(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm"), _LENGTH_UM)
    interval = _scaled(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit", "s"), _TIME_S)
    if interval is None:  # fall back on the planes' time stamps (first channel and plane)
        stamps = []
        for plane in pixels:
            if plane.tag.rsplit("}", 1)[-1] != "Plane" or plane.get("DeltaT") is None:
                continue
            if plane.get("TheC", "0") != "0" or plane.get("TheZ", "0") != "0":
                continue
            t = _scaled(plane.get("DeltaT"), plane.get("DeltaTUnit", "s"), _TIME_S)
            if t is not None or float(plane.get("DeltaT", "nan")) == 0.0:
                stamps.append((int(plane.get("TheT", "0")), t or 0.0))
        if len(stamps) >= 2:
            stamps.sort()
            times = np.array([s for _, s in stamps])
            steps = np.diff(times) / np.maximum(np.diff([t for t, _ in stamps]), 1)
            positive = steps[steps > 0]
            interval = float(np.median(positive)) if positive.size else None
    return PhysicalUnits(size, interval, "OME-XML") if size is not None or interval is not None else None


def _imagej_units(tif) -> PhysicalUnits | None:
    meta = tif.imagej_metadata or {}
    interval = _scaled(meta.get("finterval"), meta.get("tunit", "s"), _TIME_S) if meta else None
    size = None
    try:
        page = tif.pages[0]
        tag = page.tags.get("XResolution")
        if tag is not None and meta:
            num, den = tag.value
            if num > 0 and den > 0:
                unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
                size = _scaled(den / num, unit or None, _LENGTH_UM) if unit not in ("", "pixel") else None
    except (AttributeError, TypeError, ValueError, IndexError):
        size = None
    return PhysicalUnits(size, interval, "ImageJ") if size is not None or interval is not None else None


def tiff_units(path: str | os.PathLike[str]) -> PhysicalUnits:
    """Physical units stored in a TIFF: OME-XML first, then ImageJ metadata; ``PhysicalUnits()`` if none."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            units = _ome_xml_units(tif.ome_metadata) if tif.ome_metadata else None
            return units or _imagej_units(tif) or PhysicalUnits()
    except Exception as exc:
        raise FileReadError(f"{path}: not a readable TIFF ({exc})") from None


def tiff_series(path: Path):
    """The first image series of a TIFF: (the open ``TiffFile``, its axes upper-case, shape, pages);
    FileReadError when it cannot be read."""
    import tifffile

    try:
        tif = tifffile.TiffFile(str(path))
        series = tif.series[0]
        return tif, series.axes.upper(), tuple(int(s) for s in series.shape), series.pages
    except Exception as exc:
        raise FileReadError(f"{path}: not a readable TIFF ({exc})") from None


def open_ome_tiff(path: str | os.PathLike[str], channel: int = 0, z: int = 0) -> OmeMovie:
    """Open an OME-TIFF (or any TIFF whose series has named axes) as the frames of one channel and plane."""
    path = Path(path)
    tif, axes, shape, pages = tiff_series(path)
    if "Y" not in axes or "X" not in axes or axes.index("Y") > axes.index("X"):
        raise InputError(f"{path}: expected image axes Y and X, the file has axes {axes!r}")
    if "S" in axes:
        raise InputError(f"{path}: RGB (samples axis S) OME-TIFF is not supported for tracking; export one channel")
    plane_axes = [a for a in axes if a not in "YX"]
    plane_shape = [shape[axes.index(a)] for a in plane_axes]
    sizes = dict(zip(plane_axes, plane_shape))
    c = _pick("channel", channel, sizes.get("C", 1), path)
    zz = _pick("z plane", z, sizes.get("Z", 1), path)
    n_frames = sizes.get("T", 1)
    for other in plane_axes:
        if other not in "TCZ" and sizes[other] > 1:
            if "T" in sizes:
                raise InputError(f"{path}: unsupported extra axis {other!r} of size {sizes[other]} (axes {axes!r})")
            n_frames = sizes[other]  # an unnamed leading axis (I, Q) is the time axis when there is no T
            plane_axes[plane_axes.index(other)] = "T"
            sizes["T"] = sizes.pop(other)
    expected = int(np.prod(plane_shape)) if plane_shape else 1
    if len(pages) < expected:
        raise FileReadError(f"{path}: {expected} planes declared but {len(pages)} pages present "
                            "(truncated or multi-file OME-TIFF?)")
    frame_shape = (shape[axes.index("Y")], shape[axes.index("X")])

    def read(i: int) -> np.ndarray:
        index = tuple(i if a == "T" else c if a == "C" else zz if a == "Z" else 0 for a in plane_axes)
        k = int(np.ravel_multi_index(index, plane_shape)) if plane_shape else 0
        page = pages[k]
        if page is None:
            raise FileReadError(f"{path}: plane {index} is missing (a multi-file OME-TIFF without its other files?)")
        return page.asarray()

    units = (_ome_xml_units(tif.ome_metadata) if tif.ome_metadata else None) or _imagej_units(tif) or PhysicalUnits()
    return OmeMovie(str(path), n_frames, frame_shape, read, units, axes, c, zz, sizes.get("C", 1), sizes.get("Z", 1))


# ----------------------------------------------------------------------------------------- OME-Zarr

def _ngff_multiscales(attrs: dict) -> list | None:
    if isinstance(attrs.get("ome"), dict):  # OME-NGFF 0.5 (zarr v3)
        attrs = attrs["ome"]
    multiscales = attrs.get("multiscales")
    return multiscales if isinstance(multiscales, list) and multiscales else None


def _scale_of(transforms: Any) -> list[float] | None:
    for transform in transforms or []:
        if isinstance(transform, dict) and transform.get("type") == "scale":
            return [float(v) for v in transform.get("scale", [])]
    return None


def open_ome_zarr(path: str | os.PathLike[str], channel: int = 0, z: int = 0, level: int = 0) -> OmeMovie:
    """Open an OME-Zarr image (its resolution ``level``, 0 = full) or a plain zarr array as a lazy movie."""
    try:
        import zarr
    except ImportError:
        raise FileReadError(f"{path}: reading OME-Zarr needs the zarr package (pip install 'edgetrack[microscope]')") \
            from None
    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise FileReadError(f"{path}: not a readable zarr store ({exc})") from None
    names: list[str]
    units_axes: list[dict] = []
    scale: list[float] | None = None
    if hasattr(node, "shape") and hasattr(node, "dtype"):  # a plain array
        array = node
        names = {2: ["y", "x"], 3: ["t", "y", "x"]}.get(len(array.shape), [])
        if not names:
            raise InputError(f"{path}: a plain zarr array of shape {array.shape} (expected (T, Y, X) or (Y, X), "
                             "or OME-NGFF metadata naming the axes)")
    else:
        multiscales = _ngff_multiscales(dict(node.attrs))
        if multiscales is None:
            raise InputError(f"{path}: a zarr group without OME-NGFF 'multiscales' metadata")
        image = multiscales[0]
        datasets = image.get("datasets") or []
        if not 0 <= level < len(datasets):
            raise InputError(f"{path}: resolution level {level} does not exist ({len(datasets)} levels)")
        try:
            array = node[datasets[level]["path"]]
        except Exception as exc:
            raise FileReadError(f"{path}: dataset {datasets[level].get('path')!r} is missing ({exc})") from None
        raw_axes = image.get("axes") or ["t", "c", "z", "y", "x"][-len(array.shape):]  # 0.3 and older: names only
        units_axes = [a if isinstance(a, dict) else {"name": str(a)} for a in raw_axes]
        names = [str(a.get("name", "")).lower() for a in units_axes]
        scale = _scale_of(datasets[level].get("coordinateTransformations"))
        outer = _scale_of(image.get("coordinateTransformations"))
        if scale is not None and outer is not None and len(outer) == len(scale):
            scale = [a * b for a, b in zip(scale, outer)]
    if len(names) != len(array.shape) or "y" not in names or "x" not in names:
        raise InputError(f"{path}: axes {names} do not match the array's shape {tuple(array.shape)}")
    sizes = dict(zip(names, (int(s) for s in array.shape)))
    extra = [n for n in names if n not in ("t", "c", "z", "y", "x") and sizes[n] > 1]
    if extra:
        raise InputError(f"{path}: unsupported axis/axes {extra} (expected t, c, z, y, x)")
    c = _pick("channel", channel, sizes.get("c", 1), path)
    zz = _pick("z plane", z, sizes.get("z", 1), path)
    n_frames = sizes.get("t", 1)
    if 0 in array.shape:
        raise InputError(f"{path}: the image is empty (shape {tuple(array.shape)})")

    def read(i: int) -> np.ndarray:
        index = tuple(i if n == "t" else c if n == "c" else zz if n == "z" else slice(None) if n in ("y", "x") else 0
                      for n in names)
        frame = np.asarray(array[index])
        return frame if names.index("y") < names.index("x") else frame.T

    size = interval = None
    if scale is not None and len(scale) == len(names):
        for axis, value, name in zip(units_axes, scale, names):
            if name == "x":
                size = _scaled(value, axis.get("unit"), _LENGTH_UM)
            elif name == "t":
                interval = _scaled(value, axis.get("unit"), _TIME_S)
    units = PhysicalUnits(size, interval, "OME-NGFF") if size is not None or interval is not None else PhysicalUnits()
    return OmeMovie(str(path), n_frames, (sizes["y"], sizes["x"]), read, units, "".join(names).upper(), c, zz,
                    sizes.get("c", 1), sizes.get("z", 1))


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a zarr store (a ``.zarr`` folder, or a folder with zarr metadata files)."""
    return path.is_dir() and (path.suffix.lower() == ".zarr" or any((path / name).is_file()
                                                                     for name in ("zarr.json", ".zattrs", ".zarray", ".zgroup")))


# ----------------------------------------------------------------------------------------- units

def movie_units(movie: Movie | str | os.PathLike[str] | None = None, pixel_size: float | None = None,
                frame_interval: float | None = None) -> PhysicalUnits:
    """Pixel size (µm) and frame interval (s): the given values override what the movie's metadata says.

    ``movie``: an opened movie, a path (TIFF or zarr), or None. Overrides must be > 0.
    """
    for name, value in (("pixel size", pixel_size), ("frame interval", frame_interval)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be > 0, got {value}")
    found = PhysicalUnits()
    if isinstance(movie, OmeMovie):
        found = movie.units
    elif isinstance(movie, (str, os.PathLike)):
        path = Path(movie)
        if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
            found = tiff_units(path)
        elif is_zarr(path):
            found = open_ome_zarr(path).units
    elif isinstance(movie, Movie) and Path(movie.source).suffix.lower() in (".tif", ".tiff") \
            and Path(movie.source).is_file():
        found = tiff_units(movie.source)
    size = pixel_size if pixel_size is not None else found.pixel_size_um
    interval = frame_interval if frame_interval is not None else found.frame_interval_s
    parts = []
    if pixel_size is not None or frame_interval is not None:
        parts.append("command line")
    if found.source != "none" and (pixel_size is None or frame_interval is None):
        parts.append(found.source)
    return PhysicalUnits(size, interval, " + ".join(parts) if parts else "none")
