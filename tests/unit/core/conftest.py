"""Fixtures for the core's unit tests: a grid of in-memory fakes of the core's ports.

Modules whose tests are the contract of an adapter (``test_task_store``, ``test_sessions``...)
are imported by an integration module too, where ``grid`` is the real adapters on moto.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fakes import FakeGrid, fake_grid


@pytest.fixture
def grid() -> FakeGrid:
    return fake_grid()


@pytest.fixture
def session_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
