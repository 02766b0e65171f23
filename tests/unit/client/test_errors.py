"""What the client makes of botocore's, pydantic's and the core's errors (``grid_error``): one
of a few ``GridError`` kinds a caller can act on, the original as its cause.

AWS errors are botocore's own: ``ClientError`` with the response AWS sends (its error code,
message and HTTP status, as botocore parses them), and botocore's exception classes (no
network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore import exceptions as boto

from htcgrid import (
    AccessDeniedError,
    CredentialsError,
    GridError,
    InvalidRequestError,
    NotFoundError,
    ServiceError,
    ThrottledError,
    UnreachableError,
)
from htcgrid.errors import calling, grid_error
from htcgrid_core.errors import InvalidSubmissionError, RetryableError, TaskNotFoundError
from htcgrid_core.models import StatusQuery

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:htcgrid-status"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/htcgrid_s_sweep-7"


def client_error(code: str, message: str, status: int, operation: str = "Invoke") -> Any:
    """The ``ClientError`` botocore raises for an AWS error response."""
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "4a5b6c"},
    }
    return boto.ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        # credentials AWS refused
        ("ExpiredToken", 403, CredentialsError),
        ("ExpiredTokenException", 403, CredentialsError),
        ("InvalidClientTokenId", 403, CredentialsError),
        ("UnrecognizedClientException", 403, CredentialsError),
        ("InvalidAccessKeyId", 403, CredentialsError),
        ("SignatureDoesNotMatch", 403, CredentialsError),
        # refused by IAM, a resource policy or KMS
        ("AccessDenied", 403, AccessDeniedError),
        ("AccessDeniedException", 403, AccessDeniedError),
        ("KMS.AccessDeniedException", 400, AccessDeniedError),
        ("403", 403, AccessDeniedError),
        # throttling, as botocore's standard retry mode knows it
        ("ThrottlingException", 400, ThrottledError),
        ("Throttling", 400, ThrottledError),
        ("TooManyRequestsException", 429, ThrottledError),
        ("ProvisionedThroughputExceededException", 400, ThrottledError),
        ("RequestLimitExceeded", 400, ThrottledError),
        ("SlowDown", 503, ThrottledError),
        # not there
        ("ResourceNotFoundException", 404, NotFoundError),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, NotFoundError),
        ("QueueDoesNotExist", 400, NotFoundError),
        ("NoSuchKey", 404, NotFoundError),
        ("NoSuchBucket", 404, NotFoundError),
        ("StateMachineDoesNotExist", 400, NotFoundError),
        # malformed or out of limits
        ("ValidationException", 400, InvalidRequestError),
        ("ValidationError", 400, InvalidRequestError),
        ("InvalidParameterValueException", 400, InvalidRequestError),
        ("RequestEntityTooLargeException", 413, InvalidRequestError),
        # anything else: the code is kept
        ("InternalFailure", 500, ServiceError),
        ("ServiceUnavailable", 503, ServiceError),
    ],
)
def test_each_aws_error_code_maps_to_its_kind_with_the_original_as_cause(
    code: str, status: int, kind: type[GridError]
) -> None:
    original = client_error(code, "what AWS said", status)
    with pytest.raises(kind) as raised, calling("lambda:InvokeFunction", FUNCTION):
        raise original
    assert raised.value.__cause__ is original
    assert type(raised.value) is kind


@pytest.mark.parametrize(
    ("message", "action", "resource", "principal"),
    [
        (  # Lambda
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
            f"lambda:InvokeFunction on resource: {FUNCTION} because no identity-based policy "
            "allows the lambda:InvokeFunction action",
            "lambda:InvokeFunction",
            FUNCTION,
            "arn:aws:iam::123456789012:user/alice",
        ),
        (  # SQS, through an assumed role
            "User: arn:aws:sts::123456789012:assumed-role/grid-user/bob is not authorized to "
            "perform: sqs:receivemessage on resource: "
            "arn:aws:sqs:us-east-1:123456789012:htcgrid_s_sweep-7 because no resource-based "
            "policy allows the sqs:receivemessage action",
            "sqs:receivemessage",
            "arn:aws:sqs:us-east-1:123456789012:htcgrid_s_sweep-7",
            "arn:aws:sts::123456789012:assumed-role/grid-user/bob",
        ),
        (  # S3 says no more than this: the call names the action and the resource
            "Access Denied",
            "lambda:InvokeFunction",
            FUNCTION,
            None,
        ),
    ],
    ids=["lambda", "sqs", "s3"],
)
def test_access_denied_names_the_action_and_the_resource(
    message: str, action: str, resource: str, principal: str | None
) -> None:
    original = client_error("AccessDenied", message, 403)
    denied = grid_error(original, action="lambda:InvokeFunction", resource=FUNCTION)
    assert isinstance(denied, AccessDeniedError)
    assert (denied.action, denied.resource, denied.principal) == (action, resource, principal)
    assert action in str(denied)
    assert resource in str(denied)


def test_access_denied_without_any_name_still_says_which_operation() -> None:
    denied = grid_error(client_error("AccessDenied", "Access Denied", 403, "GetObject"))
    assert isinstance(denied, AccessDeniedError)
    assert denied.action == "GetObject"


def test_throttling_names_the_call_that_was_throttled() -> None:
    throttled = grid_error(
        client_error("ThrottlingException", "Rate exceeded", 400, "ReceiveMessage"),
        action="sqs:ReceiveMessage",
        resource=QUEUE,
    )
    assert isinstance(throttled, ThrottledError)
    assert throttled.action == "sqs:ReceiveMessage"
    assert "Rate exceeded" in str(throttled)


def test_an_unknown_aws_error_keeps_its_code() -> None:
    failed = grid_error(client_error("KMSInternalException", "kms is down", 500))
    assert isinstance(failed, ServiceError)
    assert failed.code == "KMSInternalException"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (boto.NoCredentialsError(), CredentialsError),
        (
            boto.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            CredentialsError,
        ),
        (
            boto.CredentialRetrievalError(provider="sso", error_msg="token expired"),
            CredentialsError,
        ),
        (boto.TokenRetrievalError(provider="sso", error_msg="expired"), CredentialsError),
        (boto.SSOTokenLoadError(error_msg="run aws sso login"), CredentialsError),
        (boto.UnauthorizedSSOTokenError(), CredentialsError),
        (boto.ProfileNotFound(profile="prod"), CredentialsError),
        (boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), UnreachableError),
        (boto.ConnectTimeoutError(endpoint_url="https://lambda.amazonaws.com"), UnreachableError),
        (boto.ReadTimeoutError(endpoint_url="https://lambda.amazonaws.com"), UnreachableError),
        (boto.ConnectionClosedError(endpoint_url="https://sqs.amazonaws.com"), UnreachableError),
        (boto.NoRegionError(), InvalidRequestError),
        (boto.ParamValidationError(report="Invalid length for parameter"), InvalidRequestError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_each_botocore_error_maps_to_its_kind(error: Exception, kind: type[GridError]) -> None:
    with pytest.raises(kind) as raised, calling("lambda:InvokeFunction", FUNCTION):
        raise error
    assert raised.value.__cause__ is error


def test_no_region_names_the_field() -> None:
    refused = grid_error(boto.NoRegionError())
    assert isinstance(refused, InvalidRequestError)
    assert refused.field == "region"


def test_pydantics_refusal_names_the_field_what_it_wanted_and_what_it_got_on_one_line() -> None:
    with pytest.raises(InvalidRequestError) as raised, calling("lambda:InvokeFunction"):
        StatusQuery(session_id="../other")
    refused = raised.value
    assert refused.field == "session_id"
    assert str(refused).startswith("session_id: String should match pattern")
    assert "'../other'" in str(refused)
    assert "\n" not in str(refused)
    assert isinstance(refused, ValueError)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidSubmissionError("payloads[3]: not JSON"), InvalidRequestError),
        (TaskNotFoundError("no task t1 in session s1"), NotFoundError),
        (RetryableError("try again"), GridError),
    ],
)
def test_the_cores_errors_map_to_the_clients(error: Exception, kind: type[GridError]) -> None:
    mapped = grid_error(error)
    assert type(mapped) is kind
    assert str(error) in str(mapped)


def test_a_grid_error_is_its_own_mapping_and_other_errors_go_through() -> None:
    already = NotFoundError("gone")
    assert grid_error(already) is already
    with pytest.raises(KeyError), calling("lambda:InvokeFunction"):
        raise KeyError("the caller's own")
