"""What a task costs on AWS and how fast the grid can go: pure functions over measured counts.

The request accounting (``htcgrid_local.accounting``) counts every AWS call of a run on the
local grid; :func:`task_requests` turns its per-task summary into :class:`TaskRequests`,
:func:`cost_per_million` prices them with ``prices.toml`` (requests only, or with a stated
compute assumption for Lambda and Express durations), and :func:`limits` finds, for each AWS
quota the design touches, the task rate at which it binds. :func:`requirements` says what a
target rate (e.g. 100,000 tasks/s) needs of each quota and of the design.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# --- prices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prices:
    """US dollars per unit (not per million): one request, one write unit, one GB-second."""

    dynamodb_wru: float
    dynamodb_rru: float
    sqs_request: float
    sqs_chunk_bytes: int
    s3_put: float
    s3_get: float
    lambda_request: float
    lambda_gb_s: float
    sfn_request: float
    sfn_gb_s: float
    sfn_step_s: float
    sfn_memory_mb: int
    #: Service -> (source URL, date checked), for the report.
    sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def parse_prices(document: Mapping[str, Any]) -> Prices:
    """Prices from the parsed ``prices.toml`` (per-million and per-thousand figures scaled)."""
    ddb, sqs, s3 = document["dynamodb"], document["sqs"], document["s3"]
    fn, sfn = document["lambda"], document["stepfunctions_express"]
    return Prices(
        dynamodb_wru=ddb["usd_per_million_wru"] / 1e6,
        dynamodb_rru=ddb["usd_per_million_rru"] / 1e6,
        sqs_request=sqs["usd_per_million_requests"] / 1e6,
        sqs_chunk_bytes=int(sqs["billing_chunk_bytes"]),
        s3_put=s3["usd_per_thousand_put"] / 1e3,
        s3_get=s3["usd_per_thousand_get"] / 1e3,
        lambda_request=fn["usd_per_million_requests"] / 1e6,
        lambda_gb_s=fn["usd_per_gb_second"],
        sfn_request=sfn["usd_per_million_requests"] / 1e6,
        sfn_gb_s=sfn["usd_per_gb_second"],
        sfn_step_s=sfn["billing_step_s"],
        sfn_memory_mb=int(sfn["billing_memory_mb"]),
        sources={
            name: (str(document[name]["source"]), str(document[name]["checked"]))
            for name in ("dynamodb", "sqs", "s3", "lambda", "stepfunctions_express")
        },
    )


def load_prices(path: Path | None = None) -> Prices:
    """The dated list prices shipped with this package (or those in ``path``)."""
    if path is not None:
        text = path.read_text(encoding="utf-8")
    else:
        text = resources.files("htcgrid_bench").joinpath("prices.toml").read_text("utf-8")
    return parse_prices(tomllib.loads(text))


# --- what a task uses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ComputeAssumption:
    """Durations the local grid cannot measure for AWS (its Lambdas run in an emulator).

    Defaults: the template's 512 MB functions; a submission batch of a few hundred tasks takes
    the persist Lambda one BatchWriteItem per 25 tasks and the dispatch Lambda one
    SendMessageBatch per 10, about 100 ms each warm; the Express execution spans both.
    """

    lambda_memory_mb: int = 512
    lambda_duration_s: float = 0.1
    #: Memory an Express execution is billed for (its state is well under 64 MB).
    sfn_memory_mb: int = 64
    sfn_duration_s: float = 0.25


@dataclass(frozen=True)
class TaskRequests:
    """AWS usage per task, as measured by the request accounting."""

    dynamodb_wru: float
    dynamodb_rru: float
    #: SQS requests, each assumed under 64 KB (one billing chunk; notices and messages of
    #: small tasks are a few KB).
    sqs_requests: float
    s3_put: float = 0.0
    s3_get: float = 0.0
    lambda_invocations: float = 0.0
    sfn_executions: float = 0.0

    @property
    def tasks_per_execution(self) -> float:
        """Tasks per submission batch (one Express execution each)."""
        return 1.0 / self.sfn_executions if self.sfn_executions else math.inf


def task_requests(
    summary: Mapping[str, float], s3_put: float = 0.0, s3_get: float = 0.0
) -> TaskRequests:
    """From ``Accounting.summary(tasks)``; its ``s3_requests`` are all split as given (the
    bench's tasks make none)."""
    return TaskRequests(
        dynamodb_wru=summary["dynamodb_wru"],
        dynamodb_rru=summary["dynamodb_rru"],
        sqs_requests=summary["sqs_requests"],
        s3_put=s3_put,
        s3_get=s3_get,
        lambda_invocations=summary["lambda_invocations"],
        sfn_executions=summary["sfn_executions"],
    )


# --- dollars ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """US dollars per million tasks, by service."""

    by_service: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(self.by_service.values())


def billed_sfn_gb_s(duration_s: float, memory_mb: int, prices: Prices) -> float:
    """GB-seconds an Express execution is billed: duration rounded up to 100 ms, memory up to
    64 MB chunks."""
    steps = max(1, math.ceil(round(duration_s / prices.sfn_step_s, 9)))
    chunks = max(1, math.ceil(memory_mb / prices.sfn_memory_mb))
    return steps * prices.sfn_step_s * chunks * prices.sfn_memory_mb / 1024


def cost_per_million(
    requests: TaskRequests, prices: Prices, compute: ComputeAssumption | None = None
) -> Cost:
    """Dollars per million tasks: requests only, or with ``compute``'s Lambda and Express
    durations. Worker compute (EKS nodes) is not included: it is the user's handler's cost."""
    million = 1e6
    by_service = {
        "dynamodb": million
        * (
            requests.dynamodb_wru * prices.dynamodb_wru
            + requests.dynamodb_rru * prices.dynamodb_rru
        ),
        "sqs": million * requests.sqs_requests * prices.sqs_request,
        "s3": million * (requests.s3_put * prices.s3_put + requests.s3_get * prices.s3_get),
        "lambda": million * requests.lambda_invocations * prices.lambda_request,
        "stepfunctions": million * requests.sfn_executions * prices.sfn_request,
    }
    if compute is not None:
        lambda_gb_s = compute.lambda_duration_s * compute.lambda_memory_mb / 1024
        by_service["lambda"] += (
            million * requests.lambda_invocations * lambda_gb_s * prices.lambda_gb_s
        )
        sfn_gb_s = billed_sfn_gb_s(compute.sfn_duration_s, compute.sfn_memory_mb, prices)
        by_service["stepfunctions"] += (
            million * requests.sfn_executions * sfn_gb_s * prices.sfn_gb_s
        )
    return Cost(by_service)


# --- throughput ceiling -------------------------------------------------------------------------


@dataclass(frozen=True)
class Quotas:
    """AWS quotas (defaults: a new account in us-east-1) and the design's own constants."""

    #: On-demand table: maximum write/read units per second per table (adjustable).
    table_wru_per_s: float = 40_000
    table_rru_per_s: float = 40_000
    #: What a newly created on-demand table serves at once (its warm throughput); it grows
    #: with traffic, or is set up front with the table's WarmThroughput property.
    warm_wru_per_s: float = 4_000
    warm_rru_per_s: float = 12_000
    #: One partition key value takes at most this many write units per second.
    partition_wru_per_s: float = 1_000
    #: Partition keys a session's tasks are spread over (``htcgrid_core.keys.SESSION_SHARDS``).
    session_shards: int = 64
    #: Express StartExecution/StartSyncExecution refill rate per second per account.
    sfn_starts_per_s: float = 6_000
    #: Concurrent Lambda executions per account and region.
    lambda_concurrency: float = 1_000
    #: Messages received but not yet deleted, per standard queue.
    sqs_in_flight_per_queue: float = 120_000
    #: Task queues the load spreads over (one per priority level in use).
    task_queues: int = 1
    #: Task tables the load spreads over.
    tables: int = 1


@dataclass(frozen=True)
class Workload:
    """The shape of the load, besides its per-task requests."""

    #: How long a handler runs.
    task_duration_s: float = 0.01
    #: How long a message is in flight besides the handler: waiting in an agent's prefetch
    #: buffer and for the batched delete (the agent flushes every 0.25 s when busy).
    held_s: float = 0.5
    #: Lambda seconds per submission batch (persist + dispatch).
    lambda_seconds_per_execution: float = 0.2
    #: Sessions submitting at once (each spreads its tasks over its own shards).
    sessions: int = 1


@dataclass(frozen=True)
class Limit:
    """A quota and the task rate at which it binds."""

    name: str
    tasks_per_s: float
    why: str


def limits(
    requests: TaskRequests,
    workload: Workload,
    quotas: Quotas,
    *,
    prewarmed: bool = False,
) -> list[Limit]:
    """Every quota's task-rate ceiling, lowest (the one that binds first) first."""
    wru, rru = requests.dynamodb_wru, max(requests.dynamodb_rru, 1e-9)
    per_execution = requests.tasks_per_execution
    in_flight_s = workload.task_duration_s + workload.held_s
    found = [
        Limit(
            "DynamoDB table write units",
            quotas.tables * quotas.table_wru_per_s / wru,
            f"{quotas.table_wru_per_s:,.0f} WRU/s per table / {wru:.2f} WRU per task",
        ),
        Limit(
            "DynamoDB table read units",
            quotas.tables * quotas.table_rru_per_s / rru,
            f"{quotas.table_rru_per_s:,.0f} RRU/s per table / {rru:.3f} RRU per task",
        ),
        Limit(
            "DynamoDB partition keys of a session",
            workload.sessions * quotas.session_shards * quotas.partition_wru_per_s / wru,
            f"{quotas.session_shards} keys x {quotas.partition_wru_per_s:,.0f} WRU/s"
            f" x {workload.sessions} session(s) / {wru:.2f} WRU per task",
        ),
        Limit(
            "Step Functions Express starts",
            quotas.sfn_starts_per_s * per_execution,
            f"{quotas.sfn_starts_per_s:,.0f} starts/s x {per_execution:,.0f} tasks per execution",
        ),
        Limit(
            "Lambda concurrency",
            quotas.lambda_concurrency / workload.lambda_seconds_per_execution * per_execution,
            f"{quotas.lambda_concurrency:,.0f} concurrent / {workload.lambda_seconds_per_execution}"
            f" s per execution x {per_execution:,.0f} tasks per execution",
        ),
        Limit(
            "SQS in-flight messages",
            quotas.task_queues * quotas.sqs_in_flight_per_queue / in_flight_s,
            f"{quotas.sqs_in_flight_per_queue:,.0f} per queue x {quotas.task_queues} queue(s)"
            f" / {in_flight_s:g} s in flight per task",
        ),
    ]
    if not prewarmed:
        found.append(
            Limit(
                "DynamoDB new table warm throughput",
                quotas.tables * quotas.warm_wru_per_s / wru,
                f"{quotas.warm_wru_per_s:,.0f} WRU/s a new on-demand table serves at once"
                f" / {wru:.2f} WRU per task",
            )
        )
    return sorted(found, key=lambda limit: limit.tasks_per_s)


def ceiling(
    requests: TaskRequests, workload: Workload, quotas: Quotas, *, prewarmed: bool = False
) -> Limit:
    """The quota that binds first, and at what rate."""
    return limits(requests, workload, quotas, prewarmed=prewarmed)[0]


@dataclass(frozen=True)
class Requirement:
    """What a target task rate needs of one resource, against its default."""

    name: str
    needed: float
    default: float
    change: str

    @property
    def within_default(self) -> bool:
        return self.needed <= self.default


def requirements(
    target_tps: float, requests: TaskRequests, workload: Workload, quotas: Quotas | None = None
) -> list[Requirement]:
    """For ``target_tps`` tasks/s: each quota's needed value and the change that gets it."""
    quotas = quotas or Quotas()
    wru = requests.dynamodb_wru * target_tps
    shards = math.ceil(wru / workload.sessions / quotas.partition_wru_per_s)
    shards_pow2 = 1 << max(0, shards - 1).bit_length()
    in_flight = target_tps * (workload.task_duration_s + workload.held_s)
    queues = math.ceil(in_flight / quotas.sqs_in_flight_per_queue)
    executions = target_tps / requests.tasks_per_execution
    return [
        Requirement(
            "table write units/s",
            wru,
            quotas.table_wru_per_s,
            "raise the table's quota (adjustable), or spread sessions over "
            f"{math.ceil(wru / quotas.table_wru_per_s)} tables",
        ),
        Requirement(
            "warm write units/s at creation",
            wru,
            quotas.warm_wru_per_s,
            f"WarmThroughput.WriteUnitsPerSecond: {math.ceil(wru):,} on the table",
        ),
        Requirement(
            "partition keys per session",
            shards,
            quotas.session_shards,
            f"SESSION_SHARDS = {shards_pow2}" if shards > quotas.session_shards else "none",
        ),
        Requirement(
            "Express starts/s",
            executions,
            quotas.sfn_starts_per_s,
            "none" if executions <= quotas.sfn_starts_per_s else "raise the start quota",
        ),
        Requirement(
            "Lambda concurrency",
            executions * workload.lambda_seconds_per_execution,
            quotas.lambda_concurrency,
            "none"
            if executions * workload.lambda_seconds_per_execution <= quotas.lambda_concurrency
            else "raise concurrency",
        ),
        Requirement(
            "in-flight messages",
            in_flight,
            quotas.sqs_in_flight_per_queue * quotas.task_queues,
            "none" if queues <= quotas.task_queues else f"{queues} task queues per priority",
        ),
    ]


# --- the reference design, counted the same way ------------------------------------------------


def htc_grid_task_requests(
    tasks_per_submission: float = 100.0,
    item_bytes: int = 700,
    polls_per_session: float = 10.0,
) -> TaskRequests:
    """HTC-Grid's requests per short task (finos/htc-grid, S3 data plane, no heartbeat due),
    read from its source at commit 1db40d55:

    - client ``api/connector.py``: one S3 PUT per task payload (``put_input_from_bytes``) and
      one per submission (``put_payload_from_bytes``); ``get_results`` polls the get_results
      Lambda until the session is done, then one S3 GET per task output;
    - ``lambda/submit_tasks/submit_tasks.py`` (one invocation per submission): one S3 GET of
      the submission, ``batch_write`` of the PENDING rows (1 WRU each), ``send_messages`` in
      chunks of 10 (0.1 SQS request per task);
    - agent ``agent/agent.py``: ``receive_message`` with ``MaxNumberOfMessages=1``
      (``api/task_queue_sqs.py``), ``claim_task_for_agent`` (UpdateItem), ``change_visibility``,
      S3 GET of the input, S3 PUT of the output, ``update_task_status_to_finished``
      (UpdateItem), ``delete_message``; a TTL refresh write only for tasks that outlive the
      refresh interval;
    - ``lambda/get_results/get_results.py``: each poll queries the session's finished, cancelled
      and failed rows (eventually consistent reads of every finished row so far: on average
      half the session per poll).

    Empty receives, API Gateway requests and the get_results Lambda's own invocations are left
    out (they are per poll or per idle agent, not per task), so this is a floor.
    """
    read_units_per_row = item_bytes / 4096 / 2  # eventually consistent, rows packed in 4 KB
    return TaskRequests(
        dynamodb_wru=3.0 * max(1, math.ceil(item_bytes / 1024)),
        dynamodb_rru=polls_per_session * 0.5 * read_units_per_row,
        sqs_requests=0.1 + 1.0 + 1.0 + 1.0,
        s3_put=2.0 + 1.0 / tasks_per_submission,
        s3_get=2.0 + 1.0 / tasks_per_submission,
        lambda_invocations=1.0 / tasks_per_submission,
        sfn_executions=0.0,
    )
