"""Per-frame scores of a temporal segmentation (numpy only): accuracy, F1 per class and macro F1,
confusion matrix, mean per-track accuracy and expected calibration error."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgetrack.runtime.motion.deepspt import MODES
from edgetrack.runtime.errors import InputError

__all__ = ["frame_scores", "expected_calibration_error"]


def frame_scores(true: Sequence[np.ndarray], pred: Sequence[np.ndarray], n_classes: int = len(MODES)) -> dict:
    """Scores of predicted labels against true labels, track by track.

    true, pred: sequences of (T_i,) int arrays (labels 0..n_classes-1; predictions < 0 count as
    wrong). Returns accuracy (pooled over all frames), mean_track_accuracy, f1 per class (named by
    :data:`MODES`), macro_f1, confusion (rows true, columns predicted) and n_frames / n_tracks.
    """
    if len(true) != len(pred):
        raise InputError(f"{len(true)} true tracks but {len(pred)} predicted tracks")
    t = np.concatenate([np.asarray(a, dtype=np.int64) for a in true]) if len(true) else np.zeros(0, np.int64)
    p = np.concatenate([np.asarray(a, dtype=np.int64) for a in pred]) if len(pred) else np.zeros(0, np.int64)
    if t.shape != p.shape:
        raise InputError("true and predicted labels differ in length")
    ok = (p >= 0) & (p < n_classes)
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (t[ok], p[ok]), 1)
    tp = np.diag(conf).astype(float)
    support = np.bincount(t, minlength=n_classes).astype(float)
    predicted = conf.sum(axis=0).astype(float)
    prec = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n_classes), where=(prec + rec) > 0)
    present = support > 0
    per_track = [float(np.mean(np.asarray(a) == np.asarray(b))) for a, b in zip(true, pred) if len(a)]
    names = MODES if n_classes == len(MODES) else tuple(str(k) for k in range(n_classes))
    return {
        "accuracy": float(tp.sum() / max(1, t.size)),
        "mean_track_accuracy": float(np.mean(per_track)) if per_track else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "f1": {names[k]: float(f1[k]) for k in range(n_classes)},
        "confusion": conf.tolist(),
        "n_frames": int(t.size),
        "n_tracks": int(len(true)),
    }


def expected_calibration_error(prob: np.ndarray, true: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class probability: prob (N, K) rows summing to 1, true (N,) labels."""
    prob = np.asarray(prob, dtype=np.float64)
    true = np.asarray(true, dtype=np.int64)
    if prob.ndim != 2 or prob.shape[0] != true.shape[0]:
        raise InputError("prob must be (N, K) and true (N,)")
    if prob.shape[0] == 0:
        return float("nan")
    conf = prob.max(axis=1)
    correct = prob.argmax(axis=1) == true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    acc = np.bincount(which, weights=correct.astype(float), minlength=bins)
    avg = np.bincount(which, weights=conf, minlength=bins)
    nz = count > 0
    return float(np.sum(np.abs(acc[nz] - avg[nz])) / conf.size)
