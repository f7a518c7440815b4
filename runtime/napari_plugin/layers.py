"""Adding or updating the layers the widgets make, in a napari viewer.

A result layer is found by name: tracking the same movie again updates its layers in place (the
user's colour or tail settings stay) instead of piling up new ones. Result layers take the source
layer's ``scale`` and ``translate``, so they sit on it whatever its pixel size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.napari_plugin.tables import points_layer_data, tracks_layer_data

__all__ = ["current_frame", "frames_of", "placement", "show_points", "show_tracks"]


def placement(source: Any) -> dict[str, Any]:
    """``scale`` and ``translate`` of a source layer (the last three axes: t, y, x), for its result layers."""
    if source is None:
        return {}
    scale, translate = np.asarray(source.scale, float), np.asarray(source.translate, float)
    if len(scale) < 3:  # a single 2-D frame: time gets unit scale
        scale, translate = np.r_[1.0, scale], np.r_[0.0, translate]
    return {"scale": scale[-3:], "translate": translate[-3:]}


def _find(viewer: Any, name: str, kind: type) -> Any:
    return next((layer for layer in viewer.layers if layer.name == name and isinstance(layer, kind)), None)


def show_tracks(viewer: Any, tracks: pd.DataFrame, name: str, source: Any = None) -> Any:
    """Add (or update in place) the Tracks layer ``name`` with ``tracks``; returns the layer, None if empty."""
    from napari.layers import Tracks

    if len(tracks) == 0:
        return None
    data, meta, _ = tracks_layer_data(tracks, name=name, **placement(source))
    layer = _find(viewer, name, Tracks)
    if layer is None:
        return viewer.add_tracks(data, tail_length=30, **meta)
    layer.data = data  # napari resets features and graph with the data; set them after it
    layer.features = meta["features"]
    layer.graph = meta["graph"]
    return layer


def show_points(viewer: Any, table: pd.DataFrame, name: str, source: Any = None, **style: Any) -> Any:
    """Add (or update in place) the Points layer ``name`` with the rows of ``table`` (``frame, y, x``)."""
    from napari.layers import Points

    data, meta, _ = points_layer_data(table, name=name, **placement(source))
    layer = _find(viewer, name, Points)
    if layer is None:
        style = {"size": 6, "border_color": "yellow", "face_color": "transparent", "border_width": 0.15, **style}
        return viewer.add_points(data, ndim=3, **meta, **style)
    layer.data = data
    layer.features = meta["features"]
    return layer


def frames_of(layer: Any) -> Any:
    """The frames of an Image or Labels layer: its data as (T, H, W) (a 2-D layer is one frame).

    The array is the layer's own (numpy, dask, zarr...): frames are read one at a time as they are used.
    RGB images and layers with more axes than (T, H, W) are refused with a message naming the shape.
    """
    data = layer.data
    if getattr(layer, "rgb", False):
        raise InputError(f"layer {layer.name!r} is RGB; edgetrack tracks one channel: split the channels first")
    if getattr(layer, "multiscale", False):
        data = data[0]
    if data.ndim == 2:
        return data[None]
    if data.ndim != 3:
        raise InputError(f"layer {layer.name!r} has shape {tuple(data.shape)}; edgetrack needs (T, H, W) frames "
                         "(for a z-stack or several channels, make one layer of the plane to track)")
    return data


def current_frame(viewer: Any, layer: Any) -> int:
    """The frame of ``layer`` the viewer shows now (its first axis, from the viewer's dims)."""
    n = len(frames_of(layer))
    if layer.ndim == 2:
        return 0
    t = layer.world_to_data(viewer.dims.point)[0]
    return int(np.clip(np.round(t), 0, n - 1))
