"""A deployed grid as its CloudFormation stack's outputs describe it.

``read_outputs`` fetches the outputs; ``settings_environment`` turns them into the ``HTCGRID_*``
variables an agent runs with (through ``GridSettings.from_stack_outputs``, the one map from
outputs to settings). ``python -m htcgrid_core.stack STACK`` prints those variables and the task
queue URLs KEDA watches as the agents' kustomize env file (``compute/eks/stack-env.sh``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from htcgrid_core import aws
from htcgrid_core.settings import STACK_OUTPUTS, GridSettings, MissingStackOutputsError


def read_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """A stack's outputs by key. DescribeStacks' ``ClientError`` (a ``ValidationError`` code
    for a stack that does not exist, ``AccessDenied``...) reaches the caller."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def settings_environment(
    outputs: Mapping[str, str], *, region: str | None, endpoint_url: str | None = None
) -> dict[str, str]:
    """The ``HTCGRID_*`` variables that give a process the settings the stack's outputs carry,
    its region and endpoint. The settings are validated here, so a bad output fails now rather
    than in every agent; settings no output carries are left to the agent's defaults."""
    settings = GridSettings.from_stack_outputs(outputs, endpoint_url=endpoint_url, region=region)
    carried = {setting for output, setting in STACK_OUTPUTS.items() if outputs.get(output)}
    return settings.as_environment(carried | {"region", "endpoint_url"})


def task_queue_urls(outputs: Mapping[str, str]) -> dict[str, str]:
    """``HTCGRID_TASK_QUEUE_URL_P<level>`` from each level's ``TaskQueueUrlP<level>`` output:
    the queues KEDA scales the agents on."""
    levels = int(outputs["PriorityLevels"])
    return {
        f"HTCGRID_TASK_QUEUE_URL_P{level}": outputs[f"TaskQueueUrlP{level}"]
        for level in range(levels)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m htcgrid_core.stack",
        description="Print a deployed grid's stack outputs as the agents' HTCGRID_* settings "
        "and the task queue URLs KEDA watches (a kustomize env file).",
        epilog="example:\n  python -m htcgrid_core.stack htcgrid > "
        "compute/eks/manifests/overlays/dev/stack.env",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", help="the control plane's CloudFormation stack name")
    parser.add_argument("--region", help="the stack's region (default: boto3's, e.g. AWS_REGION)")
    parser.add_argument("--endpoint-url", help="an emulator's URL instead of AWS")
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    try:
        cloudformation = aws.make_client(session, "cloudformation", args.endpoint_url)
        outputs = read_outputs(cloudformation, args.stack)
        environment = settings_environment(
            outputs, region=session.region_name, endpoint_url=args.endpoint_url
        )
        environment.update(task_queue_urls(outputs))
    except (ClientError, BotoCoreError, MissingStackOutputsError, ValidationError) as error:
        # The AWS errors (no such stack, no credentials or region) and bad outputs, each named.
        print(f"{parser.prog}: stack {args.stack}: {error}", file=sys.stderr)
        return 1
    when = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    print(f"# From stack {args.stack} ({session.region_name}) by {parser.prog} on {when}.")
    for name, value in environment.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
