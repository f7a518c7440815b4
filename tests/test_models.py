"""Execution-provider selection: GPU providers are tried only where the NVIDIA driver is present."""

from __future__ import annotations

import pytest

from edgetrack.runtime.models import onnx as models
from edgetrack.runtime.errors import InputError


def test_automatic_choice_skips_gpus_without_a_driver(monkeypatch):
    monkeypatch.setattr(models, "nvidia_driver_present", lambda: False)
    assert models._provider_list(None) == ["CPUExecutionProvider"]
    monkeypatch.setattr(models, "nvidia_driver_present", lambda: True)
    assert models._provider_list(None) == list(models.PROVIDER_ORDER)
    assert models._provider_list(None)[-1] == "CPUExecutionProvider"


def test_explicit_choice_is_kept_and_checked():
    assert models._provider_list("cuda") == ["CUDAExecutionProvider"]
    with pytest.raises(InputError, match="unknown execution provider"):
        models._provider_list("metal")
