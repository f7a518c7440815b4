"""``python -m edgetrack``: the command line."""

import sys

from edgetrack.runtime.cli.app import main

sys.exit(main())
