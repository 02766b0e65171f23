"""boto3 clients configured once for the whole grid.

botocore's standard retry mode retries throttling, 5xx and connection errors with exponential
backoff and jitter; every grid component gets its clients here so none of them forgets it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

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
) -> Any:
    """A boto3 client from ``session`` with the grid's retry configuration."""
    config = RETRY_CONFIG
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
    fault_spec = get_settings().faults
    if fault_spec:
        faults.install(made, faults.parse(fault_spec))
    return made


@lru_cache(maxsize=64)
def client(service: str, endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A shared, thread-safe boto3 client for ``service`` from the default credential chain
    (created on first use, not at import)."""
    return make_client(boto3.session.Session(), service, endpoint_url, region)


def dynamodb(endpoint_url: str | None = None, region: str | None = None) -> DynamoDBClient:
    return client("dynamodb", endpoint_url, region)  # type: ignore[no-any-return]


def sqs(endpoint_url: str | None = None, region: str | None = None) -> SQSClient:
    return client("sqs", endpoint_url, region)  # type: ignore[no-any-return]


def s3(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    return client("s3", endpoint_url, region)  # type: ignore[no-any-return]


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
    has been tried (each does its own retries). One batch is sent on the calling thread: no
    pool for the common small call. Every batch runs in a copy of the caller's context, so
    context-local state (a request's tracing or accounting) follows it into the pool. (In
    Lambda, X-Ray gives each thread the invocation's segment, so the pool's calls are traced
    as well.) The one way the grid fans calls out over threads."""
    items = list(batches)
    if len(items) <= 1 or workers <= 1:
        return [send(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        # As asyncio.to_thread does: a copy of the context per call.
        futures = [pool.submit(contextvars.copy_context().run, send, item) for item in items]
    return [future.result() for future in futures]
