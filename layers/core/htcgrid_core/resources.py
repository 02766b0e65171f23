"""The grid's AWS resources wired from settings: the composition every component starts from.

Built on first use (a Lambda's cold start, an agent's start), never at import, so tests and the
local grid can point a component at their own endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from htcgrid_core import aws
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.queues import Queues
from htcgrid_core.settings import GridSettings, get_settings
from htcgrid_core.table import TaskTable


@dataclass(frozen=True)
class GridResources:
    """Settings plus the adapters for the task table, the queues and the payload store."""

    settings: GridSettings
    table: TaskTable
    queues: Queues
    payloads: PayloadStore

    @classmethod
    def from_settings(
        cls, settings: GridSettings, *, validate_parameters: bool = True
    ) -> GridResources:
        """The adapters on the shared clients (``validate_parameters``: ``aws.make_client``)."""
        endpoint, region, validate = settings.endpoint_url, settings.region, validate_parameters
        return cls(
            settings=settings,
            table=TaskTable(aws.dynamodb(endpoint, region, validate), settings.table_name),
            queues=Queues(
                aws.sqs(endpoint, region, validate), settings.queue_prefix, settings.priority_levels
            ),
            payloads=PayloadStore(
                aws.s3(endpoint, region, validate),
                settings.bucket_name,
                settings.inline_threshold_bytes,
                settings.max_payload_bytes,
            ),
        )


@lru_cache(maxsize=1)
def get_resources() -> GridResources:
    """This process's resources, from the environment's settings."""
    return GridResources.from_settings(get_settings())
