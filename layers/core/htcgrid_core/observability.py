"""Powertools Logger, Tracer and Metrics, created once for every Lambda of the grid.

Every handler takes the same decorators in the same order through ``lambda_entrypoint``, so
logs carry the request id, traces cover the handler and metrics are flushed on every return.
Metric names come from ``metrics_catalogue`` (``emit``), never from a string at the call site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from htcgrid_core import throttles
from htcgrid_core.metrics_catalogue import THROTTLES_SEEN, Metric

# Service names come from POWERTOOLS_SERVICE_NAME, set per function in template.yaml.
logger = Logger()
tracer = Tracer()
# The namespace is the stack's (POWERTOOLS_METRICS_NAMESPACE, set in template.yaml).
metrics = Metrics()

Handler = Callable[[dict[str, Any], Any], Any]


def lambda_entrypoint(handler: Handler) -> Handler:
    """Wrap a Lambda handler with context logging, X-Ray capture and EMF metrics flushing.

    The trace records the handler's timing, cold start and errors, never its response: the
    submission function returns every task's payload and the status function returns results,
    and the trace is readable by anyone with X-Ray access, who may have no right to either.
    Errors stay in the trace: they name fields and limits, never values (``parse_document``).
    """
    throttles.listen(_count_throttle)
    route_core_logs()
    traced = tracer.capture_lambda_handler(handler, capture_response=False)
    measured = metrics.log_metrics(traced)
    return logger.inject_lambda_context(clear_state=True)(measured)


def route_core_logs() -> None:
    """The core's own log lines (``logging.getLogger(__name__)`` in its modules) go out as
    the handler's do: JSON, with the invocation's keys (request id, session id)."""
    logging.getLogger("htcgrid_core")  # the parent of every core module's logger
    copy_config_to_registered_loggers(source_logger=logger, include={"htcgrid_core"})


def emit(metric: Metric, value: float) -> None:
    """Add ``value`` to a catalogue metric, flushed with the invocation's EMF line."""
    metrics.add_metric(name=metric.name, unit=metric.unit, value=value)


def _count_throttle(service: str) -> None:
    # One metric for every service: its dimensions are the function's (Powertools flushes one
    # dimension set per invocation), and the X-Ray trace names the throttled call.
    emit(THROTTLES_SEEN, 1)
