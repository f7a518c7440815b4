"""DeepSPT-style temporal segmentation (Kaestel-Hansen et al.): simulated heterogeneous tracks, an
ensemble of 1-D U-Nets, temperature scaling and ONNX export. Train and export with
``python -m edgetrack.training.deepspt train --ndim 2 --seed 0 --out exported_models/``."""

from __future__ import annotations

from .sim import SimConfig, TrackSet, simulate_tracks

__all__ = ["SimConfig", "TrackSet", "simulate_tracks"]
