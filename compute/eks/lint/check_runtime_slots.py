"""Checks how rendered agent Deployments wire their Lambda runtime sidecars (lambda-runtime).

Kustomize cannot loop, so each slot's runtime container is written out (a patch per slot beyond
the component's two), and a slot copied by hand is easy to get subtly wrong in ways no schema
sees: a port twice, AGENT_SLOTS not raised, a container as another user (the agent then cannot
kill it). For every Deployment whose agent has --runtime-api-port, this checks that:

- the pod shares its process namespace;
- AGENT_SLOTS equals the number of runtime containers (those with AWS_LAMBDA_RUNTIME_API);
- their AWS_LAMBDA_RUNTIME_API are 127.0.0.1:PORT .. 127.0.0.1:PORT+N-1, once each;
- each runs as the agent's user (container securityContext over the pod's);
- each has a preStop hook (the component's waits for the agent to exit: a pod's deletion
  signals every container at once, and a runtime stopped then fails the tasks being drained).

A runtime container left out of the Pod Identity webhook's skip list is reported (it gets the
agent's role: allowed, but said). Deployments without --runtime-api-port are not concerned.

Usage (from scripts/lint-k8s.sh, in the .tools/k8s venv):
    python check_runtime_slots.py rendered.yaml ...
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

AGENT = "agent"
RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
SKIP_CONTAINERS = "eks.amazonaws.com/skip-containers"
_VARIABLE = re.compile(r"\$\((\w+)\)")


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env entries that have a literal value."""
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def flag(container: dict[str, Any], name: str) -> str | None:
    """The value of --name=VALUE or --name VALUE in the container's args, $(VAR)s expanded from
    its literal env as the kubelet expands them; None if the flag is absent."""
    args = [*container.get("command", []), *container.get("args", [])]
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(args):
            value = args[i + 1]
    if value is None:
        return None
    env = literal_env(container)
    return _VARIABLE.sub(lambda m: env.get(m[1], m[0]), value)


def run_as_user(pod: dict[str, Any], container: dict[str, Any]) -> Any:
    """The user a container runs as, as far as the manifest says (None: the image's)."""
    own = container.get("securityContext", {}).get("runAsUser")
    return own if own is not None else pod.get("securityContext", {}).get("runAsUser")


def check_deployment(deployment: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes) for one Deployment; both empty if it is not in sidecar mode."""
    template = deployment.get("spec", {}).get("template", {})
    pod = template.get("spec", {})
    containers = pod.get("containers", [])
    agent = next((c for c in containers if c.get("name") == AGENT), None)
    port_flag = None if agent is None else flag(agent, "--runtime-api-port")
    if agent is None or port_flag is None:
        return [], []
    problems: list[str] = []
    if not port_flag.isdigit():
        return [f"--runtime-api-port is {port_flag!r}, not a port number"], []
    port = int(port_flag)
    if pod.get("shareProcessNamespace") is not True:
        problems.append("shareProcessNamespace must be true (the agent kills overrunning runtimes)")
    runtimes = [c for c in containers if RUNTIME_API in literal_env(c)]
    slots = flag(agent, "--slots")
    if slots != str(len(runtimes)):
        problems.append(
            f"the agent has --slots {slots} but there are {len(runtimes)} runtime containers "
            f"(containers with {RUNTIME_API}): one per slot"
        )
    addresses = sorted(literal_env(c)[RUNTIME_API] for c in runtimes)
    expected = sorted(f"127.0.0.1:{port + i}" for i in range(len(runtimes)))
    if addresses != expected:
        problems.append(
            f"{RUNTIME_API} of the runtime containers are {addresses}; with "
            f"--runtime-api-port={port} and {len(runtimes)} slots they must be {expected}"
        )
    agent_user = run_as_user(pod, agent)
    for runtime in runtimes:
        user = run_as_user(pod, runtime)
        if agent_user is None or user != agent_user:
            problems.append(
                f"container {runtime['name']} runs as user {user}, the agent as {agent_user}: "
                "both must be set and equal, or the agent cannot kill the runtime"
            )
    for runtime in runtimes:
        if "preStop" not in runtime.get("lifecycle", {}):
            problems.append(
                f"container {runtime['name']} has no preStop hook: a pod deletion would stop it "
                "while the agent drains its task (copy the runtime-0 container's)"
            )
    annotations = template.get("metadata", {}).get("annotations", {})
    skipped = set(annotations.get(SKIP_CONTAINERS, "").split(","))
    notes = [
        f"{runtime['name']} is not in {SKIP_CONTAINERS}: its handler gets the agent's AWS role"
        for runtime in runtimes
        if runtime["name"] not in skipped
    ]
    summary = f"{len(runtimes)} slots on 127.0.0.1:{port}..{port + len(runtimes) - 1}"
    return problems, [summary, *notes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", type=Path, nargs="+")
    args = parser.parse_args(argv)
    failures = 0
    for path in args.manifests:
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not obj or obj.get("kind") != "Deployment":
                continue
            name = f"{path.name}: Deployment/{obj['metadata']['name']}"
            problems, notes = check_deployment(obj)
            for problem in problems:
                print(f"{name}: {problem}", file=sys.stderr)
            failures += bool(problems)
            if not problems:
                for note in notes:
                    print(f"  {name}: {note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
