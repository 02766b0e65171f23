"""The local grid: emulator, stack from ``template.yaml``, and N worker agents, as one object.

``LocalGrid`` is the composition root the demo, the end-to-end tests and ``htcgrid-local up``
use. Without an endpoint it starts the embedded emulator and provisions the stack on it; with
an emulator endpoint (LocalStack, a moto server) it provisions there; with ``clients.AWS`` it
only reads the outputs of a stack ``sam deploy`` created. Either way it then starts agents
(``python -m htcgrid_agent``) with the environment that points them at the grid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from htcgrid_core.stack import settings_environment
from htcgrid_local.clients import EMULATOR_CREDENTIALS, is_real_aws
from htcgrid_local.emulator import Emulator, stop_processes
from htcgrid_local.monitoring.prometheus import LocalPrometheus, free_port
from htcgrid_local.provision import StackOutputs, provision_stack, read_stack_outputs
from htcgrid_local.schedules import DEFAULT_PERIOD_S

#: The repository's template, found from this package's place in the source tree (local/).
REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
#: How long a stopping agent may finish or hand back its tasks before it is killed.
AGENT_GRACE_S = 30.0


def default_template() -> Path:
    """The source tree's ``template.yaml`` (this package sits in local/), else the cwd's."""
    return REPO_TEMPLATE if REPO_TEMPLATE.exists() else Path.cwd() / "template.yaml"


class LocalGrid:
    """The whole grid on this machine (or the agents of a grid elsewhere).

    ``start()`` returns once the stack exists and the agents are spawned; ``stop()`` stops the
    agents (SIGTERM, then SIGKILL after ``agent_grace_s``) and then the emulator, if it started
    one. Use as a context manager to have both done.
    """

    def __init__(
        self,
        agents: int = 2,
        handler: str | None = None,
        slots: int = 1,
        stack_name: str = "htcgrid",
        endpoint_url: str | None = None,
        agent_env: dict[str, str] | None = None,
        *,
        template_path: str | Path | None = None,
        parameters: dict[str, str] | None = None,
        region: str = "us-east-1",
        log_dir: str | Path | None = None,
        agent_grace_s: float = AGENT_GRACE_S,
        exit_with_parent: bool = True,
        agent_args: Sequence[str] = (),
        schedule_period_s: float = DEFAULT_PERIOD_S,
        emulator_env: dict[str, str] | None = None,
        monitoring: bool = False,
    ) -> None:
        if agents and not handler:
            raise ValueError("agents need a handler ('module:function')")
        self.agent_count = agents
        self.handler = handler
        self.slots = slots
        #: Extra command-line arguments for every agent (e.g. ``["--prefetch", "6"]``).
        self.agent_args = list(agent_args)
        #: How often the emulator fires the stack's schedules (the TTL reaper); 0 never.
        self.schedule_period_s = schedule_period_s
        #: Extra environment of the emulator and so of the Lambdas (e.g. HTCGRID_FAULTS).
        self.emulator_env = dict(emulator_env or {})
        self.stack_name = stack_name
        self.region = region
        self.template_path = Path(template_path) if template_path else default_template()
        self.parameters = parameters
        self.agent_grace_s = agent_grace_s
        #: False for a grid meant to outlive this process (``htcgrid-local up --detach``).
        self.exit_with_parent = exit_with_parent
        self.agents: list[subprocess.Popen[bytes]] = []
        #: Each agent's name -> its Prometheus metrics port on 127.0.0.1 (every agent has one,
        #: so ``htcgrid top`` can read them; ``metrics_urls`` gives the URLs).
        self.metrics_ports: dict[str, int] = {}
        #: With ``monitoring``: a real Prometheus scraping every agent (``start()`` starts it).
        self.monitoring = monitoring
        self.prometheus: LocalPrometheus | None = None
        self.emulator: Emulator | None = None
        self._endpoint_url = endpoint_url
        self._extra_agent_env = dict(agent_env or {})
        self._outputs: StackOutputs | None = None
        self._log_dir = Path(log_dir) if log_dir else None
        self._logs: list[IO[bytes]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalGrid:
        """Start the emulator (unless an endpoint was given), provision, start the agents."""
        if self._outputs is not None:
            return self
        try:
            if self._endpoint_url is None:
                self.emulator = Emulator(
                    region=self.region,
                    log_path=self.log_dir / "emulator.log",
                    exit_with_parent=self.exit_with_parent,
                    schedule_period_s=self.schedule_period_s,
                    env=self.emulator_env,
                )
                self.emulator.start()
            if is_real_aws(self._endpoint_url):
                self._outputs = read_stack_outputs(
                    self.endpoint_url, self.stack_name, region=self.region
                )
            else:
                self._outputs = provision_stack(
                    self.endpoint_url,
                    self.template_path,
                    self.stack_name,
                    self.parameters,
                    region=self.region,
                )
            if self.monitoring:
                self.prometheus = LocalPrometheus(self.log_dir / "prometheus", self.stack_name)
                self.prometheus.start()
            for _ in range(self.agent_count):
                self.start_agent()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every agent, then the emulator this grid started. Safe to call twice."""
        stop_processes(list(self.agents), self.agent_grace_s)
        self.agents = []
        self.metrics_ports = {}
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        for log in self._logs:
            log.close()
        self._logs = []
        self._outputs = None

    def __enter__(self) -> LocalGrid:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what others need --------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """Where the grid's AWS APIs answer (``clients.AWS`` for a real account)."""
        if self._endpoint_url is not None:
            return self._endpoint_url
        if self.emulator is None:
            raise RuntimeError("the local grid is not started")
        return self.emulator.endpoint_url

    @property
    def outputs(self) -> StackOutputs:
        """The stack's Outputs (TaskTableName, SubmitWorkflowArn, ...)."""
        if self._outputs is None:
            raise RuntimeError("the local grid is not started")
        return self._outputs

    @property
    def log_dir(self) -> Path:
        """Where the emulator's and the agents' output goes (a temporary directory by default)."""
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="htcgrid-local-"))
        return self._log_dir

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Each agent's name -> the URL of its Prometheus metrics."""
        return {
            name: f"http://127.0.0.1:{port}/metrics" for name, port in self.metrics_ports.items()
        }

    def agent_env(self) -> dict[str, str]:
        """The environment an agent or a client needs to reach this grid.

        HTCGRID_* settings from the stack's outputs, the region, and for an emulator its URL
        and dummy credentials (a real account keeps the ambient credentials).
        """
        emulated = not is_real_aws(self.endpoint_url)
        env = settings_environment(
            self.outputs, region=self.region, endpoint_url=self.endpoint_url if emulated else None
        )
        env["AWS_DEFAULT_REGION"] = self.region
        if emulated:
            env.update(EMULATOR_CREDENTIALS)
        return env

    def start_agent(self, *args: str) -> subprocess.Popen[bytes]:
        """Start one more agent (``python -m htcgrid_agent``) and return its process. ``args``
        are this agent's own arguments after the grid's (e.g. ``"--bootstrap", path``)."""
        if self.handler is None:
            raise ValueError("this grid has no handler for agents")
        index = len(self.agents)
        name = f"local-{index}"
        self.metrics_ports[name] = free_port()
        log = (self.log_dir / f"agent-{index}.log").open("ab")
        self._logs.append(log)
        env = {**os.environ, **self.agent_env(), **self._extra_agent_env}
        if not is_real_aws(self.endpoint_url):
            # Whatever profile the developer has must not win over the emulator's credentials.
            env.pop("AWS_PROFILE", None)
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "htcgrid_agent",
                "--handler",
                self.handler,
                "--slots",
                str(self.slots),
                "--name",
                name,
                "--metrics-port",
                str(self.metrics_ports[name]),
                # This machine's other users have no business with the agents' ports.
                "--listen-address",
                "127.0.0.1",
                *self.agent_args,
                *args,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.agents.append(agent)
        if self.prometheus is not None:
            self.prometheus.set_targets(self.metrics_ports)
        return agent

    def kill_agent(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to agent ``index`` (SIGKILL: a crash; SIGTERM: a scale-in)."""
        self.agents[index].send_signal(sig)
