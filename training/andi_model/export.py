"""Export of the motion network to ONNX (dynamic batch and length), parity check, manifest entry."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgetrack.runtime.io.atomic import atomic_open
from edgetrack.runtime.motion.network import INPUT_CHANNELS, LENGTH_MULTIPLE, STATES, motion_features, pad_tracks

from .model import MotionNet

__all__ = ["OPSET", "INPUTS", "OUTPUTS", "Exported", "export_onnx", "random_tracks", "parity", "input_spec",
           "output_spec", "TorchRunner", "calibrate", "calibrate_confined_vote"]

OPSET = 17
INPUTS = ("features", "mask")
OUTPUTS = ("alpha", "log_k_rel", "state_prob", "cp_prob")


class Exported(nn.Module):
    """The network with its run-time outputs (alpha in (0, 2), log K relative to the track's
    scale, state probabilities (B, L, 4), change-point probability)."""

    def __init__(self, model: MotionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, mask: torch.Tensor):
        return self.model.predict(features, mask)


def input_spec() -> list[dict]:
    return [
        {"name": "features", "dtype": "float32", "shape": ["batch", len(INPUT_CHANNELS), "length"],
         "channels": list(INPUT_CHANNELS), "length_multiple": LENGTH_MULTIPLE},
        {"name": "mask", "dtype": "float32", "shape": ["batch", "length"]},
    ]


def output_spec() -> list[dict]:
    return [
        {"name": "alpha", "dtype": "float32", "shape": ["batch", "length"]},
        {"name": "log_k_rel", "dtype": "float32", "shape": ["batch", "length"],
         "note": "log K minus 2 ln s (s: the track's rms step per coordinate, px)"},
        {"name": "state_prob", "dtype": "float32", "shape": ["batch", "length", len(STATES)],
         "classes": list(STATES)},
        {"name": "cp_prob", "dtype": "float32", "shape": ["batch", "length"]},
    ]


def random_tracks(lengths, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs of random walks of the given lengths (mixed step sizes, some immobile parts)."""
    tracks = []
    for n in lengths:
        steps = rng.standard_normal((int(n), 2)) * rng.uniform(0.05, 3.0)
        steps[: int(n) // 3] *= rng.uniform(0.01, 1.0)
        tracks.append(np.cumsum(steps, axis=0) + rng.uniform(0, 100, 2))
    pos, n = pad_tracks(tracks)
    feats, mask, _ = motion_features(pos, n)
    return feats, mask


def export_onnx(model: MotionNet, path: Path | str, opset: int = OPSET) -> None:
    """Write ``model`` (eval mode) to ``path`` as ONNX with dynamic batch and length."""
    wrapped = Exported(model).eval()
    feats, mask = random_tracks([40, 23, 64], np.random.default_rng(0))
    dynamic = {"features": {0: "batch", 2: "length"}, "mask": {0: "batch", 1: "length"},
               "alpha": {0: "batch", 1: "length"}, "log_k_rel": {0: "batch", 1: "length"},
               "state_prob": {0: "batch", 1: "length"}, "cp_prob": {0: "batch", 1: "length"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (torch.from_numpy(feats), torch.from_numpy(mask)), buffer,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=dynamic,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(buffer.getvalue())


@torch.no_grad()
def parity(model: MotionNet, path: Path | str, seed: int = 0,
           shapes=((1, [3]), (1, [8]), (3, [20, 57, 200]), (16, None), (2, [500, 9]))) -> float:
    """Largest |PyTorch - ONNX Runtime| over every output, for batches of random tracks
    (``shapes``: (batch, lengths or None for random lengths))."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped = Exported(model).eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    for b, lengths in shapes:
        lens = lengths if lengths is not None else list(rng.integers(3, 260, size=b))
        feats, mask = random_tracks(lens, rng)
        ref = [t.numpy() for t in wrapped(torch.from_numpy(feats), torch.from_numpy(mask))]
        got = session.run(list(OUTPUTS), {"features": feats, "mask": mask})
        for r, g in zip(ref, got):
            if r.shape != g.shape:
                raise AssertionError(f"ONNX output shape {g.shape} differs from PyTorch {r.shape}")
            worst = max(worst, float(np.max(np.abs(r - g))))
    return worst


class TorchRunner:
    """The PyTorch network behind the run-time model interface (``run(inputs) -> outputs``), so
    that :func:`edgetrack.runtime.motion.network.predict_frames` can drive it."""

    def __init__(self, model: MotionNet) -> None:
        self.wrapped = Exported(model).eval()

    @torch.no_grad()
    def run(self, inputs: dict, outputs=None) -> dict:
        got = self.wrapped(torch.from_numpy(inputs["features"]), torch.from_numpy(inputs["mask"]))
        return {name: t.numpy() for name, t in zip(OUTPUTS, got)}


def calibrate(model: MotionNet, seed: int = 12345, n_experiments: int = 20) -> dict:
    """Error variance of the network's per-track alpha and log10 K (medians of the per-point
    values) against the track's length n, ``var = e0 + e1 / n``, measured on single-state
    experiments with the challenge's default settings (truth: each particle's own alpha and K).
    Used by the run-time shrinkage within ensemble states; also the threshold of
    :func:`calibrate_confined_vote` (``confined_vote``)."""
    from edgetrack.runtime.motion.network import predict_frames
    from edgetrack.training.andi import challenge_dataset

    from .data import tracks_of

    data = tracks_of(challenge_dataset("single_state", n_experiments, np.random.default_rng(seed)), 0)
    preds = predict_frames(data.pos, TorchRunner(model))
    n = data.lengths().astype(np.float64)
    err_a = np.array([np.median(p.alpha) - a[0] for p, a in zip(preds, data.alpha)])
    err_k = np.array([np.median(np.log10(p.K)) - np.log10(k[0]) for p, k in zip(preds, data.K)])
    design = np.column_stack([np.ones_like(n), 1.0 / n])
    out = {}
    for name, err in (("alpha_error_var", err_a), ("log10_K_error_var", err_k)):
        coef = np.linalg.lstsq(design, err**2, rcond=None)[0]
        out[name] = [float(max(coef[0], 1e-5)), float(max(coef[1], 0.0))]
    out["measured_on"] = (f"single_state, challenge defaults, {n_experiments} experiments, seed {seed}, "
                          f"{n.size} tracks of {int(n.min())}-{int(n.max())} frames")
    threshold, accuracy = calibrate_confined_vote(model, seed + 1, n_experiments, calibration=dict(out))
    out["confined_vote"] = threshold
    out["confined_vote_accuracy"] = accuracy
    return out


def calibrate_confined_vote(model: MotionNet, seed: int = 23456, n_experiments: int = 12,
                            calibration: dict | None = None) -> tuple[float, float]:
    """Threshold of :func:`edgetrack.runtime.motion.ensemble.harmonise_states` for this network:
    the confined share that best separates the moving ensemble states of confinement experiments
    that are truly confined from the others (multi-state, dimerisation and the free states of
    confinement), frame-weighted, on experiments with the challenge's default settings, with the
    run-time post-processing (``calibration``: the error variances of :func:`calibrate`).
    Returns (threshold, frame-weighted accuracy)."""
    from edgetrack.runtime.motion.analyze import analyze_predictions, split_tracks
    from edgetrack.runtime.motion.network import predict_frames
    from edgetrack.runtime.motion.ensemble import confined_votes
    from edgetrack.training.andi import challenge_dataset

    from .data import fov_table, tracks_of

    runner = TorchRunner(model)
    votes, truth, weight = [], [], []
    for k, name in enumerate(("confinement", "multi_state", "dimerization")):
        data = challenge_dataset(name, n_experiments, np.random.default_rng([seed, k]))
        tracks = tracks_of(data, 0)
        for e in range(n_experiments):
            rows = np.flatnonzero(data.trajectories.experiment == e)
            if rows.size == 0:
                continue
            table = fov_table(tracks, rows)
            items = split_tracks(table)
            res = analyze_predictions(table, items, predict_frames([t.positions for t in items], runner),
                                      harmonise=False, calibration=calibration, extras=False)
            if res.summary is None:
                continue
            seg = res.segments
            probs = np.concatenate([s.state_prob for s in res.track_segments])
            lab = seg["ensemble_state"].to_numpy()
            frames = seg["n_frames"].to_numpy()
            confined = np.array([np.mean(tracks.state[rows[int(t)]][a:b + 1] == 1) for t, a, b in
                                 seg[["track_id", "start", "end"]].itertuples(index=False)])
            for c, share in confined_votes(lab, seg["state"].to_numpy(), probs, frames, res.summary.immobile,
                                           seg["paired_fraction"].to_numpy()).items():
                sel = lab == c
                votes.append(share)
                truth.append(np.average(confined[sel], weights=frames[sel]) > 0.5)
                weight.append(frames[sel].sum())
    v, t, w = np.array(votes), np.array(truth), np.array(weight, dtype=float)
    candidates = np.unique(np.r_[0.0, v, 1.0])
    mids = (candidates[1:] + candidates[:-1]) / 2
    acc = np.array([np.sum(w * ((v > m) == t)) / w.sum() for m in mids])
    best = int(np.argmax(acc))
    return float(mids[best]), float(acc[best])
