"""edgetrack's own classifier (hand-written L-BFGS fit, stratified k-fold, ONNX graph) against
scikit-learn + skl2onnx on the same fingerprints: accuracy, time, and what each needs installed.

Tracks: DeepSPT's recipe without switching (one mode per track: normal, directed, confined,
subdiffusive), 100-300 points; features: the 40 diffusional fingerprints.

    python benchmarks/bench_classifier.py [--tracks 800] [--seed 0]
(needs the train extra for the simulator, scikit-learn and skl2onnx for the comparison)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def labelled_fingerprints(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from edgetrack.runtime.motion.fingerprints import fingerprint_table
    from edgetrack.training.deepspt.sim import simulate_tracks

    ts = simulate_tracks(n, seed=seed, switching_fraction=0.0, min_length=100, max_length=300)
    rows = []
    for i in range(n):
        p = ts.positions[ts.offsets[i]:ts.offsets[i + 1]]
        rows.append(pd.DataFrame({"track_id": i, "frame": np.arange(len(p)), "y": p[:, 0], "x": p[:, 1]}))
    tracks = pd.concat(rows, ignore_index=True)
    labels = pd.DataFrame({"track_id": np.arange(n), "label": ts.labels[ts.offsets[:-1]]})
    return fingerprint_table(tracks), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    feats, labels = labelled_fingerprints(args.tracks, args.seed)
    x = feats.drop(columns=["track_id"]).to_numpy(np.float64)
    y = labels["label"].to_numpy()
    print(f"{len(y)} tracks, {x.shape[1]} features, classes {np.bincount(y).tolist()}")

    from edgetrack.runtime.motion.classifier import ClassifierConfig, export_classifier, train_classifier

    out = Path(tempfile.mkdtemp())
    for model in ("logistic", "mlp"):
        t0 = time.perf_counter()
        clf = train_classifier(feats, labels, ClassifierConfig(model=model))
        t_fit = time.perf_counter() - t0
        export_classifier(clf, out / f"{model}.onnx")
        print(f"edgetrack {model:8s}: 5-fold accuracy {clf.cv['accuracy']:.3f} +- {clf.cv['accuracy_std']:.3f}, "
              f"cv + fit {t_fit:.2f} s")

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.impute import SimpleImputer
    from skl2onnx import to_onnx

    folds = StratifiedKFold(5, shuffle=True, random_state=args.seed)
    for name, est in (("logistic", LogisticRegression(max_iter=500, C=1.0)),
                      ("mlp", MLPClassifier((16,), activation="tanh", max_iter=500, random_state=args.seed))):
        pipe = make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(), est)
        t0 = time.perf_counter()
        scores = cross_val_score(pipe, x, y, cv=folds)
        pipe.fit(x, y)
        onx = to_onnx(pipe, x[:1].astype(np.float32))
        t_fit = time.perf_counter() - t0
        print(f"sklearn   {name:8s}: 5-fold accuracy {scores.mean():.3f} +- {scores.std():.3f}, "
              f"cv + fit + skl2onnx {t_fit:.2f} s, ONNX {len(onx.SerializeToString()) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
