"""The grid's settings: one typed object, every default and limit in one place.

``GridSettings`` is a plain frozen value: a client or a test makes it from a stack's outputs
(``from_stack_outputs``, through ``STACK_OUTPUTS``, the one map from outputs to settings) or
from arguments, and it never looks at the environment. The Lambdas and the agent read theirs
from ``HTCGRID_*`` environment variables through ``get_settings()`` (``EnvironmentSettings``):
``template.yaml`` sets them for the Lambdas; the agent's come from the same outputs
(``python -m htcgrid_core.stack``, ``LocalGrid.agent_env``). Nothing else reads the
environment for settings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Largest number of priority levels the template can create (one queue pair each).
MAX_PRIORITY_LEVELS = 5
#: SQS's longest visibility timeout. An agent keeps a leased task's message hidden for twice the
#: lease, so a lease may last at most half of it.
SQS_MAX_VISIBILITY_S = 43200
MAX_LEASE_DURATION_S = SQS_MAX_VISIBILITY_S // 2
#: Heartbeat interval when none is set: this, or a third of the lease if that is shorter.
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0

#: Which of a stack's outputs (``template.yaml``'s Outputs) carries which setting: the one place
#: that says so. ``tests/unit/test_stack_outputs.py`` checks it against the template.
STACK_OUTPUTS: Final[Mapping[str, str]] = {
    "TaskTableName": "table_name",
    "DataBucketName": "bucket_name",
    "QueuePrefix": "queue_prefix",
    "PriorityLevels": "priority_levels",
    "InlinePayloadThresholdBytes": "inline_threshold_bytes",
    "MaxAttempts": "max_attempts",
    "LeaseDurationSeconds": "lease_duration_s",
    "MaxReceiveCount": "max_receive_count",
    "ResultRetentionDays": "result_retention_days",
    "RetryWorkflowArn": "retry_workflow_arn",
}
#: The outputs without which no process finds the grid's table, bucket and queues, or agrees
#: with the Lambdas on what goes inline. The others keep their defaults when a caller leaves
#: them out (``Grid.from_outputs`` with what a client uses, a stack older than the output).
REQUIRED_STACK_OUTPUTS: Final = (
    "TaskTableName",
    "DataBucketName",
    "QueuePrefix",
    "PriorityLevels",
    "InlinePayloadThresholdBytes",
)


class MissingStackOutputsError(ValueError):
    """A stack's outputs lack some that ``REQUIRED_STACK_OUTPUTS`` names."""

    def __init__(self, missing: Collection[str]) -> None:
        super().__init__(f"the grid's stack outputs lack {', '.join(missing)}")
        self.missing = tuple(missing)


class GridSettings(BaseModel):
    """Where the grid's resources are and the limits it enforces: a frozen value that reads
    nothing from the environment (``get_settings()`` does, for the Lambdas and the agent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: str = Field(default="", description="DynamoDB task table.")
    bucket_name: str = Field(default="", description="S3 bucket of the data plane.")
    queue_prefix: str = Field(
        default="",
        description="Task queues are named '<queue_prefix>-p<level>', their DLQs '<...>-dlq'.",
    )
    priority_levels: int = Field(default=3, ge=1, le=MAX_PRIORITY_LEVELS)
    default_priority: int | None = Field(
        default=None, ge=0, description="Priority of tasks that name none; middle level if unset."
    )
    max_attempts: int = Field(default=3, ge=1, le=100, description="Attempt budget per task.")
    lease_duration_s: int = Field(
        default=60,
        ge=5,
        description=(
            f"How long a lease lives without a heartbeat; at most {MAX_LEASE_DURATION_S} s "
            "(an agent keeps the task's message hidden for twice the lease)."
        ),
    )
    heartbeat_interval_s: float = Field(
        default=DEFAULT_HEARTBEAT_INTERVAL_S,
        gt=0,
        le=300,
        description=(
            "How often an agent checks its running tasks for cancellation, extends leases that "
            "are a third spent and keeps its held messages hidden: a cancelled task stops within "
            "this long. At most a third of the lease; unset, 5 s or a third of the lease."
        ),
    )
    lease_threshold_s: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Tasks whose timeout is at most this run without a lease write: the message's "
            "visibility (which the agent's heartbeat extends) covers them. Longer tasks always "
            "take a lease. Unset: four fifths of the task queues' visibility timeout (240 s of "
            "the template's 300 s); set, it must be below that timeout."
        ),
    )
    default_timeout_s: int = Field(default=60, ge=1, le=43200)
    max_timeout_s: int = Field(default=43200, ge=1, description="Longest timeout a task may ask.")
    inline_threshold_bytes: int = Field(
        default=16384,
        ge=0,
        le=65536,
        description="Payloads and results above this many bytes of JSON go to S3.",
    )
    max_payload_bytes: int = Field(
        default=5 * 1024**3, description="Largest payload or result stored in S3 (one PUT)."
    )
    session_queue_retention_s: int = Field(default=14 * 24 * 3600)
    result_retention_days: int = Field(
        default=30,
        ge=0,
        description=(
            "Days a session's task records (and counters) live after its last submission "
            "before DynamoDB's TTL deletes them; 0 keeps them until the session is deleted. "
            "The data bucket's lifecycle rule expires S3 payloads and results alike."
        ),
    )
    retry_workflow_arn: str = Field(
        default="",
        description="Express workflow that decides every failed attempt (retry or FAILED).",
    )
    max_receive_count: int = Field(
        default=5, ge=1, description="Deliveries of a task message before SQS dead-letters it."
    )
    reaper_batch_limit: int = Field(
        default=1000,
        ge=1,
        le=10000,
        description="Most expired leases (and dead letters) one reaper run hands to retry.",
    )
    faults: str = Field(
        default="",
        description=(
            "Inject AWS faults into this process's calls, for chaos runs: comma-separated "
            "'<service>:<kind>=<rate>' with kind throttle, error (HTTP 500) or timeout, e.g. "
            "'dynamodb:throttle=0.02,sqs:throttle=0.02'. Empty (the default) injects nothing."
        ),
    )
    endpoint_url: str | None = Field(
        default=None, description="Send every AWS call here (the local grid or another emulator)."
    )
    region: str | None = Field(default=None, description="AWS region; boto3's default if unset.")

    @field_validator("lease_duration_s")
    @classmethod
    def _lease_fits_sqs(cls, lease_s: int) -> int:
        if lease_s > MAX_LEASE_DURATION_S:
            raise ValueError(
                f"HTCGRID_LEASE_DURATION_S is {lease_s} s; at most {MAX_LEASE_DURATION_S} s: an "
                "agent keeps a leased task's message hidden for twice the lease, and SQS allows "
                f"at most {SQS_MAX_VISIBILITY_S} s (the stack's LeaseDurationSeconds)"
            )
        return lease_s

    @model_validator(mode="before")
    @classmethod
    def _heartbeat_within_lease(cls, data: Any) -> Any:
        """Unset, the heartbeat beats at least three times per lease. (Before validation: the
        settings are frozen once built.)"""
        if isinstance(data, dict) and data.get("heartbeat_interval_s") is None:
            try:
                lease_s = float(data.get("lease_duration_s", 60))
            except (TypeError, ValueError):
                return data  # the lease's own validation says what is wrong with it
            data = {**data, "heartbeat_interval_s": min(DEFAULT_HEARTBEAT_INTERVAL_S, lease_s / 3)}
        return data

    @model_validator(mode="after")
    def _heartbeat_renews_the_lease_in_time(self) -> GridSettings:
        if self.heartbeat_interval_s * 3 > self.lease_duration_s:
            raise ValueError(
                f"HTCGRID_HEARTBEAT_INTERVAL_S is {self.heartbeat_interval_s:g} s; at most a "
                f"third of HTCGRID_LEASE_DURATION_S ({self.lease_duration_s} s): a lease is "
                "renewed at the first beat after a third of it is spent, and must be before it "
                "expires, with a beat to spare"
            )
        return self

    def check_heartbeat_covers(self, visibility_timeout_s: int) -> None:
        """Refuse a heartbeat too slow for task queues whose visibility timeout is
        ``visibility_timeout_s``: the agent extends a held message at the first beat after a
        third of its visibility is spent, and must before it runs out."""
        if self.heartbeat_interval_s * 3 > visibility_timeout_s:
            raise ValueError(
                f"HTCGRID_HEARTBEAT_INTERVAL_S is {self.heartbeat_interval_s:g} s; at most a "
                f"third of the task queues' visibility timeout ({visibility_timeout_s} s, the "
                "stack's TaskVisibilityTimeoutSeconds), or a held message becomes visible to "
                "other agents between two beats"
            )

    def priority_or_default(self, priority: int | None) -> int:
        """The priority a task runs at: its own, else the configured default, else the middle."""
        if priority is not None:
            return priority
        if self.default_priority is not None:
            return self.default_priority
        return (self.priority_levels - 1) // 2

    def lease_threshold_for(self, visibility_timeout_s: int) -> int:
        """The lease threshold with task queues whose visibility timeout is
        ``visibility_timeout_s``: the configured one, else four fifths of the timeout, so an
        unleased task's whole run fits in one visibility period even before any extension."""
        if self.lease_threshold_s is None:
            return visibility_timeout_s * 4 // 5
        if self.lease_threshold_s >= visibility_timeout_s:
            raise ValueError(
                f"HTCGRID_LEASE_THRESHOLD_S is {self.lease_threshold_s} s: it must be below the "
                f"task queues' visibility timeout ({visibility_timeout_s} s, the stack's "
                "TaskVisibilityTimeoutSeconds), or a task without a lease outlives its message's "
                "visibility. Lower it, or unset it to use four fifths of the timeout."
            )
        return self.lease_threshold_s

    @classmethod
    def from_stack_outputs(
        cls,
        outputs: Mapping[str, str],
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> GridSettings:
        """The settings a deployed stack's outputs carry (``STACK_OUTPUTS``), at
        ``endpoint_url`` in ``region``; every other setting keeps its default. Raises
        ``MissingStackOutputsError`` naming the required outputs that are absent, and pydantic's
        ``ValidationError`` naming the setting for a value out of its limits."""
        missing = [name for name in REQUIRED_STACK_OUTPUTS if not outputs.get(name)]
        if missing:
            raise MissingStackOutputsError(missing)
        values: dict[str, Any] = {
            setting: outputs[output]
            for output, setting in STACK_OUTPUTS.items()
            if outputs.get(output)
        }
        return cls.model_validate({**values, "endpoint_url": endpoint_url, "region": region})

    def as_environment(self, names: Collection[str] | None = None) -> dict[str, str]:
        """These settings as the ``HTCGRID_*`` variables that recreate them in another process
        (an agent, a Lambda); unset ones are left out, and with ``names`` all but those."""
        return {
            f"HTCGRID_{name.upper()}": str(value)
            for name, value in self.model_dump().items()
            if value is not None and value != "" and (names is None or name in names)
        }

    def queue_name(self, priority: int) -> str:
        """Name of the task queue for a priority level (0 is the lowest)."""
        return f"{self.queue_prefix}-p{priority}"


class EnvironmentSettings(BaseSettings, GridSettings):
    """``GridSettings`` read from ``HTCGRID_*`` environment variables (``HTCGRID_TABLE_NAME``
    is ``table_name``): how a Lambda or an agent gets its settings. Only ``get_settings()``
    makes one; everything else is handed a ``GridSettings``."""

    model_config = SettingsConfigDict(env_prefix="HTCGRID_", frozen=True, extra="ignore")


@lru_cache(maxsize=1)
def get_settings() -> GridSettings:
    """The process's settings, parsed once from the environment (cold start in a Lambda)."""
    return EnvironmentSettings()
