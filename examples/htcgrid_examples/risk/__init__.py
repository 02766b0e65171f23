"""Portfolio Monte Carlo risk on the grid: 1-day and 10-day VaR and Expected Shortfall at 99 %
of a book of equity and rate positions, the scenarios sharded across tasks by seed and reduced
in the client. ``python -m htcgrid_examples.risk``; README.md says how it works.
"""
