"""``python -m edgetrack.training.andi_model``: see :mod:`edgetrack.training.andi_model.cli`."""

import sys

from .cli import main

sys.exit(main())
