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
