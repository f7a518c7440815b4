"""edgetrack runtime: the tracking pipeline (detect, graph, associate, link, stream) without PyTorch."""

from __future__ import annotations

__version__ = "0.2.0"
