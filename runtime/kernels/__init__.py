"""Numba kernels shared by several stages (sorting); the bottom layer, beside io and models."""
