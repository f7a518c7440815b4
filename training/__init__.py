"""edgetrack training: simulators and model training (PyTorch where models are trained)."""
