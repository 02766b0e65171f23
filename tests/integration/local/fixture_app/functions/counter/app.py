"""Fixture function: counts its attempts per key in the table and fails the first few on request.

``fail_times`` failures of class ``error`` (FlakyError or PermanentFixtureError) precede success,
so a state machine's Retry and Catch on those Python class names can be observed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3


class FlakyError(Exception):
    """A failure the workflow retries."""


class PermanentFixtureError(Exception):
    """A failure the workflow catches."""


_ERRORS: dict[str, type[Exception]] = {
    "FlakyError": FlakyError,
    "PermanentFixtureError": PermanentFixtureError,
}


@lru_cache(maxsize=1)
def _dynamodb() -> Any:
    # No endpoint here on purpose: the local grid points boto3 at the emulator by environment.
    return boto3.client("dynamodb")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = _dynamodb().update_item(
        TableName=os.environ["FIXTURE_TABLE_NAME"],
        Key={"pk": {"S": event["key"]}, "sk": {"S": "attempts"}},
        UpdateExpression="ADD attempts :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    attempts = int(response["Attributes"]["attempts"]["N"])
    if attempts <= int(event.get("fail_times", 0)):
        raise _ERRORS[event.get("error", "FlakyError")](f"attempt {attempts} of {event['key']}")
    return {**event, "attempts": attempts}
