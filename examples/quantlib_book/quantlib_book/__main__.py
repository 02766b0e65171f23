"""``python -m quantlib_book``: the client (client.py)."""

import sys

from .client import main

sys.exit(main())
