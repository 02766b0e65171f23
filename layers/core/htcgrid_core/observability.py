"""Powertools Logger, Tracer and Metrics, created once for every Lambda of the grid.

Every handler takes the same decorators in the same order through ``lambda_entrypoint``, so
logs carry the request id, traces cover the handler and metrics are flushed on every return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

# Service names come from POWERTOOLS_SERVICE_NAME, set per function in template.yaml.
logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="htcgrid")

Handler = Callable[[dict[str, Any], Any], Any]


def lambda_entrypoint(handler: Handler) -> Handler:
    """Wrap a Lambda handler with context logging, X-Ray capture and EMF metrics flushing.

    The trace records the handler's timing, cold start and errors, never its response: the
    submission function returns every task's payload and the status function returns results,
    and the trace is readable by anyone with X-Ray access, who may have no right to either.
    Errors stay in the trace: they name fields and limits, never values (``parse_document``).
    """
    traced = tracer.capture_lambda_handler(handler, capture_response=False)
    measured = metrics.log_metrics(traced)
    return logger.inject_lambda_context(clear_state=True)(measured)
