"""``python -m htcgrid_local``: the local grid's command line (see ``cli``)."""

from htcgrid_local.cli import main

main()
