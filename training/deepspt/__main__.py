"""``python -m edgetrack.training.deepspt``: see :mod:`edgetrack.training.deepspt.cli`."""

import sys

from .cli import main

sys.exit(main())
