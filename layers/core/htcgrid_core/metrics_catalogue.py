"""Every metric the grid emits, named once: the Lambdas' EMF metrics and the agents' Prometheus
metrics, with unit, dimensions or labels, meaning and emitter.

The code that emits a metric takes its name from here (``observability.emit`` in the Lambdas,
``htcgrid_agent.metrics`` in the agent), ``docs/monitoring.md`` is generated from it
(``render_markdown``), and the template's dashboard and alarms are checked against it. None of
them costs an AWS write per task: EMF metrics are log lines the Lambdas already write, and the
agents' metrics are scraped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Source(StrEnum):
    """Where a metric is published."""

    #: CloudWatch, through Embedded Metric Format lines in a function's log.
    EMF = "CloudWatch (EMF)"
    #: The agent's Prometheus endpoint (``--metrics-port``).
    PROMETHEUS = "Prometheus"


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


#: The EMF namespace: one per stack (``POWERTOOLS_METRICS_NAMESPACE`` in template.yaml), so
#: two stacks in one account and region never add up each other's tasks.
EMF_NAMESPACE = "htcgrid/<stack name>"
#: The dimension Powertools gives every EMF metric: the function's ``POWERTOOLS_SERVICE_NAME``.
SERVICE = "service"


@dataclass(frozen=True)
class Metric:
    """One metric: what a dashboard or an alarm may refer to."""

    name: str
    source: Source
    kind: Kind
    #: CloudWatch unit (EMF), or what the number counts or measures (Prometheus).
    unit: str
    meaning: str
    #: Who emits it: the function(s) by service name, or the agent.
    emitter: str
    #: EMF dimensions, or Prometheus labels.
    labels: tuple[str, ...] = ()
    #: The values each label takes, where the set is closed.
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _emf(name: str, emitter: str, meaning: str) -> Metric:
    return Metric(name, Source.EMF, Kind.COUNTER, "Count", meaning, emitter, (SERVICE,))


# --- the Lambdas (EMF) -----------------------------------------------------------------------

TASKS_PERSISTED = _emf("TasksPersisted", "submission", "tasks submitted (persisted as PENDING)")
TASKS_DISPATCHED = _emf(
    "TasksDispatched",
    "submission, dispatch",
    "tasks sent to their priority queue by a submission (a small one's by the submission "
    "function itself)",
)
ATTEMPTS_RETRIED = _emf(
    "AttemptsRetried", "retry", "failed attempts given another attempt (after a backoff)"
)
TASKS_FAILED = _emf(
    "TasksFailed", "retry", "tasks ended FAILED: attempts spent or a permanent error"
)
TASKS_CANCELLED = _emf("TasksCancelled", "cancel", "tasks the cancel function ended CANCELLED")
LEASES_EXPIRED = _emf(
    "LeasesExpired", "reaper", "running attempts whose lease expired (a dead or stuck agent)"
)
TASKS_DEAD_LETTERED = _emf(
    "TasksDeadLettered", "reaper", "task messages found in a DLQ and handed to the retry workflow"
)
TASKS_REDISPATCHED = _emf(
    "TasksRedispatched", "reaper", "tasks of a submission never dispatched, dispatched again"
)
RESULT_QUEUES_OPENED = _emf("ResultQueuesOpened", "session", "sessions' result queues created")
RESULT_QUEUES_CLOSED = _emf("ResultQueuesClosed", "session", "sessions' result queues deleted")
RECORDS_DELETED = _emf("RecordsDeleted", "delete", "table records deleted with their sessions")
#: One per query action (``StatusFunctionInput``'s ``action``), named ``<Action>Queries``.
STATUS_QUERIES = {
    action: _emf(f"{action.capitalize()}Queries", "status", f"{action} queries answered")
    for action in ("status", "results", "tasks", "sessions")
}
THROTTLES_SEEN = _emf(
    "ThrottlesSeen",
    "every function",
    "AWS replies that throttled a call (each retried with backoff by botocore)",
)

# --- the agents (Prometheus) -----------------------------------------------------------------

#: Outcomes of ``AGENT_TASKS``. ``duplicate`` and ``held_elsewhere`` are claim conflicts too.
ATTEMPT_OUTCOMES = (
    "succeeded",
    "failed_attempt",
    "cancelled",
    "duplicate",
    "held_elsewhere",
    "poison",
)
AGENT_TASKS = Metric(
    "htcgrid_agent_tasks_total",
    Source.PROMETHEUS,
    Kind.COUNTER,
    "attempts",
    "attempts finished, by outcome: succeeded, failed_attempt (handed to the retry workflow), "
    "cancelled, duplicate (the attempt was over: a redelivery or a lost lease), held_elsewhere "
    "(another agent holds its lease), poison (not a task message)",
    "agent",
    ("outcome",),
    {"outcome": ATTEMPT_OUTCOMES},
)
AGENT_HANDLER_SECONDS = Metric(
    "htcgrid_agent_handler_seconds",
    Source.PROMETHEUS,
    Kind.HISTOGRAM,
    "seconds",
    "an attempt's duration in the handler (or the Lambda runtime)",
    "agent",
)
AGENT_QUEUE_WAIT_SECONDS = Metric(
    "htcgrid_agent_queue_wait_seconds",
    Source.PROMETHEUS,
    Kind.HISTOGRAM,
    "seconds",
    "a message's first delivery: from its send (SQS SentTimestamp) to this agent's receive "
    "(rising: agents do not keep up, scale out)",
    "agent",
)
AGENT_START_DELAY_SECONDS = Metric(
    "htcgrid_agent_start_delay_seconds",
    Source.PROMETHEUS,
    Kind.HISTOGRAM,
    "seconds",
    "from the receive to the handler's start (prefetched tasks wait here; rising with long "
    "tasks: a smaller --prefetch)",
    "agent",
)
AGENT_BUSY_SLOTS = Metric(
    "htcgrid_agent_busy_slots",
    Source.PROMETHEUS,
    Kind.GAUGE,
    "slots",
    "slots running a task now",
    "agent",
)
AGENT_SLOTS = Metric(
    "htcgrid_agent_slots",
    Source.PROMETHEUS,
    Kind.GAUGE,
    "slots",
    "slots this agent runs (--slots): utilisation is busy_slots / slots",
    "agent",
)
CLAIM_STEPS = ("claim", "record", "lease")
AGENT_CLAIM_CONFLICTS = Metric(
    "htcgrid_agent_claim_conflicts_total",
    Source.PROMETHEUS,
    Kind.COUNTER,
    "writes",
    "conditional writes to the task table that lost to another writer: a claim of an attempt "
    "someone else holds or that is over, a result whose attempt is over, a lease extension "
    "after the lease was lost",
    "agent",
    ("step",),
    {"step": CLAIM_STEPS},
)
AGENT_THROTTLES = Metric(
    "htcgrid_agent_throttles_total",
    Source.PROMETHEUS,
    Kind.COUNTER,
    "replies",
    "AWS replies that throttled one of the agent's calls (each retried with backoff)",
    "agent",
    ("service",),
)
NOTICE_OUTCOMES = ("sent", "failed")
AGENT_NOTICES = Metric(
    "htcgrid_agent_notices_total",
    Source.PROMETHEUS,
    Kind.COUNTER,
    "messages",
    "result notices to sessions' result queues: sent, or failed (the queue is gone; the "
    "results stay readable in the table)",
    "agent",
    ("outcome",),
    {"outcome": NOTICE_OUTCOMES},
)
RESTART_REASONS = ("timeout", "exit", "init_error", "no_next", "cancel")
AGENT_RUNTIME_RESTARTS = Metric(
    "htcgrid_agent_runtime_restarts_total",
    Source.PROMETHEUS,
    Kind.COUNTER,
    "restarts",
    "Lambda runtimes (Runtime API slots) killed or lost, by reason: timeout (an attempt ran "
    "past its timeout), exit (the runtime exited or dropped an invocation), init_error (it "
    "failed to start), no_next (it stopped asking for work), cancel (the agent stopped the "
    "attempt: cancelled, lease lost, or the agent aborting)",
    "agent",
    ("reason",),
    {"reason": RESTART_REASONS},
)

#: Every metric, in the order docs/monitoring.md lists them.
CATALOGUE: tuple[Metric, ...] = (
    TASKS_PERSISTED,
    TASKS_DISPATCHED,
    ATTEMPTS_RETRIED,
    TASKS_FAILED,
    TASKS_CANCELLED,
    LEASES_EXPIRED,
    TASKS_DEAD_LETTERED,
    TASKS_REDISPATCHED,
    RESULT_QUEUES_OPENED,
    RESULT_QUEUES_CLOSED,
    RECORDS_DELETED,
    *STATUS_QUERIES.values(),
    THROTTLES_SEEN,
    AGENT_TASKS,
    AGENT_HANDLER_SECONDS,
    AGENT_QUEUE_WAIT_SECONDS,
    AGENT_START_DELAY_SECONDS,
    AGENT_BUSY_SLOTS,
    AGENT_SLOTS,
    AGENT_CLAIM_CONFLICTS,
    AGENT_THROTTLES,
    AGENT_NOTICES,
    AGENT_RUNTIME_RESTARTS,
)


def emf_names() -> set[str]:
    """The names of the metrics the Lambdas publish to CloudWatch."""
    return {metric.name for metric in CATALOGUE if metric.source is Source.EMF}


def render_markdown() -> str:
    """The metric tables of docs/monitoring.md (between its generated-section markers)."""
    lines: list[str] = []
    for source in Source:
        lines += [
            f"### {source}",
            "",
            "| metric | kind | unit | dimensions / labels | emitted by | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for metric in CATALOGUE:
            if metric.source is not source:
                continue
            labels = ", ".join(
                f"{label} ({' '.join(metric.values[label])})" if label in metric.values else label
                for label in metric.labels
            )
            lines.append(
                f"| `{metric.name}` | {metric.kind} | {metric.unit} | {labels} "
                f"| {metric.emitter} | {metric.meaning} |"
            )
        lines.append("")
    return "\n".join(lines)
