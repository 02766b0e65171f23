"""``python -m htcgrid.cli``: the same as the ``htcgrid`` command."""

import sys

from htcgrid.cli import main

sys.exit(main())
