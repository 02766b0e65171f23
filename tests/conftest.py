"""Shared fixtures: one emulator per test run, provisioned from template.yaml itself.

Unit tests (tests/unit) use none of these and make no network calls. Integration tests share
one moto server and one stack; each test gets its own session id and empty task queues, so
tests stay independent without re-provisioning.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"

# Dummy credentials for the emulator, set before any boto3 session exists. A developer's real
# AWS credentials never reach a test.
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "htcgrid-tests",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """An embedded moto server with the local grid's patches, for the whole test run."""
    from htcgrid_local.emulator import Emulator

    with Emulator() as server:
        yield server


def provision(emulator: object, stack_name: str) -> GridSettings:
    """A stack from template.yaml on the emulator, as the settings its components run with."""
    from htcgrid_local.provision import provision_stack

    endpoint_url: str = emulator.endpoint_url  # type: ignore[attr-defined]
    outputs = provision_stack(endpoint_url, TEMPLATE, stack_name=stack_name)
    return GridSettings.from_stack_outputs(outputs, endpoint_url=endpoint_url, region="us-east-1")


@pytest.fixture(scope="session")
def shared_settings(emulator: object) -> GridSettings:
    """One stack for tests that only touch their own session's records."""
    return provision(emulator, "htcgrid-shared")


@pytest.fixture
def grid_settings(request: pytest.FixtureRequest, emulator: object) -> GridSettings:
    """A stack of this test's own (about a second to create), so its queues hold only what the
    test puts there; tests marked ``shared_stack`` reuse one stack instead."""
    if request.node.get_closest_marker("shared_stack"):
        settings: GridSettings = request.getfixturevalue("shared_settings")
        return settings
    return provision(emulator, f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def grid(grid_settings: GridSettings) -> GridResources:
    """The grid's adapters for this test's stack."""
    return GridResources.from_settings(grid_settings)


@pytest.fixture
def session_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def grid_env(
    grid_settings: GridSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], None]]:
    """Point code that reads settings from the environment (Lambda handlers) at the test grid."""
    from htcgrid_core.resources import get_resources
    from htcgrid_core.settings import get_settings

    values = grid_settings.as_environment()
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    def reset() -> None:
        get_settings.cache_clear()
        get_resources.cache_clear()

    reset()
    yield reset
    reset()
