"""Training and evaluation of MAGIK on simulated graphs (one graph per optimiser step, CPU friendly)."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgetrack.runtime.config import StageConfig, require

from .data import MOTION_CLASSES, AugmentConfig, NO_AUGMENT, Graph, make_graph, to_inputs
from .model import Magik, MagikConfig

__all__ = ["TASKS", "TrainConfig", "build_model", "tensors", "loss_of", "train", "evaluate", "eval_graphs"]

#: Per task: kind of output, attention chunk used in training and at run time, default steps (and for
#: motion: the share of mixed-model videos in training and the weight of the fraction loss).
TASKS: dict[str, dict] = {
    "link": {"kind": "edge", "chunk": 64, "steps": 3000},
    "diffusion": {"kind": "node", "chunk": 128, "steps": 1500, "targets": ["sqrt_2D"]},
    "motion": {"kind": "global", "chunk": 128, "steps": 1500, "batch": 4, "lr": 5e-4, "classes": list(MOTION_CLASSES),
               "mixed": 0.6, "fraction_weight": 1.0},
}


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of one training run.

    task: link, diffusion or motion. seed: seeds every draw (data, initial weights, noise).
    steps: optimiser steps. batch: graphs per step (gradients summed; None: the task's default, 1 for
    link and diffusion). lr: peak learning rate (cosine decay, short warm-up; None: the task's default).
    chunk: attention chunk (None: the task's default; 0: all-pairs). receptive_field / attention:
    ablations. eval_graphs: held-out graphs for the metrics. threads: torch intra-op threads.
    mixed: motion only, share of mixed-model training videos (None: the task's default, 0.6).
    crowded: link only, share of crowded training windows (crowding rho D 0.015 .. 0.15; 0: none).
    """

    task: str = "link"
    seed: int = 0
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    chunk: int | None = None
    receptive_field: bool = True
    attention: bool = True
    eval_graphs: int = 40
    threads: int = 1
    mixed: float | None = None
    crowded: float = 0.0

    def validate(self) -> None:
        require(self.task in TASKS, f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        require(self.steps is None or self.steps >= 0, "steps must be >= 0")
        require(self.lr is None or self.lr > 0, "lr must be > 0")
        require(self.batch is None or self.batch >= 1, "batch must be >= 1")
        require(self.chunk is None or self.chunk >= 0, "chunk must be >= 0")
        require(self.eval_graphs >= 0, "eval_graphs must be >= 0")
        require(self.mixed is None or 0.0 <= self.mixed <= 1.0, "mixed must be in [0, 1]")
        require(0.0 <= self.crowded <= 1.0, "crowded must be in [0, 1]")

    @property
    def n_steps(self) -> int:
        return int(TASKS[self.task]["steps"] if self.steps is None else self.steps)

    @property
    def n_batch(self) -> int:
        return int(TASKS[self.task].get("batch", 1) if self.batch is None else self.batch)

    @property
    def peak_lr(self) -> float:
        return float(TASKS[self.task].get("lr", 1e-3) if self.lr is None else self.lr)

    @property
    def mixed_share(self) -> float:
        return float(TASKS[self.task].get("mixed", 0.3) if self.mixed is None else self.mixed)

    @property
    def attention_chunk(self) -> int:
        return int(TASKS[self.task]["chunk"] if self.chunk is None else self.chunk)


def build_model(task: str, receptive_field: bool = True, attention: bool = True) -> Magik:
    """A fresh MAGIK network with the decoder of ``task`` (motion: per-node classes of the motion
    model, the video's fractions their mean over the nodes)."""
    kind = TASKS[task]["kind"]
    cfg = MagikConfig(
        receptive_field=receptive_field, attention=attention,
        edge_out=1 if kind == "edge" else 0,
        node_out=1 if kind == "node" else len(MOTION_CLASSES) if kind == "global" else 0,
        global_from_nodes=kind == "global",
    )
    return Magik(cfg)


def tensors(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """The four model inputs as tensors, in forward() order."""
    return (torch.from_numpy(inputs["node_features"]), torch.from_numpy(inputs["edge_features"]),
            torch.from_numpy(inputs["edge_index"]), torch.from_numpy(inputs["node_mask"]))


def loss_of(task: str, out: dict[str, torch.Tensor], graph: Graph, position: np.ndarray) -> torch.Tensor:
    """Training loss: BCE on edges (link), L1 on nodes (diffusion); motion: cross-entropy of each
    detection's motion model plus ``fraction_weight`` times the soft cross-entropy of the video's
    fractions against the mean of the node probabilities."""
    if task == "link":
        return F.binary_cross_entropy_with_logits(out["edge_logit"], torch.from_numpy(graph.edge_label))
    if task == "diffusion":
        pred = out["node_pred"][torch.from_numpy(position)]
        return F.l1_loss(pred, torch.from_numpy(graph.node_target))
    logits = out["node_pred"][torch.from_numpy(position)]
    node = -(torch.from_numpy(graph.node_target) * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    frac = -(torch.from_numpy(graph.global_target) * torch.log(out["global_prob"] + 1e-7)).sum()
    return node + float(TASKS["motion"]["fraction_weight"]) * frac


def _usable(task: str, graph: Graph) -> bool:
    if task == "link":
        return len(graph.edges.src) > 0
    return len(graph.frame) > 0


def eval_graphs(task: str, n: int, seed: int) -> list[Graph]:
    """``n`` held-out graphs of ``task`` (no augmentation), from a seed stream apart from training
    (motion: single-model and mixed videos alternate)."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(1,)))
    graphs: list[Graph] = []
    while len(graphs) < n:
        g = make_graph(task, rng, NO_AUGMENT, mixed=float(len(graphs) % 2))
        if _usable(task, g):
            graphs.append(g)
    return graphs


@torch.no_grad()
def evaluate(model: Magik, task: str, graphs: list[Graph], chunk: int) -> dict:
    """Metrics of ``model`` on ``graphs``: edge precision/recall/F1/accuracy at 0.5 (link), MAE of
    sqrt(2 D) (diffusion), or (motion) accuracy and confusion matrix on single-model videos, the
    fraction MAE on mixed videos next to that of the constant 1/3 guess, and the per-detection
    accuracy of the node classes."""
    model.eval()
    if task == "link":
        tp = fp = fn = tn = 0
        for g in graphs:
            gi = to_inputs(g, chunk)
            p = torch.sigmoid(model(*tensors(gi.inputs))["edge_logit"]).numpy() >= 0.5
            y = g.edge_label >= 0.5
            tp += int((p & y).sum()); fp += int((p & ~y).sum()); fn += int((~p & y).sum()); tn += int((~p & ~y).sum())
        prec = tp / max(1, tp + fp)
        rec = tp / max(1, tp + fn)
        return {"edge_precision": prec, "edge_recall": rec, "edge_f1": 2 * prec * rec / max(1e-12, prec + rec),
                "edge_accuracy": (tp + tn) / max(1, tp + tn + fp + fn), "n_graphs": len(graphs)}
    if task == "diffusion":
        errs = []
        for g in graphs:
            gi = to_inputs(g, chunk)
            pred = model(*tensors(gi.inputs))["node_pred"].numpy()[gi.position, 0]
            errs.append(np.abs(pred - g.node_target[:, 0]))
        err = np.concatenate(errs)
        return {"mae_sqrt_2D": float(err.mean()), "n_graphs": len(graphs), "n_nodes": int(len(err))}
    k = len(MOTION_CLASSES)
    conf = np.zeros((k, k), np.int64)
    frac_err, const_err = [], []
    node_hit = node_all = 0
    for g in graphs:
        gi = to_inputs(g, chunk)
        out = model(*tensors(gi.inputs))
        prob = out["global_prob"].numpy()
        node_cls = out["node_prob"].numpy()[gi.position].argmax(1)
        node_hit += int((node_cls == g.node_target.argmax(1)).sum())
        node_all += len(node_cls)
        if g.global_target.max() > 0.999:
            conf[int(np.argmax(g.global_target)), int(np.argmax(prob))] += 1
        else:
            frac_err.append(np.abs(prob - g.global_target).mean())
            const_err.append(np.abs(1.0 / k - g.global_target).mean())
    n_pure = int(conf.sum())
    nan = float("nan")
    return {"accuracy": float(np.trace(conf) / max(1, n_pure)), "confusion": conf.tolist(),
            "classes": list(MOTION_CLASSES), "n_single_model_videos": n_pure,
            "fraction_mae": float(np.mean(frac_err)) if frac_err else nan,
            "constant_baseline_fraction_mae": float(np.mean(const_err)) if const_err else nan,
            "n_mixed_videos": len(frac_err), "node_accuracy": node_hit / max(1, node_all)}


def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> tuple[Magik, dict]:
    """Train a MAGIK network; returns (model in eval mode, info with losses, seconds and metrics)."""
    torch.set_num_threads(max(1, int(config.threads)))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(np.random.SeedSequence(entropy=config.seed, spawn_key=(0,)))
    model = build_model(config.task, config.receptive_field, config.attention)
    steps = config.n_steps
    chunk = config.attention_chunk
    peak = config.peak_lr
    opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=1e-4)
    warm = max(1, min(100, steps // 10))

    def lr_at(step: int) -> float:
        if step < warm:
            return peak * (step + 1) / warm
        return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    aug = AugmentConfig()
    start = time.perf_counter()
    losses: list[float] = []
    model.train()
    step = 0
    batch = config.n_batch
    while step < steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        total = 0.0
        done = 0
        while done < batch:
            graph = make_graph(config.task, rng, aug, mixed=config.mixed_share, crowded=config.crowded)
            if not _usable(config.task, graph):
                continue
            gi = to_inputs(graph, chunk, rng, aug.feature_noise)
            loss = loss_of(config.task, model(*tensors(gi.inputs)), graph, gi.position) / batch
            loss.backward()
            total += float(loss.detach())
            done += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(total)
        step += 1
        if log is not None and (step % 100 == 0 or step == steps):
            log(f"step {step}/{steps} loss {np.mean(losses[-100:]):.4f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    info = {"steps": steps, "train_seconds": round(time.perf_counter() - start, 1),
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan")}
    if config.eval_graphs:
        graphs = eval_graphs(config.task, config.eval_graphs, config.seed)
        info["metrics"] = evaluate(model, config.task, graphs, chunk)
        if config.task == "link" and config.attention:
            info["metrics_all_pairs_attention"] = evaluate(model, config.task, graphs, 0)
    return model, info
