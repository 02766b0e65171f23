"""Prometheus metrics the agent exports (``--metrics-port``), named and described by the grid's
metric catalogue (``htcgrid_core.metrics_catalogue``), where docs/monitoring.md lists them."""

from prometheus_client import Counter, Gauge, Histogram

from htcgrid_core import metrics_catalogue as catalogue
from htcgrid_core.metrics_catalogue import Metric


def _counter(metric: Metric) -> Counter:
    return Counter(metric.name, metric.meaning, list(metric.labels))


TASKS = _counter(catalogue.AGENT_TASKS)
HANDLER_SECONDS = Histogram(
    catalogue.AGENT_HANDLER_SECONDS.name, catalogue.AGENT_HANDLER_SECONDS.meaning
)
#: Seconds, short: waits that tell whether agents keep up with their queues.
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
QUEUE_WAIT_SECONDS = Histogram(
    catalogue.AGENT_QUEUE_WAIT_SECONDS.name,
    catalogue.AGENT_QUEUE_WAIT_SECONDS.meaning,
    buckets=_WAIT_BUCKETS,
)
START_DELAY_SECONDS = Histogram(
    catalogue.AGENT_START_DELAY_SECONDS.name,
    catalogue.AGENT_START_DELAY_SECONDS.meaning,
    buckets=_WAIT_BUCKETS,
)
BUSY_SLOTS = Gauge(catalogue.AGENT_BUSY_SLOTS.name, catalogue.AGENT_BUSY_SLOTS.meaning)
SLOTS = Gauge(catalogue.AGENT_SLOTS.name, catalogue.AGENT_SLOTS.meaning)
CLAIM_CONFLICTS = _counter(catalogue.AGENT_CLAIM_CONFLICTS)
THROTTLES = _counter(catalogue.AGENT_THROTTLES)
NOTICES = _counter(catalogue.AGENT_NOTICES)
RUNTIME_RESTARTS = _counter(catalogue.AGENT_RUNTIME_RESTARTS)


def count_throttle(service: str) -> None:
    """A throttled reply to one of the agent's AWS calls (``htcgrid_core.throttles``)."""
    THROTTLES.labels(service).inc()
