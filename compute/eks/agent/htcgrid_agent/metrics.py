"""Prometheus metrics the agent exports (``--metrics-port``)."""

from prometheus_client import Counter, Gauge, Histogram

TASKS = Counter("htcgrid_agent_tasks_total", "Attempts finished, by outcome", ["outcome"])
HANDLER_SECONDS = Histogram("htcgrid_agent_handler_seconds", "Time spent in the handler")
BUSY_SLOTS = Gauge("htcgrid_agent_busy_slots", "Slots running a task now")
