"""Fault injection: its setting's parsing and errors, and the latency it adds to requests."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from htcgrid_core import faults


def test_the_setting_parses_into_faults_per_service_and_kind() -> None:
    assert faults.parse(" dynamodb:throttle=0.2, sqs:latency=0.005,") == [
        faults.Fault("dynamodb", "throttle", 0.2),
        faults.Fault("sqs", "latency", 0.005),
    ]


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("sqs=0.1", "is not '<service>:<kind>=<rate>'"),
        ("sqs:explode=0.1", "kind must be one of"),
        ("sqs:error=1.5", "rate must be within [0, 1]"),
        ("sqs:latency=2", "latency (seconds) must be within [0, 1]"),
    ],
)
def test_a_bad_entry_is_named_with_what_is_wrong(spec: str, names: str) -> None:
    with pytest.raises(ValueError, match="HTCGRID_FAULTS entry") as error:
        faults.parse(spec)
    assert spec in str(error.value)
    assert names in str(error.value)


def test_latency_delays_every_request_of_its_service_before_other_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(faults, "time", SimpleNamespace(sleep=slept.append))
    # Nothing listens there: the injected error answers first, so no request leaves.
    sqs = boto3.client(
        "sqs",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    faults.install(sqs, faults.parse("sqs:latency=0.05,sqs:error=1,dynamodb:latency=0.5"))
    with pytest.raises(ClientError, match="InternalFailure"):
        sqs.list_queues()
    with pytest.raises(ClientError, match="InternalFailure"):
        sqs.list_queues()
    assert slept == [0.05, 0.05]
