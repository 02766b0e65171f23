"""A client's settings are what its grid's outputs and its caller say, never what ``HTCGRID_*``
environment variables (meant for agents and Lambdas) happen to hold in its process."""

from __future__ import annotations

import pytest

from htcgrid import Grid
from htcgrid_core.settings import GridSettings
from tests.unit.conftest import OUTPUTS

#: A wrong value for every setting (each unlike its default and unlike the outputs').
#: HTCGRID_FAULTS is left out: it is the chaos switch, which deliberately reaches every boto3
#: client a process makes (``htcgrid_core.aws.make_client``), the client's included.
WRONG = {
    "table_name": "wrong-table",
    "bucket_name": "wrong-bucket",
    "queue_prefix": "wrong",
    "priority_levels": "5",
    "default_priority": "4",
    "max_attempts": "7",
    "lease_duration_s": "600",
    "heartbeat_interval_s": "9",
    "lease_threshold_s": "11",
    "default_timeout_s": "13",
    "max_timeout_s": "17",
    "inline_threshold_bytes": "19",
    "max_payload_bytes": "23",
    "session_queue_retention_s": "29",
    "result_retention_days": "31",
    "retry_workflow_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:wrong",
    "max_receive_count": "37",
    "reaper_batch_limit": "41",
    "endpoint_url": "http://wrong.invalid:1",
    "region": "eu-wrong-1",
}


def test_a_client_uses_only_its_outputs_and_arguments_whatever_htcgrid_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert set(WRONG) == set(GridSettings.model_fields) - {"faults"}, "a setting is not covered"
    # GIVEN a process whose environment names another grid, with other limits
    for setting, value in WRONG.items():
        monkeypatch.setenv(f"HTCGRID_{setting.upper()}", value)

    # WHEN a client is made from a grid's outputs and an endpoint
    grid = Grid.from_outputs(OUTPUTS, endpoint_url="http://127.0.0.1:9", region="us-west-2")

    # THEN every setting is the outputs', the arguments' or the default, none the environment's
    settings = grid.settings
    assert (settings.table_name, settings.bucket_name) == ("table", "bucket")
    assert (settings.queue_prefix, settings.priority_levels) == ("grid", 3)
    assert (settings.endpoint_url, settings.region) == ("http://127.0.0.1:9", "us-west-2")
    for setting, wrong in WRONG.items():
        assert str(getattr(settings, setting)) != wrong, setting
    assert settings.max_payload_bytes == 5 * 1024**3
    assert grid.payloads.max_bytes == 5 * 1024**3
