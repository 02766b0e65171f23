"""Serve Lambda ``Invoke`` with the real handler code, in Lambda's execution model.

moto runs Lambda code only in Docker. This WSGI middleware sits in front of moto's app and
answers ``POST /2015-03-31/functions/{name}/invocations`` for every function a stack created
from a translated template (``template.py`` records where its code lives): the invocation runs
in an execution environment of its function (``environments.py``: a process of its own, with
the function's environment variables), and the answer is Lambda's, including the error shape
Step Functions' Retry/Catch match on and the 429 of a throttled invocation. Anything else, and
functions it does not know, go to moto unchanged.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation.models import cloudformation_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from

from htcgrid_local.environments import Environments, LocalFunction
from htcgrid_local.template import LOCAL_METADATA_KEY

LOG = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/\d+/(?P<region>[^/]+)/")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def find_stack_function(function: LambdaFunction) -> tuple[str, dict[str, Any]] | None:
    """The logical id and local-code metadata of the stack resource that created ``function``.

    Looks through moto's CloudFormation stacks in this process for an ``AWS::Lambda::Function``
    whose physical id is the function's name and whose Metadata carries ``HtcgridLocal``.
    """
    for regions in list(cloudformation_backends.values()):
        for backend in list(regions.values()):
            for stack in list(backend.stacks.values()):
                for logical_id, resource in stack.template_dict.get("Resources", {}).items():
                    metadata = resource.get("Metadata", {}).get(LOCAL_METADATA_KEY)
                    if resource.get("Type") != "AWS::Lambda::Function" or metadata is None:
                        continue
                    # Only functions are looked up: the resource map creates what it is asked
                    # for, and these already exist once the stack does.
                    created = stack.resource_map.get(logical_id)
                    if getattr(created, "function_name", None) == function.function_name:
                        return str(logical_id), dict(metadata)
    return None


class FunctionRegistry:
    """Resolves invoked names to the local functions of the stacks on this emulator."""

    def __init__(self) -> None:
        self._functions: dict[tuple[str, str], LocalFunction | None] = {}
        self._lock = threading.Lock()

    def resolve(self, name_or_arn: str, account_id: str, region: str) -> LocalFunction | None:
        """The local function ``name_or_arn`` invokes, or None if moto should answer."""
        if name_or_arn.startswith("arn:"):
            parts = name_or_arn.split(":")
            region, account_id = parts[3], parts[4]
        try:
            # The backend the Lambda API uses (moto switches to a "simple" one without Docker).
            function = lambda_backend(account_id, region).get_function(name_or_arn)
        except UnknownFunctionException:
            return None
        # Keyed on the code's hash too: a function redeployed with new code is resolved afresh.
        key = (function.function_arn, function.code_sha_256)
        with self._lock:
            if key not in self._functions:
                self._functions[key] = self._describe(function)
            return self._functions[key]

    @staticmethod
    def _describe(function: LambdaFunction) -> LocalFunction | None:
        found = find_stack_function(function)
        if found is None:
            return None
        logical_id, metadata = found
        return LocalFunction(
            name=function.function_name,
            arn=function.function_arn,
            logical_id=logical_id,
            code_dir=Path(metadata["CodeDir"]),
            handler=str(function.handler),
            python_path=tuple(metadata.get("PythonPath", [])),
            environment={k: str(v) for k, v in (function.environment_vars or {}).items()},
            timeout_s=int(function.timeout),
            memory_mb=int(function.memory_size),
            code_sha=str(function.code_sha_256),
            reserved_concurrency=_reserved_concurrency(function),
        )


class LambdaMiddleware:
    """WSGI middleware: local functions' invocations run here, everything else goes to moto."""

    def __init__(
        self,
        app: WsgiApp,
        environments: Environments,
        registry: FunctionRegistry | None = None,
    ) -> None:
        self._app = app
        self._environments = environments
        self._registry = registry or FunctionRegistry()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        match = _INVOKE_PATH.match(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or match is None:
            return self._app(environ, start_response)
        account_id, region = _caller(environ)
        function = self._registry.resolve(unquote(match.group("name")), account_id, region)
        if function is None:
            return self._app(environ, start_response)
        payload = _read_body(environ)
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if invocation_type == "DryRun":
            start_response("204 No Content", [("Content-Length", "0")])
            return [b""]
        if invocation_type == "Event":
            # Asynchronous invocation: accepted now, run on its own thread, result dropped.
            threading.Thread(
                target=self._invoke_event,
                args=(function, payload),
                name=f"lambda-event-{function.logical_id}",
                daemon=True,
            ).start()
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        result = self._environments.invoke(function, payload, environ.get("HTTP_X_AMZN_TRACE_ID"))
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(result.body))),
            ("X-Amz-Executed-Version", "$LATEST"),
            *result.headers,
        ]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", result.function_error))
        start_response(f"{result.status} {HTTPStatus(result.status).phrase}", headers)
        return [result.body]

    def _invoke_event(self, function: LocalFunction, payload: bytes) -> None:
        result = self._environments.invoke_event(function, payload)
        if result.function_error or result.throttled:
            # Nobody waits for an Event invocation's answer: the log is where its error shows.
            LOG.error("asynchronous %s failed: %s", function.logical_id, result.body.decode())


def _reserved_concurrency(function: LambdaFunction) -> int | None:
    reserved = getattr(function, "reserved_concurrency", None)
    return None if reserved in (None, "") else int(reserved)


def _caller(environ: dict[str, Any]) -> tuple[str, str]:
    """Account and region of the request, from its SigV4 credential scope."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return DEFAULT_ACCOUNT_ID, os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return get_account_id_from(match.group("key")), match.group("region")


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    return bytes(stream.read(length)) if length else bytes(stream.read())
