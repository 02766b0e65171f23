"""``python -m htcgrid_sweep``: see ``client``."""

import sys

from htcgrid_sweep.client import main

sys.exit(main())
