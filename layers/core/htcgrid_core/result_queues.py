"""A session's result queue: its name and URL, created and deleted by the control plane only.

Agents (and the retry function) send result notices to it; the session's client long-polls it.
Clients may only receive and delete messages on it: the session function creates it with
SSE-SQS and a TLS-only policy, and deletes it, so no client can create, re-create, re-policy,
delete or send to any session's queue. A submission may name only its own session's queue.

The name is ``<stack>_s_<session>``. Stack names cannot contain ``_``, so the IAM pattern
``<stack>_s_*`` matches this stack's result queues and no queue of any other stack (whose
names start ``<other stack>-`` or ``<other stack>_s_``). SQS allows 80 characters: a name
that would be longer is refused, never truncated (two sessions must never share a queue).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from htcgrid_core import aws
from htcgrid_core.errors import InvalidSubmissionError, RetryableError
from htcgrid_core.models import SessionQueue

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from htcgrid_core.ports import GridPorts
    from htcgrid_core.resources import GridResources

#: Between the stack name and the session id; stack names cannot hold ``_`` (see above).
INFIX = "_s_"
#: SQS's longest queue name.
MAX_QUEUE_NAME = 80
#: How long a notice stays hidden after a receive before the client may see it again.
VISIBILITY_TIMEOUT_S = 60

_EXISTS = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_DELETED_RECENTLY = {"QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently"}
_MISSING = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def queue_name(queue_prefix: str, session_id: str) -> str:
    """The result queue's name for a session; refused if SQS cannot hold it whole."""
    name = f"{queue_prefix}{INFIX}{session_id}"
    if len(name) > MAX_QUEUE_NAME:
        longest = MAX_QUEUE_NAME - len(queue_prefix) - len(INFIX)
        raise InvalidSubmissionError(
            f"session_id: {len(session_id)} characters; this stack's result queue names "
            f"('{queue_prefix}{INFIX}<session>', at most {MAX_QUEUE_NAME} characters) leave "
            f"room for {longest}"
        )
    return name


def queue_url(grid: GridPorts, session_id: str) -> str:
    """The URL of a session's result queue: this stack's task queues' URL (scheme, host,
    account: the same region and account) with the result queue's name. One definition for
    the session function, which hands it out, and the submission check, which accepts
    nothing else."""
    base = grid.queues.task_queue_url(0).rsplit("/", 1)[0]
    return f"{base}/{queue_name(grid.settings.queue_prefix, session_id)}"


def check_submitted_url(grid: GridPorts, session_id: str, url: str | None) -> None:
    """A submission's ``result_queue_url`` must be its own session's result queue."""
    if url is not None and url != queue_url(grid, session_id):
        raise InvalidSubmissionError(
            "result_queue_url: must be this grid's result queue for session "
            f"'{session_id}', as the session function's 'open' returns it"
        )


def tls_only_policy(queue_arn: str) -> str:
    """The queue policy: every request over plain HTTP is denied. It grants nothing: access
    comes from the IAM policies of the agents, the functions and the clients."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def queue_arn(function_arn: str, name: str) -> str:
    """The ARN of queue ``name`` in the partition, region and account of the function whose
    ARN is given (the session function's own: its queues live where it runs)."""
    parts = function_arn.split(":")  # arn:<partition>:lambda:<region>:<account>:function:...
    partition, region, account = parts[1], parts[3], parts[4]
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def open_queue(grid: GridResources, session_id: str, function_arn: str) -> SessionQueue:
    """Create the session's result queue, encrypted and TLS-only, or bring an existing one to
    those attributes (idempotent: a session opened twice keeps one queue)."""
    name = queue_name(grid.settings.queue_prefix, session_id)
    attributes = {
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
        "MessageRetentionPeriod": str(grid.settings.session_queue_retention_s),
        "Policy": tls_only_policy(queue_arn(function_arn, name)),
    }
    sqs = _sqs(grid)
    try:
        sqs.create_queue(QueueName=name, Attributes=attributes)  # type: ignore[arg-type]
    except ClientError as error:
        code = _code(error)
        if code in _DELETED_RECENTLY:
            raise RetryableError(
                f"the result queue of session '{session_id}' was deleted less than 60 s ago; "
                "SQS re-creates a queue of the same name only after that"
            ) from None
        if code not in _EXISTS:
            raise
        # Created earlier with other attributes: it is this session's queue, so set ours.
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return SessionQueue(session_id=session_id, result_queue_url=queue_url(grid, session_id))


def close_queue(grid: GridResources, session_id: str) -> SessionQueue:
    """Delete the session's result queue (a queue already gone is not an error)."""
    try:
        _sqs(grid).delete_queue(QueueUrl=queue_url(grid, session_id))
    except ClientError as error:
        if _code(error) not in _MISSING:
            raise
    return SessionQueue(session_id=session_id)


def _sqs(grid: GridResources) -> SQSClient:
    return aws.sqs(grid.settings.endpoint_url, grid.settings.region)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
