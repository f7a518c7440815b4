"""Training of the DeepSPT segmentation ensemble: fresh simulated tracks every epoch, cross-entropy per
time point, one temperature per member fitted on held-out tracks, evaluation on a test set."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.motion.deepspt import batch_plan, n_channels, pack_batch, predict_arrays, prepare_channels

from .model import CalibratedEnsemble, UNet1d, UNetConfig
from .sim import N_MODES, SimConfig, TrackSet, simulate_tracks

__all__ = ["TrainConfig", "train_member", "fit_temperature", "member_logits", "train_ensemble", "torch_runner",
           "seed_stream"]


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of one training run.

    ndim: 2 or 3. seed: seeds the data, the initial weights and the batch order of every member.
    members: networks in the ensemble. epochs: passes, each over ``tracks_per_epoch`` freshly
    simulated tracks. val_tracks: held-out tracks for the temperatures; test_tracks: for the
    reported metrics. base / kernel / convs / depth / growth: architecture (see :class:`UNetConfig`). lr: peak
    learning rate (warm-up, cosine decay). batch_points: padded points per batch. threads: torch threads.
    max_length: longest simulated track (points).
    """

    ndim: int = 2
    seed: int = 0
    members: int = 3
    epochs: int = 50
    tracks_per_epoch: int = 3000
    val_tracks: int = 1000
    test_tracks: int = 2000
    base: int = 12
    kernel: int = 5
    convs: int = 2
    depth: int = 3
    growth: float = 1.5
    lr: float = 3e-3
    batch_points: int = 16384
    threads: int = 1
    max_length: int = 600

    def validate(self) -> None:
        require(self.ndim in (2, 3), "ndim must be 2 or 3")
        require(self.members >= 1 and self.epochs >= 0, "need members >= 1 and epochs >= 0")
        require(self.tracks_per_epoch >= 1 and self.val_tracks >= 1 and self.test_tracks >= 1,
                "track counts must be >= 1")
        require(self.lr > 0 and self.batch_points >= 64 and self.threads >= 1, "bad lr, batch_points or threads")
        require(self.max_length >= 20, "max_length must be >= 20")

    def unet(self) -> UNetConfig:
        return UNetConfig(in_channels=n_channels(self.ndim), n_classes=N_MODES, base=self.base,
                          depth=self.depth, kernel=self.kernel, convs=self.convs,
                          growth=self.growth)

    def sim(self) -> SimConfig:
        return SimConfig(ndim=self.ndim, max_length=self.max_length)


def seed_stream(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for (seed, key...): data of each member/epoch, validation, test."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(k) for k in key)))


def _label_batch(labels: np.ndarray, offsets: np.ndarray, idx: np.ndarray, length: int) -> np.ndarray:
    """(B, length) int64 labels of a batch, -1 on padding."""
    shifted = (labels.astype(np.float32) + 1.0)[:, None]
    return pack_batch(shifted, offsets, idx, length)[:, 0, :].astype(np.int64) - 1


def _batches(data: TrackSet, rng: np.random.Generator, batch_points: int, group: int = 1024):
    """Batches (idx, length) of similar-length tracks from random groups of ``group`` tracks, shuffled."""
    n = data.n_tracks
    lengths = np.diff(data.offsets)
    perm = rng.permutation(n)
    out = []
    for a in range(0, n, group):
        sel = perm[a:a + group]
        for idx, length in batch_plan(lengths[sel], max_points=batch_points):
            out.append((sel[idx], length))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _lr(peak: float, progress: float) -> float:
    """Linear warm-up over the first 5 % of training, then cosine decay to zero."""
    if progress < 0.05:
        return peak * (0.1 + 0.9 * progress / 0.05)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - 0.05) / 0.95)))


def train_member(cfg: TrainConfig, member: int, log: Callable[[str], None] | None = None) -> tuple[UNet1d, dict]:
    """Train one U-Net on fresh simulated tracks; returns (model in eval mode, info)."""
    torch.manual_seed(int(seed_stream(cfg.seed, 0, member).integers(2 ** 31)))
    model = UNet1d(cfg.unet())
    sim = cfg.sim()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    start = time.perf_counter()
    losses: list[float] = []
    model.train()
    for epoch in range(cfg.epochs):
        rng = seed_stream(cfg.seed, 1, member, epoch)
        data = simulate_tracks(cfg.tracks_per_epoch, sim, rng)
        batches = _batches(data, rng, cfg.batch_points)
        channels = prepare_channels(data.positions, data.offsets)
        for b, (idx, length) in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = _lr(cfg.lr, (epoch + b / len(batches)) / cfg.epochs)
            x = torch.from_numpy(pack_batch(channels, data.offsets, idx, length))
            y = torch.from_numpy(_label_batch(data.labels, data.offsets, idx, length))
            loss = F.cross_entropy(model(x), y, ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            losses.append(float(loss.detach()))
        if log is not None:
            log(f"member {member} epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses[-len(batches):]):.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    return model, {"steps": len(losses), "train_seconds": round(time.perf_counter() - start, 1),
                   "final_loss": float(np.mean(losses[-50:])) if losses else float("nan")}


def torch_runner(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A ``run(batch) -> outputs`` callable for :func:`edgetrack.runtime.motion.deepspt.predict_arrays`."""

    @torch.no_grad()
    def run(batch: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(batch)).numpy()

    return run


def member_logits(model: UNet1d, data: TrackSet) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), labels (N,)) of every point of ``data``."""
    outs = predict_arrays(data.tracks(), torch_runner(model))
    return np.concatenate(outs, axis=0), data.labels


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) (L-BFGS on log T)."""
    z = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / torch.exp(log_t), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(torch.exp(log_t).item())


def train_ensemble(cfg: TrainConfig, log: Callable[[str], None] | None = None) -> tuple[CalibratedEnsemble, dict]:
    """Train every member, fit its temperature on validation tracks; returns (ensemble, info)."""
    torch.set_num_threads(cfg.threads)
    val = simulate_tracks(cfg.val_tracks, cfg.sim(), seed_stream(cfg.seed, 2))
    members, temps, infos = [], [], []
    for m in range(cfg.members):
        model, info = train_member(cfg, m, log)
        logits, labels = member_logits(model, val)
        t = fit_temperature(logits, labels)
        info["temperature"] = t
        info["val_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == labels))
        if log is not None:
            log(f"member {m}: temperature {t:.3f}, validation accuracy {info['val_accuracy']:.4f}")
        members.append(model)
        temps.append(t)
        infos.append(info)
    ensemble = CalibratedEnsemble(members, temps).eval()
    return ensemble, {"members": infos, "train_seconds": round(sum(i["train_seconds"] for i in infos), 1)}
