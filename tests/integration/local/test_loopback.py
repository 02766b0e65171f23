"""Calls the emulator's process makes to itself go straight into its WSGI app."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from htcgrid_core import faults
from htcgrid_local.clients import client
from htcgrid_local.loopback import Loopback

# Nothing listens on port 1: only the hook can answer. (An IP, as the emulator uses: moto
# reads a bucket name from any other host.)
ORIGIN = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def moto_app() -> Iterator[Any]:
    from htcgrid_local.environments import Environments
    from htcgrid_local.server import build_app

    environments = Environments({})
    yield build_app(environments)
    environments.close()


def looped(service: str, app: Any) -> Any:
    aws = client(service, ORIGIN)
    aws.meta.events.register("before-send", Loopback(app, [ORIGIN]))
    return aws


def test_requests_to_the_origin_are_served_in_process(moto_app: Any) -> None:
    sqs = looped("sqs", moto_app)
    url = sqs.create_queue(QueueName="looped")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")

    messages = sqs.receive_message(QueueUrl=url)["Messages"]

    assert [m["Body"] for m in messages] == ["hello"]


def test_json_protocol_headers_and_binary_bodies_arrive_intact(moto_app: Any) -> None:
    dynamodb = looped("dynamodb", moto_app)  # X-Amz-Target is a bytes header in botocore
    dynamodb.create_table(
        TableName="looped",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = looped("s3", moto_app)
    s3.create_bucket(Bucket="looped")
    body = bytes(range(256)) * 400

    s3.put_object(Bucket="looped", Key="k", Body=body)

    assert s3.get_object(Bucket="looped", Key="k")["Body"].read() == body
    assert dynamodb.describe_table(TableName="looped")["Table"]["TableStatus"] == "ACTIVE"


def test_requests_to_other_origins_are_left_to_the_network() -> None:
    loopback = Loopback(lambda environ, start_response: [b""], [ORIGIN])

    class Request:
        url = "http://elsewhere.test:1/"

    assert loopback(Request()) is None  # type: ignore[arg-type]


def test_injected_faults_are_drawn_before_the_loopback_answers(
    moto_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambdas' calls inside the emulator go through the loopback: fault injection (a
    chaos run's throttling, the bench's AWS latency) must reach them too."""
    slept: list[float] = []
    monkeypatch.setattr(faults, "time", SimpleNamespace(sleep=slept.append))
    sqs = looped("sqs", moto_app)
    faults.install(sqs, faults.parse("sqs:latency=0.005"))

    sqs.create_queue(QueueName="looped-late")

    assert slept == [0.005]
