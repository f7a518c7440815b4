"""npe2 writers: a Tracks layer as an edgetrack tracks table (CSV, or Parquet by the name) or a geff, and a
Labels layer with its Tracks layer as a Cell Tracking Challenge result folder.

napari calls a one-layer writer as ``writer(path, data, meta)`` and a multi-layer writer as
``writer(path, [(data, meta, layer_type), ...])``; each returns the paths it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from edgetrack.runtime.errors import InputError
from edgetrack.runtime.napari_plugin.tables import tracks_from_layer

__all__ = ["layer_tracks", "write_ctc_folder", "write_tracks_geff", "write_tracks_table"]


def layer_tracks(data: np.ndarray, meta: dict[str, Any]) -> pd.DataFrame:
    """The edgetrack tracks table of a Tracks layer's (data, meta), as napari hands them to writers."""
    features = meta.get("features")
    if features is None or len(pd.DataFrame(features).columns) == 0:
        features = meta.get("properties")  # older napari give the features as properties only
    return tracks_from_layer(data, features, meta.get("graph"))


def write_tracks_table(path: str, data: np.ndarray, meta: dict[str, Any]) -> list[str]:
    """Write a Tracks layer as ``frame, y, x, track_id[, parent_track_id], features`` (CSV or ``.parquet``)."""
    from edgetrack.runtime.io.tables import write_table

    return [str(write_table(layer_tracks(data, meta), Path(path)))]


def write_tracks_geff(path: str, data: np.ndarray, meta: dict[str, Any]) -> list[str]:
    """Write a Tracks layer as a geff zarr folder (``edgetrack.runtime.io.geff.write_geff``; features as node
    properties, divisions as edges from the parent's last point)."""
    from edgetrack.runtime.io.geff import write_geff

    return [str(write_geff(layer_tracks(data, meta), Path(path)))]


def write_ctc_folder(path: str, layer_data: Sequence[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Write a Labels layer (T, H, W) and its Tracks layer as a CTC result folder (``maskTTT.tif`` + ``res_track.txt``).

    The Tracks layer must carry each point's mask ``label`` as a feature (as "Track cells" and the CTC
    reader give it); the masks are relabelled by CTC track, divisions come from the layer's graph.
    """
    from edgetrack.runtime.io.masks import write_ctc_result

    by_type = {layer_type: (data, meta) for data, meta, layer_type in layer_data}
    if set(by_type) != {"labels", "tracks"}:
        raise InputError(f"a CTC folder is written from one Labels and one Tracks layer, got {sorted(by_type)}")
    masks = np.asarray(by_type["labels"][0])
    if masks.ndim != 3:
        raise InputError(f"the Labels layer must be (T, H, W) to write a CTC folder, got shape {masks.shape}")
    tracks = layer_tracks(*by_type["tracks"])
    if "label" not in tracks.columns:
        raise InputError("the Tracks layer has no 'label' feature (the object's label in the masks); "
                         "track the Labels layer with 'Track cells' first")
    tracks["label"] = tracks["label"].astype(np.int64)
    if "parent_track_id" not in tracks.columns:
        tracks["parent_track_id"] = -1
    return [str(write_ctc_result(tracks, masks, Path(path)))]
