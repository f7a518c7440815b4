"""Streaming tracking: push frames (or detections) one at a time, get back what became final.

The :class:`Tracker` keeps a bounded window of recent frames. After frame ``t`` is pushed, the
linker solves the parent of every detection in the undecided frames ``[t - window + 1, t]``
(sources may lie up to ``max_gap`` frames further back, in the committed past) and then commits
the oldest undecided frame: the parents of its detections can no longer change, its track ids
are assigned, and it is returned as a :class:`TrackUpdate`. The latency is therefore
``window - 1`` frames, and :meth:`Tracker.finish` commits the rest.

Only ``window + max_gap`` frames of detections and their candidate edges are held, so memory does
not grow with the length of the stream (pass ``keep_results=False`` to keep no history at all;
with the default ``True`` the committed points are kept, compactly, for :meth:`Tracker.finish`).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.associate.registry import make_scorer
from edgetrack.runtime.detect.spots import SPOT_FEATURES, check_frame, detect_spots_array, validate_frame
from edgetrack.runtime.detect.config import DetectConfig
from edgetrack.runtime.detect.psf import AUTO, PSF_TRIES, PsfEstimate, estimate_psf_sigma, settled_sigma, split_auto
from edgetrack.runtime.detect.volume import SPOT3D_COLUMNS, Detect3DConfig, check_stack, detect_spots_3d
from edgetrack.runtime.errors import ConfigError, DegradedWarning, InputError
from edgetrack.runtime.graph.candidates import CandidateEdges, concat_edges, edges_into_frame
from edgetrack.runtime.graph.volume import edges_into_frame_3d
from edgetrack.runtime.link.components import largest_component
from edgetrack.runtime.link.lineage import tracks_from_links
from edgetrack.runtime.link.problem import UNDECIDED, LinkProblem
from edgetrack.runtime.link.registry import get_linker
from edgetrack.runtime.stream import motion as motion_model
from edgetrack.runtime.stream.config import TrackerConfig
from edgetrack.runtime.stream.state import check_state
from edgetrack.runtime.stream.updates import TrackUpdate, points_frame
from edgetrack.runtime.stream.window import Block, cap_candidates

__all__ = ["Tracker", "TrackerConfig", "TrackUpdate", "SPOT3D_FEATURES"]

#: Columns of a 3-D tracker's detections (``ndim=3``): y, x first as in 2-D, then z (voxels), then features.
SPOT3D_FEATURES: tuple[str, ...] = ("y", "x", "z", *SPOT3D_COLUMNS[3:])
_FROM_3D = np.array([SPOT3D_COLUMNS.index(c) for c in SPOT3D_FEATURES])  # detect_spots_3d's columns -> ours


class Tracker:
    """Streaming tracker: ``push`` frames or detections, receive committed :class:`TrackUpdate` objects.

    >>> tracker = Tracker(max_distance=5.0, linker="lap")          # doctest: +SKIP
    >>> for frame in movie:                                          # doctest: +SKIP
    ...     for update in tracker.push(frame):
    ...         use(update.to_dataframe())
    >>> tracks = tracker.finish()                                    # doctest: +SKIP

    Options are those of :class:`TrackerConfig` (given as a config or keywords); detection options are
    a :class:`~edgetrack.runtime.detect.config.DetectConfig` (or a dict). Ids are per tracker instance.

    In 3-D (``ndim=3``) ``push`` takes a (Z, Y, X) stack (detected by
    :func:`~edgetrack.runtime.detect.volume.detect_spots_3d`, options a
    :class:`~edgetrack.runtime.detect.volume.Detect3DConfig`) or a table with ``z, y, x`` (z in voxels, y and
    x in px); candidate links are found in 3-D with z steps weighted by ``z_scale``; tracks carry ``z``.
    """

    #: A jump over skipped (empty) frames reports at most this many of them as committed empty updates.
    MAX_EMPTY_UPDATES = 10_000

    def __init__(self, config: TrackerConfig | dict | None = None, *, detect: DetectConfig | dict | None = None,
                 **options) -> None:
        if isinstance(config, TrackerConfig):
            self.config = config.replace(**options) if options else config
        else:
            self.config = TrackerConfig.from_dict(config or {}, **options)
        cfg = self.config
        detect, auto = split_auto(detect)
        #: frames left on which ``psf_sigma="auto"`` may still be measured (0: the sigma is settled)
        self.psf_tries = PSF_TRIES if auto else 0
        #: the measured spot width (:class:`~edgetrack.runtime.detect.psf.PsfEstimate`) once ``"auto"`` settled it
        self.psf_estimate: PsfEstimate | None = None
        self._psf_lock = threading.Lock()
        self._psf_frames: list[np.ndarray] = []  # frames tried while "auto" is unsettled (pooled)
        if cfg.ndim == 3:
            if auto:
                raise ConfigError("psf_sigma='auto' measures 2-D spots; give the (z, y, x) sigma for ndim=3")
            self.detect_config = (detect if isinstance(detect, Detect3DConfig)
                                  else Detect3DConfig.from_dict(detect or {}))
        else:
            self.detect_config = detect if isinstance(detect, DetectConfig) else DetectConfig.from_dict(detect or {})
        self._spot_columns = SPOT3D_FEATURES if cfg.ndim == 3 else SPOT_FEATURES
        self._linker = get_linker(cfg.linker)
        self._linker_options = self._linker.parse_options(cfg.linker_options)
        self.timed_out_windows = 0  # 'ilp' solves cut by their time limit (best solution found was used)
        self.conflicts = 0  # detections that several parents competed for (merges are never created)
        self._sigma0 = cfg.step_sigma if cfg.step_sigma is not None else cfg.max_distance / 3.0
        if cfg.scorer == "distance":
            sigma = self._sigma0
            self._scorer = make_scorer("distance", step_sigma=sigma, gap_penalty=cfg.gap_penalty)
        else:
            self._scorer = make_scorer(cfg.scorer)
            if hasattr(self._scorer, "configure"):  # learned scorers get the graph's geometry
                self._scorer.configure(max_distance=cfg.max_distance)
        # a scorer with ``needs_window = True`` scores all edges of the window together at solve time
        # (a graph network needs the neighbourhood); others score each frame's new edges once
        self._window_scoring = bool(getattr(self._scorer, "needs_window", False))
        self._blocks: deque[Block] = deque()
        self._columns: tuple[str, ...] | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self._next_frame = 0  # index the next pushed frame gets
        self._next_id = 0  # next stream-wide detection id
        self._next_track = 0  # next track id (per instance)
        self._n_committed_frames = 0
        self._results: list[TrackUpdate] = []
        self._finished = False
        self._final_updates: list[TrackUpdate] = []  # what the end-of-stream flush committed
        self.degraded_windows = 0  # windows solved greedily instead of by LAP (see max_component)
        #: A profile, off by default: set it to a dict and every stage adds the seconds it spent under its
        #: name ("detect" with "detect.<pass>" for each detection pass, "graph", "score", "link", "commit").
        self.timings: dict[str, float] | None = None
        # frame -> detections in the largest connected component of that undecided frame's assignment problem
        # (its candidate edges do not change until it is committed; derived data, not part of a checkpoint)
        self._largest: dict[int, int] = {}

    # ------------------------------------------------------------------ public API
    @property
    def frames_pushed(self) -> int:
        return self._next_frame

    @property
    def frames_committed(self) -> int:
        return self._n_committed_frames

    def push(self, item: np.ndarray | pd.DataFrame, frame: int | None = None) -> list[TrackUpdate]:
        """Add the next frame (a 2-D image) or its detections (a DataFrame with ``y, x`` [+ features]).

        ``frame`` may be given to skip ahead (frames in between are treated as empty); it must increase.
        A jump of any length costs at most O(window + max_gap + MAX_EMPTY_UPDATES): the skipped frames
        still in the window are solved, the others are committed empty without a solve (see ``_skip_to``).
        Returns the updates (0 or more committed frames) that became final with this push.
        """
        if self._finished:
            raise InputError("this Tracker has finished; create a new one for a new stream")
        index = self._next_frame if frame is None else int(frame)
        if index < self._next_frame:
            raise InputError(f"frame {index} pushed after frame {self._next_frame - 1}: frames must increase")
        # validate (and detect) before anything changes, so a rejected item leaves the tracker untouched
        if isinstance(item, pd.DataFrame):
            values = self._values_from_table(item)
        else:
            values = self._values_from_image(item, index)
        updates = self._skip_to(index)
        updates.extend(self._add(values))
        return updates

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Detect the spots of one frame with this tracker's settings, without pushing it.

        Returns float64 (n, len(SPOT_FEATURES)). Safe to call from a worker thread (the Numba kernels
        release the GIL), which is how :func:`edgetrack.runtime.stream.pipeline.track_frames` overlaps the
        detection of the next frames with the linking of the current one.
        """
        return self._detect_checked(self._checked_frame(image))

    def _checked_frame(self, image: np.ndarray) -> np.ndarray:
        if self.config.ndim == 3:
            return check_stack(np.asarray(image), "z-stack")
        """The validated frame: as given (detection converts it into its own float32 buffer), or as float32
        when it is to be inverted (the inversion is then computed in float32, as detection sees it)."""
        image = np.asarray(image)
        return check_frame(image) if self.config.invert else validate_frame(image)

    def measure_psf(self, image: np.ndarray) -> bool:
        """With ``psf_sigma="auto"`` still unsettled, measure it on this frame (H, W) together with the
        frames tried before it (:func:`~edgetrack.runtime.detect.psf.estimate_psf_sigma`: the isolated spots
        of sparse frames are pooled) and detect with it from now on. Returns True once settled. After
        :data:`PSF_TRIES` frames without enough isolated spots the detector's default sigma stays, with a
        warning. :meth:`detect` calls this itself: call it first only to settle the sigma before detecting
        frames out of order."""
        with self._psf_lock:
            if not self.psf_tries:
                return True
            image = self._checked_frame(image)
            if self.config.invert:
                image = image.max() - image if image.size else image
            start = time.perf_counter()
            self._psf_frames.append(image)
            try:
                estimate = estimate_psf_sigma(self._psf_frames, self.detect_config)
            except InputError as exc:
                self.psf_tries -= 1
                if not self.psf_tries:
                    self._psf_frames = []
                    warnings.warn(f"{exc}; the detector keeps psf_sigma {self.detect_config.psf_sigma:g} px",
                                  DegradedWarning, stacklevel=2)
                self._tick("detect.psf", start)
                return not self.psf_tries
            self.detect_config = self.detect_config.replace(
                psf_sigma=settled_sigma(estimate.sigma, self.detect_config.psf_sigma))
            self.psf_estimate = estimate
            self.psf_tries = 0
            self._psf_frames = []
            self._tick("detect.psf", start)
            return True

    def _detect_checked(self, image: np.ndarray) -> np.ndarray:
        if self.psf_tries:
            self.measure_psf(image)
        if self.config.ndim == 3:
            start = time.perf_counter()
            if self.config.invert:
                image = image.max() - image if image.size else image
            spots = np.ascontiguousarray(detect_spots_3d(image, self.detect_config)[:, _FROM_3D])
            self._tick("detect", start)
            return spots
        timings = self.timings
        if timings is None:
            if self.config.invert:
                image = image.max() - image if image.size else image
            return detect_spots_array(image, self.detect_config)
        start = time.perf_counter()
        if self.config.invert:
            image = image.max() - image if image.size else image
        passes: dict[str, float] = {}
        spots = detect_spots_array(image, self.detect_config, timings=passes)
        for name, seconds in passes.items():
            timings["detect." + name] = timings.get("detect." + name, 0.0) + seconds
        self._tick("detect", start)
        return spots

    def _tick(self, stage: str, start: float) -> float:
        """Add the seconds since ``start`` to ``timings[stage]`` when a profile is kept; returns now."""
        if self.timings is None:
            return start
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - start)
        return now

    def push_spots(self, spots: np.ndarray, frame_shape: tuple[int, ...] | None = None,
                   frame: int | None = None) -> list[TrackUpdate]:
        """Push the spots of the next frame as returned by :meth:`detect` (float64 (n, len(SPOT_FEATURES)),
        or (n, len(SPOT3D_FEATURES)) in 3-D)."""
        spots = np.asarray(spots, dtype=np.float64)
        width = len(self._spot_columns)
        if spots.ndim != 2 or spots.shape[1] != width:
            raise InputError(f"spots must have shape (n, {width}), got {spots.shape}")
        if frame_shape is not None:
            self._check_shape(tuple(frame_shape))
        index = self._next_frame if frame is None else int(frame)
        if index < self._next_frame:
            raise InputError(f"frame {index} pushed after frame {self._next_frame - 1}: frames must increase")
        if spots.size and not np.isfinite(spots[:, : 3 if self.config.ndim == 3 else 2]).all():
            raise InputError(f"spots of frame {index}: NaN or inf in the coordinates")
        self._set_columns(self._spot_columns)
        updates = self._skip_to(index)
        updates.extend(self._add(np.ascontiguousarray(spots)))
        return updates

    def _skip_to(self, index: int) -> list[TrackUpdate]:
        """Add the empty frames before ``index`` (frames that were skipped); returns their updates.

        Only the first ``window + max_gap`` skipped frames are pushed one by one (they commit the frames
        still in the window, with the same results as before); after those the window holds nothing but
        empty frames, so the rest of a jump is done without solving anything: the window is rebuilt as the
        empty frames just before ``index``, exactly the state that pushing every empty frame would have
        left. The frames committed on the way get their (empty) update as before, up to
        :attr:`MAX_EMPTY_UPDATES` per jump (a live client sees every dropped frame committed); a longer
        jump costs O(MAX_EMPTY_UPDATES) whatever its length, and its further frames get no update
        (``frames_committed`` counts them).
        """
        cfg = self.config
        updates: list[TrackUpdate] = []
        step_by_step = self._next_frame + cfg.window + cfg.max_gap
        while self._next_frame < min(index, step_by_step):  # skipped frames are empty
            updates.extend(self._add(self._empty_values()))
        if self._next_frame < index:
            committed = max(index - (cfg.window - 1), 0)
            report = range(self._n_committed_frames,
                           min(committed, self._n_committed_frames + max(self.MAX_EMPTY_UPDATES - len(updates), 0)))
            for t in report:
                update = self._empty_update(t)
                updates.append(update)
                if cfg.keep_results:
                    self._results.append(update)
            self._blocks.clear()
            self._largest.clear()
            for t in range(max(committed - cfg.max_gap, 0), index):
                self._blocks.append(self._empty_block(t))
            self._n_committed_frames = committed
            self._next_frame = index
        return updates

    def _empty_update(self, frame: int) -> TrackUpdate:
        empty = np.zeros(0, np.int64)
        return TrackUpdate(frame=frame, columns=self._columns or ("y", "x"), values=self._empty_values(),
                           track_id=empty, parent_track_id=empty.copy(), det_id=empty.copy(),
                           parent_det_id=empty.copy())

    def _empty_block(self, frame: int) -> Block:
        return Block(frame=frame, first_id=self._next_id, values=self._empty_values(),
                     locked_parent=np.zeros(0, np.int64), child_count=np.zeros(0, np.int64),
                     track_id=np.zeros(0, np.int64), edges_in=concat_edges([]), score_in=np.zeros(0, np.float64),
                     motion=motion_model.empty_state(0, self.config.ndim))

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if self._frame_shape is None:
            self._frame_shape = shape
        elif shape != self._frame_shape:
            raise InputError(f"frame {self._next_frame} has shape {shape}, but earlier frames had {self._frame_shape}")

    def push_many(self, items: Iterable[np.ndarray | pd.DataFrame]) -> Iterator[TrackUpdate]:
        """Push every item of an iterable, yielding updates as they become final (like a generator linker)."""
        for item in items:
            yield from self.push(item)

    def flush(self) -> list[TrackUpdate]:
        """Commit every remaining frame (the end of the stream) and return their updates.

        Calling it again returns the same final updates (nothing is committed twice or lost)."""
        if self._finished:
            return list(self._final_updates)
        updates: list[TrackUpdate] = []
        while self._n_undecided() > 0:
            updates.append(self._solve_and_commit())
        self._finished = True
        self._final_updates = updates
        return list(updates)

    def finish(self) -> pd.DataFrame:
        """Flush, then return the tracks as one DataFrame sorted by frame.

        With ``keep_results=True`` (the default): every committed track point. With ``keep_results=False``
        (an endless acquisition that consumed the ``push`` updates): the points of the frames committed
        by this final flush, the ones no ``push`` returned, so the end of the stream is never lost.
        """
        final = self.flush()
        if self.config.keep_results:
            return self.results()
        divisions = self._divisions
        parts = [u.to_dataframe(divisions=divisions) for u in final if len(u)]
        if parts:
            return pd.concat(parts, ignore_index=True)
        columns = self._columns or ("y", "x")
        return points_frame(np.zeros(0, np.int64), columns, np.zeros((0, len(columns))), np.zeros(0, np.int64),
                            np.zeros(0, np.int64) if divisions else None)

    def results(self) -> pd.DataFrame:
        """The committed track points so far as one DataFrame (frame, y, x, track_id, ... features).

        With divisions on (``max_children > 1``) the ids are renumbered from the committed links (see
        :mod:`edgetrack.runtime.link.lineage`), so they can differ from those of the live updates.
        """
        columns = self._columns or ("y", "x")
        if not self._results:
            return points_frame(np.zeros(0, np.int64), columns, np.zeros((0, len(columns))),
                                 np.zeros(0, np.int64), np.zeros(0, np.int64) if self._divisions else None)
        frame = np.concatenate([np.full(len(u), u.frame, np.int64) for u in self._results])
        values = np.concatenate([u.values for u in self._results])
        track = np.concatenate([u.track_id for u in self._results])
        parent = None
        if self._divisions:
            # Ids rebuilt from the committed links: a mother always ends where she divides, even when her
            # daughters were committed in different frames (live updates could not wait for the second).
            det = np.concatenate([u.det_id for u in self._results])
            parent_det = np.concatenate([u.parent_det_id for u in self._results])
            known = np.isin(parent_det, det)  # a resumed tracker's results start mid-stream
            track, parent = tracks_from_links(det, np.where(known, parent_det, -1))
        return points_frame(frame, columns, values, track, parent)

    @property
    def _divisions(self) -> bool:
        return self.config.max_children > 1

    # ------------------------------------------------------------------ checkpoint / resume
    def checkpoint(self) -> dict:
        """The tracker's whole state as plain values and numpy arrays (copies).

        ``Tracker.resume(state)`` continues the stream exactly where it stopped: the same pushes then give
        the same updates as an uninterrupted tracker. Save it to disk with
        :func:`edgetrack.runtime.stream.checkpoint.save_checkpoint`.
        """
        blocks = []
        for b in self._blocks:
            blocks.append({
                "frame": b.frame, "first_id": b.first_id, "values": b.values.copy(),
                "locked_parent": b.locked_parent.copy(), "child_count": b.child_count.copy(),
                "track_id": b.track_id.copy(), "score_in": b.score_in.copy(), "motion": b.motion.copy(),
                "edges_in": {k: v.copy() for k, v in b.edges_in._asdict().items()},
            })
        results = None
        if self._results:
            results = {
                "frame": np.array([u.frame for u in self._results], np.int64),
                "length": np.array([len(u) for u in self._results], np.int64),
                "values": np.concatenate([u.values for u in self._results]),
                "track_id": np.concatenate([u.track_id for u in self._results]),
                "parent_track_id": np.concatenate([u.parent_track_id for u in self._results]),
                "det_id": np.concatenate([u.det_id for u in self._results]),
                "parent_det_id": np.concatenate([u.parent_det_id for u in self._results]),
            }
        return {
            "format": "edgetrack-tracker-checkpoint",
            "version": 1,
            "config": self.config.to_dict(),
            "detect_config": dict(self.detect_config.to_dict(), **({"psf_sigma": AUTO} if self.psf_tries else {})),
            "columns": list(self._columns) if self._columns is not None else None,
            "frame_shape": list(self._frame_shape) if self._frame_shape is not None else None,
            "next_frame": self._next_frame, "next_id": self._next_id, "next_track": self._next_track,
            "n_committed_frames": self._n_committed_frames, "finished": self._finished,
            "blocks": blocks, "results": results,
            # psf_sigma="auto" still pending: the frames tried so far, pooled with the next ones
            "psf_frames": np.stack(self._psf_frames) if self.psf_tries and self._psf_frames else None,
        }

    @classmethod
    def resume(cls, state: dict) -> "Tracker":
        """A tracker restored from :meth:`checkpoint` (or :func:`~edgetrack.runtime.stream.checkpoint.load_checkpoint`).

        The state is checked completely first (:func:`~edgetrack.runtime.stream.state.check_state`):
        an inconsistent one is an :class:`InputError` naming the problem, never a crash in a kernel.
        """
        check_state(state)
        try:
            config = TrackerConfig.from_dict(state["config"])
            tracker = cls(config, detect=dict(state["detect_config"]))
            tracker._columns = tuple(state["columns"]) if state["columns"] is not None else None
            tracker._frame_shape = tuple(state["frame_shape"]) if state["frame_shape"] is not None else None
            tracker._next_frame = int(state["next_frame"])
            tracker._next_id = int(state["next_id"])
            tracker._next_track = int(state["next_track"])
            tracker._n_committed_frames = int(state["n_committed_frames"])
            tracker._finished = bool(state["finished"])
            pooled = state.get("psf_frames")
            if pooled is not None and tracker.psf_tries:
                tracker._psf_frames = [np.asarray(f) for f in pooled]
                tracker.psf_tries = PSF_TRIES - len(tracker._psf_frames)
            for b in state["blocks"]:
                e = b["edges_in"]
                edges = CandidateEdges(*(np.asarray(e[k]) for k in CandidateEdges._fields))
                tracker._blocks.append(Block(
                    frame=int(b["frame"]), first_id=int(b["first_id"]), values=np.asarray(b["values"], np.float64),
                    locked_parent=np.asarray(b["locked_parent"], np.int64),
                    child_count=np.asarray(b["child_count"], np.int64).copy(),
                    track_id=np.asarray(b["track_id"], np.int64).copy(), edges_in=edges,
                    score_in=np.asarray(b["score_in"], np.float64),
                    motion=(np.asarray(b["motion"], np.float64).copy() if "motion" in b
                            else motion_model.empty_state(len(b["track_id"]), config.ndim))))
            r = state["results"]
            if r is not None:
                bounds = np.concatenate([[0], np.cumsum(r["length"])])
                columns = tracker._columns or ("y", "x")
                for k, frame in enumerate(r["frame"]):
                    sl = slice(int(bounds[k]), int(bounds[k + 1]))
                    tracker._results.append(TrackUpdate(
                        frame=int(frame), columns=columns, values=np.asarray(r["values"][sl], np.float64),
                        track_id=np.asarray(r["track_id"][sl]), parent_track_id=np.asarray(r["parent_track_id"][sl]),
                        det_id=np.asarray(r["det_id"][sl]), parent_det_id=np.asarray(r["parent_det_id"][sl])))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"corrupt tracker checkpoint ({type(exc).__name__}: {exc})") from None
        return tracker

    # ------------------------------------------------------------------ input conversion
    def _values_from_image(self, image: np.ndarray, index: int) -> np.ndarray:
        try:
            image = self._checked_frame(image)
        except InputError as exc:
            raise InputError(f"frame {index}: {exc}") from None
        self._check_shape(image.shape)
        values = self._detect_checked(image)
        self._set_columns(self._spot_columns)
        return values

    def _values_from_table(self, table: pd.DataFrame) -> np.ndarray:
        missing = [c for c in (("z", "y", "x") if self.config.ndim == 3 else ("y", "x")) if c not in table.columns]
        if missing:
            raise InputError(f"detections of frame {self._next_frame}: missing column(s) {', '.join(missing)}")
        features = [c for c in table.columns if c not in ("frame", "y", "x", "track_id", "parent_track_id", "particle")
                    and pd.api.types.is_numeric_dtype(table[c])]
        columns = ("y", "x", *features)
        if self._columns is not None and columns != self._columns:
            columns_needed = self._columns
            absent = [c for c in columns_needed if c not in table.columns]
            if absent:
                raise InputError(f"detections of frame {self._next_frame}: missing column(s) {', '.join(absent)} "
                                 "present in earlier frames")
            columns = columns_needed
        try:
            values = np.empty((len(table), len(columns)), np.float64)
            for j, name in enumerate(columns):
                values[:, j] = table[name].to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InputError(f"detections of frame {self._next_frame}: non-numeric values ({exc})") from None
        if values.size and not np.isfinite(values[:, :2]).all():
            raise InputError(f"detections of frame {self._next_frame}: NaN or inf in y/x")
        self._set_columns(columns)
        return values

    def _set_columns(self, columns: Sequence[str]) -> None:
        columns = tuple(columns)
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise InputError(f"frame {self._next_frame}: columns {columns} differ from earlier frames' {self._columns}"
                             " (do not mix images and detection tables in one stream)")

    def _empty_values(self) -> np.ndarray:
        return np.zeros((0, len(self._columns or ("y", "x"))), np.float64)

    # ------------------------------------------------------------------ window mechanics
    def _n_undecided(self) -> int:
        return sum(1 for b in self._blocks if b.frame >= self._n_committed_frames)

    def _add(self, values: np.ndarray) -> list[TrackUpdate]:
        cfg = self.config
        t = self._next_frame
        if values.shape[0] > 1 and not _sorted_by_y_x(values):
            # canonical order inside a frame: by y, then x (input order never matters); detections come sorted
            order = np.lexsort((values[:, 1], values[:, 0]))
            values = np.ascontiguousarray(values[order])
        n = values.shape[0]
        past = [b for b in self._blocks if b.frame >= t - cfg.max_gap]
        start = time.perf_counter() if self.timings is not None else 0.0
        if past and n:
            past_frame = np.concatenate([np.full(b.n, b.frame, np.int64) for b in past])
            past_vals = np.concatenate([b.values for b in past]) if len(past) > 1 else past[0].values
            if cfg.ndim == 3:
                zc = self._columns.index("z")
                edges, _ = edges_into_frame_3d(
                    past_frame, past_vals[:, zc], np.ascontiguousarray(past_vals[:, 0]),
                    np.ascontiguousarray(past_vals[:, 1]), values[:, zc], np.ascontiguousarray(values[:, 0]),
                    np.ascontiguousarray(values[:, 1]), t, cfg.max_distance, cfg.max_gap, z_scale=cfg.z_scale,
                    past_offset=past[0].first_id, new_offset=self._next_id)
            else:
                edges = edges_into_frame(past_frame, np.ascontiguousarray(past_vals[:, 0]),
                                         np.ascontiguousarray(past_vals[:, 1]), np.ascontiguousarray(values[:, 0]),
                                         np.ascontiguousarray(values[:, 1]), t, cfg.max_distance, cfg.max_gap,
                                         past_offset=past[0].first_id, new_offset=self._next_id)
            start = self._tick("graph", start)
            score = (np.zeros(len(edges.src), np.float64) if self._window_scoring
                     else np.asarray(self._scorer.score(edges), dtype=np.float64))
            start = self._tick("score", start)
            edges, score = cap_candidates(edges, score, self._next_id, n, cfg.max_candidates)
            self._tick("graph", start)
        else:
            edges = concat_edges([])
            score = np.zeros(0, np.float64)
        block = Block(
            frame=t, first_id=self._next_id, values=values,
            locked_parent=np.full(n, UNDECIDED, np.int64), child_count=np.zeros(n, np.int64),
            track_id=np.full(n, -1, np.int64), edges_in=edges, score_in=score,
            motion=motion_model.empty_state(n, cfg.ndim),
        )
        self._blocks.append(block)
        self._next_id += n
        self._next_frame += 1
        updates = []
        while self._n_undecided() >= cfg.window:
            updates.append(self._solve_and_commit())
        return updates

    def _solve_and_commit(self) -> TrackUpdate:
        cfg = self.config
        start = time.perf_counter() if self.timings is not None else 0.0
        blocks = list(self._blocks)
        first_id = blocks[0].first_id
        node_frame = np.concatenate([np.full(b.n, b.frame, np.int64) for b in blocks])
        locked = np.concatenate([b.locked_parent for b in blocks])
        child_count = np.concatenate([b.child_count for b in blocks])
        undecided_blocks = [b for b in blocks if b.frame >= self._n_committed_frames]
        edges = concat_edges([b.edges_in for b in undecided_blocks])
        score = np.concatenate([b.score_in for b in undecided_blocks]) if undecided_blocks else np.zeros(0)
        # the linker only needs to know which parents are fixed; a fixed parent outside the window becomes -1
        locked_local = np.where(locked == UNDECIDED, UNDECIDED, np.maximum(locked - first_id, -1))
        locked_local[locked == -1] = -1
        src = edges.src - first_id
        dst = edges.dst - first_id
        # sources that left the window (older than max_gap before the oldest undecided frame) cannot be linked
        keep = src >= 0
        src, dst, score = src[keep], dst[keep], score[keep]
        dt, dist = edges.dt[keep], edges.dist[keep]
        if self._window_scoring and len(src):
            start = self._tick("link", start)
            values = np.concatenate([b.values for b in blocks])
            local = CandidateEdges(src, dst, dt, edges.dy[keep], edges.dx[keep], dist)
            score = self._score_window(node_frame, values, local)
            start = self._tick("score", start)
        linker = self._linker
        if cfg.linker == "lap" and len(src):
            largest = self._largest_component(undecided_blocks, first_id, len(node_frame))
            if largest > cfg.max_component:
                warnings.warn(DegradedWarning(
                    f"frame {int(node_frame[dst].min())}+: a linking problem of {largest} connected detections "
                    f"(more than max_component={cfg.max_component}); this window is linked greedily to keep up"),
                    stacklevel=4)
                linker = get_linker("greedy")
                self.degraded_windows += 1
        commit = undecided_blocks[0]
        if linker is self._linker and cfg.linker == "lap" and len(src):
            # 'lap' solves the target frames in ascending order, each against the committed past, so the
            # links of the oldest undecided frame (the only ones committed now) never depend on the later
            # frames' edges: solving that frame alone gives the same links for 1/window of the work.
            lo = commit.first_id - first_id
            into = (dst >= lo) & (dst < lo + commit.n)
            src, dst, dt, score, dist = src[into], dst[into], dt[into], score[into], dist[into]
        if cfg.motion == "adaptive" and len(src):
            score = self._motion_scores(blocks, commit.first_id - first_id, commit.n, src, dst, dt, score)
        if len(node_frame):
            problem = LinkProblem.from_arrays(node_frame, src, dst, dt, score, locked_local, child_count,
                                              max_children=cfg.max_children, min_score=cfg.min_score, dist=dist)
            result = linker(problem, self._linker_options if linker is self._linker else None)
            self.timed_out_windows += int(result.timed_out)
            self.conflicts += len(result.conflicts)
            parent_local = result.parent
        else:
            parent_local = np.zeros(0, np.int64)
        start = self._tick("link", start)
        # commit the oldest undecided frame
        offset = commit.first_id - first_id
        parents = parent_local[offset:offset + commit.n]
        parent_global = np.where(parents >= 0, parents + first_id, -1)
        update = self._commit_block(commit, parent_global)
        self._largest.pop(commit.frame, None)
        self._n_committed_frames = commit.frame + 1
        # drop blocks that can no longer be the source of an undecided detection
        oldest_needed = self._n_committed_frames - cfg.max_gap
        while self._blocks and self._blocks[0].frame < oldest_needed:
            self._blocks.popleft()
        if cfg.keep_results:
            self._results.append(update)
        self._tick("commit", start)
        return update

    def _positions(self, values: np.ndarray) -> np.ndarray:
        cfg = self.config
        zc = self._columns.index("z") if cfg.ndim == 3 and self._columns else None
        return motion_model.positions(values, cfg.ndim, zc, cfg.z_scale)

    def _motion_scores(self, blocks: list[Block], lo: int, n: int, src: np.ndarray, dst: np.ndarray,
                       dt: np.ndarray, score: np.ndarray) -> np.ndarray:
        """``score`` with the links into the frame being committed (window-local detections ``lo .. lo + n``)
        rescored by their sources' track motion; their sources are all committed, so their states are known."""
        into = (dst >= lo) & (dst < lo + n)
        if not into.any():
            return score
        pos = self._positions(np.concatenate([b.values for b in blocks]))
        state = np.concatenate([b.motion for b in blocks])
        s, d = src[into], dst[into]
        out = score.copy()
        out[into] = motion_model.link_scores(state[s], pos[d] - pos[s], dt[into], self._sigma0, self.config.gap_penalty)
        return out

    def _largest_component(self, blocks: list[Block], first_id: int, n: int) -> int:
        """The largest connected component over the undecided frames' assignment problems (a source counts
        once per target frame, so no component spans two frames: the largest of each frame's own, each
        computed once). ``first_id``: the window's first detection id; ``n``: detections in the window."""
        best = 0
        for b in blocks:
            size = self._largest.get(b.frame)
            if size is None:
                e = b.edges_in
                size = int(largest_component(e.src - first_id, e.dst - first_id + n, 2 * n)) if len(e.src) else 0
                self._largest[b.frame] = size
            best = max(best, size)
        return best

    def _score_window(self, node_frame: np.ndarray, values: np.ndarray, edges: CandidateEdges) -> np.ndarray:
        score = np.asarray(self._scorer.score_window(node_frame, values, self._columns or ("y", "x"), edges),
                           dtype=np.float64)
        if score.shape != edges.src.shape:
            raise InputError(f"scorer {self.config.scorer!r} returned {score.shape[0] if score.ndim else 0} scores "
                             f"for {len(edges.src)} edges")
        return score

    def _commit_block(self, block: Block, parent_global: np.ndarray) -> TrackUpdate:
        n = block.n
        parent_track = np.full(n, -1, np.int64)
        inherited = np.full(n, -1, np.int64)  # track id of the parent, where linked
        prior_children = np.zeros(n, np.int64)
        linked = parent_global >= 0
        adaptive = self.config.motion == "adaptive"
        motion = motion_model.empty_state(n, self.config.ndim)
        for pb in self._blocks:
            if pb is block or pb.n == 0:
                continue
            sel = linked & (parent_global >= pb.first_id) & (parent_global < pb.first_id + pb.n)
            if not sel.any():
                continue
            j = parent_global[sel] - pb.first_id
            inherited[sel] = pb.track_id[j]
            prior_children[sel] = pb.child_count[j]
            np.add.at(pb.child_count, j, 1)
            if adaptive:
                step = self._positions(block.values[sel]) - self._positions(pb.values[j])
                motion[sel] = motion_model.propagate(pb.motion[j], step, np.full(len(j), block.frame - pb.frame),
                                                     self._sigma0)
        # a parent with two children (now, or one earlier and one now) is a division: children start new tracks
        siblings = np.zeros(n, np.int64)
        if linked.any():
            _, inverse, counts = np.unique(parent_global[linked], return_inverse=True, return_counts=True)
            siblings[linked] = counts[inverse]
        dividing = linked & ((siblings > 1) | (prior_children > 0))
        new = ~linked | dividing
        track_id = inherited.copy()
        n_new = int(new.sum())
        track_id[new] = self._next_track + np.arange(n_new, dtype=np.int64)
        self._next_track += n_new
        parent_track[dividing] = inherited[dividing]
        motion[dividing] = 0.0  # a daughter starts a track of its own
        block.motion = motion
        block.locked_parent[:] = parent_global
        block.track_id[:] = track_id
        # edges into a committed block are no longer needed
        block.edges_in = concat_edges([])
        block.score_in = np.zeros(0, np.float64)
        det_id = block.first_id + np.arange(n, dtype=np.int64)
        return TrackUpdate(frame=block.frame, columns=self._columns or ("y", "x"), values=block.values,
                           track_id=track_id, parent_track_id=parent_track, det_id=det_id, parent_det_id=parent_global)




def _sorted_by_y_x(values: np.ndarray) -> bool:
    """Whether the rows of ``values`` (n >= 2, columns y, x, ...) are already in (y, x) order, so that the
    stable lexsort would leave them as they are."""
    dy = np.diff(values[:, 0])
    return bool(((dy > 0) | ((dy == 0) & (np.diff(values[:, 1]) >= 0))).all())
