"""Exported ONNX models: the manifest, sha256 checks, ONNX Runtime sessions and their providers."""

from __future__ import annotations

from edgetrack.runtime.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {"load_model": "onnx", "model_names": "onnx", "read_manifest": "onnx", "models_dir": "onnx"})
