"""MAGIK graph network in the runtime (ONNX Runtime, no torch): link scores, node and global predictions.

The graph network of Pineda et al. (Nat. Mach. Intell. 5, 71-82, 2023) is trained in
:mod:`edgetrack.training.magik` and exported to ONNX. This module turns detections and candidate
edges into the model's inputs (the same functions build the training graphs, so training and
inference see identical features) and runs the exported models:

* :class:`MagikScorer`, registered as the scorer ``"magik"``: ``Tracker(scorer="magik")`` scores
  all candidate edges of the streaming window at once (``needs_window = True``) and links them
  with any linker (``"lap"``, ``"greedy"``, or MAGIK's own ``"magik_post"``).
* :func:`predict_nodes`: per-detection predictions without linking (e.g. ``sqrt(2 D)`` in px,
  a diffusion map, or each detection's motion-model probabilities); :func:`predict_global`:
  per-video predictions (motion-model fractions: the mean of the per-detection probabilities).

Model inputs (float32 / int64; ``N`` nodes padded to ``n_chunks * C``, ``M`` edges):

* ``node_features`` (N, 3): ``y_rel, x_rel`` = position minus the window's minimum, divided by the
  window's largest extent (at least ``max_distance``), and ``frame_rel`` = (frame - first) /
  max(1, last - first).
* ``edge_features`` (M, 4): ``dist, dy, dx`` divided by ``max_distance`` and ``gap`` = dt - 1 (frames).
* ``edge_index`` (2, M): rows ``src, dst`` as positions in the node arrays.
* ``node_mask`` (n_chunks, C): 1 for a real node, 0 for padding. Self-attention between nodes
  runs inside chunks of C nodes that are close in space (Morton order of cells of side
  ``max_distance``); the global token attends to every node and every node to the global token.
  One chunk holding every node (``chunk=0``) is the exact all-pairs attention of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from edgetrack.runtime.errors import ConfigError, InputError, ModelError
from edgetrack.runtime.associate.scale import step_scale
from edgetrack.runtime.graph.candidates import CandidateEdges, build_graph

__all__ = [
    "NODE_FEATURES",
    "EDGE_FEATURES",
    "GraphInputs",
    "node_features",
    "edge_features",
    "chunk_order",
    "graph_inputs",
    "MagikScorer",
    "make_magik_scorer",
    "predict_nodes",
    "predict_global",
    "DEFAULT_MODELS",
    "SYMMETRIES",
]

NODE_FEATURES: tuple[str, ...] = ("y_rel", "x_rel", "frame_rel")
EDGE_FEATURES: tuple[str, ...] = ("dist", "dy", "dx", "gap")
#: Default exported model of each task.
DEFAULT_MODELS: dict[str, str] = {"link": "magik_link", "diffusion": "magik_diffusion", "motion": "magik_motion"}


def _check_nodes(node_frame: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(node_frame)
    yy = np.asarray(y, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)
    if f.ndim != 1 or yy.shape != f.shape or xx.shape != f.shape:
        raise InputError(f"node_frame, y and x must be 1-D arrays of one length, got {f.shape}, {yy.shape}, {xx.shape}")
    if f.dtype.kind not in "iu":
        raise InputError(f"node_frame must hold integer frames, got dtype {f.dtype}")
    if not (np.isfinite(yy).all() and np.isfinite(xx).all()):
        raise InputError("node positions contain NaN or infinite values")
    return f.astype(np.int64), yy, xx


def _check_max_distance(max_distance: float) -> float:
    if not (isinstance(max_distance, (int, float, np.integer, np.floating)) and math.isfinite(max_distance)
            and max_distance > 0):
        raise InputError(f"max_distance must be a finite number of pixels > 0, got {max_distance!r}")
    return float(max_distance)


def node_features(node_frame: np.ndarray, y: np.ndarray, x: np.ndarray, max_distance: float) -> np.ndarray:
    """float32 (n, 3) node features ``y_rel, x_rel, frame_rel`` (see the module docstring); y, x in px."""
    f, yy, xx = _check_nodes(node_frame, y, x)
    md = _check_max_distance(max_distance)
    out = np.zeros((f.shape[0], len(NODE_FEATURES)), np.float32)
    if f.shape[0] == 0:
        return out
    extent = max(float(np.ptp(yy)), float(np.ptp(xx)), md)
    out[:, 0] = (yy - yy.min()) / extent
    out[:, 1] = (xx - xx.min()) / extent
    out[:, 2] = (f - f.min()) / max(1.0, float(f.max() - f.min()))
    return out


def edge_features(edges: CandidateEdges, max_distance: float) -> np.ndarray:
    """float32 (m, 4) edge features ``dist, dy, dx`` (/ max_distance, px/px) and ``gap`` = dt - 1 (frames)."""
    md = _check_max_distance(max_distance)
    m = len(edges.src)
    out = np.empty((m, len(EDGE_FEATURES)), np.float32)
    out[:, 0] = np.asarray(edges.dist, dtype=np.float64) / md
    out[:, 1] = np.asarray(edges.dy, dtype=np.float64) / md
    out[:, 2] = np.asarray(edges.dx, dtype=np.float64) / md
    out[:, 3] = np.asarray(edges.dt, dtype=np.float64) - 1.0
    if m and not np.isfinite(out).all():
        raise InputError("candidate edges contain NaN or infinite values")
    return out


def _interleave(v: np.ndarray) -> np.ndarray:
    """Spread the low 16 bits of v (int64) to the even bit positions (Morton code helper)."""
    v = v & 0xFFFF
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    v = (v | (v << 1)) & 0x55555555
    return v


def chunk_order(node_frame: np.ndarray, y: np.ndarray, x: np.ndarray, cell: float) -> np.ndarray:
    """int64 (n,) node order for chunked attention: Morton (Z) order of cells of side ``cell`` px, then frame.

    Consecutive nodes in this order are close in space, so chunks of C consecutive nodes are
    spatial neighbourhoods (over all frames of the window).
    """
    f, yy, xx = _check_nodes(node_frame, y, x)
    if f.shape[0] == 0:
        return np.zeros(0, np.int64)
    cy = np.clip(np.floor((yy - yy.min()) / cell), 0, 65535).astype(np.int64)
    cx = np.clip(np.floor((xx - xx.min()) / cell), 0, 65535).astype(np.int64)
    code = (_interleave(cy) << 1) | _interleave(cx)
    return np.lexsort((xx, yy, f, code)).astype(np.int64)


@dataclass
class GraphInputs:
    """The model's input arrays and where each detection sits in the (padded) node arrays.

    inputs: ``node_features`` float32 (N, 3), ``edge_features`` float32 (M, 4), ``edge_index``
    int64 (2, M), ``node_mask`` float32 (n_chunks, C). position: int64 (n,), the row of detection
    ``i`` in the node arrays (node outputs of detection ``i`` are ``out[position[i]]``).
    """

    inputs: dict[str, np.ndarray]
    position: np.ndarray


def graph_inputs(node_frame: np.ndarray, y: np.ndarray, x: np.ndarray, edges: CandidateEdges,
                 max_distance: float, chunk: int | None = None) -> GraphInputs:
    """Build the model's inputs from detections (frames, px) and their candidate edges.

    edges: src/dst index the detections. chunk: nodes per attention chunk (None or 0: one chunk
    with every node, the exact all-pairs attention).
    """
    f, yy, xx = _check_nodes(node_frame, y, x)
    md = _check_max_distance(max_distance)
    n = f.shape[0]
    src = np.asarray(edges.src, dtype=np.int64)
    dst = np.asarray(edges.dst, dtype=np.int64)
    if len(src) and (src.min() < 0 or dst.min() < 0 or max(src.max(), dst.max()) >= n):
        raise InputError(f"candidate edges index nodes outside [0, {n})")
    nf = node_features(f, yy, xx, md)
    ef = edge_features(edges, md)
    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or chunk < 0):
        raise ConfigError(f"chunk must be an integer >= 0 (0 = all-pairs attention), got {chunk!r}")
    if not chunk or chunk >= n:
        position = np.arange(n, dtype=np.int64)
        mask = np.ones((1, max(n, 1)), np.float32)
        if n == 0:
            mask[:] = 0.0
            nf = np.zeros((1, nf.shape[1]), np.float32)
    else:
        c = int(chunk)
        order = chunk_order(f, yy, xx, md)
        n_pad = -(-n // c) * c
        position = np.empty(n, np.int64)
        position[order] = np.arange(n, dtype=np.int64)
        padded = np.zeros((n_pad, nf.shape[1]), np.float32)
        padded[position] = nf
        nf = padded
        flat = np.zeros(n_pad, np.float32)
        flat[:n] = 1.0
        mask = flat.reshape(n_pad // c, c)
    edge_index = np.stack([position[src], position[dst]]).astype(np.int64) if len(src) else np.zeros((2, 0), np.int64)
    return GraphInputs(
        inputs={"node_features": nf, "edge_features": ef, "edge_index": edge_index, "node_mask": mask},
        position=position,
    )


def _load(name: str, provider: str | Sequence[str] | None, threads: int | None, folder: str | None = None):
    from edgetrack.runtime.models.onnx import load_model

    return load_model(name, provider=provider, threads=threads, folder=folder)


class MagikScorer:
    """Scores every candidate edge of a streaming window with the exported MAGIK link model.

    model: exported model name (default ``"magik_link"``). max_distance: px, the tracker's
    ``max_distance`` (edge features are divided by it); None = the largest candidate-edge length
    seen so far in this stream, which approaches ``max_distance`` after a few windows. chunk: nodes
    per attention chunk (None = the model's manifest value; 0 = all-pairs). provider: execution
    provider choice (see :func:`edgetrack.runtime.models.onnx.load_model`); threads: ONNX Runtime
    intra-op threads; folder: where the manifest and model files are (default: the installed
    ``edgetrack.exported_models``). The model file is loaded (and its sha256 checked) on first use,
    not when the scorer is created.
    """

    name = "magik"
    needs_window = True

    def __init__(self, model: str = DEFAULT_MODELS["link"], max_distance: float | None = None,
                 chunk: int | None = None, provider: str | Sequence[str] | None = None,
                 threads: int | None = None, folder: str | None = None) -> None:
        if max_distance is not None:
            _check_max_distance(max_distance)
        if chunk is not None and (not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 0):
            raise ConfigError(f"chunk must be an integer >= 0 (0 = all-pairs attention), got {chunk!r}")
        self.model_name = str(model)
        self.max_distance = None if max_distance is None else float(max_distance)
        self.chunk = chunk
        self._provider_choice = provider
        self._threads = threads
        self._folder = folder
        self._model = None
        self._seen_distance = 0.0

    def configure(self, *, max_distance: float) -> None:
        """Called by the Tracker with its linking distance (px), which normalises the edge features."""
        self.max_distance = _check_max_distance(max_distance)

    @property
    def model(self):
        """The loaded model (loads and checks it on first access)."""
        if self._model is None:
            model = _load(self.model_name, self._provider_choice, self._threads, self._folder)
            if model.entry.get("task") != "link":
                raise ModelError(f"model {self.model_name!r} is a {model.entry.get('task')!r} model, not a link model")
            self._model = model
        return self._model

    @property
    def provider(self) -> str:
        """The ONNX Runtime execution provider in use (loads the model)."""
        return self.model.provider

    def _chunk(self) -> int:
        if self.chunk is not None:
            return int(self.chunk)
        return int(self.model.entry.get("attention_chunk", 0) or 0)

    def score(self, edges: CandidateEdges, features: np.ndarray | None = None) -> np.ndarray:
        """Not available: MAGIK needs the whole window (use :meth:`score_window`)."""
        raise ConfigError("the magik scorer needs the whole window: call score_window(node_frame, values, columns, edges)")

    def score_window(self, node_frame: np.ndarray, values: np.ndarray, columns: Sequence[str],
                     edges: CandidateEdges) -> np.ndarray:
        """float64 (m,) link probabilities of ``edges`` (local node indices) in a window.

        node_frame: int64 (n,) frames; values: float64 (n, F) with columns ``columns`` (``y``, ``x``
        in px are used; other features are ignored by this model).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] != np.asarray(node_frame).shape[0]:
            raise InputError(f"values must be (n, F) with one row per node, got {values.shape}")
        columns = tuple(columns)
        try:
            iy, ix = columns.index("y"), columns.index("x")
        except ValueError:
            raise InputError(f"the window's columns {columns} lack y and x") from None
        m = len(edges.src)
        if m == 0:
            return np.zeros(0, np.float64)
        if self.max_distance is not None:
            md = self.max_distance
        else:
            self._seen_distance = max(self._seen_distance, float(np.max(edges.dist)))
            md = max(self._seen_distance, 1e-6)
        g = graph_inputs(np.asarray(node_frame), values[:, iy], values[:, ix], edges, md, self._chunk())
        out = self.model.run(g.inputs, ["edge_prob"])["edge_prob"]
        return np.clip(np.asarray(out, dtype=np.float64).reshape(-1), 0.0, 1.0)


def make_magik_scorer(**options: Any) -> MagikScorer:
    """Factory registered as the scorer ``"magik"`` (options: those of :class:`MagikScorer`)."""
    known = {"model", "max_distance", "chunk", "provider", "threads", "folder"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"magik scorer: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return MagikScorer(**options)



def _detections(detections: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from edgetrack.runtime.io.tables import check_table

    detections = check_table(detections, ("frame", "y", "x"), source="detections")
    frame = detections["frame"].to_numpy()
    if frame.dtype.kind == "f":
        if len(frame) and (not np.isfinite(frame).all() or np.any(frame != np.round(frame))):
            raise InputError("detections column 'frame' must hold integers")
        frame = frame.astype(np.int64)
    y = detections["y"].to_numpy(dtype=np.float64)
    x = detections["x"].to_numpy(dtype=np.float64)
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise InputError("detections columns y/x contain NaN or infinite values")
    return frame.astype(np.int64), y, x


def _blocks(frame: np.ndarray, length: int) -> list[np.ndarray]:
    """Row indices of consecutive blocks of ``length`` frames (counted from the first frame)."""
    if len(frame) == 0:
        return []
    block = (frame - frame.min()) // max(1, int(length))
    order = np.argsort(block, kind="stable")
    cuts = np.flatnonzero(np.diff(block[order])) + 1
    return np.split(order, cuts)


def _overlapping_blocks(frame: np.ndarray, length: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(row indices, weights) of blocks of ``length`` frames starting every ``stride`` frames from the
    first frame. A row's weight in a block is its distance in frames from the block's nearer end, plus 1
    (a triangle), so the block where a detection sits nearest the middle counts most."""
    if len(frame) == 0:
        return []
    f0, f1 = int(frame.min()), int(frame.max())
    out = []
    for start in range(f0, f1 + 1, stride):
        rows = np.flatnonzero((frame >= start) & (frame < start + length))
        if rows.size == 0:
            continue
        pos = frame[rows] - start
        out.append((rows, np.minimum(pos, length - 1 - pos).astype(np.float64) + 1.0))
        if start + length > f1:
            break
    return out


def _run_graph(model, frame, y, x, chunk: int | None, outputs: Sequence[str] | None = None):
    graph = model.entry.get("graph", {})
    md = float(graph.get("max_distance", 0) or 0)
    gap = int(graph.get("max_gap", 2) or 2)
    if md <= 0:
        raise ModelError(f"model {model.name!r}: the manifest has no graph.max_distance")
    edges = build_graph(frame, y, x, md, gap)
    c = int(model.entry.get("attention_chunk", 0) or 0) if chunk is None else int(chunk)
    g = graph_inputs(frame, y, x, edges, md, c)
    return model.run(g.inputs, outputs), g.position


#: The coordinate maps averaged over by ``predict_nodes(symmetries=...)``: (sign of y, sign of x,
#: swap y and x, reverse time within the block). The first 8 are the symmetries of the square.
SYMMETRIES: tuple[tuple[int, int, bool, bool], ...] = tuple(
    (sy, sx, swap, rev) for rev in (False, True) for swap in (False, True) for sy in (1, -1) for sx in (1, -1))


def _check_symmetries(symmetries: int | None, is_diffusion: bool) -> int:
    if symmetries is None:
        return 4 if is_diffusion else 1
    if isinstance(symmetries, bool) or not isinstance(symmetries, (int, np.integer)) or symmetries not in (1, 2, 4, 8, 16):
        raise ConfigError(f"symmetries must be one of 1, 2, 4, 8, 16, got {symmetries!r}")
    if symmetries == 16 and not is_diffusion:
        raise ConfigError("symmetries=16 reverses time, which only the diffusion model's output is invariant to")
    return int(symmetries)


def predict_nodes(detections: pd.DataFrame, model: str = DEFAULT_MODELS["diffusion"], *,
                  provider: str | Sequence[str] | None = None, chunk: int | None = None,
                  folder: str | None = None, progress: Callable[[int, int], None] | None = None,
                  scale: float | str = "auto", symmetries: int | None = None,
                  stride: int | None = None) -> pd.DataFrame:
    """Per-detection predictions of a node model, without linking.

    detections: table with ``frame, y, x`` (px). The detections are cut into blocks of the
    model's training length (``graph.frames`` in its manifest entry), each block becomes one graph
    (candidate edges within ``graph.max_distance`` px, up to ``graph.max_gap`` frames), and the
    node outputs are returned as new columns of a copy of ``detections``. For the diffusion
    model: ``sqrt_2D`` in px/frame^0.5 and ``D`` = sqrt_2D^2 / 2 in px^2/frame. For a classifying
    model with per-node outputs (``magik_motion``): ``p_<class>`` per class (``p_fbm, p_ctrw,
    p_attm``; they sum to 1) and ``label``, the most probable class of the detection's motion.
    progress: called as ``progress(blocks_done, n_blocks)`` after each block.
    scale: for the diffusion model, the coordinates are multiplied by this factor before the model sees
    them and ``sqrt_2D`` divided by it; ``"auto"`` (the default) takes it from the movie's own steps
    (:func:`~edgetrack.runtime.associate.scale.step_scale`: 1 unless the particles move faster than the
    training videos'). Stored in the table's ``attrs["magik_scale"]``. Class models always use 1.
    symmetries: the outputs are averaged over this many copies of each block with the coordinates
    mirrored, swapped and (16) time reversed (:data:`SYMMETRIES`), maps the answer does not depend on
    but the network's position and displacement features do; the cost grows in proportion. One of 1,
    2, 4, 8, 16; None (the default): 4 (y and x mirrored) for the diffusion model, 1 for class models.
    stride: frames between the starts of consecutive blocks. Blocks overlap when it is shorter than the
    block length; each detection's outputs are then a weighted mean over the blocks that hold it,
    weighted by its distance from each block's nearer end (a detection at a block's edge sees only
    one side of its track). None (the default): half the block length for the diffusion model, the
    block length (no overlap) for class models.
    """
    loaded = _load(model, provider, None, folder)
    outputs = [o.get("name") for o in loaded.entry.get("outputs", [])]
    classes = list(loaded.entry.get("classes", []))
    if "node_prob" in outputs and classes:
        key, targets = "node_prob", [f"p_{c}" for c in classes]
    elif loaded.entry.get("task") == "diffusion" or loaded.entry.get("kind") == "node":
        key, targets = "node_pred", list(loaded.entry.get("targets", ["value"]))
    else:
        raise ModelError(f"model {model!r} is a {loaded.entry.get('task')!r} model without per-node outputs")
    frame, y, x = _detections(detections)
    n_sym = _check_symmetries(symmetries, "sqrt_2D" in targets)
    factor = 1.0
    if "sqrt_2D" in targets:
        if isinstance(scale, str) and scale != "auto":
            raise InputError(f"scale must be 'auto' or a number > 0, got {scale!r}")
        factor = step_scale(frame, y, x) if isinstance(scale, str) else float(scale)
        if isinstance(scale, bool) or not (math.isfinite(factor) and factor > 0):
            raise InputError(f"scale must be 'auto' or a number > 0, got {scale!r}")
        y, x = y * factor, x * factor
    length = int(loaded.entry.get("graph", {}).get("frames", 50) or 50)
    if stride is None:
        stride = max(1, length // 2) if "sqrt_2D" in targets else length
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= length:
        raise ConfigError(f"stride must be an integer from 1 to the block length ({length} frames), got {stride!r}")
    total = np.zeros((len(frame), len(targets)))
    weight = np.zeros(len(frame))
    blocks = _overlapping_blocks(frame, length, int(stride))
    for done, (rows, w) in enumerate(blocks, start=1):
        fb, yb, xb = frame[rows], y[rows], x[rows]
        block = np.zeros((len(rows), len(targets)))
        for sy, sx, swap, rev in SYMMETRIES[:n_sym]:
            ty, tx = (sx * xb, sy * yb) if swap else (sy * yb, sx * xb)
            tf = fb.max() + fb.min() - fb if rev else fb
            result, position = _run_graph(loaded, tf, ty, tx, chunk, [key])
            block += np.asarray(result[key], dtype=np.float64).reshape(-1, len(targets))[position]
        total[rows] += w[:, None] * block / n_sym
        weight[rows] += w
        if progress is not None:
            progress(done, len(blocks))
    out = np.full((len(frame), len(targets)), np.nan)
    seen = weight > 0
    out[seen] = total[seen] / weight[seen, None]
    table = detections.copy()
    for j, name in enumerate(targets):
        table[name] = out[:, j]
    if key == "node_prob":
        table["label"] = np.asarray(classes, dtype=object)[np.argmax(out, axis=1)]
    if "sqrt_2D" in targets:
        s = np.maximum(table["sqrt_2D"].to_numpy(dtype=np.float64), 0.0) / factor
        table["sqrt_2D"] = s
        table["D"] = s * s / 2.0
    table.attrs["magik_scale"] = factor
    return table


def predict_global(detections: pd.DataFrame, model: str = DEFAULT_MODELS["motion"], *,
                   provider: str | Sequence[str] | None = None, chunk: int | None = None,
                   folder: str | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Per-video predictions of a global model, without linking.

    The detections (``frame, y, x``, px) are cut into blocks of the model's training length; one
    row per block: ``frame_start, frame_end, n_detections``, one probability (or fraction) column
    ``p_<class>`` per class of the model, and ``label`` (the most probable class). For
    ``magik_motion`` the ``p_<class>`` are the fractions of the detections moving by each model
    (the mean over the block's detections of their per-detection probabilities). progress: as in
    :func:`predict_nodes`.
    """
    loaded = _load(model, provider, None, folder)
    if loaded.entry.get("task") != "motion" and loaded.entry.get("kind") != "global":
        raise ModelError(f"model {model!r} is a {loaded.entry.get('task')!r} model, not a global model")
    classes = list(loaded.entry.get("classes", []))
    frame, y, x = _detections(detections)
    length = int(loaded.entry.get("graph", {}).get("frames", 50) or 50)
    rows_out = []
    blocks = _blocks(frame, length)
    for done, rows in enumerate(blocks, start=1):
        result, _ = _run_graph(loaded, frame[rows], y[rows], x[rows], chunk, ["global_pred"])
        if progress is not None:
            progress(done, len(blocks))
        probs = np.asarray(result["global_pred"], dtype=np.float64).reshape(-1)
        names = classes if len(classes) == len(probs) else [str(k) for k in range(len(probs))]
        row: dict[str, Any] = {"frame_start": int(frame[rows].min()), "frame_end": int(frame[rows].max()),
                               "n_detections": int(len(rows))}
        row.update({f"p_{c}": float(p) for c, p in zip(names, probs)})
        row["label"] = names[int(np.argmax(probs))]
        rows_out.append(row)
    columns = ["frame_start", "frame_end", "n_detections", *[f"p_{c}" for c in classes], "label"]
    return pd.DataFrame(rows_out, columns=columns if classes else None)
