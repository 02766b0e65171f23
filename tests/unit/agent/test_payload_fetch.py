"""How an agent reads a stored payload: bounded by its declared size, and a key S3 will not
give it is missing or unreadable, whichever answer S3 gives (moto in-process, IAM enforced for
the agent's own policy, as AWS does; no network)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import enable_iam_authentication

from htcgrid_core.errors import PayloadIntegrityError, PayloadMissingError
from htcgrid_core.models import StoredData
from htcgrid_core.payloads import PayloadStore

BUCKET = "htcgrid-data"
#: The agent's S3 statement in template.yaml (AgentPolicy, MovePayloadsAndResults): objects
#: under sessions/, and no s3:ListBucket.
AGENT_S3_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:aws:s3:::{BUCKET}/sessions/*",
        }
    ],
}


@dataclass
class Bucket:
    admin: Any
    store: PayloadStore
    ranges: list[bytes | None]

    def put(self, key: str, body: bytes) -> None:
        self.admin.put_object(Bucket=BUCKET, Key=key, Body=body)


def stored(key: str, body: bytes, size: int | None = None) -> StoredData:
    return StoredData(
        s3_key=key,
        size=len(body) if size is None else size,
        sha256=hashlib.sha256(body).hexdigest(),
    )


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    with mock_aws():
        admin = boto3.client("s3", region_name="us-east-1")
        admin.create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="agent")
        iam.put_user_policy(
            UserName="agent",
            PolicyName="MovePayloadsAndResults",
            PolicyDocument=json.dumps(AGENT_S3_POLICY),
        )
        key = iam.create_access_key(UserName="agent")["AccessKey"]
        agent = boto3.client(
            "s3",
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        ranges: list[bytes | None] = []
        agent.meta.events.register(
            "before-send.s3.GetObject",
            lambda request, **_: ranges.append(request.headers.get("Range")),
        )
        yield Bucket(admin, PayloadStore(agent, BUCKET, 0, 10**6), ranges)


def test_a_key_s3_will_not_give_the_agent_is_missing_or_unreadable(bucket: Bucket) -> None:
    # GIVEN an object outside what the agent's policy may read: S3 answers 403 AccessDenied,
    # as it does on AWS for a missing key to a reader without s3:ListBucket
    body = b'{"x": 1}'
    bucket.put("private/payload.json", body)
    with enable_iam_authentication(), pytest.raises(PayloadMissingError) as raised:
        bucket.store.decode(stored("private/payload.json", body))
    assert "missing or unreadable" in str(raised.value)
    assert "AccessDenied" in str(raised.value)


def test_a_missing_key_is_missing_or_unreadable(bucket: Bucket) -> None:
    with enable_iam_authentication(), pytest.raises(PayloadMissingError, match="NoSuchKey"):
        bucket.store.decode(stored("sessions/s/payloads/gone.json", b"{}"))


def test_a_stored_payload_is_read_back_whole_and_checked(bucket: Bucket) -> None:
    body = json.dumps({"x": list(range(100))}).encode()
    bucket.put("sessions/s/payloads/t.json", body)
    with enable_iam_authentication():
        assert bucket.store.decode(stored("sessions/s/payloads/t.json", body)) == {
            "x": list(range(100))
        }


def test_an_object_larger_than_declared_is_refused_having_asked_for_the_declared_size(
    bucket: Bucket,
) -> None:
    # GIVEN a record declaring 10 bytes for an object of a megabyte
    big = b"[" + b"1," * 500_000 + b"1]"
    bucket.put("sessions/s/payloads/big.json", big)
    with enable_iam_authentication(), pytest.raises(PayloadIntegrityError, match="the object has"):
        bucket.store.decode(stored("sessions/s/payloads/big.json", big[:10], size=10))
    # THEN the agent asked S3 for 11 bytes, not the megabyte
    assert bucket.ranges == [b"bytes=0-10"]


def test_a_declared_size_above_the_limit_is_refused_before_any_read(bucket: Bucket) -> None:
    with pytest.raises(PayloadIntegrityError, match="above the limit of 1000000"):
        bucket.store.decode(stored("sessions/s/payloads/t.json", b"{}", size=10**6 + 1))
    assert bucket.ranges == []


def test_an_empty_object_declared_with_content_fails_its_integrity_check(bucket: Bucket) -> None:
    bucket.put("sessions/s/payloads/empty.json", b"")
    with pytest.raises(PayloadIntegrityError, match="empty object"):
        bucket.store.decode(stored("sessions/s/payloads/empty.json", b"{}"))
