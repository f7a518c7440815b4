"""The per-frame motion network (2nd AnDi Challenge tasks) in PyTorch: data, model, training, export.

* :mod:`.data`: simulated challenge experiments cut into tracks, batches with per-point targets;
* :mod:`.model`: :class:`~.model.MotionNet`, a masked 1-D attention U-Net;
* :mod:`.train`: training loop and held-out per-point metrics;
* :mod:`.export`: ONNX export (dynamic batch and length) and parity check;
* :mod:`.cli`: ``python -m edgetrack.training.andi_model train --seed 0 --out exported_models``.

The run-time side (features, inference, post-processing) is :mod:`edgetrack.runtime.motion.network`
and :mod:`edgetrack.runtime.motion.analyze`.
"""
