"""Exported ONNX models shipped with edgetrack, with their manifest."""
