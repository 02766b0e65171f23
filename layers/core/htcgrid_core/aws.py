"""boto3 clients configured once for the whole grid.

botocore's standard retry mode retries throttling, 5xx and connection errors with exponential
backoff and jitter; every grid component gets its clients here so none of them forgets it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.context import get_context

from htcgrid_core import faults, throttles
from htcgrid_core.backoff import backoff_s
from htcgrid_core.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: Batch requests of one call sent at once (``in_parallel``): a submission of 1,000 tasks is 40
#: BatchWriteItem and 100 SendMessageBatch requests, each a round trip of several ms on AWS.
PARALLEL_REQUESTS = 8

#: Retries for throttling and transient failures; "standard" adds backoff with full jitter.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    max_pool_connections=64,
    connect_timeout=5,
    read_timeout=30,
)


def make_client(
    session: boto3.session.Session,
    service: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    validate_parameters: bool = True,
) -> Any:
    """A boto3 client from ``session`` with the grid's retry configuration. Without
    ``validate_parameters`` botocore does not check requests against the API's model before
    sending them: for callers whose every request is built by the grid's code from validated
    documents (the agent), where the check is a few % of the CPU; AWS still refuses a
    malformed request, as a ``ClientError`` (ValidationException) instead of botocore's
    ``ParamValidationError``."""
    config = RETRY_CONFIG
    if not validate_parameters:
        config = config.merge(Config(parameter_validation=False))
    if endpoint_url:
        # An emulator answers on one host: never prefix it (boto3 adds "sync-" for
        # StartSyncExecution).
        config = config.merge(Config(inject_host_prefix=False))
    made = session.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        config=config,
    )
    throttles.watch(made)
    reuse_user_agent(made)
    fault_spec = get_settings().faults
    if fault_spec:
        faults.install(made, faults.parse(fault_spec))
    return made


def reuse_user_agent(made: Any) -> None:
    """Build ``made``'s User-Agent header once per set of features it names, not twice per
    request. botocore assembles the string from a dozen parts (SDK, OS, Python, config, app
    id, the features the call used) and sanitises each, for every request and again when the
    request is created: 4-7 % of an agent's CPU. The parts other than the features are fixed
    for a client's life, so the string for a given set of features is always the same one."""
    creator = made._user_agent_creator  # botocore builds the header through this object only
    built: dict[tuple[frozenset[str], frozenset[str]], str] = {}

    def to_string() -> str:
        context = get_context()
        key = (
            frozenset(creator._client_features or ()),
            frozenset(context.features) if context is not None else frozenset(),
        )
        found = built.get(key)
        if found is None:
            found = built[key] = type(creator).to_string(creator)
        return found

    # An instance attribute: both of botocore's calls (``self.to_string()``) find it first.
    creator.to_string = to_string


@lru_cache(maxsize=64)
def client(
    service: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    validate_parameters: bool = True,
) -> Any:
    """A shared, thread-safe boto3 client for ``service`` from the default credential chain
    (created on first use, not at import); ``validate_parameters`` as for ``make_client``."""
    return make_client(
        boto3.session.Session(),
        service,
        endpoint_url,
        region,
        validate_parameters=validate_parameters,
    )


def dynamodb(
    endpoint_url: str | None = None, region: str | None = None, validate_parameters: bool = True
) -> DynamoDBClient:
    return client("dynamodb", endpoint_url, region, validate_parameters)  # type: ignore[no-any-return]


def sqs(
    endpoint_url: str | None = None, region: str | None = None, validate_parameters: bool = True
) -> SQSClient:
    return client("sqs", endpoint_url, region, validate_parameters)  # type: ignore[no-any-return]


def s3(
    endpoint_url: str | None = None, region: str | None = None, validate_parameters: bool = True
) -> S3Client:
    return client("s3", endpoint_url, region, validate_parameters)  # type: ignore[no-any-return]


def back_off(attempt: int, *, base_s: float, cap_s: float) -> None:
    """Wait before the next try of a call after try ``attempt`` failed: capped exponential
    (``base_s * 2**attempt``, at most ``cap_s``), full jitter."""
    time.sleep(backoff_s(attempt, base_s=base_s, cap_s=cap_s))


def pause_before_resend(attempt: int) -> None:
    """Back off before re-sending the items of a batch call that AWS left unprocessed (boto3
    retries failed requests, not partly failed ones)."""
    back_off(attempt, base_s=0.05, cap_s=2.0)


def in_parallel(
    send: Callable[[ItemT], ResultT],
    batches: Iterable[ItemT],
    workers: int = PARALLEL_REQUESTS,
) -> list[ResultT]:
    """``send`` every batch, up to ``workers`` at a time, and wait for all of them: their
    results, in the order of ``batches``. The first error, if any, is raised once every batch
    has been tried (each does its own retries). The first batch is sent on the calling thread,
    the others on a pool of ``workers - 1`` threads: none for the common small call, and one
    thread fewer to start (about a millisecond each) for the others. Every batch runs in a copy
    of the caller's context, so context-local state (a request's tracing or accounting) follows
    it into the pool. (In Lambda, X-Ray gives each thread the invocation's segment, so the
    pool's calls are traced as well.) The one way the grid fans calls out over threads."""
    items = list(batches)
    if len(items) <= 1 or workers <= 1:
        return [send(item) for item in items]
    first: Future[ResultT] = Future()
    with ThreadPoolExecutor(max_workers=min(workers, len(items)) - 1) as pool:
        # As asyncio.to_thread does: a copy of the context per call.
        futures = [pool.submit(contextvars.copy_context().run, send, item) for item in items[1:]]
        try:
            first.set_result(contextvars.copy_context().run(send, items[0]))
        except Exception as error:  # raised below, in the batches' order, once all are done
            first.set_exception(error)
    return [future.result() for future in [first, *futures]]
