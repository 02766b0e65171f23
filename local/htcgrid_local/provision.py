"""Create the stack of ``template.yaml`` on an emulator, or read an existing stack's outputs.

On an emulator (embedded moto or LocalStack) provisioning is: translate the SAM template,
upload its code and definitions to a staging bucket, ``create_stack`` (or ``update_stack``) and
wait for it. On a real account provisioning is ``sam deploy``; here we only read outputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from htcgrid_local.clients import client, is_real_aws
from htcgrid_local.template import Artifact, translate

#: Bucket on the emulator that holds packaged code and state-machine definitions.
STAGING_BUCKET = "htcgrid-local-staging"
#: Largest TemplateBody CloudFormation accepts; larger templates go through S3.
MAX_TEMPLATE_BODY_BYTES = 51_200
#: How long a stack may take to reach a final state.
STACK_TIMEOUT_S = 300.0

_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_FINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
_IN_PROGRESS_SUFFIX = "_IN_PROGRESS"


class ProvisioningError(RuntimeError):
    """The stack did not reach CREATE_COMPLETE/UPDATE_COMPLETE; the message says why."""


class StackOutputs(dict[str, str]):
    """A stack's Outputs, ``OutputKey`` to ``OutputValue``, and which stack they came from."""

    def __init__(self, stack_name: str, outputs: dict[str, str]) -> None:
        super().__init__(outputs)
        self.stack_name = stack_name


def provision_stack(
    endpoint_url: str,
    template_path: str | Path,
    stack_name: str = "htcgrid",
    parameters: dict[str, str] | None = None,
    *,
    region: str = "us-east-1",
    timeout_s: float = STACK_TIMEOUT_S,
) -> StackOutputs:
    """Create (or update) ``stack_name`` from the SAM template on the emulator at ``endpoint_url``.

    Returns once the stack is complete, with its Outputs. Raises ProvisioningError with the
    failed resources' reasons otherwise. A real AWS endpoint is refused: deploy with
    ``sam deploy`` and use :func:`read_stack_outputs`.
    """
    if is_real_aws(endpoint_url):
        raise ProvisioningError(
            "provisioning a real account is `sam deploy`'s job; use read_stack_outputs()"
        )
    translated = translate(
        Path(template_path), staging_bucket=STAGING_BUCKET, region=region, parameters=parameters
    )
    s3 = client("s3", endpoint_url, region)
    _ensure_bucket(s3, STAGING_BUCKET, region)
    for artifact in translated.artifacts:
        _upload(s3, artifact)
    template_arguments = _template_arguments(s3, endpoint_url, translated.template)
    cloudformation = client("cloudformation", endpoint_url, region)
    arguments: dict[str, Any] = {
        "StackName": stack_name,
        **template_arguments,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": str(value)}
            for key, value in (parameters or {}).items()
        ],
        "Capabilities": _CAPABILITIES,
    }
    if _stack_status(cloudformation, stack_name) is None:
        cloudformation.create_stack(**arguments)
    elif _differs(cloudformation, stack_name, translated.template, arguments["Parameters"]):
        cloudformation.update_stack(**arguments)
    _wait_for_stack(cloudformation, stack_name, timeout_s)
    return read_stack_outputs(endpoint_url, stack_name, region=region)


def read_stack_outputs(
    endpoint_url: str, stack_name: str = "htcgrid", *, region: str = "us-east-1"
) -> StackOutputs:
    """The Outputs of an existing stack (``endpoint_url`` may be ``clients.AWS``)."""
    cloudformation = client("cloudformation", endpoint_url, region)
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {
        output["OutputKey"]: str(output.get("OutputValue", ""))
        for output in stacks[0].get("Outputs", [])
    }
    return StackOutputs(stack_name, outputs)


def delete_stack(
    endpoint_url: str, stack_name: str = "htcgrid", *, region: str = "us-east-1"
) -> None:
    """Delete ``stack_name`` from the emulator and wait until it is gone."""
    if is_real_aws(endpoint_url):
        raise ProvisioningError("deleting a real stack is `sam delete`'s job")
    cloudformation = client("cloudformation", endpoint_url, region)
    cloudformation.delete_stack(StackName=stack_name)
    deadline = time.monotonic() + STACK_TIMEOUT_S
    while time.monotonic() < deadline:
        status = _stack_status(cloudformation, stack_name)
        if status is None or status == "DELETE_COMPLETE":
            return
        if not status.endswith(_IN_PROGRESS_SUFFIX):
            raise ProvisioningError(f"stack {stack_name} ended in {status}")
        time.sleep(0.2)
    raise ProvisioningError(f"stack {stack_name} not deleted after {STACK_TIMEOUT_S:.0f} s")


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if not _not_found(error):
            raise
        arguments: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**arguments)


def _upload(s3: Any, artifact: Artifact) -> None:
    # Keys are content hashes: an object that exists already has exactly these bytes.
    try:
        s3.head_object(Bucket=STAGING_BUCKET, Key=artifact.key)
    except ClientError as error:
        if not _not_found(error):
            raise
        s3.put_object(Bucket=STAGING_BUCKET, Key=artifact.key, Body=artifact.body)


def _not_found(error: ClientError) -> bool:
    """HEAD requests have no error body: S3 says "not found" with the status code alone."""
    return bool(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404)


def _template_arguments(s3: Any, endpoint_url: str, template: dict[str, Any]) -> dict[str, str]:
    body = json.dumps(template)
    if len(body.encode("utf-8")) <= MAX_TEMPLATE_BODY_BYTES:
        return {"TemplateBody": body}
    key = "templates/template.json"
    s3.put_object(Bucket=STAGING_BUCKET, Key=key, Body=body.encode("utf-8"))
    # moto reads a TemplateURL from its own S3 without fetching it, and takes the path as
    # bucket/key only when the host says "localhost" (else it expects an amazonaws.com name).
    return {"TemplateURL": f"http://localhost/{STAGING_BUCKET}/{key}"}


def _stack_status(cloudformation: Any, stack_name: str) -> str | None:
    """The stack's status, or None if there is no such (live) stack.

    Lists the stacks rather than describing one by name: for a missing stack DescribeStacks
    answers with a generic ValidationError that only its message tells apart.
    """
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if stack["StackName"] == stack_name and stack["StackStatus"] != "DELETE_COMPLETE":
                return str(stack["StackStatus"])
    return None


def _differs(
    cloudformation: Any,
    stack_name: str,
    template: dict[str, Any],
    parameters: list[dict[str, str]],
) -> bool:
    """True unless the stack already has this template and these parameter values.

    UpdateStack refuses an update that changes nothing (with an error told apart only by its
    message), so an unchanged stack is left alone instead.
    """
    body = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
    current = json.loads(body) if isinstance(body, str) else body
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    given = {p["ParameterKey"]: p["ParameterValue"] for p in parameters}
    existing = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    return bool(
        json.loads(json.dumps(current)) != template
        or any(existing.get(key) != value for key, value in given.items())
    )


def _wait_for_stack(cloudformation: Any, stack_name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    status: str | None = None
    while time.monotonic() < deadline:
        status = _stack_status(cloudformation, stack_name)
        if status in _FINAL_OK:
            return
        if status is None or not status.endswith(_IN_PROGRESS_SUFFIX):
            reasons = _failure_reasons(cloudformation, stack_name)
            raise ProvisioningError(f"stack {stack_name} ended in {status}: {reasons}")
        time.sleep(0.2)
    raise ProvisioningError(f"stack {stack_name} still {status} after {timeout_s:.0f} s")


def _failure_reasons(cloudformation: Any, stack_name: str) -> str:
    try:
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError as error:
        return str(error)
    reasons = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if event.get("ResourceStatus", "").endswith("FAILED")
    ]
    return "; ".join(reasons) or "no failure reason recorded"
