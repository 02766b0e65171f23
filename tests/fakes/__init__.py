"""In-memory fakes of the core's own ports (``htcgrid_core.ports``), for testing the grid's
decisions without AWS. Never a fake of an AWS API: the adapters are tested against moto."""

from tests.fakes.grid import FakeGrid, fake_grid
from tests.fakes.queues import FakeQueues
from tests.fakes.table import FakeSessionRecords, FakeTaskTable

__all__ = ["FakeGrid", "FakeQueues", "FakeSessionRecords", "FakeTaskTable", "fake_grid"]
