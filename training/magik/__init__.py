"""MAGIK graph network (Pineda et al., Nat. Mach. Intell. 5, 71-82, 2023): model, training graphs,
training, ONNX export. Run ``python -m edgetrack.training.magik train --task link --seed 0 --out
exported_models/`` to train a model and add it to the exported models."""

from __future__ import annotations

from .model import Magik, MagikConfig

__all__ = ["Magik", "MagikConfig"]
