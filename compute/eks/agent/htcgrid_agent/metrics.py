"""Prometheus metrics the agent exports (``--metrics-port``)."""

from prometheus_client import Counter, Gauge, Histogram

TASKS = Counter("htcgrid_agent_tasks_total", "Attempts finished, by outcome", ["outcome"])
HANDLER_SECONDS = Histogram("htcgrid_agent_handler_seconds", "Time spent in the handler")
#: Seconds, short: waits that tell whether agents keep up with their queues.
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
QUEUE_WAIT_SECONDS = Histogram(
    "htcgrid_agent_queue_wait_seconds",
    "From a task message's send (SQS SentTimestamp, first delivery) to this agent receiving it",
    buckets=_WAIT_BUCKETS,
)
START_DELAY_SECONDS = Histogram(
    "htcgrid_agent_start_delay_seconds",
    "From this agent receiving a task to its handler starting (prefetched tasks wait here)",
    buckets=_WAIT_BUCKETS,
)
BUSY_SLOTS = Gauge("htcgrid_agent_busy_slots", "Slots running a task now")
