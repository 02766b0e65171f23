"""Fixture layer: proves a function can import its layer's code under the local grid.

It also holds what the grid's core holds in ``htcgrid_core.observability``: one Powertools
Metrics object that every function of the layer records into. Functions running as threads of
one process shared it, and one function's flush published another's metrics.
"""

from aws_lambda_powertools import Metrics

MARKER = "fixture-layer"

metrics = Metrics(namespace="fixture")
