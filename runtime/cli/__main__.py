"""``python -m edgetrack.runtime.cli``: the command line."""

import sys

from edgetrack.runtime.cli.app import main

sys.exit(main())
