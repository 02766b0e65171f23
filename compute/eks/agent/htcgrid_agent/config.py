"""The agent's switches, every default in one documented place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentConfig:
    """How one agent runs. Where the grid is comes from ``GridSettings`` (HTCGRID_* env)."""

    #: The task handler: ``module:function``, called as ``handler(event, context)`` in a
    #: Python child; with a Lambda runtime, the runtime's ``_HANDLER`` (may be empty).
    handler: str
    #: Tasks run at once, each in its own child process.
    slots: int = 1
    #: Messages taken beyond the free slots, so each receive brings a full batch. They wait in
    #: the agent (their visibility timeout running), so keep it small for long tasks.
    prefetch: int = 10
    #: Stop when the queues are empty instead of waiting for more work.
    burst: bool = False
    #: Stop after this many tasks (None: no limit).
    max_tasks: int | None = None
    #: Stop after this many seconds without work (None: wait forever).
    max_idle_s: float | None = None
    #: Anti-starvation: a lower priority level with work is asked first once it has gone this
    #: many fetches unserved (``htcgrid_agent.scheduling``). None: strict priority, highest
    #: level first on every fetch.
    starvation_weight: int | None = None
    #: Long-poll wait when every queue was empty. Short enough that a SIGTERM is answered fast.
    long_poll_s: int = 5
    #: Longest wait before acknowledgements and result notices go out while the agent is busy,
    #: in seconds (an idle agent flushes at once; thirty pending acknowledgements flush too).
    #: Longer means fuller batches and fewer SQS requests for a small delay in results.
    flush_interval_s: float = 0.25
    #: Address space each slot's child may use, in MiB (its RLIMIT_AS): a handler that needs
    #: more fails its attempt with OutOfMemory instead of the kernel killing the container.
    #: None: no cap. Handlers see it, or else their share of the container's memory, as
    #: ``context.memory_limit_in_mb``.
    slot_memory_mb: int | None = None
    #: Pass the agent's AWS credentials (its environment's keys, profile, Pod Identity or IRSA
    #: variables) on to handlers. Off: handlers run without them (``slots.handler_environment``).
    handler_credentials: bool = False
    #: Serve Prometheus metrics on this port (None: off).
    metrics_port: int | None = None
    #: Serve /healthz (liveness) and /readyz (readiness) on this port (None: off).
    health_port: int | None = None
    #: Name this agent reports in logs and as the context's function name.
    name: str = "htcgrid-agent"
    #: Run tasks in a Lambda runtime through the Runtime API (``runtime_api``) instead of
    #: Python children: a command started per slot, like a custom runtime's ``bootstrap``...
    bootstrap: str | None = None
    #: ...or runtimes started by others (sidecar containers): slot i serves the Runtime API
    #: on 127.0.0.1:(runtime_api_port + i).
    runtime_api_port: int | None = None
    #: The runtime's working directory and ``LAMBDA_TASK_ROOT`` (None: the agent's).
    task_root: str | None = None
    #: How long a runtime may take to ask for its first invocation (Lambda's init phase).
    runtime_init_timeout_s: float = 30.0

    @property
    def uses_runtime_api(self) -> bool:
        return self.bootstrap is not None or self.runtime_api_port is not None
