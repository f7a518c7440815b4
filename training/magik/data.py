"""Training graphs for MAGIK from the simulators, with augmentation.

Every graph is built exactly as the runtime builds it: candidate edges from
:func:`edgetrack.runtime.graph.candidates.build_graph` and model inputs from
:func:`edgetrack.runtime.associate.magik.graph_inputs`. Tasks:

* ``link``: spot windows of 3-8 frames (the size of a streaming window), densities, diffusion
  coefficients and ``max_distance`` drawn over wide ranges; edge label 1 for consecutive
  detections of one particle (gaps up to ``max_gap`` frames where detections are missing).
  ``crowded``: the share of windows drawn instead from the crowded regime (crowding rho D from
  0.015 to 0.15, mostly Brownian motion), where linking by distance alone fails most.
* ``diffusion``: 50-frame videos, 30 Brownian particles in 32 x 32 px, D log-uniform in
  [0.005, 0.7] px^2/frame per particle; node target sqrt(2 D) (px/frame^0.5).
* ``motion``: 30-frame videos of 30 particles in 32 x 32 px moving by FBM, CTRW or ATTM at
  alpha = 1 (one model per video, or a random mixture); node target the one-hot motion model of
  the detection's track, global target the fraction of detections of each model.

Augmentation (all tasks): rotation by a random angle, mirroring, translation, Gaussian noise on
the node features and dropping 5% of the nodes (labels are recomputed after dropping, so a
dropped detection turns its two links into one gap link).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgetrack.runtime.graph.candidates import CandidateEdges, build_graph
from edgetrack.runtime.associate.magik import GraphInputs, graph_inputs
from edgetrack.runtime.simulate.spots import SpotSimConfig, simulate_trajectories

__all__ = ["Graph", "AugmentConfig", "link_graph", "diffusion_graph", "motion_graph", "make_graph",
           "link_labels", "MOTION_CLASSES", "DIFFUSION_GRAPH", "MOTION_GRAPH", "to_inputs"]

MOTION_CLASSES = ("fbm", "ctrw", "attm")
#: Graph settings of the video-level tasks (stored in the manifest; the runtime uses them).
DIFFUSION_GRAPH = {"max_distance": 4.5, "max_gap": 2, "frames": 50}
MOTION_GRAPH = {"max_distance": 4.5, "max_gap": 2, "frames": 30}


@dataclasses.dataclass
class Graph:
    """One training graph: detections (frame, y, x px, track id), candidate edges and targets."""

    frame: np.ndarray
    y: np.ndarray
    x: np.ndarray
    track: np.ndarray
    edges: CandidateEdges
    max_distance: float
    edge_label: np.ndarray  # float32 (m,)
    node_target: np.ndarray | None = None  # float32 (n, k)
    global_target: np.ndarray | None = None  # float32 (k,)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation: rotate (any angle), mirror, translate (px), feature noise (std), node dropping (fraction)."""

    rotate: bool = True
    mirror: bool = True
    translate: float = 1000.0
    feature_noise: float = 0.005
    drop: float = 0.05


NO_AUGMENT = AugmentConfig(rotate=False, mirror=False, translate=0.0, feature_noise=0.0, drop=0.0)


def link_labels(frame: np.ndarray, track: np.ndarray, edges: CandidateEdges, max_gap: int) -> np.ndarray:
    """float32 (m,): 1 where an edge joins consecutive detections of one track (gap <= max_gap frames)."""
    n = len(frame)
    order = np.lexsort((frame, track))
    same = track[order][1:] == track[order][:-1]
    gap = np.diff(frame[order])
    ok = same & (gap >= 1) & (gap <= max_gap)
    a, b = order[:-1][ok], order[1:][ok]
    truth = a.astype(np.int64) * n + b
    return np.isin(edges.src * n + edges.dst, truth).astype(np.float32)


def _augment_positions(y, x, rng, aug: AugmentConfig):
    cy, cx = y.mean() if len(y) else 0.0, x.mean() if len(x) else 0.0
    yy, xx = y - cy, x - cx
    if aug.rotate:
        a = rng.uniform(0.0, 2.0 * math.pi)
        yy, xx = math.cos(a) * yy - math.sin(a) * xx, math.sin(a) * yy + math.cos(a) * xx
    if aug.mirror and rng.random() < 0.5:
        xx = -xx
    shift = rng.uniform(0.0, aug.translate, 2) if aug.translate > 0 else np.zeros(2)
    return yy + cy + shift[0], xx + cx + shift[1]


def _finish(frame, y, x, track, md, gap, rng, aug, node_target=None, global_target=None) -> Graph:
    keep = rng.random(len(frame)) >= aug.drop if aug.drop > 0 else np.ones(len(frame), bool)
    frame, y, x, track = frame[keep], y[keep], x[keep], track[keep]
    if node_target is not None:
        node_target = node_target[keep]
    y, x = _augment_positions(y, x, rng, aug)
    edges = build_graph(frame, y, x, md, gap)
    labels = link_labels(frame, track, edges, gap)
    return Graph(frame, y, x, track, edges, float(md), labels, node_target, global_target)


def _detect(truth_frame, truth_y, truth_x, rng, miss_rate, loc_error):
    keep = rng.random(len(truth_frame)) >= miss_rate
    y = truth_y + rng.normal(0.0, loc_error, len(truth_y))
    x = truth_x + rng.normal(0.0, loc_error, len(truth_x))
    return keep, y, x


def _crowded_draw(rng: np.random.Generator) -> tuple[int, float, float]:
    """(side px, rho px^-2, D px^2/frame) of a crowded window: crowding c = rho D log-uniform in
    [0.015, 0.15] (the high end of the benchmark's 0.0015 .. 0.094), rho in [0.015, 0.045]."""
    side = int(rng.choice([32, 48]))
    rho = math.exp(rng.uniform(math.log(0.015), math.log(0.045)))
    c = math.exp(rng.uniform(math.log(0.015), math.log(0.15)))
    return side, rho, min(8.0, c / rho)


def link_graph(rng: np.random.Generator, aug: AugmentConfig = AugmentConfig(), max_gap: int = 2,
               crowded: float = 0.0) -> Graph:
    """A random spot window for the link task (see the module docstring).

    crowded: probability of a crowded window (see :func:`_crowded_draw`; mostly Brownian motion);
    0 draws exactly the original distribution (rho 0.004 .. 0.045 px^-2, D 0.02 .. 4 px^2/frame).
    """
    if crowded > 0 and rng.random() < crowded:
        side, rho, d = _crowded_draw(rng)
        fractions = (0.9, 0.05, 0.05)
    else:
        side = int(rng.choice([32, 48, 64]))
        rho = math.exp(rng.uniform(math.log(0.004), math.log(0.045)))  # particles per px^2
        d = math.exp(rng.uniform(math.log(0.02), math.log(4.0)))  # px^2/frame
        fractions = (0.8, 0.1, 0.1)
    step = math.sqrt(2.0 * d)
    n_frames = int(rng.integers(3, 9))
    loc = float(rng.uniform(0.02, 0.15))
    cfg = SpotSimConfig(
        n_frames=n_frames, shape=(side, side), n_spots=rho * side * side, D_range=(d / 1.4, d * 1.4),
        motion_fractions=fractions, speed=float(rng.uniform(0.3, 1.5) * step),
        confinement_radius=max(1.0, float(rng.uniform(1.0, 4.0) * step)),
        mean_lifetime=float(rng.uniform(20.0, 200.0)), p_blink_off=float(rng.uniform(0.0, 0.05)),
        seed=int(rng.integers(0, 2**31)),
    )
    t = simulate_trajectories(cfg)
    t = t[t["visible"].to_numpy()]
    keep, y, x = _detect(t["frame"].to_numpy(), t["y"].to_numpy(), t["x"].to_numpy(), rng,
                         float(rng.uniform(0.0, 0.1)), loc)
    md = float(rng.uniform(3.0, 5.0) * step + 2.0 * loc)
    return _finish(t["frame"].to_numpy()[keep].astype(np.int64), y[keep], x[keep],
                   t["track_id"].to_numpy()[keep].astype(np.int64), md, max_gap, rng, aug)


def diffusion_graph(rng: np.random.Generator, aug: AugmentConfig = AugmentConfig(),
                    n_frames: int | None = None) -> Graph:
    """A 50-frame video of Brownian particles; node target sqrt(2 D) (px/frame^0.5).

    n_frames: a longer (or shorter) video of the same recipe (benchmarks; training uses the default)."""
    g = DIFFUSION_GRAPH
    cfg = SpotSimConfig(n_frames=g["frames"] if n_frames is None else int(n_frames), shape=(32, 32), n_spots=30, D_range=(0.005, 0.7),
                        mean_lifetime=math.inf, seed=int(rng.integers(0, 2**31)))
    t = simulate_trajectories(cfg)
    t = t[t["visible"].to_numpy()]
    keep, y, x = _detect(t["frame"].to_numpy(), t["y"].to_numpy(), t["x"].to_numpy(), rng,
                         float(rng.uniform(0.0, 0.05)), float(rng.uniform(0.0, 0.1)))
    target = np.sqrt(2.0 * t["D"].to_numpy()[keep]).astype(np.float32)[:, None]
    return _finish(t["frame"].to_numpy()[keep].astype(np.int64), y[keep], x[keep],
                   t["track_id"].to_numpy()[keep].astype(np.int64), g["max_distance"], g["max_gap"], rng, aug,
                   node_target=target)


def _motion_positions(model: str, n: int, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """float64 (n, n_frames, 2) positions (px, start at 0) of ``model`` at alpha = 1 and K = 1 px^2/frame."""
    from edgetrack.training.andi import theory

    if model == "fbm":
        # FBM at alpha = 1 is Brownian motion: independent N(0, 2K) steps, the same law as the exact
        # FBM generator at about 1/30 of its cost (1.2 ms -> 0.04 ms for 40 tracks of 30 frames)
        pos = np.zeros((n, n_frames, 2))
        np.cumsum(rng.standard_normal((n, n_frames - 1, 2)) * math.sqrt(2.0), axis=1, out=pos[:, 1:])
        return pos
    fn = {"fbm": theory.fbm, "ctrw": theory.ctrw, "attm": theory.attm}[model]
    return fn(np.ones(n), n_frames, rng)


def motion_graph(rng: np.random.Generator, aug: AugmentConfig = AugmentConfig(), mixed: float = 0.3) -> Graph:
    """A 30-frame video of particles moving by FBM, CTRW or ATTM (alpha = 1) in 32 x 32 px.

    With probability ``1 - mixed`` every particle follows one model; otherwise each particle's
    model is drawn from random (Dirichlet) fractions. Node target: float32 (n, 3) one-hot model
    of each detection's track; global target: float32 (3,) fraction of the detections of each
    model (the mean of the node targets; both in :data:`MOTION_CLASSES` order).
    """
    g = MOTION_GRAPH
    side, n_frames, n_part = 32, g["frames"], 30
    margin = 8.0
    area = (side + 2 * margin) ** 2
    n_box = int(rng.poisson(n_part * area / side**2))
    if rng.random() < mixed:
        p = rng.dirichlet(np.ones(len(MOTION_CLASSES)))
    else:
        p = np.eye(len(MOTION_CLASSES))[int(rng.integers(len(MOTION_CLASSES)))]
    model_of = rng.choice(len(MOTION_CLASSES), size=n_box, p=p)
    k = math.exp(rng.uniform(math.log(0.05), math.log(0.2)))  # px^2/frame (per-coordinate MSD 2 K t)
    pos = np.zeros((n_box, n_frames, 2))
    for c, name in enumerate(MOTION_CLASSES):
        sel = np.flatnonzero(model_of == c)
        if len(sel):
            pos[sel] = _motion_positions(name, len(sel), n_frames, rng) * math.sqrt(k)
    start = rng.uniform(-margin, side + margin, (n_box, 1, 2))
    pos = pos + start
    frame = np.broadcast_to(np.arange(n_frames), (n_box, n_frames))
    track = np.broadcast_to(np.arange(n_box)[:, None], (n_box, n_frames))
    inside = (pos[..., 0] >= -0.5) & (pos[..., 0] < side - 0.5) & (pos[..., 1] >= -0.5) & (pos[..., 1] < side - 0.5)
    keep, y, x = _detect(frame[inside], pos[..., 0][inside], pos[..., 1][inside], rng,
                         float(rng.uniform(0.0, 0.05)), float(rng.uniform(0.0, 0.1)))
    fr = frame[inside][keep].astype(np.int64)
    tr = track[inside][keep].astype(np.int64)
    node_target = np.eye(len(MOTION_CLASSES), dtype=np.float32)[model_of[tr]]
    graph = _finish(fr, y[keep], x[keep], tr, g["max_distance"], g["max_gap"], rng, aug, node_target=node_target)
    # fractions of the detections that survive node dropping
    graph.global_target = (graph.node_target.sum(0) / max(1, len(graph.frame))).astype(np.float32)
    return graph


def make_graph(task: str, rng: np.random.Generator, aug: AugmentConfig = AugmentConfig(),
               mixed: float = 0.3, crowded: float = 0.0) -> Graph:
    """A random training graph of ``task`` (``link``, ``diffusion`` or ``motion``; ``mixed``: the
    probability of a mixed-model motion video; ``crowded``: of a crowded link window)."""
    if task == "link":
        return link_graph(rng, aug, crowded=crowded)
    if task == "diffusion":
        return diffusion_graph(rng, aug)
    if task == "motion":
        return motion_graph(rng, aug, mixed)
    raise ValueError(f"unknown task {task!r}")


def to_inputs(graph: Graph, chunk: int, rng: np.random.Generator | None = None,
              feature_noise: float = 0.0) -> GraphInputs:
    """The model inputs of ``graph`` (as the runtime builds them), with optional node-feature noise."""
    g = graph_inputs(graph.frame, graph.y, graph.x, graph.edges, graph.max_distance, chunk)
    if rng is not None and feature_noise > 0:
        nf = g.inputs["node_features"]
        real = g.inputs["node_mask"].reshape(-1)[:, None]
        nf += (rng.normal(0.0, feature_noise, nf.shape) * real).astype(np.float32)
        ef = g.inputs["edge_features"]
        ef[:, :3] += rng.normal(0.0, feature_noise, (ef.shape[0], 3)).astype(np.float32)
        ef[:, 0] = np.abs(ef[:, 0])
    return g
