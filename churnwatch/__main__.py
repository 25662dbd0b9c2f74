"""``python -m churnwatch`` is the ``churnwatch`` command."""

import sys

from churnwatch.cli import main

sys.exit(main())
