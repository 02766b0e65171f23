"""The settings an agent derives from the grid's, and the couplings it refuses."""

import pytest

from htcgrid_core.settings import GridSettings


def test_the_lease_threshold_follows_the_queues_visibility_timeout() -> None:
    assert GridSettings().lease_threshold_for(300) == 240
    assert GridSettings().lease_threshold_for(30) == 24
    assert GridSettings(lease_threshold_s=3).lease_threshold_for(30) == 3


def test_a_lease_threshold_at_or_above_the_visibility_timeout_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"LEASE_THRESHOLD_S is 300 s.*visibility timeout \(300 s"):
        GridSettings(lease_threshold_s=300).lease_threshold_for(300)


def test_the_heartbeat_beats_at_least_three_times_per_lease_unless_set() -> None:
    assert GridSettings().heartbeat_interval_s == 5
    assert GridSettings(lease_duration_s=6).heartbeat_interval_s == 2
    assert GridSettings(lease_duration_s=6, heartbeat_interval_s=1).heartbeat_interval_s == 1


def test_a_heartbeat_slower_than_a_third_of_the_lease_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"HEARTBEAT_INTERVAL_S is 5 s.*LEASE_DURATION_S \(9 s\)"):
        GridSettings(lease_duration_s=9, heartbeat_interval_s=5)


def test_a_lease_whose_message_would_outlast_sqs_visibility_limit_is_refused() -> None:
    assert GridSettings(lease_duration_s=21600).lease_duration_s == 21600
    with pytest.raises(ValueError, match=r"LEASE_DURATION_S is 21601 s; at most 21600 s.*43200"):
        GridSettings(lease_duration_s=21601)


def test_a_heartbeat_slower_than_a_third_of_the_visibility_timeout_is_refused() -> None:
    GridSettings(heartbeat_interval_s=10).check_heartbeat_covers(30)
    with pytest.raises(ValueError, match=r"INTERVAL_S is 11 s.*visibility timeout \(30 s"):
        GridSettings(heartbeat_interval_s=11, lease_duration_s=60).check_heartbeat_covers(30)
