"""The template's alarms exist for each priority level the stack has, and only those."""

from __future__ import annotations

import pytest

from htcgrid_core import aws
from htcgrid_core.settings import GridSettings


@pytest.mark.shared_stack
def test_every_priority_level_has_a_dlq_alarm_and_a_queue_age_alarm(
    grid_settings: GridSettings,
) -> None:
    cloudwatch = aws.client("cloudwatch", grid_settings.endpoint_url, grid_settings.region)
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    prefix = grid_settings.queue_prefix
    watched = {
        (alarm["MetricName"], dimension["Value"])
        for alarm in alarms
        for dimension in alarm["Dimensions"]
        if dimension["Value"].startswith(f"{prefix}-p")
    }
    levels = range(grid_settings.priority_levels)
    assert watched == {
        ("ApproximateNumberOfMessagesVisible", f"{prefix}-p{n}-dlq") for n in levels
    } | {("ApproximateAgeOfOldestMessage", f"{prefix}-p{n}") for n in levels}
