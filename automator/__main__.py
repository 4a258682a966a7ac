"""``python -m automator``: the same entry point as the ``automator`` console script."""

import sys

from automator.cli import main

sys.exit(main())
