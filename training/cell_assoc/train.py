"""Training and evaluation of the cell association transformer on simulated cell movies (CPU friendly).

Loss (our reading of the paper's Eq. 6 with the weights of Eq. 7): a weighted binary cross-entropy
on the parental-softmax probabilities ``P`` (not on the raw logits), over the valid pairs only
(``t_i < t_j`` and at most ``radius`` cell diameters apart)::

    L = sum_ij w_ij * BCE(P_ij, T_ij) / sum_ij w_ij

    w_ij = 0                                    pair not valid
         = 1                                    negative (T_ij = 0)
         = w_pos                                positive within one track
         = w_pos * division_weight              positive across a division (mother -> daughter)
    w_pos = clip(sqrt(n_neg / n_pos), 1, pos_cap)  per window

``T`` is the ancestor-or-self target of :mod:`edgetrack.training.cell_assoc.data`. The log of
``P`` and of ``1 - P`` are computed from the logits (log-sum-exp), never by taking the log of a
rounded probability.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch

from edgetrack.runtime.config import StageConfig, require

from .data import LabelledMovie, Window, make_window, movie_pool
from .model import AssocConfig, CellAssoc, log_parental_softmax

__all__ = ["TrainConfig", "loss_of", "train", "evaluate", "eval_windows", "tensors"]


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of one training run.

    seed: seeds every draw. steps: optimiser steps. batch: windows per step (gradients averaged).
    lr: peak learning rate (warm-up, then cosine decay). movies: simulated training movies (windows
    are drawn from them at random, augmented). frames: window lengths drawn uniformly (frames).
    shift: random translation of the normalised coordinates (cell diameters). size_jitter: per-object
    probability of a large size change (see :func:`~edgetrack.training.cell_assoc.data.augment_table`);
    division_jitter: the same next to divisions only (see :func:`~edgetrack.training.cell_assoc.data.make_window`). pos_cap /
    division_weight: loss weights (see the module docstring). eval_movies: held-out movies for
    the metrics. threads: torch intra-op threads. arch: the :class:`AssocConfig` as a dict.
    """

    seed: int = 0
    steps: int = 3000
    batch: int = 4
    lr: float = 1e-3
    movies: int = 160
    frames: tuple[int, ...] = (4, 5, 6)
    shift: float = 8.0
    pos_cap: float = 10.0
    division_weight: float = 3.0
    size_jitter: float = 0.0
    division_jitter: float = 0.0
    eval_movies: int = 12
    threads: int = 1
    arch: dict | None = None

    def validate(self) -> None:
        require(self.steps >= 0, "steps must be >= 0")
        require(self.batch >= 1, "batch must be >= 1")
        require(self.lr > 0, "lr must be > 0")
        require(self.movies >= 1, "movies must be >= 1")
        require(len(self.frames) >= 1 and min(self.frames) >= 2, "frames must list window lengths >= 2")
        require(self.pos_cap >= 1 and self.division_weight >= 1, "pos_cap and division_weight must be >= 1")
        require(self.eval_movies >= 0, "eval_movies must be >= 0")
        require(0.0 <= self.size_jitter <= 1.0, "size_jitter must be in [0, 1]")
        require(0.0 <= self.division_jitter <= 1.0, "division_jitter must be in [0, 1]")


def tensors(window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """The model inputs of a window as tensors."""
    return torch.from_numpy(window.coords), torch.from_numpy(window.features)


def loss_of(model: CellAssoc, window: Window, pos_cap: float = 10.0, division_weight: float = 3.0) -> torch.Tensor:
    """Weighted BCE of one window (see the module docstring); 0 (with a graph) when no pair is valid."""
    coords, features = tensors(window)
    logits, valid = model(coords, features)
    logp = torch.clamp(log_parental_softmax(logits, coords, valid), max=-1e-7)
    log1m = torch.log(-torch.expm1(logp))
    target = torch.from_numpy(window.target)
    division = torch.from_numpy(window.division)
    vf = valid.to(logits.dtype)
    pos = target * vf
    n_pos = float(pos.sum())
    n_neg = float(vf.sum()) - n_pos
    if float(vf.sum()) == 0:
        return logits.sum() * 0.0
    w_pos = min(pos_cap, max(1.0, math.sqrt(n_neg / max(1.0, n_pos))))
    weight = vf * torch.where(target > 0.5, w_pos * (1.0 + (division_weight - 1.0) * division), torch.ones_like(target))
    bce = -(target * logp + (1.0 - target) * log1m)
    return (weight * bce).sum() / weight.sum()


def _draw_window(movies: list[LabelledMovie], rng: np.random.Generator, cfg: TrainConfig) -> Window:
    while True:
        movie = movies[int(rng.integers(len(movies)))]
        length = int(rng.choice(cfg.frames))
        if movie.n_frames < 2:
            continue
        length = min(length, movie.n_frames)
        start = int(rng.integers(0, movie.n_frames - length + 1))
        window = make_window(movie, start, length, rng, cfg.shift, cfg.size_jitter, cfg.division_jitter)
        if window.target.sum() > 0:
            return window


def eval_windows(movies: list[LabelledMovie], length: int = 4) -> list[Window]:
    """Non-overlapping windows of ``length`` frames of held-out movies (no augmentation)."""
    out = []
    for movie in movies:
        for start in range(0, movie.n_frames - length + 1, length):
            w = make_window(movie, start, length)
            if w.target.sum() > 0:
                out.append(w)
    return out


def _child_decisions(prob: np.ndarray, cand: np.ndarray, threshold: float, largest: bool) -> np.ndarray:
    """Per child (column): the chosen candidate row, or -1 (none). prob: (N, N) scores, cand: bool (N, N)."""
    s = np.where(cand, prob, -np.inf if largest else np.inf)
    best = np.argmax(s, axis=0) if largest else np.argmin(s, axis=0)
    val = s[best, np.arange(s.shape[1])]
    ok = (val >= threshold) if largest else (val <= threshold)
    return np.where(ok & cand.any(axis=0), best, -1)


@torch.no_grad()
def evaluate(model: CellAssoc, windows: list[Window]) -> dict:
    """Association metrics on held-out windows, the transformer against the distance-only baseline.

    Per child object ``j`` with candidate parents in the frame just before (valid pairs, one frame
    apart), each method picks one parent or none: the transformer its most probable candidate when
    P >= 0.5, the baseline the nearest candidate when it is closer than a cut-off (the best of a
    sweep of cut-offs on these windows, in cell diameters: an oracle in the baseline's favour).
    ``association_accuracy``: fraction of children whose choice (parent or none) is right;
    ``edge_precision / recall / f1``: of the chosen links against the true one-frame links.
    """
    model.eval()
    cuts = np.round(np.arange(0.1, 2.01, 0.1), 2)
    rows = []
    for w in windows:
        coords, features = tensors(w)
        prob = model.probabilities(coords, features).numpy().astype(np.float64)
        valid = model(coords, features)[1].numpy()
        t = w.coords[:, 0]
        cand = valid & (t[None, :] - t[:, None] == 1)
        yx = w.coords[:, 1:].astype(np.float64)
        dist = np.sqrt(((yx[:, None, :] - yx[None, :, :]) ** 2).sum(-1))
        truth = np.where((w.target * cand).any(axis=0), np.argmax(w.target * cand, axis=0), -1)
        has = cand.any(axis=0)
        rows.append((prob, cand, dist, truth, has))
    if not rows:
        return {}

    def score(choose: Callable) -> dict:
        correct = total = tp = n_pred = n_true = 0
        for prob, cand, dist, truth, has in rows:
            pick = choose(prob, cand, dist)
            correct += int(((pick == truth) & has).sum())
            total += int(has.sum())
            tp += int(((pick == truth) & (pick >= 0) & has).sum())
            n_pred += int(((pick >= 0) & has).sum())
            n_true += int(((truth >= 0) & has).sum())
        p = tp / max(1, n_pred)
        r = tp / max(1, n_true)
        return {"association_accuracy": correct / max(1, total), "edge_precision": p, "edge_recall": r,
                "edge_f1": 2 * p * r / max(1e-12, p + r), "n_children": total}

    result = {"transformer": score(lambda prob, cand, dist: _child_decisions(prob, cand, 0.5, True))}
    best = None
    for cut in cuts:
        m = score(lambda prob, cand, dist, c=cut: _child_decisions(dist, cand, c, False))
        if best is None or m["edge_f1"] > best["edge_f1"]:
            best = dict(m, cutoff_diameters=float(cut))
    result["distance"] = best
    result["n_windows"] = len(rows)
    return result


def train(config: TrainConfig, log: Callable[[str], None] | None = None,
          movies: list[LabelledMovie] | None = None, held_out: list[LabelledMovie] | None = None
          ) -> tuple[CellAssoc, dict]:
    """Train the association transformer; returns (model in eval mode, info with losses, seconds, metrics).

    movies / held_out: labelled movies to use instead of simulating ``config.movies`` /
    ``config.eval_movies`` of them (tests pass small stand-ins).
    """
    torch.set_num_threads(max(1, int(config.threads)))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(np.random.SeedSequence(entropy=config.seed, spawn_key=(0,)))
    start = time.perf_counter()
    if movies is None:
        movies = movie_pool(config.movies, rng, vary=True)
        if log is not None:
            log(f"simulated {len(movies)} training movies ({time.perf_counter() - start:.0f} s)")
    model = CellAssoc(AssocConfig.from_dict(config.arch or {}))
    steps = config.steps
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    warm = max(1, min(200, steps // 10))

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        return config.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))

    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        total = 0.0
        for _ in range(config.batch):
            w = _draw_window(movies, rng, config)
            loss = loss_of(model, w, config.pos_cap, config.division_weight) / config.batch
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(total)
        if log is not None and ((step + 1) % 100 == 0 or step + 1 == steps):
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-100:]):.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    info: dict = {"steps": steps, "train_seconds": round(time.perf_counter() - start, 1),
                  "final_loss": float(np.mean(losses[-100:])) if losses else float("nan")}
    if held_out is None and config.eval_movies:
        held_rng = np.random.default_rng(np.random.SeedSequence(entropy=config.seed, spawn_key=(1,)))
        held_out = movie_pool(config.eval_movies, held_rng, vary=True)
    if held_out:
        info["metrics"] = evaluate(model, eval_windows(held_out))
    return model, info
