"""``python -m edgetrack.training.magik``: see :mod:`edgetrack.training.magik.cli`."""

import sys

from .cli import main

sys.exit(main())
