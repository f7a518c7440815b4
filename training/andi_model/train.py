"""Training of the per-frame motion network on simulated AnDi Challenge experiments (CPU friendly).

Each optimiser step takes one batch of tracks of similar length from a pool of simulated tracks
(:func:`~edgetrack.training.andi_model.data.simulate_tracks`); the pool is simulated afresh every
``refresh`` steps, so the network rarely sees a track twice. Loss per point: L1 on alpha and
smooth L1 on log K (points that move), cross-entropy on the state, binary cross-entropy on the soft
change-point target. AdamW, linear warm-up then cosine decay. Everything is seeded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.motion.network import INPUT_CHANNELS
from edgetrack.runtime.metrics.motion import alpha_mae, k_msle

from .data import Batch, TrackSet, make_batch, simulate_tracks
from .model import MotionNet, MotionNetConfig

__all__ = ["TrainConfig", "tensors", "loss_of", "train", "evaluate", "predict_batch"]


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of one training run.

    seed: seeds every draw. steps: optimiser steps. batch: tracks per step. lr: peak learning rate.
    experiments: experiments of each of the five models per simulated pool (about 22 tracks each).
    refresh: steps between fresh pools. broad: fraction of experiments with wider settings than
    the challenge defaults. eval_experiments: held-out experiments per model for the metrics.
    threads: torch intra-op threads. widths: network widths (4 levels).
    """

    seed: int = 0
    steps: int = 8000
    batch: int = 48
    lr: float = 2e-3
    experiments: int = 60
    refresh: int = 400
    broad: float = 0.4
    eval_experiments: int = 10
    threads: int = 1
    widths: tuple[int, ...] = (32, 48, 64, 96)

    def validate(self) -> None:
        require(self.steps >= 0 and self.batch >= 1, "steps must be >= 0 and batch >= 1")
        require(self.lr > 0, "lr must be > 0")
        require(self.experiments >= 1 and self.refresh >= 1, "experiments and refresh must be >= 1")
        require(0.0 <= self.broad <= 1.0, "broad must be in [0, 1]")
        require(self.eval_experiments >= 0 and self.threads >= 1, "eval_experiments >= 0, threads >= 1")


def tensors(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(batch.features), torch.from_numpy(batch.mask)


def loss_of(raw: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for the raw network output (B, 7, L)."""
    reg = torch.from_numpy(batch.reg_mask)
    mask = torch.from_numpy(batch.mask)
    n_reg = torch.clamp(reg.sum(), min=1.0)
    alpha = 2.0 * torch.sigmoid(raw[:, 0])
    l_alpha = (torch.abs(alpha - torch.from_numpy(batch.alpha)) * reg).sum() / n_reg
    l_k = (F.smooth_l1_loss(raw[:, 1], torch.from_numpy(batch.log_k), reduction="none", beta=0.5) * reg).sum() / n_reg
    l_state = F.cross_entropy(raw[:, 3:], torch.from_numpy(batch.state), ignore_index=-1)
    cp_w = mask * (1.0 + 4.0 * torch.from_numpy(batch.cp))
    l_cp = (F.binary_cross_entropy_with_logits(raw[:, 2], torch.from_numpy(batch.cp), reduction="none") * cp_w).sum() \
        / torch.clamp(mask.sum(), min=1.0)
    total = l_alpha + 0.5 * l_k + l_state + 2.0 * l_cp
    return total, {"alpha": float(l_alpha.detach()), "log_k": float(l_k.detach()), "state": float(l_state.detach()),
                   "cp": float(l_cp.detach())}


def _length_batches(lengths: np.ndarray, batch: int, rng: np.random.Generator, n_batches: int) -> list[np.ndarray]:
    """``n_batches`` batches of ``batch`` tracks each, drawn at random and grouped by length."""
    pick = rng.integers(0, lengths.size, size=batch * n_batches)
    pick = pick[np.argsort(lengths[pick], kind="stable")]
    groups = [pick[i * batch:(i + 1) * batch] for i in range(n_batches)]
    return [groups[i] for i in rng.permutation(n_batches)]


@torch.no_grad()
def predict_batch(model: MotionNet, batch: Batch) -> dict[str, np.ndarray]:
    model.eval()
    alpha, log_k, state_prob, cp = model.predict(*tensors(batch))
    return {"alpha": alpha.numpy(), "log_k_rel": log_k.numpy(), "state_prob": state_prob.numpy(), "cp_prob": cp.numpy()}


@torch.no_grad()
def evaluate(model: MotionNet, tracks: TrackSet, batch: int = 64) -> dict[str, float]:
    """Per-point alpha MAE and K MSLE (points that move), state accuracy and change-point BCE."""
    order = np.argsort(tracks.lengths(), kind="stable")
    ta, tk, pa, pk, hits = [], [], [], [], []
    bce, n_pts = 0.0, 0
    ls = INPUT_CHANNELS.index("log_scale")
    for i in range(0, order.size, batch):
        b = make_batch(tracks, order[i:i + batch])
        out = predict_batch(model, b)
        for r in range(b.mask.shape[0]):
            n = int(b.lengths[r])
            reg = b.reg_mask[r, :n] > 0
            two_log_s = 4.0 * float(b.features[r, ls, 0])  # the channel holds 0.5 ln s
            ta.append(b.alpha[r, :n][reg])
            pa.append(out["alpha"][r, :n][reg])
            tk.append(np.exp(b.log_k[r, :n][reg] + two_log_s))
            pk.append(np.exp(out["log_k_rel"][r, :n][reg] + two_log_s))
            hits.append(out["state_prob"][r, :n].argmax(axis=1) == b.state[r, :n])
        p = np.clip(out["cp_prob"], 1e-7, 1 - 1e-7)
        bce -= float(np.sum((b.cp * np.log(p) + (1 - b.cp) * np.log(1 - p)) * b.mask))
        n_pts += int(b.mask.sum())
    t_a, t_k, p_a, p_k = (np.concatenate(v) for v in (ta, tk, pa, pk))
    return {"frame_alpha_mae": alpha_mae(t_a, p_a), "frame_k_msle": k_msle(t_k, p_k),
            "frame_state_accuracy": float(np.mean(np.concatenate(hits))), "frame_cp_bce": bce / max(n_pts, 1)}


def train(cfg: TrainConfig, log: Callable[[str], None] | None = None) -> tuple[MotionNet, dict]:
    """Train a fresh network; returns it (eval mode) and a summary (steps, seconds, losses, metrics)."""
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    eval_rng = np.random.default_rng([cfg.seed, 1])
    model = MotionNet(MotionNetConfig(widths=tuple(cfg.widths)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, min(200, cfg.steps // 10))

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        frac = (step - warm) / max(1, cfg.steps - warm)
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    start = time.perf_counter()
    pool: TrackSet | None = None
    queue: list[np.ndarray] = []
    running: dict[str, float] = {}
    last = float("nan")
    for step in range(cfg.steps):
        if pool is None or step % cfg.refresh == 0:
            pool = simulate_tracks(cfg.experiments, rng, broad=cfg.broad)
            queue = []
        if not queue:
            queue = _length_batches(pool.lengths(), cfg.batch, rng, 50)
        batch = make_batch(pool, queue.pop(), rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        model.train()
        raw = model(*tensors(batch))
        loss, parts = loss_of(raw, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = float(loss.detach())
        for k, v in parts.items():
            running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
        if log and (step % 100 == 0 or step == cfg.steps - 1):
            parts_txt = " ".join(f"{k} {v:.3f}" for k, v in running.items())
            log(f"step {step:5d}  loss {last:.3f}  ({parts_txt})  {time.perf_counter() - start:.0f} s")
    seconds = time.perf_counter() - start
    model.eval()
    info: dict = {"steps": cfg.steps, "train_seconds": round(seconds, 1), "final_loss": last,
                  "parameters": int(sum(p.numel() for p in model.parameters()))}
    if cfg.eval_experiments:
        held_out = simulate_tracks(cfg.eval_experiments, eval_rng, broad=0.0)
        info["metrics_frames"] = {k: round(v, 4) for k, v in evaluate(model, held_out).items()}
        if log:
            log(f"held-out per-point metrics (challenge defaults): {info['metrics_frames']}")
    return model, info
