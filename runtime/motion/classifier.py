"""A downstream classifier of tracks from their diffusional fingerprints, trained on a user's labels.

Training (numpy + scipy, no torch): the fingerprint columns that hold information (not all NaN,
not constant) are standardised (mean and standard deviation of the training tracks; a missing
value becomes the mean), then either a multinomial logistic regression or a small MLP (one tanh
hidden layer) is fitted by L-BFGS on the L2-regularised cross-entropy. The accuracy is estimated
by stratified k-fold cross-validation before the final fit on every track.

The model is saved as a self-contained ONNX graph (built with the ``onnx`` helper API): input
``features`` float32 (n, F) in the order of its ``feature_names``; NaN -> training mean;
standardise; linear layer(s); softmax -> output ``probabilities`` float32 (n, K). Its metadata
(``metadata_props``) holds the feature names, the class labels, the confidence threshold and the
cross-validation scores, so :func:`apply_classifier` needs only onnxruntime.

A prediction is ``accepted`` when its confidence (largest class probability) reaches the
threshold; below it the label is still given but should be read as "uncertain".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgetrack.runtime.config import StageConfig, require
from edgetrack.runtime.errors import InputError, ModelError

__all__ = [
    "ClassifierConfig",
    "TrainedClassifier",
    "train_classifier",
    "cross_validate",
    "export_classifier",
    "apply_classifier",
    "read_classifier_metadata",
]

MODEL_KIND = "edgetrack.fingerprint_classifier"
OPSET = 17
_ID_COLUMNS = ("track_id", "start", "end")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(StageConfig):
    """Options of the downstream classifier.

    model: ``"logistic"`` (multinomial logistic regression) or ``"mlp"`` (one hidden tanh layer of
    ``hidden`` units). l2: weight of the L2 penalty (per track, on the weights, not the biases).
    folds: cross-validation folds (stratified; at most the size of the smallest class).
    threshold: confidence (largest probability) needed for a prediction to be accepted, in [0, 1].
    seed: seeds the folds and the MLP's initial weights. max_iter: L-BFGS iterations.
    """

    model: str = "logistic"
    hidden: int = 16
    l2: float = 1e-2
    folds: int = 5
    threshold: float = 0.6
    seed: int = 0
    max_iter: int = 500

    def validate(self) -> None:
        require(self.model in ("logistic", "mlp"), f"model must be 'logistic' or 'mlp', got {self.model!r}")
        require(self.hidden >= 1, "hidden must be >= 1")
        require(self.l2 >= 0.0, "l2 must be >= 0")
        require(self.folds >= 2, "folds must be >= 2")
        require(0.0 <= self.threshold <= 1.0, "threshold must be in [0, 1]")
        require(self.max_iter >= 1, "max_iter must be >= 1")


@dataclasses.dataclass
class TrainedClassifier:
    """A fitted classifier: feature names, standardisation, layers, classes and scores.

    layers: list of (W (in, out), b (out,)) float64; a tanh follows every layer but the last.
    """

    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    classes: list[Any]
    config: ClassifierConfig
    cv: dict[str, Any]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, K) of raw features x (n, F) (NaN -> mean)."""
        z = _standardise(np.asarray(x, dtype=np.float64), self.mean, self.std)
        return _softmax(_forward(z, self.layers))


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (x - mean) / std
    z[~np.isfinite(z)] = 0.0
    return z


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _forward(z: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    h = z
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.tanh(h)
    return h


def _shapes(n_in: int, n_out: int, cfg: ClassifierConfig) -> list[tuple[int, int]]:
    return [(n_in, n_out)] if cfg.model == "logistic" else [(n_in, cfg.hidden), (cfg.hidden, n_out)]


def _unpack(theta: np.ndarray, shapes: list[tuple[int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    layers = []
    k = 0
    for a, b in shapes:
        w = theta[k:k + a * b].reshape(a, b)
        k += a * b
        layers.append((w, theta[k:k + b]))
        k += b
    return layers


def _fit(z: np.ndarray, y: np.ndarray, n_classes: int, cfg: ClassifierConfig, rng: np.random.Generator):
    """L-BFGS fit of the layers on standardised features z (n, F) and labels y (n,) in 0..K-1."""
    from scipy.optimize import minimize

    n = z.shape[0]
    shapes = _shapes(z.shape[1], n_classes, cfg)
    parts = []
    for a, b in shapes:
        scale = 0.0 if cfg.model == "logistic" else 1.0 / np.sqrt(a)
        parts += [rng.normal(0.0, scale, a * b) if scale else np.zeros(a * b), np.zeros(b)]
    theta0 = np.concatenate(parts)
    onehot = np.eye(n_classes)[y]

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        layers = _unpack(theta, shapes)
        acts = [z]
        h = z
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = np.tanh(h)
                acts.append(h)
        p = _softmax(h)
        loss = -np.sum(onehot * np.log(np.clip(p, 1e-300, None))) / n
        grads = []
        delta = (p - onehot) / n
        for i in range(len(layers) - 1, -1, -1):
            w, _ = layers[i]
            gw = acts[i].T @ delta + cfg.l2 * w
            gb = delta.sum(axis=0)
            grads.append((gw, gb))
            if i > 0:
                delta = (delta @ w.T) * (1.0 - acts[i] ** 2)
        loss += 0.5 * cfg.l2 * sum(float(np.sum(w * w)) for w, _ in layers)
        flat = np.concatenate([np.concatenate([gw.ravel(), gb]) for gw, gb in reversed(grads)])
        return float(loss), flat

    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": cfg.max_iter})
    return _unpack(res.x, shapes)


def _prepare(features: pd.DataFrame, labels: pd.DataFrame | pd.Series) -> tuple[np.ndarray, np.ndarray, list[str], list[Any]]:
    if not isinstance(features, pd.DataFrame) or "track_id" not in features.columns:
        raise InputError("features must be a table with a track_id column (the output of fingerprint_table)")
    if isinstance(labels, pd.Series):
        labels = labels.rename("label").rename_axis("track_id").reset_index()
    if not isinstance(labels, pd.DataFrame) or any(c not in labels.columns for c in ("track_id", "label")):
        raise InputError("labels must be a table with columns track_id, label")
    if labels["label"].isna().any():
        raise InputError("labels contain missing values")
    if labels["track_id"].duplicated().any():
        dup = labels["track_id"][labels["track_id"].duplicated()].iloc[0]
        raise InputError(f"track {dup!r} has more than one label")
    if features["track_id"].duplicated().any():
        raise InputError("features must have one row per track (per-track fingerprints)")
    merged = features.merge(labels[["track_id", "label"]], on="track_id", how="inner")
    if merged.empty:
        raise InputError("no labelled track has features: check that the track_id values of the two tables match")
    names = [c for c in features.columns if c not in _ID_COLUMNS and pd.api.types.is_numeric_dtype(features[c])]
    x = merged[names].to_numpy(dtype=np.float64, copy=True)
    x[~np.isfinite(x)] = np.nan
    informative = []
    for j, name in enumerate(names):
        col = x[:, j]
        finite = col[np.isfinite(col)]
        if finite.size and np.nanmax(finite) > np.nanmin(finite):
            informative.append(j)
    if not informative:
        raise InputError("no feature varies across the labelled tracks")
    classes = sorted(pd.unique(merged["label"]).tolist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise InputError(f"need at least two classes, the labels hold only {classes!r}")
    code = {c: i for i, c in enumerate(classes)}
    y = merged["label"].map(code).to_numpy().astype(np.int64)
    return x[:, informative], y, [names[j] for j in informative], classes


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std[~(std > 0)] = 1.0
    mean[~np.isfinite(mean)] = 0.0
    return mean, std


def _folds(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified fold index (n,) in 0..k-1: each class spread evenly over the folds."""
    fold = np.empty(y.size, dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(idx.size) + offset) % k
        offset += idx.size
    return fold


def cross_validate(x: np.ndarray, y: np.ndarray, n_classes: int, config: ClassifierConfig) -> dict[str, Any]:
    """Stratified k-fold accuracy of the classifier on raw features x (n, F) and labels y (n,)."""
    counts = np.bincount(y, minlength=n_classes)
    k = int(min(config.folds, counts[counts > 0].min()))
    if k < 2:
        return {"folds": 0, "accuracy": float("nan"), "accuracy_std": float("nan"), "fold_accuracy": [],
                "accepted_fraction": float("nan"), "accepted_accuracy": float("nan"),
                "note": "a class has fewer than 2 tracks: no cross-validation"}
    rng = np.random.default_rng(config.seed)
    fold = _folds(y, k, rng)
    accs = []
    correct_all = np.zeros(y.size, dtype=bool)
    conf_all = np.zeros(y.size)
    for f in range(k):
        test = fold == f
        mean, std = _stats(x[~test])
        layers = _fit(_standardise(x[~test], mean, std), y[~test], n_classes, config, rng)
        p = _softmax(_forward(_standardise(x[test], mean, std), layers))
        correct_all[test] = p.argmax(axis=1) == y[test]
        conf_all[test] = p.max(axis=1)
        accs.append(float(np.mean(correct_all[test])))
    accepted = conf_all >= config.threshold
    return {"folds": k, "accuracy": float(np.mean(correct_all)), "accuracy_std": float(np.std(accs)),
            "fold_accuracy": accs, "accepted_fraction": float(np.mean(accepted)),
            "accepted_accuracy": float(np.mean(correct_all[accepted])) if accepted.any() else float("nan")}


def train_classifier(features: pd.DataFrame, labels: pd.DataFrame | pd.Series,
                     config: ClassifierConfig | None = None) -> TrainedClassifier:
    """Cross-validate, then fit on every labelled track.

    features: one row per track, ``track_id`` + numeric feature columns (for example the output of
    :func:`edgetrack.runtime.motion.fingerprints.fingerprint_table`); labels: ``track_id, label`` (any
    hashable labels; a Series indexed by track_id also works). Tracks without a label are ignored.
    """
    cfg = config or ClassifierConfig()
    x, y, names, classes = _prepare(features, labels)
    cv = cross_validate(x, y, len(classes), cfg)
    cv["n_tracks"] = int(y.size)
    cv["class_counts"] = {str(c): int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)))}
    mean, std = _stats(x)
    layers = _fit(_standardise(x, mean, std), y, len(classes), cfg, np.random.default_rng(cfg.seed + 1))
    train_acc = float(np.mean(_softmax(_forward(_standardise(x, mean, std), layers)).argmax(axis=1) == y))
    cv["train_accuracy"] = train_acc
    return TrainedClassifier(tuple(names), mean, std, layers, classes, cfg, cv)


def export_classifier(clf: TrainedClassifier, path: Path | str) -> Path:
    """Write ``clf`` as an ONNX model (see the module docstring); needs the ``onnx`` package."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ModelError("saving a classifier needs the 'onnx' package: pip install onnx") from None
    from edgetrack.runtime.io.atomic import atomic_open

    f32 = np.float32
    inits = [numpy_helper.from_array(clf.mean.astype(f32), "mean"),
             numpy_helper.from_array((1.0 / clf.std).astype(f32), "inv_std")]
    nodes = [helper.make_node("IsNaN", ["features"], ["is_nan"]),
             helper.make_node("Where", ["is_nan", "mean", "features"], ["filled"]),
             helper.make_node("Sub", ["filled", "mean"], ["centred"]),
             helper.make_node("Mul", ["centred", "inv_std"], ["h0"])]
    h = "h0"
    for i, (w, b) in enumerate(clf.layers):
        inits += [numpy_helper.from_array(w.astype(f32), f"w{i}"), numpy_helper.from_array(b.astype(f32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"lin{i}"])]
        h = f"lin{i}"
        if i < len(clf.layers) - 1:
            nodes.append(helper.make_node("Tanh", [h], [f"act{i}"]))
            h = f"act{i}"
    nodes.append(helper.make_node("Softmax", [h], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "fingerprint_classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", len(clf.feature_names)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(clf.classes)])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgetrack", ir_version=8)
    meta = {
        "kind": MODEL_KIND,
        "feature_names": json.dumps(list(clf.feature_names)),
        "classes": json.dumps([c.item() if isinstance(c, np.generic) else c for c in clf.classes]),
        "threshold": repr(float(clf.config.threshold)),
        "config": json.dumps(clf.config.to_dict()),
        "cross_validation": json.dumps(clf.cv),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx.checker.check_model(model)
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return path


def _session(model_path: Path | str):
    import onnxruntime as ort

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"classifier {path}: no such file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"classifier {path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("kind") != MODEL_KIND:
        raise ModelError(f"{path} is not an edgetrack fingerprint classifier (train one with edgetrack train-classifier)")
    return session, meta


def read_classifier_metadata(model_path: Path | str) -> dict[str, Any]:
    """Feature names, classes, threshold, config and cross-validation scores stored in a classifier."""
    _, meta = _session(model_path)
    return {"feature_names": json.loads(meta["feature_names"]), "classes": json.loads(meta["classes"]),
            "threshold": float(meta["threshold"]), "config": json.loads(meta.get("config", "{}")),
            "cross_validation": json.loads(meta.get("cross_validation", "{}"))}


def apply_classifier(model_path: Path | str, features: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Classify tracks (or segments) with a model written by :func:`export_classifier`.

    features: a table with ``track_id`` and the model's feature columns (extra columns are
    ignored; NaN is allowed). threshold: overrides the model's confidence threshold. Returns one
    row per input row, in order: ``track_id, label, confidence, accepted`` (confidence = largest
    class probability; accepted = confidence >= threshold). Raises ModelError for a missing or
    foreign model file, InputError for missing feature columns.
    """
    session, meta = _session(model_path)
    names = json.loads(meta["feature_names"])
    classes = json.loads(meta["classes"])
    thr = float(meta["threshold"]) if threshold is None else float(threshold)
    if not isinstance(features, pd.DataFrame) or "track_id" not in features.columns:
        raise InputError("features must be a table with a track_id column")
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise InputError(f"features lack column(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                         f"that the classifier {Path(model_path).name} needs")
    x = features[names].to_numpy(dtype=np.float64, copy=True)
    x[~np.isfinite(x)] = np.nan
    if len(x):
        prob = session.run(None, {"features": x.astype(np.float32)})[0]
    else:
        prob = np.zeros((0, len(classes)), dtype=np.float32)
    best = prob.argmax(axis=1) if len(prob) else np.zeros(0, dtype=np.int64)
    conf = prob.max(axis=1).astype(np.float64) if len(prob) else np.zeros(0)
    label = pd.Series([classes[i] for i in best], dtype=object if classes and isinstance(classes[0], str) else None)
    return pd.DataFrame({"track_id": features["track_id"].to_numpy(), "label": label.to_numpy(),
                         "confidence": conf, "accepted": conf >= thr})
