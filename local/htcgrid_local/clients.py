"""boto3 clients for an emulator endpoint or for the real AWS account.

Against an emulator, clients get dummy credentials and ``inject_host_prefix=False``: boto3
otherwise sends StartSyncExecution to ``sync-<host>``, which does not resolve for a local URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

#: Dummy credentials and region every process of the local grid uses with an emulator.
EMULATOR_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

#: The ``endpoint_url`` that means "the real AWS account of the ambient credentials".
AWS = "aws"

_EMULATOR_CONFIG = Config(
    inject_host_prefix=False,
    retries={"mode": "standard", "max_attempts": 4},
    max_pool_connections=32,
    connect_timeout=5,
    read_timeout=120,
)


def is_real_aws(endpoint_url: str | None) -> bool:
    """True for :data:`AWS` and for ``*.amazonaws.com`` URLs: a real account, not an emulator."""
    if endpoint_url is None:
        return False
    if endpoint_url == AWS:
        return True
    return (urlparse(endpoint_url).hostname or "").endswith(".amazonaws.com")


def client(service: str, endpoint_url: str, region: str = "us-east-1") -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` (an emulator, or :data:`AWS`)."""
    if is_real_aws(endpoint_url):
        return boto3.session.Session(region_name=region).client(service)  # type: ignore[call-overload]
    session = boto3.session.Session(
        aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=EMULATOR_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )
    return session.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, config=_EMULATOR_CONFIG
    )
