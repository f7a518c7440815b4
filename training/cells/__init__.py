"""Simulated cell movies (label masks, lineage, fluorescence images, segmentation errors) for training."""

from .simulate import CellMovie, CellSimConfig, simulate_cells

__all__ = ["CellSimConfig", "CellMovie", "simulate_cells"]
