"""The client's exceptions: what can go wrong, from a user's point of view.

Every error a client call raises is a ``GridError``. What botocore, pydantic or the core raise
is mapped to one of a few kinds a caller can act on, in one place (``grid_error``), with the
original as the ``__cause__``:

- ``NotFoundError`` (``GridNotFoundError`` for the grid itself): no such stack, function,
  queue or object;
- ``AccessDeniedError``: AWS refused the caller an action on a resource (both named);
- ``CredentialsError``: no credentials, or expired or invalid ones;
- ``ThrottledError``: AWS kept throttling a call past botocore's retries and the client's;
- ``UnreachableError``: AWS (or the emulator) could not be reached;
- ``InvalidRequestError``: the input broke a rule (the message names the field);
- ``ServiceError``: any other failure AWS reported, with its error code.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

import pydantic
from botocore import exceptions as boto
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from htcgrid_core.errors import HtcGridError, InvalidSubmissionError, TaskNotFoundError

P = ParamSpec("P")
R = TypeVar("R")


class GridError(Exception):
    """Base of every error the client raises."""


class NotFoundError(GridError):
    """Something the call names does not exist: a function, queue, bucket, object or task (or,
    as ``GridNotFoundError``, the grid itself)."""


class GridNotFoundError(NotFoundError):
    """The grid could not be found (no such stack, no local grid running, missing outputs)."""


class AccessDeniedError(GridError):
    """AWS refused the caller ``action`` (an IAM action, e.g. ``lambda:InvokeFunction``) on
    ``resource``; ``principal`` is who asked, where AWS says. Grid users need the stack's
    ``ClientPolicy``, operators (``htcgrid dlq``) its ``OperatorPolicy``."""

    def __init__(self, action: str, resource: str, principal: str | None = None) -> None:
        who = f"{principal} may not" if principal else "not allowed to"
        super().__init__(f"{who} {action} on {resource}")
        self.action = action
        self.resource = resource
        self.principal = principal


class CredentialsError(GridError):
    """No AWS credentials were found, or AWS refused them as expired or invalid (refresh them:
    ``aws sso login``, a new session token...)."""


class ThrottledError(GridError):
    """AWS throttled ``action`` on every try: botocore's retries and the client's own ran out.
    The call is safe to make again later."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action} throttled past its retries: {message}")
        self.action = action


class UnreachableError(GridError):
    """AWS, or the emulator at the grid's endpoint, could not be reached (connection refused
    or timed out, TLS failed)."""


class InvalidRequestError(GridError, ValueError):
    """The input broke a rule; the message names the field (``field``, where one is known)
    and the limit. A ``ValueError`` too, as pydantic's and the core's validation errors are."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServiceError(GridError):
    """AWS failed ``action`` in a way none of the other errors names (an internal error that
    outlasted the retries, say); ``code`` is AWS's (or botocore's) name for it."""

    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {code}: {message}")
        self.action = action
        self.code = code


class GridClosedError(GridError):
    """The ``Grid`` was closed: its clients are gone, make a new one."""


class SubmissionFailedError(GridError):
    """The submit workflow rejected or failed a submission. ``error`` is the error name the
    workflow recorded (e.g. ``InvalidSubmissionError``), ``cause`` its message."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class PartialSubmissionError(SubmissionFailedError):
    """``submit`` stopped part way: some of its submissions were accepted, the rest not.

    ``task_ids`` are the accepted tasks (in input order; they run, and the session yields
    their results). Resubmit the same payloads with ``submission_token`` to submit the rest:
    the accepted ones are not submitted twice. ``error`` and ``cause`` name what stopped it
    (also the exception's ``__cause__``).
    """

    def __init__(
        self, submission_token: str, task_ids: Sequence[str], failure: BaseException
    ) -> None:
        if isinstance(failure, SubmissionFailedError):
            super().__init__(failure.error, failure.cause)
        else:
            super().__init__(type(failure).__name__, str(failure))
        self.submission_token = submission_token
        self.task_ids = task_ids

    def __str__(self) -> str:
        return (
            f"{self.error}: {self.cause} ({len(self.task_ids)} tasks were accepted; resubmit "
            f"the same payloads with submission_token={self.submission_token!r} for the rest)"
        )


class QueryFailedError(GridError):
    """One of the grid's functions refused or failed a call; ``error_type`` is the error name
    the function raised (e.g. ``InvalidSubmissionError``, ``RetryableError``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class ResultsTimeoutError(GridError):
    """Results did not all arrive within the time given."""


class ResultsIncompleteError(GridError):
    """A session ran out of outstanding tasks before every submitted task's result was yielded
    (``Grid.map`` raises it rather than end early)."""


# -- mapping what others raise ------------------------------------------------------------------

#: What ``grid_error`` maps: botocore's errors, pydantic's and the core's.
MAPPED = (boto.ClientError, boto.BotoCoreError, pydantic.ValidationError, HtcGridError)

#: AWS error codes of credentials AWS refused (expired, unknown, wrongly signed).
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "AuthFailure",
    }
)
#: AWS error codes of an action refused by IAM, a resource policy or KMS (S3 answers a HEAD
#: it refuses with its bare status).
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "UnauthorizedOperation",
        "Forbidden",
        "403",
        "KMSAccessDeniedException",
        "KMS.AccessDeniedException",
    }
)
#: AWS error codes of something named that does not exist.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "NoSuchKey",
        "NotFound",
        "404",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "StateMachineDoesNotExist",
        "ExecutionDoesNotExist",
    }
)
#: AWS error codes of a request AWS found malformed or out of its limits.
INVALID_CODES = frozenset(
    {
        "ValidationError",
        "ValidationException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidParameterException",
        "InvalidParameterCombination",
        "InvalidRequestContentException",
        "RequestEntityTooLargeException",
        "InvalidArn",
        "InvalidName",
        "InvalidExecutionInput",
        "InvalidArgument",
        "MissingParameter",
    }
)
#: botocore's own errors for credentials it could not find or load.
CREDENTIAL_ERRORS = (
    boto.NoCredentialsError,
    boto.PartialCredentialsError,
    boto.CredentialRetrievalError,
    boto.UnknownCredentialError,
    boto.ProfileNotFound,
    boto.TokenRetrievalError,
    boto.SSOError,
    boto.LoginError,
    boto.NoAuthTokenError,
)
#: botocore's own errors for a connection that failed (after its retries).
UNREACHABLE_ERRORS = (boto.ConnectionError, boto.HTTPClientError)

#: "User: <principal> is not authorized to perform: <action> on resource: <resource>", as
#: IAM words a refusal (read for the names only; the code decides the kind).
_REFUSAL = re.compile(
    r"(?:User: (?P<principal>\S+) )?is not authorized to perform: (?P<action>\S+)"
    r"(?: on resource: (?P<resource>[^\s,]+))?"
)
_THROTTLING = ThrottledRetryableChecker()


def grid_error(
    error: BaseException, *, action: str | None = None, resource: str | None = None
) -> GridError:
    """The client's error for ``error`` (botocore's, pydantic's, the core's; a ``GridError``
    is returned as it is). ``action`` (an IAM action such as ``lambda:InvokeFunction``) and
    ``resource`` name the call that failed, where the caller knows them better than AWS's
    message says. Raise it ``from error``."""
    if isinstance(error, GridError):
        return error
    if isinstance(error, boto.ClientError):
        return _from_client_error(error, action, resource)
    if isinstance(error, boto.NoCredentialsError):
        return CredentialsError(
            f"{error} (boto3 looks in the environment, the shared config and credentials files, "
            "SSO, and the instance or pod role)"
        )
    if isinstance(error, CREDENTIAL_ERRORS):
        return CredentialsError(str(error))
    if isinstance(error, UNREACHABLE_ERRORS):
        return UnreachableError(str(error))
    if isinstance(error, boto.NoRegionError):
        return InvalidRequestError(
            "region: no AWS region given (pass one, or set AWS_REGION or the profile's region)",
            "region",
        )
    if isinstance(error, boto.ParamValidationError):
        return InvalidRequestError(str(error))
    if isinstance(error, pydantic.ValidationError):
        return _from_validation_error(error)
    if isinstance(error, InvalidSubmissionError):
        return InvalidRequestError(str(error))
    if isinstance(error, TaskNotFoundError):
        return NotFoundError(str(error))
    if isinstance(error, boto.BotoCoreError):
        return ServiceError(action or "AWS", type(error).__name__, str(error))
    return GridError(f"{type(error).__name__}: {error}")


def _from_client_error(
    error: boto.ClientError, action: str | None, resource: str | None
) -> GridError:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or str(error)
    action = action or error.operation_name
    if code in CREDENTIAL_CODES:
        return CredentialsError(f"AWS refused the credentials ({code}): {message}")
    if code in ACCESS_DENIED_CODES:
        refusal = _REFUSAL.search(message)
        said = refusal.groupdict() if refusal else {}
        return AccessDeniedError(
            said.get("action") or action,
            said.get("resource") or resource or "(the resource AWS did not name)",
            said.get("principal"),
        )
    context = RetryContext(attempt_number=1, parsed_response=error.response)
    if _THROTTLING.is_retryable(context):
        return ThrottledError(action, f"{code}: {message}")
    if code in NOT_FOUND_CODES:
        return NotFoundError(f"{action}: {resource or code}: {message}")
    if code in INVALID_CODES:
        return InvalidRequestError(f"{action}: {message}")
    return ServiceError(action, code or "Unknown", message)


def _from_validation_error(error: pydantic.ValidationError) -> InvalidRequestError:
    """Name the first field pydantic refused, what it wanted and what it got, on one line."""
    problems = error.errors(include_url=False)
    first = problems[0]
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    got = repr(first.get("input"))
    if len(got) > 60:
        got = got[:57] + "..."
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidRequestError(f"{field}: {first['msg']} (got {got}){more}", field or None)


def mapped(error: BaseException) -> BaseException:
    """``grid_error(error)``, its ``__cause__`` set to ``error``, for an error to be raised or
    reported later (one caught in a thread pool, say); anything ``grid_error`` does not map
    is returned as it is."""
    if not isinstance(error, MAPPED):
        return error
    made = grid_error(error)
    made.__cause__ = error
    return made


@contextmanager
def calling(action: str, resource: str | None = None) -> Iterator[None]:
    """Map what a call of ``action`` on ``resource`` raises to the client's errors."""
    try:
        yield
    except MAPPED as error:
        raise grid_error(error, action=action, resource=resource) from error


def raises_grid_errors(call: Callable[P, R]) -> Callable[P, R]:
    """Decorate a public method (or generator) so that nothing but a ``GridError`` leaves it:
    the net under each call's own mapping, for input refused while building a document, say.
    Anything else (the caller's own iterator raising a ``KeyError``, say) goes through as it
    is."""
    if inspect.isgeneratorfunction(call):

        @functools.wraps(call)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from call(*args, **kwargs))
            except MAPPED as error:
                raise grid_error(error) from error

        return cast(Callable[P, R], generator)

    @functools.wraps(call)
    def method(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except MAPPED as error:
            raise grid_error(error) from error

    return method
