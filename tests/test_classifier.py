"""Downstream classifier: training, cross-validation, ONNX export (numpy parity), application, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from edgetrack.runtime.motion.classifier import (
    ClassifierConfig,
    apply_classifier,
    export_classifier,
    read_classifier_metadata,
    train_classifier,
)
from edgetrack.runtime.errors import ConfigError, InputError, ModelError

pytest.importorskip("onnx")


def _blobs(n: int = 120, seed: int = 0, labels=("slow", "fast")) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    a = rng.normal(0, 1, n) + 2.5 * y
    b = rng.normal(0, 1, n)
    c = np.full(n, 4.0)  # constant: dropped
    feats = pd.DataFrame({"track_id": np.arange(n) + 100, "a": a * 50.0, "b": b, "c": c})
    lab = pd.DataFrame({"track_id": np.arange(n) + 100, "label": [labels[k] for k in y]})
    return feats, lab


def test_logistic_regression_cross_validates_exports_and_applies(tmp_path):
    feats, lab = _blobs()
    clf = train_classifier(feats, lab, ClassifierConfig(folds=4, threshold=0.7))
    assert clf.feature_names == ("a", "b")
    assert clf.cv["folds"] == 4 and clf.cv["accuracy"] > 0.85
    assert len(clf.cv["fold_accuracy"]) == 4
    path = export_classifier(clf, tmp_path / "m.onnx")
    out = apply_classifier(path, feats)
    assert list(out.columns) == ["track_id", "label", "confidence", "accepted"]
    assert list(out["track_id"]) == list(feats["track_id"])
    prob = clf.predict_proba(feats[["a", "b"]].to_numpy())
    np.testing.assert_allclose(out["confidence"].to_numpy(), prob.max(axis=1), atol=1e-5)
    assert list(out["label"]) == [clf.classes[i] for i in prob.argmax(axis=1)]
    assert (out["accepted"] == (out["confidence"] >= 0.7)).all()
    assert np.mean(out["label"].to_numpy() == lab["label"].to_numpy()) > 0.85
    meta = read_classifier_metadata(path)
    assert meta["classes"] == ["fast", "slow"] and meta["threshold"] == 0.7
    assert meta["cross_validation"]["accuracy"] == pytest.approx(clf.cv["accuracy"])
    # NaN features are imputed with the training mean, and the threshold can be overridden
    nan_feats = feats.assign(b=np.nan)
    out2 = apply_classifier(path, nan_feats, threshold=0.0)
    assert out2["accepted"].all() and np.isfinite(out2["confidence"]).all()


def test_mlp_learns_what_a_linear_model_cannot(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    a, b = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    y = ((a > 0) ^ (b > 0)).astype(int)
    feats = pd.DataFrame({"track_id": np.arange(n), "a": a, "b": b})
    lab = pd.DataFrame({"track_id": np.arange(n), "label": y})
    lin = train_classifier(feats, lab, ClassifierConfig(model="logistic"))
    mlp = train_classifier(feats, lab, ClassifierConfig(model="mlp", hidden=8, l2=1e-4, seed=1))
    assert lin.cv["accuracy"] < 0.7 < 0.85 < mlp.cv["accuracy"]
    path = export_classifier(mlp, tmp_path / "mlp.onnx")
    out = apply_classifier(path, feats)
    np.testing.assert_allclose(out["confidence"], mlp.predict_proba(feats[["a", "b"]].to_numpy()).max(axis=1), atol=1e-5)
    assert out["label"].dtype.kind in "iu"  # integer labels come back as integers


def test_classifier_errors(tmp_path):
    feats, lab = _blobs()
    with pytest.raises(InputError, match="two classes"):
        train_classifier(feats, lab.assign(label="x"))
    with pytest.raises(InputError, match="match"):
        train_classifier(feats, lab.assign(track_id=lab["track_id"] + 10_000))
    with pytest.raises(ConfigError):
        ClassifierConfig(model="forest")
    clf = train_classifier(feats, lab)
    path = export_classifier(clf, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="lack column"):
        apply_classifier(path, feats.drop(columns="a"))
    with pytest.raises(ModelError, match="no such file"):
        apply_classifier(tmp_path / "none.onnx", feats)
    other = tmp_path / "other.onnx"
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), other)
    with pytest.raises(ModelError, match="not an edgetrack"):
        apply_classifier(other, feats)


def _walks(n_tracks: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n_tracks):
        kind = i % 2
        steps = rng.normal(0, 1.0, (60, 2))
        if kind:
            steps += rng.normal(0, 1, 2) / np.sqrt(2) * 1.0 + np.array([0.8, 0.0])
        pos = np.cumsum(steps, axis=0)
        rows.append(pd.DataFrame({"track_id": i, "frame": np.arange(60), "y": pos[:, 0], "x": pos[:, 1]}))
        labels.append((i, "directed" if kind else "free"))
    return pd.concat(rows, ignore_index=True), pd.DataFrame(labels, columns=["track_id", "label"])


def test_train_classifier_command(tmp_path, capsys):
    from edgetrack.runtime.cli.app import main

    tracks, labels = _walks(40, 1)
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code = main(["train-classifier", str(tmp_path / "tracks.csv"), "--labels", str(tmp_path / "labels.csv"),
                 "--out", str(tmp_path / "clf.onnx"), "--folds", "4", "--no-modes"])
    assert code == 0
    err = capsys.readouterr().err
    assert "cross-validated accuracy" in err
    meta = read_classifier_metadata(tmp_path / "clf.onnx")
    assert meta["cross_validation"]["accuracy"] > 0.9
    assert not any(name.startswith("frac_") for name in meta["feature_names"])  # no modes asked for
    from edgetrack.runtime.motion.fingerprints import fingerprint_table

    out = apply_classifier(tmp_path / "clf.onnx", fingerprint_table(tracks))
    assert np.mean(out["label"].to_numpy() == labels["label"].to_numpy()) > 0.9
    code = main(["train-classifier", str(tmp_path / "tracks.csv"), "--labels", str(tmp_path / "tracks.csv"),
                 "--out", str(tmp_path / "x.onnx")])
    assert code == 2 and "label" in capsys.readouterr().err
    assert json.loads(json.dumps(meta))  # metadata is plain JSON
