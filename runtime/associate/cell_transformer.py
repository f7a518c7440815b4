"""Transformer association of segmented cells (Trackastra-style) in the runtime: ONNX Runtime, no torch.

The network (trained in :mod:`edgetrack.training.cell_assoc`, exported as ``cell_assoc.onnx``)
reads every object of a window of a few frames at once and returns, for every pair of objects
``i`` (frame ``t_i``) and ``j`` (frame ``t_j > t_i``), the probability that ``i`` is ``j``'s
ancestor-or-self in frame ``t_i`` (the same cell, or the mother it divided from). Probabilities
are normalised per child ``j`` and per earlier frame by a parental softmax with a "none" option
(+1 in the denominator), so they sum to at most 1 over the candidates of one frame.

This module builds the model's inputs from a window's objects (the same function serves
training, so both see identical features), turns the pair probabilities into link scores for
candidate edges, and offers:

* :class:`TransformerScorer`, registered as the scorer ``"transformer"``: ``Tracker(scorer=
  "transformer")`` scores all candidate edges of the streaming window at once (``needs_window``).
* :func:`associate`: offline scores of all candidate edges of a whole table, averaged over every
  sliding window of ``window`` frames that contains both ends (as Trackastra does at inference).

Model inputs (float32, ``N`` objects of the window, any order):

* ``coords`` (N, 3): ``t`` = frame minus the window's first frame (frames); ``y, x`` = position
  minus the window's mean position, divided by the window's cell diameter ``d`` (px / px).
  ``d`` = median over the window's objects of the equivalent diameter sqrt(4 area / pi) (px).
* ``features`` (N, 9), see :data:`INPUT_FEATURES`: ``log_area`` = log(area / d^2);
  ``perimeter`` = perimeter / (pi d) - 1; ``eccentricity``; ``solidity``; ``intensity`` =
  log(mean_intensity / median of the window's positive mean intensities) (0 without an image);
  ``has_image`` (1 when the window has positive intensities); ``inertia_yy, inertia_xy,
  inertia_xx`` = 16 * central second moment / d^2 (minus 1 on the diagonal: 0 for a disk).
  Every feature is clipped to [-5, 5].

Output: ``assoc`` float32 (N, N): the pair probabilities above (0 where ``t_i >= t_j`` or where
the two objects are more than the model's ``radius`` cell diameters apart).

Link score of a candidate edge ``i -> j`` spanning ``dt`` frames (the probability that ``i`` is
``j``'s direct predecessor): ``assoc[i, j]`` for ``dt = 1``; for a gap (``dt > 1``) it is
multiplied by the probability that no object in the skipped frames is ``j``'s ancestor,
``prod_t' (1 - sum_k assoc[k, j])`` over the frames strictly between (so a gap edge scores low
whenever the cell was seen in between). Edges whose ends are farther apart in time than the
model's window never share a window and score 0.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import ConfigError, InputError, ModelError
from edgetrack.runtime.graph.candidates import CandidateEdges

__all__ = [
    "CELL_FEATURE_COLUMNS",
    "INPUT_FEATURES",
    "DEFAULT_MODEL",
    "WindowInputs",
    "window_inputs",
    "edge_probabilities",
    "score_pairs",
    "TransformerScorer",
    "make_transformer_scorer",
    "associate",
]

#: Per-object columns the model reads besides ``y, x`` (the shallow features of
#: :mod:`edgetrack.runtime.cells.features`: px^2, px, unitless, unitless, image units, px^2).
CELL_FEATURE_COLUMNS: tuple[str, ...] = ("area", "perimeter", "eccentricity", "solidity", "mean_intensity",
                                         "inertia_yy", "inertia_xy", "inertia_xx")
#: Columns of the model's ``features`` input (see the module docstring).
INPUT_FEATURES: tuple[str, ...] = ("log_area", "perimeter", "eccentricity", "solidity", "intensity", "has_image",
                                   "inertia_yy", "inertia_xy", "inertia_xx")
DEFAULT_MODEL = "cell_assoc"
_CLIP = 5.0


class WindowInputs(dict):
    """The model inputs of one window (``coords``, ``features``) and the cell diameter ``d`` (px) used."""

    diameter: float = 1.0


def _column_indices(columns: Sequence[str]) -> list[int]:
    columns = tuple(columns)
    needed = ("y", "x", *CELL_FEATURE_COLUMNS)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"the transformer scorer needs per-object columns {', '.join(missing)} "
                         f"(cell features of label masks; got {', '.join(columns)})")
    return [columns.index(c) for c in needed]


def window_inputs(node_frame: np.ndarray, values: np.ndarray, columns: Sequence[str]) -> WindowInputs:
    """Model inputs of one window of objects.

    node_frame: int (n,) frames; values: float (n, F) per-object values named by ``columns``, which
    must include ``y, x`` (px) and :data:`CELL_FEATURE_COLUMNS`. Returns ``coords`` float32 (n, 3)
    and ``features`` float32 (n, 9) as described in the module docstring; ``.diameter`` is ``d`` (px).
    """
    frame = np.asarray(node_frame)
    vals = np.asarray(values, dtype=np.float64)
    if frame.ndim != 1 or frame.dtype.kind not in "iu":
        raise InputError(f"node_frame must be a 1-D integer array, got shape {frame.shape}, dtype {frame.dtype}")
    if vals.ndim != 2 or vals.shape[0] != frame.shape[0]:
        raise InputError(f"values must be (n, F) with one row per object, got {vals.shape} for {frame.shape[0]} objects")
    idx = _column_indices(columns)
    n = frame.shape[0]
    out = WindowInputs(coords=np.zeros((n, 3), np.float32), features=np.zeros((n, len(INPUT_FEATURES)), np.float32))
    if n == 0:
        return out
    v = vals[:, idx]
    if not np.isfinite(v).all():
        bad = [c for c, ok in zip(("y", "x", *CELL_FEATURE_COLUMNS), np.isfinite(v).all(axis=0)) if not ok]
        raise InputError(f"object columns {', '.join(bad)} contain NaN or infinite values")
    y, x = v[:, 0], v[:, 1]
    area, perim, ecc, sol, inten, iyy, ixy, ixx = (v[:, 2 + k] for k in range(8))
    positive = area[area > 0]
    if positive.size == 0:
        raise InputError("every object of the window has area <= 0 px^2 (no cell size to normalise by)")
    d = float(np.median(np.sqrt(4.0 * positive / math.pi)))
    out.diameter = d
    coords = out["coords"]
    coords[:, 0] = frame - frame.min()
    coords[:, 1] = (y - y.mean()) / d
    coords[:, 2] = (x - x.mean()) / d
    f = np.zeros((n, len(INPUT_FEATURES)), np.float64)
    f[:, 0] = np.log(np.maximum(area, 1e-3) / (d * d))
    f[:, 1] = perim / (math.pi * d) - 1.0
    f[:, 2] = ecc
    f[:, 3] = sol
    bright = inten[inten > 0]
    if bright.size:
        f[:, 4] = np.log(np.maximum(inten, 1e-6 * float(np.median(bright))) / float(np.median(bright)))
        f[:, 5] = 1.0
    scale = 16.0 / (d * d)
    f[:, 6] = iyy * scale - 1.0
    f[:, 7] = ixy * scale
    f[:, 8] = ixx * scale - 1.0
    out["features"] = np.clip(f, -_CLIP, _CLIP).astype(np.float32)
    return out


def edge_probabilities(assoc: np.ndarray, node_frame: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """float64 (m,) direct-predecessor probabilities of edges ``src -> dst`` from a window's ``assoc``.

    assoc: (n, n) pair probabilities of the window (see the module docstring); node_frame: int (n,);
    src, dst: int (m,) indices into the window. For a gap edge the pair probability is multiplied by
    ``prod (1 - sum_k assoc[k, dst])`` over the window's frames strictly between the two ends.
    """
    a = np.asarray(assoc, dtype=np.float64)
    frame = np.asarray(node_frame, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    p = a[src, dst]
    if len(src) == 0:
        return p
    gap = frame[dst] - frame[src] > 1
    if not gap.any():
        return p
    frames, block = np.unique(frame, return_inverse=True)
    onehot = np.zeros((len(frames), len(frame)), np.float64)
    onehot[block, np.arange(len(frame))] = 1.0
    total = onehot @ a  # (n_frames, n): sum over the objects of each frame of assoc[k, j]
    log_none = np.log(np.clip(1.0 - total, 1e-12, 1.0))
    cum = np.cumsum(log_none, axis=0)  # cum[b, j] = sum over frames 0..b
    bs, bd = block[src[gap]], block[dst[gap]]
    j = dst[gap]
    between = cum[bd - 1, j] - cum[bs, j]  # frames strictly between src and dst
    p[gap] = p[gap] * np.exp(between)
    return p


def score_pairs(run, node_frame: np.ndarray, values: np.ndarray, columns: Sequence[str], src: np.ndarray,
                dst: np.ndarray, window: int) -> np.ndarray:
    """Sliding-window scores of pairs ``src -> dst`` (indices into the objects), float64 (m,).

    run: a function ``(coords, features) -> assoc`` (the model). Every window of ``window``
    consecutive frames (stride 1; one window when the objects span at most ``window`` frames) is
    run once; each pair gets the mean of :func:`edge_probabilities` over the windows holding both
    of its ends (0 when none does).
    """
    frame = np.asarray(node_frame, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    m = len(src)
    total = np.zeros(m, np.float64)
    count = np.zeros(m, np.float64)
    if m == 0 or len(frame) == 0:
        return total
    window = int(window)
    lo, hi = int(frame.min()), int(frame.max())
    starts = range(lo, max(lo, hi - window + 1) + 1)
    for s in starts:
        inside = (frame >= s) & (frame < s + window)
        rows = np.flatnonzero(inside)
        pairs = np.flatnonzero(inside[src] & inside[dst])
        if len(pairs) == 0:
            continue
        local = np.full(len(frame), -1, np.int64)
        local[rows] = np.arange(len(rows))
        inputs = window_inputs(frame[rows], np.asarray(values)[rows], columns)
        assoc = np.asarray(run(inputs["coords"], inputs["features"]), dtype=np.float64)
        total[pairs] += edge_probabilities(assoc, frame[rows], local[src[pairs]], local[dst[pairs]])
        count[pairs] += 1.0
    out = np.divide(total, count, out=np.zeros(m), where=count > 0)
    return np.clip(out, 0.0, 1.0)


def _load(name: str, provider, threads, folder):
    from edgetrack.runtime.models.onnx import load_model

    model = load_model(name, provider=provider, threads=threads, folder=folder)
    if model.entry.get("task") != "cell_assoc":
        raise ModelError(f"model {name!r} is a {model.entry.get('task')!r} model, not a cell association model")
    return model


class TransformerScorer:
    """Scores every candidate edge of a streaming window with the exported cell association transformer.

    The window's objects need ``y, x`` and the cell features (:data:`CELL_FEATURE_COLUMNS`), as
    :func:`edgetrack.runtime.cells.features.frame_features` gives them. A window spanning more
    frames than the model was trained on (``window_frames`` in its manifest entry, 6) is scored by
    sliding windows of that length, averaged. model: exported model name; provider / threads: as
    :func:`edgetrack.runtime.models.onnx.load_model`; folder: where the manifest and model are (default:
    the installed ``edgetrack.exported_models``). The model is loaded (sha256 checked) on first use.
    """

    name = "transformer"
    needs_window = True

    def __init__(self, model: str = DEFAULT_MODEL, provider: str | Sequence[str] | None = None,
                 threads: int | None = None, folder: str | None = None) -> None:
        self.model_name = str(model)
        self._provider_choice = provider
        self._threads = threads
        self._folder = folder
        self._model = None

    @property
    def model(self):
        """The loaded model (loads and checks it on first access)."""
        if self._model is None:
            self._model = _load(self.model_name, self._provider_choice, self._threads, self._folder)
        return self._model

    @property
    def provider(self) -> str:
        """The ONNX Runtime execution provider in use (loads the model)."""
        return self.model.provider

    @property
    def window_frames(self) -> int:
        """Frames per model window (from the manifest)."""
        return int(self.model.entry.get("window_frames", 6) or 6)

    def run(self, coords: np.ndarray, features: np.ndarray) -> np.ndarray:
        """float32 (n, n) pair probabilities of one window's inputs (see the module docstring)."""
        if len(coords) == 0:
            return np.zeros((0, 0), np.float32)
        return self.model.run({"coords": coords, "features": features}, ["assoc"])["assoc"]

    def score(self, edges: CandidateEdges, features: np.ndarray | None = None) -> np.ndarray:
        """Not available: the transformer needs the whole window (use :meth:`score_window`)."""
        raise ConfigError("the transformer scorer needs the whole window: call "
                          "score_window(node_frame, values, columns, edges)")

    def score_window(self, node_frame: np.ndarray, values: np.ndarray, columns: Sequence[str],
                     edges: CandidateEdges) -> np.ndarray:
        """float64 (m,) link probabilities of ``edges`` (local node indices) in a window.

        node_frame: int64 (n,) frames; values: float64 (n, F) named by ``columns``.
        """
        if len(edges.src) == 0:
            return np.zeros(0, np.float64)
        return score_pairs(self.run, node_frame, values, columns, edges.src, edges.dst, self.window_frames)


def make_transformer_scorer(**options: Any) -> TransformerScorer:
    """Factory registered as the scorer ``"transformer"`` (options: those of :class:`TransformerScorer`)."""
    known = {"model", "provider", "threads", "folder"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"transformer scorer: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TransformerScorer(**options)



def associate(objects: pd.DataFrame, window: int = 4, *, max_gap: int = 1, max_distance: float | None = None,
              model: str = DEFAULT_MODEL, provider: str | Sequence[str] | None = None,
              folder: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offline association of a whole table of objects with sliding-window averaging.

    objects: one row per object with ``frame`` (int), ``y, x`` (px) and :data:`CELL_FEATURE_COLUMNS`.
    Candidate pairs join objects 1..``max_gap`` frames apart and at most ``max_distance`` px apart
    (None: the model's radius, in cell diameters, times the movie's median cell diameter). Every
    window of ``window`` consecutive frames (2 to the model's ``window_frames``) is run once, and each
    pair's score is the mean over the windows holding both ends of its direct-predecessor
    probability (see the module docstring). Returns ``(src, dst, prob)``: int64 row positions into
    ``objects`` and float64 probabilities, sorted by ``dst`` then ``src``.
    """
    from edgetrack.runtime.graph.candidates import build_graph
    from edgetrack.runtime.io.tables import check_table

    objects = check_table(objects, ("frame", "y", "x", *CELL_FEATURE_COLUMNS), source="objects")
    if not (isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window >= 2):
        raise ConfigError(f"window must be an integer >= 2 frames, got {window!r}")
    if not (isinstance(max_gap, (int, np.integer)) and not isinstance(max_gap, bool) and 1 <= max_gap < window):
        raise ConfigError(f"max_gap must be an integer in [1, window), got {max_gap!r}")
    frame = objects["frame"].to_numpy()
    if frame.dtype.kind == "f":
        if len(frame) and (not np.isfinite(frame).all() or np.any(frame != np.round(frame))):
            raise InputError("objects column 'frame' must hold integers")
    if frame.dtype.kind not in "iuf":
        raise InputError(f"objects column 'frame' must hold integers, got dtype {frame.dtype}")
    frame = frame.astype(np.int64)
    columns = ("y", "x", *CELL_FEATURE_COLUMNS)
    try:
        values = objects.loc[:, list(columns)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"objects: non-numeric values ({exc})") from None
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if len(frame) == 0:
        return empty
    scorer = TransformerScorer(model=model, provider=provider, folder=folder)
    if window > scorer.window_frames:
        raise ConfigError(f"window must be at most the model's {scorer.window_frames} frames, got {window}")
    if not np.isfinite(values).all():
        raise InputError("objects: y, x or a cell feature column contains NaN or infinite values")
    if max_distance is None:
        area = values[:, 2]
        positive = area[area > 0]
        if positive.size == 0:
            raise InputError("objects: every area is <= 0 px^2")
        d = float(np.median(np.sqrt(4.0 * positive / math.pi)))
        max_distance = float(scorer.model.entry.get("radius", 4.0)) * d
    if not (math.isfinite(float(max_distance)) and max_distance > 0):
        raise ConfigError(f"max_distance must be a finite number of px > 0, got {max_distance!r}")
    order = np.argsort(frame, kind="stable")
    edges = build_graph(frame[order], values[order, 0], values[order, 1], float(max_distance), int(max_gap))
    if len(edges.src) == 0:
        return empty
    prob = score_pairs(scorer.run, frame[order], values[order], columns, edges.src, edges.dst, int(window))
    src, dst = order[edges.src], order[edges.dst]
    sort = np.lexsort((src, dst))
    return src[sort].astype(np.int64), dst[sort].astype(np.int64), prob[sort]
