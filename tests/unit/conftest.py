"""Fixtures for client unit tests: a grid's endpoints that no test reaches over the network."""

from __future__ import annotations

import pytest

from htcgrid.connection import GridEndpoints

#: The stack outputs a client needs, naming resources of no real grid.
OUTPUTS = {
    "TaskTableName": "table",
    "DataBucketName": "bucket",
    "QueuePrefix": "grid",
    "PriorityLevels": "3",
    "SubmitWorkflowArn": "arn:aws:states:us-east-1:123456789012:stateMachine:submit",
    "StatusFunctionName": "status",
    "SessionFunctionName": "session",
    "InlinePayloadThresholdBytes": "16384",
}


@pytest.fixture
def offline_endpoints() -> GridEndpoints:
    """Endpoints at an address nothing listens on: a test replaces every call it makes."""
    return GridEndpoints.for_emulator(OUTPUTS, "http://127.0.0.1:9")
