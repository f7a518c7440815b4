"""Vendor microscope files (Nikon ND2, Zeiss CZI, Leica LIF, ...) read through bioio and its plugins.

:func:`~edgetrack.runtime.io.readers.open_movie` sends ``.nd2``, ``.czi`` and ``.lif`` files here, and any
other file whose suffix an installed bioio plugin claims and no built-in reader takes. bioio and the
plugins are the ``bioio`` extra (``pip install "edgetrack[bioio]"``); they are imported only when such a
file is opened, and a missing one is a one-line error naming the extra.

The movie is the time series of one scene, one channel and one z plane. Nothing is guessed: a file of
several scenes (stage positions, wells) is refused with its scenes listed unless ``scene`` (an index
or a name) chooses one; several channels or z planes are refused by ``open_movie`` unless chosen.
Frames are read one time point at a time: the plugin's lazy (dask) array is split once into its
chunks and frame ``t`` computes only the chunk that holds it (one plane for CZI and ND2), so memory
stays at about one frame whatever the length of the movie.

Physical units come from the plugin (``physical_pixel_sizes``, in µm unless the plugin names another
unit, and ``time_interval``), then from the OME metadata the plugin derives (``PhysicalSizeX``,
``TimeIncrement``), then from the plugin's time-lapse interval; they are returned as
``movie.units`` (µm per pixel, s per frame, None where the file does not say).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgetrack.runtime.errors import FileReadError, InputError
from edgetrack.runtime.io.ome import OmeMovie, PhysicalUnits

INSTALL = 'pip install "edgetrack[bioio]"'
# suffix -> the bioio plugin that reads it; these always go through bioio (no built-in reader)
VENDOR_PLUGINS = {".nd2": "bioio-nd2", ".czi": "bioio-czi", ".lif": "bioio-lif"}
_PLANE_AXES = "TCZYXS"  # bioio's standard dimensions (S: RGB samples)
_SHOWN_SCENES = 8


class BioioMovie(OmeMovie):
    """An :class:`~edgetrack.runtime.io.ome.OmeMovie` of one scene of a bioio-read file.

    Adds ``scene`` (its name), ``scene_index``, ``n_scenes`` and ``plugin`` (the bioio reader's package).
    """

    def __init__(self, source: str, n_frames: int, frame_shape: tuple[int, ...], reader, units: PhysicalUnits,
                 axes: str, channel: int, z: int, n_channels: int, n_z: int, scene: str, scene_index: int,
                 n_scenes: int, plugin: str) -> None:
        super().__init__(source, n_frames, frame_shape, reader, units, axes, channel, z, n_channels, n_z)
        self.scene = scene
        self.scene_index = scene_index
        self.n_scenes = n_scenes
        self.plugin = plugin


def bioio_plugin_suffixes() -> tuple[str, ...]:
    """The file suffixes the installed bioio plugins claim (``.czi``, ``.ome.tiff``, ...); () without bioio."""
    try:
        from bioio.plugins import get_plugins
    except ImportError:
        return ()
    try:
        return tuple(sorted(get_plugins(use_cache=True)))
    except Exception:  # noqa: BLE001 - a broken plugin entry point: as if none were installed
        return ()


def reads_with_bioio(path: str | os.PathLike[str], others_too: bool = False) -> bool:
    """Whether ``path`` is a vendor file for bioio (.nd2, .czi, .lif); with ``others_too``, also any file
    whose suffix an installed bioio plugin claims."""
    name = Path(path).name.lower()
    if name.endswith(tuple(VENDOR_PLUGINS)):
        return True
    return others_too and any(name.endswith(suffix) for suffix in bioio_plugin_suffixes())


def _plugin_for(path: Path) -> str:
    name = path.name.lower()
    return next((plugin for suffix, plugin in VENDOR_PLUGINS.items() if name.endswith(suffix)), "bioio plugin")


def _open_image(path: Path):
    try:
        import bioio
        from bioio.plugins import get_plugins
    except ImportError:
        raise FileReadError(f"{path}: reading this format needs bioio and its {_plugin_for(path)}: {INSTALL}") from None
    name = path.name.lower()
    if name.endswith(tuple(VENDOR_PLUGINS)) and not any(name.endswith(s) for s in get_plugins(use_cache=True)):
        raise FileReadError(f"{path}: reading this format needs the {_plugin_for(path)} plugin of bioio: {INSTALL}")
    with _plugin_complaints() as complaints:
        try:
            return bioio.BioImage(path)
        except Exception as exc:  # noqa: BLE001 - plugins raise anything on a corrupt or foreign file
            # bioio logs why each plugin declined the file and raises a generic error: name the plugin's reason
            reason = complaints[-1].split("failed with error: ", 1)[-1] if complaints else f"{type(exc).__name__}: {exc}"
            raise FileReadError(f"{path}: not readable by bioio ({reason})".replace("\n", " ")) from None


@contextlib.contextmanager
def _plugin_complaints():
    """Collect what bioio logs while it tries its plugins, instead of letting it reach the user's console."""
    logger, messages = logging.getLogger("bioio"), []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _scene_index(path: Path, scenes: tuple[str, ...], scene: int | str | None) -> int:
    if scene is None:
        if len(scenes) > 1:
            shown = ", ".join(f"{i} {name!r}" for i, name in enumerate(scenes[:_SHOWN_SCENES]))
            more = f", ... ({len(scenes)} in all)" if len(scenes) > _SHOWN_SCENES else ""
            raise InputError(f"{path}: {len(scenes)} scenes ({shown}{more}): choose one (--scene 0..{len(scenes) - 1} "
                             "or a name, scene=); edgetrack does not guess which to track")
        return 0
    if isinstance(scene, str) and not scene.lstrip("-").isdigit():
        if scene not in scenes:
            raise InputError(f"{path}: no scene named {scene!r} (scenes: {', '.join(map(repr, scenes))})")
        return scenes.index(scene)
    index = int(scene)
    if not 0 <= index < len(scenes):
        raise InputError(f"{path}: scene {index} does not exist (the file has {len(scenes)}: 0..{len(scenes) - 1})")
    return index


def _pick(path: Path, name: str, index: int, size: int) -> int:
    if int(index) != index or not 0 <= index < size:
        raise InputError(f"{path}: {name} {index} does not exist (the file has {size})")
    return int(index)


def open_bioio(path: str | os.PathLike[str], channel: int = 0, z: int = 0, scene: int | str | None = None) -> BioioMovie:
    """Open a file bioio reads as a lazy movie of one scene, channel and z plane (0-based; ``scene`` an
    index or a scene name, required when the file has several)."""
    path = Path(path)
    img = _open_image(path)
    try:
        scenes = tuple(str(s) for s in img.scenes)
    except Exception as exc:  # noqa: BLE001 - the plugin parses the file here
        raise FileReadError(f"{path}: cannot list the scenes ({exc})") from None
    index = _scene_index(path, scenes, scene)
    try:
        if index != img.current_scene_index:
            img.set_scene(index)
        order = str(img.dims.order)
        sizes = dict(zip(order, (int(n) for n in img.dims.shape)))
    except Exception as exc:  # noqa: BLE001 - and here
        raise FileReadError(f"{path}: cannot read the dimensions of scene {index} ({exc})") from None
    described = ", ".join(f"{a}={sizes[a]}" for a in order)
    extra = [a for a in order if a not in _PLANE_AXES and sizes[a] > 1]
    if extra:
        raise InputError(f"{path}: unsupported axis/axes {extra} in {order} ({described}); edgetrack tracks T, Y, X "
                         "with one channel (C) and plane (Z)")
    if "Y" not in sizes or "X" not in sizes or 0 in sizes.values():
        raise InputError(f"{path}: no image in scene {index} ({order}: {described})")
    c = _pick(path, "channel", channel, sizes.get("C", 1))
    zz = _pick(path, "z plane", z, sizes.get("Z", 1))
    fixed = {a: {"C": c, "Z": zz}.get(a, 0) for a in order if a not in "TYX"}  # every other axis: one index
    rgb = fixed.get("S") is not None and sizes["S"] > 1
    if rgb:
        del fixed["S"]  # RGB samples stay, Movie collapses them to grey
    read = _frame_reader(path, img, "TYXS" if rgb else "TYX", fixed)
    plugin = type(img.reader).__module__.split(".")[0].replace("_", "-")
    return BioioMovie(str(path), sizes.get("T", 1), (sizes["Y"], sizes["X"]), read, image_units(img, plugin),
                      "".join(a for a in order if a != "S"), c, zz, sizes.get("C", 1), sizes.get("Z", 1),
                      scenes[index], index, len(scenes), plugin)


def _frame_reader(path: Path, img, order: str, fixed: dict[str, int]):
    """frame(t): the (Y, X[, S]) plane at time t, computing only the dask chunk(s) that hold it.

    The plugin's delayed array (T, Y, X[, S]) is split once into its graph and chunk keys; a frame then
    runs just the tasks of its chunk, so neither memory nor time per frame grows with the movie.
    """
    import dask
    from dask.optimization import cull

    try:
        array = img.get_image_dask_data(order, **fixed)
        graph = dict(array.__dask_graph__())
        keys = array.__dask_keys__()
    except Exception as exc:  # noqa: BLE001 - and here
        raise FileReadError(f"{path}: cannot prepare lazy reading ({type(exc).__name__}: {exc})") from None
    starts = list(np.cumsum((0,) + tuple(array.chunks[0]))[:-1])

    def read(t: int) -> np.ndarray:
        block = bisect.bisect_right(starts, t) - 1
        nested = keys[block]
        flat = list(_leaves(nested))
        needed, _ = cull(graph, flat)
        try:
            values = dict(zip(flat, dask.get(needed, flat)))
        except Exception as exc:  # noqa: BLE001 - the plugin's decoder: a truncated or corrupt plane
            raise FileReadError(f"{path}: cannot read frame {t} ({type(exc).__name__}: {exc})") from None
        chunk = np.block(_replace(nested, values))
        return np.asarray(chunk[t - starts[block]])

    return read


def _leaves(nested: Any):
    if isinstance(nested, list):
        for item in nested:
            yield from _leaves(item)
    else:
        yield nested


def _replace(nested: Any, values: dict) -> Any:
    return [_replace(item, values) for item in nested] if isinstance(nested, list) else values[nested]


# ----------------------------------------------------------------------------------------- units

def image_units(img, plugin: str = "bioio") -> PhysicalUnits:
    """Pixel size (µm/px) and frame interval (s/frame) of a ``bioio.BioImage``'s current scene, None where the
    file does not say; a metadata block the plugin cannot parse counts as absent."""
    size = _pixel_size_um(img)
    interval = _seconds(_quietly(lambda: img.time_interval))
    ome = _ome_pixels(img) if size is None or interval is None else None
    if size is None and ome is not None:
        size = _magnitude(getattr(ome, "physical_size_x_quantity", None), "micrometer")
    if interval is None and ome is not None:
        interval = _magnitude(getattr(ome, "time_increment_quantity", None), "second")
        if interval is None:  # the planes' DeltaT, as bioio averages them
            interval = _seconds(_quietly(lambda: img.standard_metadata.timelapse_interval))
    if interval is None:  # readers without OME metadata that know the interval (bioio-lif)
        interval = _seconds(_quietly(lambda: getattr(img.reader, "timelapse_interval", None)))
    if size is None and interval is None:
        return PhysicalUnits()
    return PhysicalUnits(size, interval, f"bioio ({plugin})")


def _quietly(get) -> Any:
    try:
        return get()
    except Exception:  # noqa: BLE001 - metadata a plugin cannot parse counts as absent
        return None


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _pixel_size_um(img) -> float | None:
    sizes = _quietly(lambda: img.physical_pixel_sizes)
    value = _positive(getattr(sizes, "X", None))
    if value is None:
        return None
    unit = _quietly(lambda: img.dimension_properties.X.unit)
    if unit is None:
        return value  # bioio's convention: micrometres
    return _magnitude(_quietly(lambda: value * unit), "micrometer")


def _magnitude(quantity: Any, unit: str) -> float | None:
    if quantity is None:
        return None
    return _positive(_quietly(lambda: quantity.to(unit).magnitude))


def _seconds(interval: Any) -> float | None:
    return _positive(_quietly(lambda: interval.total_seconds())) if interval is not None else None


def _ome_pixels(img) -> Any:
    """The OME ``Pixels`` of the current scene as the plugin converts it, or None (not every file converts)."""
    with warnings.catch_warnings():  # the conversion warns about every field it cannot map
        warnings.simplefilter("ignore")
        ome = _quietly(lambda: img.ome_metadata)
    images = getattr(ome, "images", None)
    index = _quietly(lambda: img.current_scene_index) or 0
    if not images or index >= len(images):
        return None
    return getattr(images[index], "pixels", None)
