"""The layout of the detector's arrays: the columns of the spot table and of the working spot state,
and the fitting tolerances shared by the detection kernels (:mod:`~edgetrack.runtime.detect.filters`,
:mod:`~edgetrack.runtime.detect.fitting`, :mod:`~edgetrack.runtime.detect.deblend`).
"""

from __future__ import annotations

# Column order of the feature array returned by :func:`spot_table`.
COL_Y, COL_X, COL_MASS, COL_SIZE, COL_SIGNAL, COL_ECC = 0, 1, 2, 3, 4, 5
N_COLS = 6
# Columns of the working spot state (float64 (n, ST_COLS)) passed between the fitting kernels.
ST_Y, ST_X, ST_AMP, ST_BG, ST_SIG = 0, 1, 2, 3, 4
ST_COLS = 5
STEP_TOL = 0.005  # px; refinement stops once a step is smaller in both y and x
DEBLEND_TOL = 0.005  # px; deblending refits the neighbours of spots that moved more
