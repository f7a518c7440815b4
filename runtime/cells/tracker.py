"""Cell tracking from label masks, on the streaming :class:`~edgetrack.runtime.stream.tracker.Tracker`.

Each frame's label image becomes one table of objects (centroid ``y, x`` and the
:data:`~edgetrack.runtime.cells.features.CELL_FEATURES`; the labels stay aside, the tracker only sees
each object's row number in its frame), pushed into a ``Tracker`` whose scorer
(``"distance"``, or a learned one such as ``"transformer"``) scores the candidate links and whose
linker decides them, with divisions (``max_children=2``) where the linker supports them.

Default ``max_distance`` (when None): one median equivalent diameter ``sqrt(4 area / pi)`` of the
objects of the first frame that has any, in px: a cell is assumed to move less than its own
diameter between frames, and daughters to appear within a diameter of their mother. With the
distance scorer the default ``step_sigma`` is ``max_distance / 2`` (a cell radius), not the spot
tracker's ``max_distance / 3``: a daughter appears about one radius from its mother's centre, and
with the narrower Gaussian such a link scores below a neighbour's continuation or a gap-closing
link, so divisions are missed (on the CTC sequences in ``benchmarks/bench_cells.py``).

Track ids: the streaming tracker commits ids frame by frame; a mother whose second daughter is
linked only after a gap has by then handed its id to the first daughter. :meth:`CellTracker.finish`
(and :func:`track_cells`) therefore rebuild the ids from the committed links: a track ends where an
object has two children, each child starts a new track whose ``parent_track_id`` is the mother's
track (set on the daughter's first row, -1 elsewhere and for tracks without a mother).

3-D (``ndim=3``, ``voxel_size=(z, y, x)`` um): each frame is a (Z, Y, X) label stack; its objects come
from :func:`~edgetrack.runtime.cells.features3d.frame_features_3d` (centroid ``z, y, x`` in voxels and
:data:`~edgetrack.runtime.cells.features3d.CELL3D_FEATURES` in um) and are linked by a 3-D ``Tracker``
with ``z_scale = voxel z / voxel x`` (distances in (y, x) px, a z step counting ``z_scale`` px; distance
scorer only). The default ``max_distance`` is one median sphere-equivalent diameter ``(6 V / pi)^(1/3)``,
``V`` the volume in (y, x) px^3 (voxels times ``z_scale``). Rows have the columns :data:`CELL3D_TRACK_COLUMNS`.
The segmentation-error handling (``merge_fragments``, ``check_divisions``) is 2-D geometry (areas,
perimeters, in-plane moments and radii) and is off in 3-D: asking for it there is a ConfigError;
``min_track_length`` works in both.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.cells.features import CELL_FEATURES, frame_features_array
from edgetrack.runtime.cells.features3d import CELL3D_FEATURES, frame_features_3d_array
from edgetrack.runtime.cells import defaults
from edgetrack.runtime.cells import divisions as division_rules
from edgetrack.runtime.cells import fragments as fragment_rules
from edgetrack.runtime.link.registry import LINKERS
from edgetrack.runtime.errors import ConfigError, InputError
from edgetrack.runtime.link.lineage import tracks_from_links

__all__ = ["CellTracker", "track_cells", "default_max_distance", "default_max_distance_3d", "CELL_COLUMNS",
           "CELL3D_TRACK_COLUMNS", "ONE_TO_ONE_LINKERS"]

CELL_COLUMNS: tuple[str, ...] = ("frame", "label", "y", "x", "track_id", "parent_track_id", *CELL_FEATURES)
#: Columns of the 3-D cell tracker's rows (z, y, x in voxels; the features in um, see features3d).
CELL3D_TRACK_COLUMNS: tuple[str, ...] = ("frame", "label", "z", "y", "x", "track_id", "parent_track_id",
                                         *CELL3D_FEATURES)
#: Linkers that allow one child per object only: with them ``divisions=True`` links without divisions.
ONE_TO_ONE_LINKERS = frozenset(name for name, linker in LINKERS.items() if not linker.divisions)
_OBJECT_COLUMNS = ("y", "x", "label", *CELL_FEATURES)  # what push_objects takes per object
# what the Tracker (and its scorer) gets: the label is replaced by the object's row in its frame, so no
# scorer can read an identity from labels that a ground truth (or a tracking segmenter) keeps across frames
_PUSHED_COLUMNS = ("y", "x", "object", *CELL_FEATURES)
_OBJECT_COLUMNS_3D = ("y", "x", "label", "z", *CELL3D_FEATURES)  # 3-D: the values rows are laid out so too


def default_max_distance(area: np.ndarray) -> float:
    """One median equivalent diameter ``sqrt(4 area / pi)`` of objects of ``area`` px^2, in px."""
    area = np.asarray(area, np.float64)
    if area.size == 0:
        raise InputError("cannot choose max_distance from a frame without objects")
    return float(np.median(np.sqrt(4.0 * area / np.pi)))


def default_max_distance_3d(volume_px3: np.ndarray) -> float:
    """One median sphere-equivalent diameter ``(6 V / pi)^(1/3)`` of objects of ``V`` (y, x)-px^3, in px."""
    volume_px3 = np.asarray(volume_px3, np.float64)
    if volume_px3.size == 0:
        raise InputError("cannot choose max_distance from a stack without objects")
    return float(np.median(np.cbrt(6.0 * volume_px3 / np.pi)))


def _voxel_size(voxel_size) -> np.ndarray:
    try:
        voxel = np.asarray(voxel_size, np.float64)
    except (TypeError, ValueError):
        voxel = np.zeros(0)
    if voxel.shape != (3,) or not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
        raise ConfigError(f"voxel_size must be three sizes > 0 (z, y, x), got {voxel_size!r}")
    return voxel


def _segmentation_handling(ndim: int, name: str, value: bool | None, default: bool) -> bool:
    """The 2-D default when None; in 3-D off, and a ConfigError when asked for (it is 2-D geometry)."""
    if ndim == 2:
        return default if value is None else bool(value)
    if value:
        raise ConfigError(f"{name} is 2-D (areas, perimeters, in-plane radii) and not available with ndim=3")
    return False


class CellTracker:
    """Live cell tracker: ``push`` one label image (and optional intensity image) per frame.

    Options: ``scorer`` (``"distance"``, ``"transformer"``, ...), ``linker`` (``"greedy"``, ``"ilp"``,
    ``"lap"``, ...), ``divisions`` (``max_children=2`` where the linker supports it), ``max_distance``
    (px; None = :func:`default_max_distance` of the first frame with objects), ``window`` (frames held
    before a frame is committed), the segmentation-error handling applied by ``finish`` (``merge_fragments``:
    two pieces of one cell in a frame become one object, :mod:`~edgetrack.runtime.cells.fragments`, listed in
    :attr:`merged_labels`; ``check_divisions``: divisions whose mother and daughters are inconsistent are cut,
    :mod:`~edgetrack.runtime.cells.divisions`; ``min_track_length``: tracks shorter than this many frames with
    neither mother nor daughters are dropped, 1 = keep all; None = the defaults, off in 3-D),
    ``ndim`` (2: (H, W) label images; 3: (Z, Y, X) label stacks, with ``voxel_size`` (z, y, x) um, default
    (1, 1, 1); see the module docstring), and other :class:`~edgetrack.runtime.stream.config.TrackerConfig` options
    (``max_gap``, ``gap_penalty``, ``step_sigma``, ``min_score``, ``linker_options``, ...).

    ``push`` returns the frames that became final as DataFrames (columns :data:`CELL_COLUMNS`, in 3-D
    :data:`CELL3D_TRACK_COLUMNS`, with the
    streaming tracker's ids, see the module docstring); ``finish`` returns every object with rebuilt ids.
    ``seconds`` holds the time spent on ``features`` and on ``tracking`` (scoring and linking), s.
    """

    def __init__(self, *, scorer: str = defaults.SCORER, linker: str = defaults.LINKER, divisions: bool = True,
                 max_distance: float | None = None, window: int = defaults.WINDOW,
                 min_track_length: int = defaults.MIN_TRACK_LENGTH, check_divisions: bool | None = None,
                 merge_fragments: bool | None = None, ndim: int = 2,
                 voxel_size: Sequence[float] | None = None, hypotheses: dict | None = None,
                 **tracker_options) -> None:
        for reserved in ("max_children", "keep_results"):
            if reserved in tracker_options:
                raise ConfigError(f"{reserved!r} is set by the cell tracker (use divisions=True/False)")
        if isinstance(ndim, bool) or ndim not in (2, 3):
            raise ConfigError(f"ndim must be 2 (label images) or 3 (label stacks), got {ndim!r}")
        if "z_scale" in tracker_options:
            raise ConfigError("'z_scale' is set by the cell tracker from voxel_size (z / x)")
        if ndim == 2 and voxel_size is not None:
            raise ConfigError("voxel_size goes with ndim=3 (3-D label stacks)")
        self.ndim = int(ndim)
        if hypotheses is not None and (ndim != 2 or not isinstance(hypotheses, dict)):
            raise ConfigError("hypotheses (options of cells.hypotheses.SegmentChooser, a dict) are for 2-D label images")
        self._hypotheses = dict(hypotheses or {})
        self._chooser = None
        if hypotheses is not None:
            from edgetrack.runtime.cells.hypotheses import SegmentChooser

            try:
                self._chooser = SegmentChooser(**self._hypotheses)
            except TypeError as exc:
                raise ConfigError(f"hypotheses: {exc}") from None
        #: the label image the last ``push`` tracked: the one given, or the objects chosen with ``foreground``
        self.chosen_labels: np.ndarray | None = None
        self.voxel_size = tuple(_voxel_size((1.0, 1.0, 1.0) if voxel_size is None else voxel_size)) \
            if ndim == 3 else None
        check_divisions = _segmentation_handling(ndim, "check_divisions", check_divisions, defaults.CHECK_DIVISIONS)
        merge_fragments = _segmentation_handling(ndim, "merge_fragments", merge_fragments, defaults.MERGE_FRAGMENTS)
        self._object_columns = _OBJECT_COLUMNS if ndim == 2 else _OBJECT_COLUMNS_3D
        if ndim == 3:
            tracker_options = dict(tracker_options, ndim=3, z_scale=self.voxel_size[0] / self.voxel_size[2])
        if max_distance is not None and not (np.isfinite(max_distance) and max_distance > 0):
            raise ConfigError(f"max_distance must be a number of px > 0 (or None), got {max_distance!r}")
        if isinstance(min_track_length, bool) or int(min_track_length) != min_track_length or min_track_length < 1:
            raise ConfigError(f"min_track_length must be a whole number of frames >= 1, got {min_track_length!r}")
        self.min_track_length = int(min_track_length)
        self.check_divisions = bool(check_divisions)
        self.merge_fragments = bool(merge_fragments)
        self._merged = pd.DataFrame(np.zeros((0, 3), np.int64), columns=list(fragment_rules.MERGED_COLUMNS))
        max_children = 2 if divisions and linker not in ONE_TO_ONE_LINKERS else 1
        self._options = dict(tracker_options, scorer=scorer, linker=linker, window=window, max_children=max_children,
                             keep_results=False)
        self.max_distance = max_distance
        self._tracker = None
        if max_distance is not None:
            self._tracker = self._make_tracker(max_distance)
        self._next_frame = 0
        self._shape: tuple[int, ...] | None = None
        self._parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # frame, values, det, parent det
        self._flushed: list[pd.DataFrame] | None = None  # the end-of-stream tables, once flushed
        self._labels: dict[int, np.ndarray] = {}  # frame -> label of each object row pushed
        self.seconds = {"features": 0.0, "tracking": 0.0}

    def _make_tracker(self, max_distance: float):
        from edgetrack.runtime.stream.tracker import Tracker

        options = dict(self._options)
        if options["scorer"] == "distance" and options.get("step_sigma") is None:
            options["step_sigma"] = float(max_distance) / 2.0
        return Tracker(max_distance=float(max_distance), **options)

    @property
    def frames_pushed(self) -> int:
        return self._next_frame

    def push(self, labels: np.ndarray, image: np.ndarray | None = None,
             foreground: np.ndarray | None = None, contours: np.ndarray | None = None) -> list[pd.DataFrame]:
        """Add the next frame's label image (H, W) integer, in 3-D its label stack (Z, Y, X) (and intensity
        image or stack of the same shape); returns committed frames.

        ``foreground`` (2-D, (H, W), a probability or intensity map): the objects tracked are chosen among the
        labels and the map's coarser components (:class:`~edgetrack.runtime.cells.hypotheses.SegmentChooser`
        with the ``hypotheses`` options); :attr:`chosen_labels` is then the label image the rows refer to.
        ``contours`` (2-D, (H, W), a boundary map, high between cells; only with ``foreground``): the user's
        objects are also offered cut where a boundary runs through them (cells/contours.py)."""
        t0 = time.perf_counter()
        labels = np.asarray(labels)
        if contours is not None and foreground is None:
            raise ConfigError("contours go with a foreground map: give foreground= too")
        if foreground is not None:
            if self.ndim != 2:
                raise ConfigError("foreground maps are for 2-D label images")
            if self._chooser is None:
                from edgetrack.runtime.cells.hypotheses import SegmentChooser

                self._chooser = SegmentChooser(**self._hypotheses)
            labels = self._chooser.push(labels, foreground, contours)
        self.chosen_labels = labels
        if self._shape is None:
            self._shape = labels.shape
        elif labels.shape != self._shape:
            raise InputError(f"mask of frame {self._next_frame} has shape {labels.shape}, earlier frames {self._shape}")
        try:
            if self.ndim == 3:
                label, values = frame_features_3d_array(labels, image, self.voxel_size)
                values = values[:, [1, 2, 0, *range(3, values.shape[1])]]  # z, y, x -> y, x, z
            else:
                label, values = frame_features_array(labels, image)
        except InputError as exc:
            raise InputError(f"frame {self._next_frame}: {exc}") from None
        table = pd.DataFrame(np.column_stack([values[:, :2], label.astype(np.float64), values[:, 2:]]),
                             columns=list(self._object_columns))
        self.seconds["features"] += time.perf_counter() - t0
        return self.push_objects(table)

    def push_objects(self, objects: pd.DataFrame) -> list[pd.DataFrame]:
        """Add the next frame as a table of its objects (columns ``y, x, label`` and :data:`CELL_FEATURES`,
        e.g. the rows of :func:`~edgetrack.runtime.cells.features.frame_features` of that frame; in 3-D
        ``z, y, x, label`` and :data:`CELL3D_FEATURES`, the rows of ``frame_features_3d``)."""
        missing = [c for c in self._object_columns if c not in objects.columns]
        if missing:
            raise InputError(f"objects of frame {self._next_frame}: missing column(s) {', '.join(missing)}")
        labels = objects["label"].to_numpy()
        if pd.Series(labels).duplicated().any():
            raise InputError(f"objects of frame {self._next_frame}: a label appears twice (one row per object)")
        table = objects.loc[:, list(self._object_columns)].rename(columns={"label": "object"})
        table["object"] = np.arange(len(table), dtype=np.float64)
        t1 = time.perf_counter()
        frame = self._next_frame
        self._next_frame += 1
        self._labels[frame] = labels.astype(np.int64)
        if self._tracker is None:
            if len(table) == 0:
                return []  # no object yet to size max_distance from: the frame is pushed (empty) later
            if self.ndim == 3:  # um^3 -> (y, x) px^3: voxels times z_scale
                voxel_px3 = self.voxel_size[1] * self.voxel_size[2] ** 2  # um^3 of one (y, x) px^3
                self.max_distance = default_max_distance_3d(table["volume"].to_numpy() / voxel_px3)
            else:
                self.max_distance = default_max_distance(table["area"].to_numpy())
            self._tracker = self._make_tracker(self.max_distance)
        updates = self._tracker.push(table, frame=frame)
        out = [self._keep(u) for u in updates]
        self.seconds["tracking"] += time.perf_counter() - t1
        return out

    def _keep(self, update) -> pd.DataFrame:
        values = update.values.copy()
        labels = self._labels.pop(update.frame, np.zeros(0, np.int64))
        if len(values):  # the object's row in its frame back to its label
            values[:, 2] = labels[values[:, 2].astype(np.int64)]
        self._parts.append((update.frame, values, update.det_id, update.parent_det_id))
        return self._table(np.full(len(update), update.frame, np.int64), values, update.track_id,
                           update.parent_track_id)

    def flush(self) -> list[pd.DataFrame]:
        """Commit every remaining frame; returns their tables (streaming ids). Calling it again returns
        the same tables."""
        if self._tracker is None:
            return []
        if self._flushed is not None:
            return list(self._flushed)
        t0 = time.perf_counter()
        out = [self._keep(u) for u in self._tracker.flush()]
        self.seconds["tracking"] += time.perf_counter() - t0
        self._flushed = out
        return list(out)

    @property
    def merged_labels(self) -> pd.DataFrame:
        """Fragments merged by the last :meth:`finish`: ``frame, label, into`` (paint ``label`` with ``into``;
        :func:`~edgetrack.runtime.cells.fragments.relabel_masks` does it for a CTC result)."""
        return self._merged.copy()

    def finish(self) -> pd.DataFrame:
        """Flush and return every object with track ids rebuilt from the links (columns :data:`CELL_COLUMNS`),
        after the segmentation-error handling that is on (module docstring)."""
        self.flush()
        if not self._parts:
            return self._table(np.zeros(0, np.int64), np.zeros((0, len(self._object_columns))),
                               np.zeros(0, np.int64), np.zeros(0, np.int64))
        frame = np.concatenate([np.full(len(p[2]), p[0], np.int64) for p in self._parts])
        values = np.concatenate([p[1] for p in self._parts])
        det = np.concatenate([p[2] for p in self._parts])
        parent_det = np.concatenate([p[3] for p in self._parts])
        t0 = time.perf_counter()
        if self.merge_fragments:
            keep, parent_det, values, self._merged = fragment_rules.merge_fragments(frame, det, parent_det, values)
            frame, det, parent_det, values = frame[keep], det[keep], parent_det[keep], values[keep]
        if self.check_divisions:
            parent_det = division_rules.check_divisions(frame, det, parent_det, values)
        track, parent_track = tracks_from_links(det, parent_det)
        if self.min_track_length > 1:
            keep = long_enough(frame, track, parent_track, self.min_track_length)
            frame, values, track, parent_track = frame[keep], values[keep], track[keep], parent_track[keep]
        self.seconds["tracking"] += time.perf_counter() - t0
        return self._table(frame, values, track, parent_track)

    def _table(self, frame: np.ndarray, values: np.ndarray, track: np.ndarray, parent_track: np.ndarray) -> pd.DataFrame:
        if self.ndim == 2:
            return _table(frame, values, track, parent_track)
        data = {"frame": frame, "label": values[:, 2].astype(np.int64), "z": values[:, 3], "y": values[:, 0],
                "x": values[:, 1], "track_id": np.asarray(track, np.int64),
                "parent_track_id": np.asarray(parent_track, np.int64)}
        for j, name in enumerate(CELL3D_FEATURES, start=4):
            data[name] = values[:, j]
        return pd.DataFrame(data, columns=list(CELL3D_TRACK_COLUMNS))


def long_enough(frame: np.ndarray, track: np.ndarray, parent_track: np.ndarray, min_length: int) -> np.ndarray:
    """bool (n,): False for the rows of tracks spanning fewer than ``min_length`` frames that have neither a
    mother nor daughters (objects that flicker into one frame or two with no link)."""
    ids, inverse = np.unique(track, return_inverse=True)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    last = np.full(len(ids), np.iinfo(np.int64).min)
    np.minimum.at(first, inverse, frame)
    np.maximum.at(last, inverse, frame)
    linked = np.zeros(len(ids), bool)
    has_mother = parent_track >= 0
    linked[inverse[has_mother]] = True
    mothers = np.isin(ids, parent_track[has_mother])
    short = (last - first + 1 < min_length) & ~linked & ~mothers
    return ~short[inverse]


def _table(frame: np.ndarray, values: np.ndarray, track: np.ndarray, parent_track: np.ndarray) -> pd.DataFrame:
    data = {"frame": frame, "label": values[:, 2].astype(np.int64), "y": values[:, 0], "x": values[:, 1],
            "track_id": np.asarray(track, np.int64), "parent_track_id": np.asarray(parent_track, np.int64)}
    for j, name in enumerate(CELL_FEATURES, start=3):
        data[name] = values[:, j]
    return pd.DataFrame(data, columns=list(CELL_COLUMNS))


def track_cells(masks: np.ndarray | Sequence[np.ndarray] | str, images: np.ndarray | Sequence[np.ndarray] | str | None = None,
                *, scorer: str = defaults.SCORER, linker: str = defaults.LINKER, divisions: bool = True,
                max_distance: float | None = None, window: int = defaults.WINDOW, ndim: int = 2,
                voxel_size: Sequence[float] | None = None, **tracker_options) -> pd.DataFrame:
    """Track the objects of label masks; returns one row per object (columns :data:`CELL_COLUMNS`).

    masks: (T, H, W) integer array, a sequence of (H, W) label images, or a path that
    :func:`~edgetrack.runtime.io.masks.open_masks` opens (a CTC folder, a folder of TIFFs, a stacked TIFF).
    images: optional intensity frames (array, sequence or path) for ``mean_intensity``.
    ``label`` is each object's label in its frame's mask; ``y, x`` its centroid (px); ``track_id`` its
    track; ``parent_track_id`` the mother's track on a daughter's first row (-1 otherwise).
    Other options as in :class:`CellTracker`. Frames are pushed one by one into the streaming tracker.
    A fragment merged into its neighbour has no row (its pixels are background in a CTC result written from
    these tracks); :attr:`CellTracker.merged_labels` with
    :func:`~edgetrack.runtime.cells.fragments.relabel_masks` paints them with the kept label instead.

    3-D (``ndim=3``, ``voxel_size`` (z, y, x) um): masks are (T, Z, Y, X) label stacks (an array, a sequence
    of (Z, Y, X) stacks, a TIFF / OME-TIFF with a Z axis, a (T, Z, Y, X) ``.npy`` or a folder of 3-D TIFFs:
    :func:`~edgetrack.runtime.io.masks.open_masks_3d`), images likewise; rows have the columns
    :data:`CELL3D_TRACK_COLUMNS` (see the module docstring).
    """
    from edgetrack.runtime.io.masks import (
        open_images,
        open_masks,
        open_masks_3d,
        open_volumes,
    )

    tracker = CellTracker(scorer=scorer, linker=linker, divisions=divisions, max_distance=max_distance, window=window,
                          ndim=ndim, voxel_size=voxel_size, **tracker_options)
    if isinstance(masks, (list, tuple)):
        empty = np.zeros((0,) + (1,) * ndim, np.uint16)
        masks = np.stack([np.asarray(m) for m in masks]) if len(masks) else empty
    if isinstance(masks, np.ndarray) and masks.ndim == ndim + 1 and len(masks) == 0:
        return tracker.finish()
    if ndim == 3 and isinstance(masks, np.ndarray) and masks.ndim != 4:
        raise InputError(f"ndim=3 needs (T, Z, Y, X) label stacks, got an array of shape {masks.shape} "
                         "(2-D masks over time: use ndim=2)")
    movie = open_masks_3d(masks) if ndim == 3 else open_masks(masks)
    if ndim == 2 and len(movie.frame_shape) == 3:
        raise InputError(f"{movie.source}: frames are 3-D label stacks of shape {movie.frame_shape}: use ndim=3")
    frames: Iterable = movie
    image_frames = None
    if images is not None:
        if isinstance(images, (list, tuple)):
            images = np.stack([np.asarray(i) for i in images])
        image_frames = open_volumes(images) if ndim == 3 else open_images(images)
        if len(image_frames) != len(movie):
            raise InputError(f"{len(image_frames)} image frames for {len(movie)} mask frames: the counts must match")
    for t, labels in enumerate(frames):
        tracker.push(labels, None if image_frames is None else image_frames[t])
    return tracker.finish()
