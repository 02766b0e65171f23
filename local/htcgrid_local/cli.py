"""``htcgrid-local``: start, stop and describe the local grid from a shell.

``up`` starts the emulator, provisions ``template.yaml`` and starts agents, records what runs
in ``.htcgrid/local.json`` and stays in the foreground until Ctrl-C (or returns at once with
``--detach``); ``down`` stops what that file lists; ``env`` prints the variables a client or an
agent needs as ``export`` lines; ``serve`` is the emulator process itself.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

#: Where ``up`` records the running grid, relative to the current directory.
DEFAULT_STATE_FILE = Path(".htcgrid/local.json")

EXAMPLES = """
examples:
  htcgrid-local up --agents 2 --handler htcgrid_examples.pricing:handler     # Ctrl-C stops it
  htcgrid-local up --detach --agents 2 --handler htcgrid_examples.pricing:handler
  htcgrid-local up --detach --monitoring --handler htcgrid_examples.pricing:handler  # + Prometheus
  eval "$(htcgrid-local env)"      # point this shell's clients at the grid
  htcgrid-local down
  htcgrid-local up --endpoint-url http://localhost:4566 --agents 0   # provision LocalStack
  htcgrid-local up --endpoint-url aws --handler mypkg:handler         # agents for a deployed stack
  htcgrid-local up --handler app.handler --bootstrap ./bootstrap --task-root .   # a Lambda runtime
"""


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``htcgrid-local`` and ``python -m htcgrid_local``."""
    args = _parser().parse_args(argv)
    sys.exit(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htcgrid-local",
        description="The whole htcgrid on this machine: emulator, template.yaml, agents.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the local grid")
    up.add_argument("--agents", type=int, default=2, help="agents to start (default 2)")
    up.add_argument("--handler", help="the agents' task handler, module:function")
    up.add_argument("--slots", type=int, default=1, help="concurrent tasks per agent")
    up.add_argument(
        "--bootstrap",
        metavar="CMD",
        help="run tasks in this Lambda runtime (a custom runtime's bootstrap), started per slot "
        "with --handler as its _HANDLER (docs/runtimes.md)",
    )
    up.add_argument("--task-root", type=Path, help="the runtime's LAMBDA_TASK_ROOT and cwd")
    up.add_argument("--stack-name", default="htcgrid")
    up.add_argument(
        "--endpoint-url",
        help="use this emulator instead of starting one ('aws': a deployed stack, outputs only)",
    )
    up.add_argument("--template", type=Path, help="SAM template (default: the repo's)")
    up.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="template parameter"
    )
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--detach", action="store_true", help="leave it running and return")
    up.add_argument(
        "--monitoring",
        action="store_true",
        help="also start Prometheus scraping every agent, on 127.0.0.1 at a free port "
        "(needs `make prometheus`; docs/monitoring-grafana.md)",
    )
    up.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop what `up --detach` started")
    down.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    down.set_defaults(run=_down)

    env = commands.add_parser("env", help="print the grid's environment as export lines")
    env.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    env.set_defaults(run=_env)

    serve = commands.add_parser("serve", help="run the emulator in this process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--region", default="us-east-1")
    serve.add_argument("--ready-file", type=Path, help="write the endpoint here once listening")
    serve.add_argument("--parent-pid", type=int, help="stop when this process exits")
    serve.add_argument(
        "--schedule-period",
        type=float,
        default=0.0,
        help="fire the stacks' EventBridge schedules every this many seconds (0: never)",
    )
    serve.set_defaults(run=_serve)
    return parser


def _up(args: argparse.Namespace) -> int:
    from htcgrid_local.grid import LocalGrid

    if args.agents and not args.handler:
        print("htcgrid-local: agents need --handler module:function", file=sys.stderr)
        return 2
    if args.state_file.exists():
        print(f"htcgrid-local: {args.state_file} exists: run `htcgrid-local down` first")
        return 1
    parameters = dict(_key_value(item) for item in args.param)
    runtime_args = ["--bootstrap", args.bootstrap] if args.bootstrap else []
    if args.task_root:
        runtime_args += ["--task-root", str(args.task_root.resolve())]
    grid = LocalGrid(
        agents=args.agents,
        handler=args.handler,
        slots=args.slots,
        stack_name=args.stack_name,
        endpoint_url=args.endpoint_url,
        template_path=args.template,
        parameters=parameters or None,
        region=args.region,
        log_dir=args.state_file.parent / "logs",
        exit_with_parent=not args.detach,
        agent_args=runtime_args,
        monitoring=args.monitoring,
    )
    grid.start()
    state = {
        "endpoint_url": grid.endpoint_url,
        "stack_name": grid.stack_name,
        "region": grid.region,
        "outputs": dict(grid.outputs),
        "env": grid.agent_env(),
        "pids": {
            "emulator": grid.emulator.pid if grid.emulator else None,
            "agents": [agent.pid for agent in grid.agents],
            "prometheus": grid.prometheus.process.pid
            if grid.prometheus and grid.prometheus.process
            else None,
        },
        # Each agent's Prometheus metrics (htcgrid top reads them), and the grid's Prometheus.
        "metrics": grid.metrics_urls,
        "prometheus_url": grid.prometheus.url if grid.prometheus else None,
        "log_dir": str(grid.log_dir.resolve()),
    }
    args.state_file.parent.mkdir(parents=True, exist_ok=True)
    args.state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
    print(
        f"local grid up at {grid.endpoint_url}: stack {grid.stack_name}, "
        f"{len(grid.agents)} agents; logs in {grid.log_dir}"
    )
    if grid.prometheus:
        print(f"Prometheus at {grid.prometheus.url}, scraping every agent")
    print(f'point a shell at it with: eval "$(htcgrid-local env --state-file {args.state_file})"')
    if args.detach:
        return 0

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while grid.emulator is None or grid.emulator.process is None:
            time.sleep(1.0)  # another endpoint: nothing of ours to watch, wait for Ctrl-C
        grid.emulator.process.wait()
        print("htcgrid-local: the emulator exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the local grid")
        return 0
    finally:
        grid.stop()
        args.state_file.unlink(missing_ok=True)


def _down(args: argparse.Namespace) -> int:
    from htcgrid_local.emulator import STOP_GRACE_S, stop_processes
    from htcgrid_local.grid import AGENT_GRACE_S
    from htcgrid_local.monitoring.prometheus import STOP_GRACE_S as PROMETHEUS_GRACE_S

    state = _read_state(args.state_file)
    if state is None:
        return 1
    pids = state.get("pids", {})
    # Agents first, while the emulator still answers: they hand back what they hold.
    stop_processes([int(pid) for pid in pids.get("agents", [])], AGENT_GRACE_S)
    if pids.get("prometheus"):
        stop_processes([int(pids["prometheus"])], PROMETHEUS_GRACE_S)
    if pids.get("emulator"):
        stop_processes([int(pids["emulator"])], STOP_GRACE_S)
    args.state_file.unlink(missing_ok=True)
    print(f"local grid at {state.get('endpoint_url')} stopped")
    return 0


def _env(args: argparse.Namespace) -> int:
    state = _read_state(args.state_file)
    if state is None:
        return 1
    for name, value in sorted(state["env"].items()):
        print(f"export {name}={shlex.quote(str(value))}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    from htcgrid_local.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(
        args.host,
        args.port,
        region=args.region,
        ready_file=args.ready_file,
        parent_pid=args.parent_pid,
        schedule_period_s=args.schedule_period,
    )
    return 0


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        print(f"htcgrid-local: no local grid recorded in {path}", file=sys.stderr)
        return None
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return state


def _key_value(item: str) -> tuple[str, str]:
    key, separator, value = item.partition("=")
    if not separator:
        raise SystemExit(f"htcgrid-local: --param takes KEY=VALUE, not {item!r}")
    return key, value
