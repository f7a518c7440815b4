"""The Trackastra-style cell association transformer: model, training data, training, ONNX export.

``python -m edgetrack.training.cell_assoc train --seed 0 --out exported_models/`` trains it on
simulated cell movies and exports ``cell_assoc.onnx`` with its manifest entry; the runtime side
(no torch) is :mod:`edgetrack.runtime.associate.cell_transformer`.
"""
