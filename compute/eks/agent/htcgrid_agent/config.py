"""The agent's switches: one typed object with every default, limit and flag.

``AgentConfig`` is a frozen pydantic model that reads nothing from the environment; code that
embeds a worker (and the tests) builds it directly. ``htcgrid-agent`` fills the same fields from
its flags (``__main__.parse_args``, pydantic-settings' CLI source), and the two fields marked
``ENVIRONMENT`` also from ``HTCGRID_HANDLER`` and ``HTCGRID_HANDLER_CREDENTIALS``. A field's
flag is ``--`` and its alias (or name) in kebab case; its ``metavar`` names the flag's value in
``--help``. Where the grid is comes from ``GridSettings`` (``get_settings()``, HTCGRID_* env).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, model_validator
from pydantic.config import JsonDict

#: Highest TCP port.
MAX_PORT = 65535
#: Fields that an environment variable ``HTCGRID_<FIELD>`` also sets (a flag wins over it).
ENVIRONMENT: Final = ("handler", "handler_credentials")


def _metavar(name: str) -> JsonDict:
    return {"metavar": name}


class AgentConfig(BaseModel):
    """How one agent runs."""

    # Fields whose flag differs from their name (``--long-poll`` is ``long_poll_s``) take it
    # as an alias; code names them by field name.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)

    handler: str = Field(
        default="",
        description="the task handler: module:function, called as handler(event, context) in a "
        "Python child; with --bootstrap or --runtime-api-port, the runtime's _HANDLER "
        "(may be empty then). Also HTCGRID_HANDLER",
        json_schema_extra=_metavar("HANDLER"),
    )
    slots: int = Field(
        default=1,
        ge=1,
        description="tasks run at once, one child process each",
        json_schema_extra=_metavar("N"),
    )
    prefetch: int = Field(
        default=10,
        ge=0,
        description="messages taken beyond free slots, for fuller batches. They wait in the "
        "agent (their visibility timeout running): keep it small for long tasks",
        json_schema_extra=_metavar("N"),
    )
    burst: bool = Field(default=False, description="exit when the queues are empty")
    max_tasks: int | None = Field(
        default=None, ge=1, description="exit after N tasks", json_schema_extra=_metavar("N")
    )
    max_idle_s: float | None = Field(
        default=None,
        ge=0,
        validation_alias="max_idle",
        description="exit after S seconds without work",
        json_schema_extra=_metavar("S"),
    )
    starvation_weight: int | None = Field(
        default=None,
        ge=1,
        description="ask a lower priority level first once it went N fetches unserved "
        "(htcgrid_agent.scheduling); unset: strict priority, highest level first",
        json_schema_extra=_metavar("N"),
    )
    long_poll_s: int = Field(
        default=5,
        ge=0,
        le=20,
        validation_alias="long_poll",
        description="long-poll wait in seconds when every queue was empty (SQS allows 20); "
        "short enough that a SIGTERM is answered fast",
        json_schema_extra=_metavar("S"),
    )
    #: Longest wait before acknowledgements and result notices go out while the agent is busy,
    #: in seconds (an idle agent flushes at once; thirty pending acknowledgements flush too).
    #: Longer means fuller batches and fewer SQS requests for a small delay in results. No flag.
    flush_interval_s: float = Field(default=0.25, gt=0)
    slot_memory_mb: int | None = Field(
        default=None,
        ge=64,
        description="address space each slot's child may use (its RLIMIT_AS; at least 64, "
        "about what an interpreter needs): a handler needing more fails its task with "
        "OutOfMemory instead of the kernel killing the container. Handlers see it, or else "
        "their share of the container's memory, as context.memory_limit_in_mb. Unset: no cap",
        json_schema_extra=_metavar("MB"),
    )
    handler_credentials: bool = Field(
        default=False,
        description="pass the agent's AWS credentials (its environment's keys, profile, Pod "
        "Identity or IRSA variables) on to handlers; off, handlers get none "
        "(slots.handler_environment). Also HTCGRID_HANDLER_CREDENTIALS=true",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PORT,
        description="serve Prometheus metrics on this port",
        json_schema_extra=_metavar("PORT"),
    )
    health_port: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PORT,
        description="serve /healthz (alive) and /readyz (taking work) on this port",
        json_schema_extra=_metavar("PORT"),
    )
    listen_address: IPvAnyAddress = Field(
        default=IPv4Address("0.0.0.0"),  # noqa: S104 - a pod's own interfaces, see description
        description="address the metrics and health ports listen on: every interface by "
        "default, as Prometheus and the kubelet reach a pod by its IP (the pod's network is "
        "its own); 127.0.0.1 where other users share the host (the local grid passes it)",
        json_schema_extra=_metavar("ADDRESS"),
    )
    name: str = Field(
        default="htcgrid-agent",
        description="agent name in logs and as the context's function name",
        json_schema_extra=_metavar("NAME"),
    )
    bootstrap: str | None = Field(
        default=None,
        description="start CMD per slot as a Lambda custom runtime's bootstrap "
        "(AWS_LAMBDA_RUNTIME_API and Lambda's variables set; --handler becomes _HANDLER)",
        json_schema_extra=_metavar("CMD"),
    )
    runtime_api_port: int | None = Field(
        default=None,
        ge=1,
        description="serve the Runtime API for runtimes started by others (sidecars): "
        "slot i on 127.0.0.1:PORT+i",
        json_schema_extra=_metavar("PORT"),
    )
    task_root: str | None = Field(
        default=None,
        description="the runtime's working directory and LAMBDA_TASK_ROOT (unset: the current one)",
        json_schema_extra=_metavar("DIR"),
    )
    runtime_init_timeout_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="runtime_init_timeout",
        description="seconds a runtime may take to ask for its first invocation "
        "(Lambda's init phase)",
        json_schema_extra=_metavar("S"),
    )

    @model_validator(mode="after")
    def _runs_tasks_somehow(self) -> AgentConfig:
        if self.bootstrap is not None and self.runtime_api_port is not None:
            raise ValueError(
                "--bootstrap and --runtime-api-port exclude each other: the agent either starts "
                "the runtimes or serves runtimes started by others"
            )
        if not self.handler and not self.uses_runtime_api:
            raise ValueError(
                "--handler (or HTCGRID_HANDLER) is required, unless --bootstrap or "
                "--runtime-api-port runs tasks in a Lambda runtime"
            )
        if self.runtime_api_port is not None and self.runtime_api_port + self.slots > MAX_PORT:
            raise ValueError(
                f"--runtime-api-port must leave room for {self.slots} ports below "
                f"{MAX_PORT + 1} (one per slot), not {self.runtime_api_port}"
            )
        return self

    @property
    def uses_runtime_api(self) -> bool:
        """Tasks run in a Lambda runtime through the Runtime API, not in Python children."""
        return self.bootstrap is not None or self.runtime_api_port is not None
