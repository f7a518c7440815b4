"""The GPU path (the gpu extra): every shipped model opens with the CUDA provider and matches the CPU.

Skips, saying why, where there is no NVIDIA driver or no CUDA-enabled onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from edgetrack.runtime.info import dummy_inputs
from edgetrack.runtime.models.onnx import load_model, model_names, nvidia_driver_present

ort = pytest.importorskip("onnxruntime")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not nvidia_driver_present(), reason="no NVIDIA driver on this machine (libcuda not found)"),
    pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                       reason="this onnxruntime has no CUDA provider (install edgetrack[gpu])"),
]


@pytest.mark.parametrize("name", model_names())
def test_model_on_cuda_matches_cpu(name):
    cuda = load_model(name, provider="cuda")
    cpu = load_model(name, provider="cpu")
    assert cuda.provider == "CUDAExecutionProvider"
    feed = dummy_inputs(cpu.session)
    rng = np.random.default_rng(0)
    for key, value in feed.items():
        if value.dtype == np.float32 and "mask" not in key:
            feed[key] = rng.normal(size=value.shape).astype(np.float32)
    for a, b in zip(cuda.session.run(None, feed), cpu.session.run(None, feed)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
