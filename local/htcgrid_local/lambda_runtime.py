"""Serve Lambda ``Invoke`` with the real handler code, inside the emulator's process.

moto runs Lambda code only in Docker. This WSGI middleware sits in front of moto's app and
answers ``POST /2015-03-31/functions/{name}/invocations`` for every function a stack created
from a translated template (``template.py`` records where its code lives): it imports the
handler module from the source tree, gives it the function's environment and a Lambda context,
and answers as Lambda does, including the error shape Step Functions' Retry/Catch match on.
Anything else, and functions it does not know, go to moto unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation.models import cloudformation_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from

from htcgrid_local.template import LOCAL_METADATA_KEY

LOG = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/\d+/(?P<region>[^/]+)/")

#: Variables that differ between functions by design; the last cold start's value wins.
_PER_FUNCTION_VARIABLES = {"POWERTOOLS_SERVICE_NAME"}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Handler = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class LocalFunction:
    """A Lambda function of a stack whose code is on this machine."""

    name: str
    arn: str
    logical_id: str
    code_dir: Path
    handler: str
    python_path: tuple[str, ...]
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


class LambdaContext:
    """The context object a Python handler receives, with the attributes Lambda provides."""

    def __init__(self, function: LocalFunction, request_id: str) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"local/{request_id}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class InvocationResult:
    """What Lambda answers: a status, headers (the function error, if any) and a JSON body."""

    status: int
    body: bytes
    function_error: str | None = None


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
    """Resolves invoked names to local functions and loads their handler modules once each."""

    def __init__(self) -> None:
        self._functions: dict[tuple[str, str], LocalFunction | None] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._module_names: dict[str, Path] = {}
        self._lock = threading.RLock()

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
        )

    def handler_for(self, function: LocalFunction) -> Handler:
        """The function's handler, importing its module on first use (the "cold start").

        The cold start also exports the function's environment variables into this process:
        handlers read their configuration from ``os.environ`` through cached getters, and all
        functions of the grid share the same ``HTCGRID_*`` values.
        """
        module_path, _, attribute = function.handler.rpartition(".")
        key = (str(function.code_dir), function.handler)
        with self._lock:
            handler = self._handlers.get(key)
            if handler is None:
                for entry in function.python_path:
                    if entry not in sys.path:
                        # Appended, not prepended: a layer must not shadow the server's own
                        # packages (in Lambda it cannot, there is nothing else in the sandbox).
                        sys.path.append(entry)
                module = self._import(function.code_dir, module_path)
                handler = getattr(module, attribute, None)
                if not callable(handler):
                    raise HandlerNotFoundError(f"Handler '{attribute}' missing on module")
                self._handlers[key] = handler
            return handler

    def _import(self, code_dir: Path, module_path: str) -> ModuleType:
        source = code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
        # Every function's module is called "app": each gets a unique name, e.g.
        # htcgrid_fn_submission, or the module of one would replace another's.
        module_name = "htcgrid_fn_" + _identifier(code_dir.name)
        if module_path != "app":
            module_name += "_" + _identifier(module_path)
        if self._module_names.get(module_name, source) != source:
            module_name += "_" + uuid.uuid5(uuid.NAMESPACE_URL, str(source)).hex[:8]
        spec = importlib.util.spec_from_file_location(module_name, source)
        if spec is None or spec.loader is None:
            raise ImportModuleError(f"Unable to import module '{module_path}': no {source}")
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs, as a normal import would be: pydantic and dataclasses
        # look classes' modules up in sys.modules.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        self._module_names[module_name] = source
        return module


class ImportModuleError(Exception):
    """The handler's module could not be imported (Lambda: Runtime.ImportModuleError)."""


class HandlerNotFoundError(Exception):
    """The module has no such handler (Lambda: Runtime.HandlerNotFound)."""


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text).strip("_").lower() or "fn"


def error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's body for an unhandled error; ``errorType`` is what Step Functions matches.

    The stack trace starts at the handler, as Lambda's does: the runtime's own frame (the one
    that called the handler, in this module) is left out.
    """
    frames = list(traceback.extract_tb(error.__traceback__))
    if frames and frames[0].filename == __file__:
        frames = frames[1:]
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


class SharedEnvironment:
    """The one ``os.environ`` that every function of this server runs with.

    Handlers read their configuration from the environment through cached getters (in Lambda
    each function has a process of its own). Functions of one stack share their ``HTCGRID_*``
    values; a server holding several stacks (the test suite's) runs one stack's functions at a
    time: an invocation of another stack's function waits for the running ones to finish, then
    exports its environment and clears the cached configuration.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._current: tuple[tuple[str, str], ...] | None = None
        self._running = 0

    @contextmanager
    def entered(self, function: LocalFunction) -> Iterator[None]:
        shared = tuple(
            sorted(
                (name, value)
                for name, value in function.environment.items()
                if name not in _PER_FUNCTION_VARIABLES
            )
        )
        with self._changed:
            while self._running and self._current != shared:
                self._changed.wait()
            if self._current != shared:
                os.environ.update(dict(shared))
                _clear_cached_configuration()
                self._current = shared
            self._running += 1
            for name in _PER_FUNCTION_VARIABLES & function.environment.keys():
                os.environ[name] = function.environment[name]
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()


def _clear_cached_configuration() -> None:
    """Forget the grid core's settings and resources, read from the previous environment."""
    settings = sys.modules.get("htcgrid_core.settings")
    resources = sys.modules.get("htcgrid_core.resources")
    if settings is not None:
        settings.get_settings.cache_clear()
    if resources is not None:
        resources.get_resources.cache_clear()


_ENVIRONMENT = SharedEnvironment()


def invoke(registry: FunctionRegistry, function: LocalFunction, payload: bytes) -> InvocationResult:
    """Run one invocation to its end and shape the answer as Lambda does."""
    with _ENVIRONMENT.entered(function):
        return _invoke(registry, function, payload)


def _invoke(
    registry: FunctionRegistry, function: LocalFunction, payload: bytes
) -> InvocationResult:
    request_id = str(uuid.uuid4())
    try:
        handler = registry.handler_for(function)
    except HandlerNotFoundError as error:
        return _failure(error, "Runtime.HandlerNotFound", request_id)
    except Exception as error:
        LOG.exception("cannot import %s", function.logical_id)
        return _failure(error, "Runtime.ImportModuleError", request_id)
    try:
        event = json.loads(payload) if payload.strip() else {}
    except ValueError as error:
        return _failure(error, "Runtime.UnmarshalError", request_id)
    context = LambdaContext(function, request_id)
    started = time.monotonic()
    try:
        result = handler(event, context)
    except Exception as error:
        return _failure(error, None, request_id)
    if time.monotonic() - started > function.timeout_s:
        # Lambda would have stopped the function; its result is lost, as it would be.
        timeout = TimeoutError(f"Task timed out after {function.timeout_s:.2f} seconds")
        return _failure(timeout, "Sandbox.Timedout", request_id)
    try:
        body = json.dumps(result).encode("utf-8")
    except (TypeError, ValueError) as error:
        return _failure(error, "Runtime.MarshalError", request_id)
    return InvocationResult(status=200, body=body)


def _failure(error: BaseException, error_type: str | None, request_id: str) -> InvocationResult:
    body = error_payload(error, error_type)
    body["requestId"] = request_id
    return InvocationResult(
        status=200, body=json.dumps(body).encode("utf-8"), function_error="Unhandled"
    )


class LambdaMiddleware:
    """WSGI middleware: local functions' invocations run here, everything else goes to moto."""

    def __init__(self, app: WsgiApp, registry: FunctionRegistry | None = None) -> None:
        self._app = app
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
        result = invoke(self._registry, function, payload)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(result.body))),
            ("X-Amz-Executed-Version", "$LATEST"),
        ]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", result.function_error))
        start_response(f"{result.status} OK", headers)
        return [result.body]

    def _invoke_event(self, function: LocalFunction, payload: bytes) -> None:
        result = invoke(self._registry, function, payload)
        if result.function_error:
            # Nobody waits for an Event invocation's answer: the log is where its error shows.
            LOG.error("asynchronous %s failed: %s", function.logical_id, result.body.decode())


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
