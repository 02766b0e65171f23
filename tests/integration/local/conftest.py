"""Fixtures of the local grid's tests: an emulator of their own, and the fixture app on it.

The fixture app (``fixture_app/``) has the shapes of the real template in a few dozen lines:
a layer, two functions, an Express workflow with Retry/Catch and DefinitionSubstitutions, a
table, conditional queues and a bucket. Its functions run in the emulator's process, so these
tests use an emulator of their own rather than the run-wide one other tests share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from htcgrid_local.clients import client
from htcgrid_local.emulator import Emulator
from htcgrid_local.provision import StackOutputs, provision_stack

HERE = Path(__file__).resolve().parent
FIXTURE_TEMPLATE = HERE / "fixture_app" / "template.yaml"
REPO_TEMPLATE = HERE.parents[2] / "template.yaml"


@pytest.fixture(scope="session")
def local_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with Emulator(log_path=log_path) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def fixture_stack(local_emulator: Emulator) -> StackOutputs:
    return provision_stack(local_emulator.endpoint_url, FIXTURE_TEMPLATE, "fixture")


@pytest.fixture(scope="session")
def aws(local_emulator: Emulator) -> Callable[[str], Any]:
    """A boto3 client for a service on the test emulator: ``aws("sqs")``."""

    def make(service: str) -> Any:
        return client(service, local_emulator.endpoint_url)

    return make
