"""``htcgrid-agent``: run a worker agent against the grid named by HTCGRID_* settings."""

from __future__ import annotations

import argparse
import os
import sys

from prometheus_client import start_http_server

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.health import HealthServer, Probes
from htcgrid_agent.process import become_subreaper, protect_memory
from htcgrid_agent.slots import HandlerLoadError
from htcgrid_agent.worker import Worker
from htcgrid_core.resources import get_resources

EXAMPLES = """
examples:
  htcgrid-agent --handler htcgrid_examples.pricing:handler --slots 2
  htcgrid-agent --handler mypkg.tasks:handler --burst          # drain the queues, then exit
  htcgrid-agent --bootstrap ./bootstrap --handler app.handler --slots 4   # any Lambda runtime
  htcgrid-agent --runtime-api-port 9001 --slots 2    # runtimes in sidecar containers
"""


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    defaults = AgentConfig(handler="")
    parser = argparse.ArgumentParser(
        prog="htcgrid-agent",
        description="Take tasks from the grid's priority queues and run a Lambda-style handler.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--handler",
        default=os.environ.get("HTCGRID_HANDLER"),
        help="module:function called as handler(event, context)",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=defaults.slots,
        help="tasks run at once, one child process each (default %(default)s)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        default=defaults.prefetch,
        help="messages taken beyond free slots, for fuller batches (default %(default)s)",
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--max-tasks", type=int, default=None, help="exit after N tasks")
    parser.add_argument("--max-idle", type=float, default=None, help="exit after S idle seconds")
    parser.add_argument(
        "--starvation-weight",
        type=int,
        default=None,
        metavar="N",
        help="ask a lower priority level first once it went N fetches unserved "
        "(default: strict priority)",
    )
    parser.add_argument(
        "--long-poll",
        type=int,
        default=defaults.long_poll_s,
        help="long-poll wait in seconds when idle (default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve /healthz (alive) and /readyz (taking work) on this port",
    )
    parser.add_argument(
        "--slot-memory-mb",
        type=int,
        default=None,
        metavar="MB",
        help="address space each slot's child may use; a handler needing more fails its task "
        "with OutOfMemory (default: no cap)",
    )
    parser.add_argument(
        "--handler-credentials",
        action="store_true",
        default=os.environ.get("HTCGRID_HANDLER_CREDENTIALS", "").lower() in ("1", "true"),
        help="pass the agent's AWS credentials on to handlers (default: handlers get none)",
    )
    parser.add_argument("--name", default=defaults.name, help="agent name in logs and contexts")
    runtime = parser.add_argument_group(
        "Lambda runtimes", "run tasks in any Lambda runtime through the Runtime API"
    )
    modes = runtime.add_mutually_exclusive_group()
    modes.add_argument(
        "--bootstrap",
        metavar="CMD",
        help="start CMD per slot as a Lambda custom runtime's bootstrap (AWS_LAMBDA_RUNTIME_API "
        "and Lambda's variables set; --handler becomes _HANDLER)",
    )
    modes.add_argument(
        "--runtime-api-port",
        type=int,
        metavar="PORT",
        help="serve the Runtime API for runtimes started by others (sidecars): slot i on "
        "127.0.0.1:PORT+i",
    )
    runtime.add_argument(
        "--task-root",
        metavar="DIR",
        help="the runtime's working directory and LAMBDA_TASK_ROOT (default: the current one)",
    )
    runtime.add_argument(
        "--runtime-init-timeout",
        type=float,
        default=defaults.runtime_init_timeout_s,
        metavar="S",
        help="seconds a runtime may take to ask for its first invocation (default %(default)s)",
    )
    args = parser.parse_args(argv)
    uses_runtime = args.bootstrap is not None or args.runtime_api_port is not None
    if not args.handler and not uses_runtime:
        parser.error("--handler (or HTCGRID_HANDLER) is required")
    if args.runtime_api_port is not None and not 0 < args.runtime_api_port <= 65535 - args.slots:
        parser.error(f"--runtime-api-port must leave room for {args.slots} ports below 65536")
    if args.runtime_init_timeout <= 0:
        parser.error("--runtime-init-timeout must be positive")
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    if args.slot_memory_mb is not None and args.slot_memory_mb < 64:
        parser.error("--slot-memory-mb must be at least 64 (an interpreter needs about that)")
    if args.starvation_weight is not None and args.starvation_weight < 1:
        parser.error("--starvation-weight must be at least 1")
    return AgentConfig(
        handler=args.handler or "",
        slots=args.slots,
        prefetch=max(0, args.prefetch),
        burst=args.burst,
        max_tasks=args.max_tasks,
        max_idle_s=args.max_idle,
        starvation_weight=args.starvation_weight,
        long_poll_s=args.long_poll,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        slot_memory_mb=args.slot_memory_mb,
        handler_credentials=args.handler_credentials,
        name=args.name,
        bootstrap=args.bootstrap,
        runtime_api_port=args.runtime_api_port,
        task_root=args.task_root,
        runtime_init_timeout_s=args.runtime_init_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if not config.handler_credentials:
        # Handlers run as the agent's user: keep them out of its memory, which holds the
        # credentials it withholds from them (``process.protect_memory``).
        protect_memory()
    # Processes a killed handler left behind come to the agent, which collects them (as PID 1
    # of its container it gets them anyway).
    become_subreaper()
    if config.metrics_port is not None:
        start_http_server(config.metrics_port)
    worker = Worker(config, get_resources())
    health = None
    if config.health_port is not None:
        health = HealthServer(Probes(worker), config.health_port).start()
    try:
        worker.work()
    except HandlerLoadError as error:
        print(f"htcgrid-agent: cannot load the handler: {error}", file=sys.stderr)
        return 2
    finally:
        if health is not None:
            health.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
