"""Training windows for the cell association transformer.

A labelled movie is a table of objects (one row per object of the segmentation, as
:func:`edgetrack.runtime.cells.features.movie_features` gives it: ``frame, label, y, x`` and the cell
features) joined with the truth of the simulator (:func:`edgetrack.training.cells.simulate_cells`):
``track_id`` (the true track an object overlaps most, 0 for a false object) and the lineage
(``label, start, end, parent`` of the true tracks).

Targets of a window (``N`` objects): ``target[i, j] = 1`` when ``t_i < t_j`` and ``i``'s track is
``j``'s track or one of its ancestors (the mother, grandmother, ... through the lineage); 0
otherwise. Where segmentation errors put several objects of one true track in one frame (a split
cell), only the largest counts as that track; the others, and false objects, are nobody's
ancestor and have no ancestor. So per child ``j`` and earlier frame at most one target is 1, as
the parental softmax assumes. ``division[i, j]`` marks the positives that cross a division (the
tracks differ).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd

from edgetrack.runtime.associate.cell_transformer import CELL_FEATURE_COLUMNS, window_inputs

__all__ = ["LabelledMovie", "Window", "ancestry", "representatives", "window_targets", "make_window",
           "augment_table", "sample_overrides", "simulated_movie", "movie_pool"]

_VALUE_COLUMNS = ("y", "x", *CELL_FEATURE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class LabelledMovie:
    """Objects of one movie with their truth.

    table: DataFrame ``frame, y, x, *CELL_FEATURE_COLUMNS, track_id`` (track_id 0: false object).
    parent: dict true track -> its parent track (absent or 0: none).
    """

    table: pd.DataFrame
    parent: dict

    @property
    def n_frames(self) -> int:
        return int(self.table["frame"].max()) + 1 if len(self.table) else 0


@dataclasses.dataclass
class Window:
    """One training window: model inputs (``coords`` (N, 3), ``features`` (N, 9), float32) and targets.

    target, division: float32 (N, N) (see the module docstring).
    """

    coords: np.ndarray
    features: np.ndarray
    target: np.ndarray
    division: np.ndarray


def ancestry(tracks: np.ndarray, parent: dict) -> np.ndarray:
    """bool (k, k): ``out[a, b]`` when track ``tracks[a]`` is track ``tracks[b]`` or one of its ancestors."""
    tracks = np.asarray(tracks, dtype=np.int64)
    index = {int(t): a for a, t in enumerate(tracks)}
    out = np.eye(len(tracks), dtype=bool)
    for b, t in enumerate(tracks):
        seen = {int(t)}
        p = int(parent.get(int(t), 0) or 0)
        while p > 0 and p not in seen:  # walk up the lineage (guarding against a cycle in bad input)
            seen.add(p)
            a = index.get(p)
            if a is not None:
                out[a, b] = True
            p = int(parent.get(p, 0) or 0)
    return out


def representatives(frame: np.ndarray, track: np.ndarray, area: np.ndarray) -> np.ndarray:
    """int64 (n,) track of each object, 0 where it is false or not the largest object of its track in its frame."""
    frame = np.asarray(frame, dtype=np.int64)
    track = np.asarray(track, dtype=np.int64).copy()
    area = np.asarray(area, dtype=np.float64)
    order = np.lexsort((-area, track, frame))
    f, t = frame[order], track[order]
    dup = np.zeros(len(order), bool)
    dup[1:] = (f[1:] == f[:-1]) & (t[1:] == t[:-1])
    out = track.copy()
    out[order[dup]] = 0
    out[out < 0] = 0
    return out


def window_targets(frame: np.ndarray, track: np.ndarray, parent: dict) -> tuple[np.ndarray, np.ndarray]:
    """(target, division), float32 (N, N), of objects with frames ``frame`` and representative tracks ``track``."""
    frame = np.asarray(frame, dtype=np.int64)
    track = np.asarray(track, dtype=np.int64)
    n = len(frame)
    target = np.zeros((n, n), np.float32)
    division = np.zeros((n, n), np.float32)
    real = track > 0
    if not real.any():
        return target, division
    uniq, inv = np.unique(track[real], return_inverse=True)
    anc = ancestry(uniq, parent)
    rows = np.flatnonzero(real)
    pos = anc[inv[:, None], inv[None, :]] & (frame[rows][:, None] < frame[rows][None, :])
    target[np.ix_(rows, rows)] = pos
    division[np.ix_(rows, rows)] = pos & (track[rows][:, None] != track[rows][None, :])
    return target, division


def augment_table(values: np.ndarray, rng: np.random.Generator, size_jitter: float = 0.0) -> np.ndarray:
    """A flipped / transposed copy of window values (columns ``y, x, *CELL_FEATURE_COLUMNS``), with
    the inertia tensor transformed to match, and sometimes no image (mean_intensity 0).

    size_jitter: probability per object of a size change by a factor exp(U(-1.5, 0.3)) (area and
    inertia times it, perimeter times its square root), as when a segmenter or a tracking marker
    covers only part of a cell; every object also gets a small size and brightness jitter
    (log-normal, sigma 0.08) when size_jitter > 0.
    """
    v = values.copy()
    iyy, ixy, ixx = (2 + CELL_FEATURE_COLUMNS.index(c) for c in ("inertia_yy", "inertia_xy", "inertia_xx"))
    iarea, iper, iint = (2 + CELL_FEATURE_COLUMNS.index(c) for c in ("area", "perimeter", "mean_intensity"))
    if rng.random() < 0.5:
        v[:, 0] = -v[:, 0]
        v[:, ixy] = -v[:, ixy]
    if rng.random() < 0.5:
        v[:, 1] = -v[:, 1]
        v[:, ixy] = -v[:, ixy]
    if rng.random() < 0.5:
        v[:, [0, 1]] = v[:, [1, 0]]
        v[:, [iyy, ixx]] = v[:, [ixx, iyy]]
    if size_jitter > 0:
        n = len(v)
        log_s = rng.normal(0.0, 0.08, n)
        big = rng.random(n) < size_jitter
        log_s[big] = rng.uniform(-1.5, 0.3, int(big.sum()))
        s = np.exp(log_s)
        v[:, iarea] *= s
        v[:, [iyy, ixy, ixx]] *= s[:, None]
        v[:, iper] *= np.sqrt(s)
        v[:, iint] *= np.exp(rng.normal(0.0, 0.08, n))
    if rng.random() < 0.25:
        v[:, iint] = 0.0
    return v


def _division_rows(movie: LabelledMovie, frame: np.ndarray, track: np.ndarray) -> np.ndarray:
    """bool (n,): objects that are the first of a daughter track or the last of a mother track."""
    tab = movie.table
    real = tab["track_id"].to_numpy(np.int64) > 0
    spans = tab[real].groupby("track_id")["frame"].agg(["min", "max"])
    first = spans["min"].to_dict()
    last = spans["max"].to_dict()
    mothers = set(movie.parent.values())
    out = np.zeros(len(frame), bool)
    for k, (f, t) in enumerate(zip(frame.tolist(), track.tolist())):
        if t > 0:
            out[k] = (movie.parent.get(t, 0) > 0 and f == first.get(t)) or (t in mothers and f == last.get(t))
    return out


def _rescale(values: np.ndarray, rows: np.ndarray, factor: np.ndarray) -> None:
    """Scale the sizes of ``rows`` in place: area and inertia times ``factor``, perimeter times its root."""
    iyy, ixy, ixx = (2 + CELL_FEATURE_COLUMNS.index(c) for c in ("inertia_yy", "inertia_xy", "inertia_xx"))
    iarea, iper = (2 + CELL_FEATURE_COLUMNS.index(c) for c in ("area", "perimeter"))
    values[rows, iarea] *= factor
    for c in (iyy, ixy, ixx):
        values[rows, c] *= factor
    values[rows, iper] *= np.sqrt(factor)


def make_window(movie: LabelledMovie, start: int, n_frames: int, rng: np.random.Generator | None = None,
                shift: float = 0.0, size_jitter: float = 0.0, division_jitter: float = 0.0) -> Window:
    """The window of frames ``[start, start + n_frames)`` of ``movie`` (augmented when ``rng`` is given;
    ``shift``: the largest random translation of the normalised coordinates, cell diameters;
    ``size_jitter``: see :func:`augment_table`; ``division_jitter``: probability per object next to a
    division (a mother's last object, a daughter's first) of a size change by exp(U(-1.2, 0.2)), as
    cells round up and shrink around mitosis)."""
    tab = movie.table
    rows = tab.index[(tab["frame"] >= start) & (tab["frame"] < start + n_frames)]
    sub = tab.loc[rows]
    frame = sub["frame"].to_numpy(np.int64)
    values = sub.loc[:, list(_VALUE_COLUMNS)].to_numpy(np.float64)
    track = representatives(frame, sub["track_id"].to_numpy(np.int64), sub["area"].to_numpy(np.float64))  # true sizes
    if rng is not None:
        values = augment_table(values, rng, size_jitter)
        if division_jitter > 0:
            near = np.flatnonzero(_division_rows(movie, frame, track) & (rng.random(len(frame)) < division_jitter))
            _rescale(values, near, np.exp(rng.uniform(-1.2, 0.2, len(near))))
    inputs = window_inputs(frame, values, _VALUE_COLUMNS)
    coords = inputs["coords"]
    if rng is not None and shift > 0:
        coords[:, 1:] += rng.uniform(-shift, shift, 2).astype(np.float32)
    target, division = window_targets(frame, track, movie.parent)
    return Window(coords=coords, features=inputs["features"], target=target, division=division)


def sample_overrides(rng: np.random.Generator, config_fields: set[str]) -> dict:
    """Random simulator settings around the defaults (density, speed, divisions, errors), limited to
    the fields the simulator's config has."""
    choice: dict = {}
    choice["shape"] = (int(rng.choice([192, 256, 320])), int(rng.choice([192, 256, 320])))
    r0 = float(rng.uniform(6.0, 14.0))
    choice["radius_range"] = (r0, r0 * float(rng.uniform(1.1, 1.6)))
    # cells per frame from sparse to crowded: about 4-25 % of the field covered at the start
    field = choice["shape"][0] * choice["shape"][1]
    cover = float(rng.uniform(0.04, 0.25))
    choice["n_cells"] = int(max(4, round(cover * field / (np.pi * (1.2 * r0) ** 2))))
    top = float(rng.uniform(0.6, 6.0))
    choice["speed_range"] = (top * float(rng.uniform(0.05, 0.5)), top)
    choice["persistence"] = float(rng.uniform(0.0, 0.9))
    choice["deformation"] = float(rng.uniform(0.03, 0.25))
    choice["division_rate"] = float(rng.choice([0.0, rng.uniform(0.005, 0.06)], p=[0.15, 0.85]))
    choice["enter_rate"] = float(rng.uniform(0.0, 0.4))
    choice["death_rate"] = float(rng.uniform(0.0, 0.01))
    for name in ("miss_rate", "merge_rate", "split_rate", "false_rate"):
        choice[name] = float(rng.choice([0.0, rng.uniform(0.0, 0.06)], p=[0.3, 0.7]))
    choice["brightness"] = float(rng.uniform(40.0, 300.0))
    choice["n_frames"] = 24
    return {k: v for k, v in choice.items() if k in config_fields}


def simulated_movie(seed: int, overrides: dict | None = None,
                    simulate: Callable | None = None, features: Callable | None = None) -> LabelledMovie:
    """One simulated movie as a :class:`LabelledMovie`.

    simulate: ``(seed=..., **overrides) -> CellMovie`` (default :func:`edgetrack.training.cells.simulate_cells`);
    features: ``(masks, images) -> DataFrame`` (default :func:`edgetrack.runtime.cells.features.movie_features`).
    """
    if simulate is None:
        from edgetrack.training.cells import simulate_cells as simulate
    if features is None:
        from edgetrack.runtime.cells.features import movie_features as features
    movie = simulate(seed=seed, **(overrides or {}))
    table = features(movie.masks, movie.images)
    truth = movie.objects[["frame", "label", "track_id"]]
    table = table.merge(truth, on=["frame", "label"], how="left")
    table["track_id"] = table["track_id"].fillna(0).astype(np.int64)
    lineage = movie.lineage
    parent = {int(l): int(p) for l, p in zip(lineage["label"], lineage["parent"]) if int(p) > 0}
    table = table.sort_values(["frame", "label"], kind="stable").reset_index(drop=True)
    return LabelledMovie(table=table, parent=parent)


def movie_pool(n: int, rng: np.random.Generator, vary: bool = True, simulate: Callable | None = None,
               features: Callable | None = None) -> list[LabelledMovie]:
    """``n`` simulated movies (settings drawn by :func:`sample_overrides` when ``vary``), seeded from ``rng``."""
    fields: set[str] = set()
    if vary:
        if simulate is None:
            from edgetrack.training.cells import CellSimConfig

            fields = {f.name for f in dataclasses.fields(CellSimConfig)}
    movies = []
    for _ in range(n):
        seed = int(rng.integers(0, 2**31 - 1))
        overrides = sample_overrides(rng, fields) if vary and fields else {}
        movies.append(simulated_movie(seed, overrides, simulate, features))
    return movies
