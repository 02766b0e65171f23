"""boto3 clients configured once for the whole grid.

botocore's standard retry mode retries throttling, 5xx and connection errors with exponential
backoff and jitter; every grid component gets its clients here so none of them forgets it.
"""

from __future__ import annotations

import random
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from htcgrid_core import faults
from htcgrid_core.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

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


def pause_before_resend(attempt: int) -> None:
    """Back off before re-sending the items of a batch call that AWS left unprocessed (boto3
    retries failed requests, not partly failed ones): capped exponential, full jitter."""
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())  # noqa: S311 - jitter
