"""The AWS clients an agent works with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.validate import ParamValidationDecorator

from htcgrid_agent.__main__ import agent_resources
from htcgrid_core import aws
from htcgrid_core.settings import GridSettings, get_settings
from tests.unit.conftest import OUTPUTS


@pytest.fixture
def settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings = GridSettings.from_stack_outputs(
        OUTPUTS, endpoint_url="http://127.0.0.1:9", region="us-east-1"
    )
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    aws.client.cache_clear()


def test_the_agents_clients_leave_checking_requests_to_aws(settings_in_environment: None) -> None:
    # botocore checks a client's requests in a serializer wrapped in a validating decorator
    grid = agent_resources()
    clients = [grid.table._client, grid.queues._client, grid.payloads._client]
    assert not any(isinstance(c._serializer, ParamValidationDecorator) for c in clients)
    # Everyone else's still check them before sending (the client's errors name the parameter).
    others = aws.sqs("http://127.0.0.1:9", "us-east-1")
    assert isinstance(others._serializer, ParamValidationDecorator)
