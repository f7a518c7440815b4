"""``python -m edgetrack.training.cell_assoc``: see :mod:`edgetrack.training.cell_assoc.cli`."""

import sys

from .cli import main

sys.exit(main())
