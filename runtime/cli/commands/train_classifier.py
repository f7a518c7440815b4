"""``edgetrack train-classifier TRACKS.csv --labels LABELS.csv --out MODEL.onnx``: learn to classify tracks
from their diffusional fingerprints (and DeepSPT modes when that model is installed)."""

from __future__ import annotations

import argparse

HELP = "train a track classifier on diffusional fingerprints from labelled tracks; save it as ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tracks", help="CSV or Parquet table with columns track_id, frame, y, x (optional z), px")
    parser.add_argument("--labels", required=True, help="CSV or Parquet table with columns track_id, label")
    parser.add_argument("--out", required=True, help="output model file (.onnx)")
    parser.add_argument("--model", choices=("logistic", "mlp"), default="logistic",
                        help="multinomial logistic regression (default) or a one-hidden-layer MLP")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units of the MLP (default 16)")
    parser.add_argument("--l2", type=float, default=1e-2, help="L2 penalty on the weights (default 0.01)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--threshold", type=float, default=0.6,
                        help="confidence a prediction needs to be accepted, in [0, 1] (default 0.6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and initial weights (default 0)")
    parser.add_argument("--no-modes", action="store_true",
                        help="do not run the DeepSPT segmentation (fingerprints without the mode features)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from edgetrack.runtime.motion.classifier import ClassifierConfig, export_classifier, train_classifier
    from edgetrack.runtime.errors import InputError, ModelError
    from edgetrack.runtime.motion.fingerprints import fingerprint_table
    from edgetrack.runtime.io.tables import read_table

    config = ClassifierConfig(model=args.model, hidden=args.hidden, l2=args.l2, folds=args.folds,
                              threshold=args.threshold, seed=args.seed)
    tracks = read_table(args.tracks, ("track_id", "frame", "y", "x"))
    labels = read_table(args.labels, ("track_id",))
    if "label" not in labels.columns:
        raise InputError(f"{args.labels}: missing required column label (found: {', '.join(map(str, labels.columns))})")
    labelled = tracks[tracks["track_id"].isin(labels["track_id"])]
    modes = None
    if not args.no_modes:
        from edgetrack.runtime.motion.deepspt import segment_tracks

        try:
            modes = segment_tracks(labelled)
        except ModelError as exc:
            if not args.quiet:
                print(f"edgetrack train-classifier: no DeepSPT modes ({exc}); training without the mode features",
                      file=sys.stderr)
    features = fingerprint_table(labelled, modes=modes)
    clf = train_classifier(features, labels, config)
    out = export_classifier(clf, Path(args.out))
    if not args.quiet:
        cv = clf.cv
        print(f"{cv['n_tracks']} labelled tracks, {len(clf.classes)} classes, {len(clf.feature_names)} features; "
              f"{cv['folds']}-fold cross-validated accuracy {cv['accuracy']:.3f} +/- {cv['accuracy_std']:.3f}; "
              f"accepted at confidence >= {config.threshold:g}: {cv['accepted_fraction']:.3f} of tracks, "
              f"accuracy {cv['accepted_accuracy']:.3f} -> {out}", file=sys.stderr)
    return 0
