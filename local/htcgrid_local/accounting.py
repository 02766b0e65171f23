"""Request accounting: every AWS call the emulator serves, by caller, service and operation.

Every AWS call of the local grid reaches the emulator process: the client's, the agents' and
the Lambda functions' environments' over HTTP, the state-machine interpreter's through the
in-process loopback (``loopback.py``), which hands them to the same WSGI app. So one WSGI
middleware in front of that app sees them all. It is off unless the emulator starts with
``HTCGRID_LOCAL_ACCOUNTING=1`` in its environment (``server.build_app`` checks), and then it:

- classifies each request: the service from the SigV4 credential scope, the operation from
  ``X-Amz-Target`` (JSON protocols: DynamoDB, SQS, Step Functions), ``Action=`` (query
  protocol), the path (Lambda ``Invoke``) or method and path (S3);
- names the caller: ``workflow:<state machine>`` for the interpreter's calls during an
  execution (found on a per-thread stack: an execution and its calls run in its threads),
  ``lambda:<function>`` for the calls of a function's execution environment (its boto3
  User-Agent says so: ``environments.py`` sets ``AWS_SDK_UA_APP_ID``), else the ``app/<id>``
  of the boto3 User-Agent (the bench sets ``htcgrid-client`` and ``htcgrid-agent``), else
  ``in-process`` or ``external``;
- computes the DynamoDB capacity each call would consume on AWS, from item sizes as DynamoDB
  bills them (see :func:`item_size`). moto's ``ConsumedCapacity`` is no use for this: it is a
  constant (1.0 for any PutItem/UpdateItem/DeleteItem, 1.0 for a whole BatchWriteItem, 0.5 for
  any GetItem or Query) whatever the item sizes;
- counts the states each Step Functions execution enters (one per state transition), with
  wrappers around the interpreter's ``CommonStateField._eval_body`` and ``Program.eval``
  (which evaluates an execution in a worker thread: the wrappers hand the request's frame to
  it), and a thread class for the interpreter's per-Task-state threads that does the same, so
  the workflow's Lambda invocations are counted as the workflow's calls.

``GET /_htcgrid/accounting`` returns the counters as JSON, ``POST /_htcgrid/accounting/reset``
zeroes them. :func:`fetch` and :func:`reset` call those; :class:`Accounting` sums and prints
them. ``local/bench/request_accounting.py`` is the instrumented run.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import math
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.iam.models import get_account_id_from
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state.exec import execute_state
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

from htcgrid_core import result_queues
from htcgrid_local.environments import LAMBDA_APP_PREFIX
from htcgrid_local.loopback import read_body

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Set to 1 in the emulator's environment to turn accounting on.
ENV_FLAG = "HTCGRID_LOCAL_ACCOUNTING"
ACCOUNTING_PATH = "/_htcgrid/accounting"
RESET_PATH = "/_htcgrid/accounting/reset"

#: DynamoDB bills a write per started KB and a read per started 4 KB of item.
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,]+)/\d+/(?P<region>[^/]+)/(?P<service>[^/]+)/")
_APP_ID = re.compile(r"\bapp/(?P<app>\S+)")
_CFN_SUFFIX = re.compile(r"-[A-Z0-9]{10,13}$")
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_TARGET_SERVICES = {
    "dynamodb": "dynamodb",
    "amazonsqs": "sqs",
    "awsstepfunctions": "stepfunctions",
    "logs": "logs",
    "awsevents": "events",
}
_SCOPE_SERVICES = {"states": "stepfunctions", "execute-api": "apigateway"}
#: Query-protocol requests (CloudFormation, IAM, STS) send their parameters as a form.
_FORM_CONTENT = "application/x-www-form-urlencoded"


def enabled() -> bool:
    """True if this process should count requests (``HTCGRID_LOCAL_ACCOUNTING=1``)."""
    return os.environ.get(ENV_FLAG, "") not in ("", "0", "false", "no")


# --- DynamoDB item sizes and capacity units ---------------------------------------------------


def _number_size(text: str) -> int:
    """1 byte per two significant digits, plus 1 (leading and trailing zeroes trimmed)."""
    mantissa = text.strip().lstrip("+-").lower().split("e", 1)[0].replace(".", "")
    significant = mantissa.strip("0")
    return (max(1, len(significant)) + 1) // 2 + 1


def _binary_size(data: Any) -> int:
    if isinstance(data, bytes | bytearray):
        return len(data)
    try:
        return len(base64.b64decode(str(data), validate=False))
    except ValueError:
        return len(str(data))


def attribute_value_size(value: DynamoType | Mapping[str, Any]) -> int:
    """Size of one attribute value (not its name) as DynamoDB counts it.

    Takes DynamoDB JSON (``{"S": "text"}``) or moto's ``DynamoType``.
    """
    if isinstance(value, DynamoType):
        kind, data = value.type, value.value
    else:
        ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return _binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode("utf-8")) for v in data)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in data)
    if kind == "BS":
        return sum(_binary_size(v) for v in data)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(
            1 + len(k.encode("utf-8")) + attribute_value_size(v) for k, v in data.items()
        )
    return len(json.dumps(data, default=str).encode("utf-8"))


def item_size(item: Item | Mapping[str, Any] | None) -> int:
    """Size of an item as DynamoDB bills it: attribute names plus values, per
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
    (strings in UTF-8 bytes, numbers 1 byte per two significant digits plus 1, binaries raw,
    booleans and nulls 1, lists and maps 3 plus 1 per element). 0 for no item."""
    if item is None:
        return 0
    attributes = item.attrs if isinstance(item, Item) else item
    return sum(
        len(name.encode("utf-8")) + attribute_value_size(v) for name, v in attributes.items()
    )


def write_units(size: int) -> int:
    """Write request units for writing an item of ``size`` bytes (at least 1)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """Read request units for reading ``size`` bytes (at least one unit's worth): 1 per 4 KB
    for a strongly consistent read, half that for an eventually consistent one."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


# --- what one request did ----------------------------------------------------------------------


@dataclass
class Row:
    """Counters of one (caller, service, operation, resource)."""

    caller: str
    service: str
    operation: str
    resource: str
    count: int = 0
    errors: int = 0
    #: Batch entries sent or deleted, messages received, items written or read.
    entries: int = 0
    wru: float = 0.0
    rru: float = 0.0
    #: States entered by the executions this call started (Step Functions).
    states_entered: int = 0
    #: Wall time spent serving the calls (nested calls included).
    seconds: float = 0.0


@dataclass
class _Frame:
    """One request being served on this thread: who its nested calls belong to, and what the
    DynamoDB and Step Functions hooks observed while serving it."""

    service: str
    operation: str
    actor: str | None
    read_bytes: int = 0
    items_read: int = 0
    states_entered: int = 0


#: The frames of what the current thread serves, innermost last. A context variable holding a
#: tuple: a thread that runs a copy of its creator's context (``htcgrid_core.aws.in_parallel``'s
#: pool) makes its calls on behalf of the creator's frames, and pushes its own on its own copy.
_frames: ContextVar[tuple[_Frame, ...]] = ContextVar("accounting_frames", default=())


@contextmanager
def _pushed(frame: _Frame) -> Iterator[None]:
    """``frame`` on top of the current frames while the block runs."""
    token = _frames.set((*_frames.get(), frame))
    try:
        yield
    finally:
        _frames.reset(token)


@dataclass
class _Write:
    """An item a write touches: its table and key, and its size before and after."""

    table: Table | None
    key: tuple[DynamoType, DynamoType | None] | None
    old_size: int
    new_size: int | None  # known from the request (Put), else read after the write


@dataclass
class _Request:
    service: str
    operation: str
    resource: str = ""
    document: dict[str, Any] = field(default_factory=dict)


def _account_region(environ: Mapping[str, Any]) -> tuple[str, str]:
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return DEFAULT_ACCOUNT_ID, os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return get_account_id_from(match.group("key")), match.group("region")


def _s3_operation(
    method: str, path: str, query: dict[str, list[str]], environ: Mapping[str, Any]
) -> str:
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    if has_key:
        if method == "PUT":
            if "partNumber" in query:
                return "UploadPart"
            return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, method + "Object"
        )
    if method == "GET":
        if not query or "list-type" in query or "prefix" in query:
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return "GetBucket" + next(iter(query)).capitalize()
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
        method, method + "Bucket"
    )


def _short_name(name: str) -> str:
    """A CloudFormation-made name without its random suffix: ``htcgrid-DispatchFunction``."""
    return _CFN_SUFFIX.sub("", name)


def _name_from_arn(arn: str) -> str:
    parts = arn.split(":")
    return _short_name(parts[6] if arn.startswith("arn:") and len(parts) > 6 else arn)


def _queue_name(document: Mapping[str, Any]) -> str:
    name = str(document.get("QueueName") or document.get("QueueUrl", "").rstrip("/").split("/")[-1])
    # One result queue per session: counted together.
    head, infix, _ = name.partition(result_queues.INFIX)
    return f"{head}{infix}*" if infix else name


def classify(environ: Mapping[str, Any], body: bytes | None) -> _Request:
    """Service, operation and resource of a request, and its JSON document if it has one."""
    method = str(environ.get("REQUEST_METHOD", "GET"))
    path = unquote(str(environ.get("PATH_INFO", "")))
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    scope = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", "")) or _CREDENTIAL.search(
        "Credential=" + "".join(query.get("X-Amz-Credential", []))
    )
    service = _SCOPE_SERVICES.get(scope.group("service"), scope.group("service")) if scope else ""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    document: dict[str, Any] = {}
    if target and body:
        try:
            parsed = json.loads(body)
            document = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            document = {}
    if target:
        prefix, _, operation = target.rpartition(".")
        service = service or _TARGET_SERVICES.get(prefix.split("_")[0].lower(), prefix.lower())
        request = _Request(service, operation, document=document)
    elif (invoke := _INVOKE_PATH.match(path)) is not None and method == "POST":
        request = _Request("lambda", "Invoke", _name_from_arn(invoke.group("name")))
    elif service == "s3" or (not service and not body):
        bucket = path.lstrip("/").split("/", 1)[0]
        request = _Request("s3", _s3_operation(method, path, query, environ), bucket)
    else:
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        action = (form.get("Action") or query.get("Action") or [""])[0]
        request = _Request(service or "unknown", action or f"{method} {path}")
    if request.service == "dynamodb":
        tables = document.get("RequestItems") or {}
        # A transaction names its tables per item (Put, Update, Delete, ConditionCheck, Get).
        for entry in document.get("TransactItems") or []:
            for spec in entry.values() if isinstance(entry, dict) else ():
                if isinstance(spec, dict) and spec.get("TableName"):
                    tables = {**tables, str(spec["TableName"]): None}
        names = sorted(tables) if tables else [str(document.get("TableName", ""))]
        request.resource = ",".join(_name_from_arn(n) for n in names)
    elif request.service == "sqs":
        request.resource = _queue_name(document)
    elif request.service == "stepfunctions":
        request.resource = _name_from_arn(
            str(document.get("stateMachineArn") or document.get("executionArn") or "")
        )
    return request


def _caller(environ: Mapping[str, Any], stack: Sequence[_Frame]) -> str:
    for frame in reversed(stack):
        if frame.actor is not None:
            return frame.actor
    match = _APP_ID.search(str(environ.get("HTTP_USER_AGENT", "")))
    if match is not None:
        app = match.group("app")
        if app.startswith(LAMBDA_APP_PREFIX):  # a function's environment (environments.py)
            return "lambda:" + _short_name(app.removeprefix(LAMBDA_APP_PREFIX))
        return app
    # Loopback requests (built by werkzeug's EnvironBuilder) have no remote address.
    return "external" if environ.get("REMOTE_ADDR") else "in-process"


# --- DynamoDB capacity of one request -----------------------------------------------------------


class _DynamoDBCapacity:
    """What a DynamoDB request consumes: item sizes read from moto's tables around the call."""

    WRITES: ClassVar[frozenset[str]] = frozenset(
        {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
    )

    def __init__(self, environ: Mapping[str, Any], request: _Request) -> None:
        self.account, self.region = _account_region(environ)
        self.request = request
        self.writes: list[_Write] = []
        if request.operation in self.WRITES:
            self.writes = list(self._writes_of(request.document))

    def _table(self, name: str) -> Table | None:
        try:
            table: Table = dynamodb_backends[self.account][self.region].get_table(name)
        except Exception:  # no such table: the call fails and consumes nothing
            return None
        return table

    def _key(self, table: Table | None, item: Mapping[str, Any]) -> Any:
        if table is None or table.hash_key_attr not in item:
            return None
        range_attr = table.range_key_attr
        if range_attr is not None and range_attr not in item:
            return None
        return (
            DynamoType(item[table.hash_key_attr]),
            DynamoType(item[range_attr]) if range_attr else None,
        )

    def _current(self, table: Table | None, key: Any) -> Item | None:
        if table is None or key is None:
            return None
        try:
            item: Item | None = table.get_item(*key)
        except Exception:  # a malformed key: moto answers the call with the error
            return None
        return item

    def _write(self, table_name: str, key_or_item: Mapping[str, Any], new: bool) -> _Write:
        table = self._table(table_name)
        key = self._key(table, key_or_item)
        old_size = item_size(self._current(table, key))
        return _Write(table, key, old_size, item_size(key_or_item) if new else None)

    def _writes_of(self, document: Mapping[str, Any]) -> Iterator[_Write]:
        operation = self.request.operation
        if operation == "PutItem":
            yield self._write(str(document.get("TableName")), document.get("Item") or {}, True)
        elif operation in ("UpdateItem", "DeleteItem"):
            yield self._write(str(document.get("TableName")), document.get("Key") or {}, False)
        elif operation == "BatchWriteItem":
            for table_name, requests in (document.get("RequestItems") or {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        yield self._write(table_name, request["PutRequest"]["Item"], True)
                    elif "DeleteRequest" in request:
                        yield self._write(table_name, request["DeleteRequest"]["Key"], False)
        elif operation == "TransactWriteItems":
            for entry in document.get("TransactItems") or []:
                for kind, spec in entry.items():
                    item = spec.get("Item") if kind == "Put" else spec.get("Key")
                    yield self._write(str(spec.get("TableName")), item or {}, kind == "Put")

    def consumed(self, status: int, response: bytes, frame: _Frame) -> tuple[float, float, int]:
        """(write units, read units, items) the call consumed, given how it ended."""
        operation, document = self.request.operation, self.request.document
        if operation in self.WRITES:
            return self._write_units(status, response)
        if status >= 300:
            return 0.0, 0.0, 0
        consistent = bool(document.get("ConsistentRead"))
        if operation == "GetItem":
            table = self._table(str(document.get("TableName")))
            size = item_size(self._current(table, self._key(table, document.get("Key") or {})))
            return 0.0, read_units(size, consistent), 1
        if operation == "BatchGetItem":
            units, items = 0.0, 0
            for table_name, spec in (document.get("RequestItems") or {}).items():
                table = self._table(table_name)
                for key in spec.get("Keys", []):
                    size = item_size(self._current(table, self._key(table, key)))
                    units += read_units(size, bool(spec.get("ConsistentRead")))
                    items += 1
            return 0.0, units, items
        if operation in ("Query", "Scan"):
            return 0.0, read_units(frame.read_bytes, consistent), frame.items_read
        if operation == "TransactGetItems":
            units, items = 0.0, 0
            for entry in document.get("TransactItems") or []:
                spec = entry.get("Get", {})
                table = self._table(str(spec.get("TableName")))
                size = item_size(self._current(table, self._key(table, spec.get("Key") or {})))
                units += 2 * read_units(size, True)
                items += 1
            return 0.0, units, items
        return 0.0, 0.0, 0

    def _write_units(self, status: int, response: bytes) -> tuple[float, float, int]:
        if status >= 300 and b"ConditionalCheckFailed" not in response:
            return 0.0, 0.0, 0  # validation errors and the like consume nothing
        # A failed condition still consumes the existing item's size (at least 1 unit):
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html
        failed = status >= 300
        factor = 2 if self.request.operation == "TransactWriteItems" else 1
        units = 0
        for write in self.writes:
            new_size = write.new_size
            if new_size is None:
                new_size = item_size(self._current(write.table, write.key))
            units += write_units(write.old_size if failed else max(write.old_size, new_size))
        return float(units * factor), 0.0, len(self.writes)


# --- hooks into moto, installed with the middleware ---------------------------------------------

_hooks_installed = False
_hooks_lock = threading.Lock()


def _frame() -> _Frame | None:
    stack = _frames.get()
    return stack[-1] if stack else None


def _measured_read(original: Callable[..., Any], filter_name: str, projection_name: str) -> Any:
    """Wrap moto's ``Table.query``/``Table.scan`` to record the size of the items the call
    evaluates, which is what DynamoDB bills: before the filter and the projection.

    Both moto methods end with the same two steps: filter the page, then project it. The
    wrapper asks for the page without them, measures it, then applies the same two steps.
    """
    signature = inspect.signature(original)

    def measured(*args: Any, **kwargs: Any) -> tuple[list[Item], int, Any]:
        frame = _frame()
        if frame is None:
            result: tuple[list[Item], int, Any] = original(*args, **kwargs)
            return result
        bound = signature.bind(*args, **kwargs)
        filter_op = bound.arguments.get(filter_name)
        projection = bound.arguments.get(projection_name)
        bound.arguments[filter_name] = None
        bound.arguments[projection_name] = None
        items, scanned, last_key = original(*bound.args, **bound.kwargs)
        frame.read_bytes += sum(item_size(item) for item in items)
        frame.items_read += len(items)
        if filter_op is not None:
            items = [item for item in items if filter_op.expr(item)]
        if projection:
            items = [item.project(projection) for item in items]
        return items, scanned, last_key

    return measured


#: Where ``Program.eval`` leaves the request's frame for the program's worker thread.
_ENV_FRAME = "_htcgrid_accounting_frame"


def _state_machine_name(env: Any) -> str:
    try:
        return _short_name(
            str(env.states.context_object.context_object_data["StateMachine"]["Name"])
        )
    except (AttributeError, KeyError, TypeError):
        return "?"


def _program_eval(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Program.eval``, which runs in the request's thread and evaluates the program in a
    worker thread of its own: hand the request's frame (a StartSyncExecution's) to that thread
    through the execution's environment."""

    def eval_(self: Program, env: Any) -> None:
        setattr(env, _ENV_FRAME, _frame())
        original(self, env)

    return eval_


def _program_eval_body(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Program._eval_body`` (the worker thread): put the request's frame on this thread's
    stack, so that states entered count for that request and the Lambda invocations and SDK
    calls of its Task states count as the workflow's. An execution no request waits for (an
    asynchronous one) gets a frame of its own, added up when it ends."""

    def eval_body(self: Program, env: Any) -> None:
        handed: _Frame | None = getattr(env, _ENV_FRAME, None)
        detached = handed is None or handed.service != "stepfunctions"
        frame = (
            _Frame("stepfunctions", "Execution", f"workflow:{_state_machine_name(env)}")
            if handed is None or detached
            else handed
        )
        try:
            with _pushed(frame):
                original(self, env)
        finally:
            if detached and _SINK.accounting is not None:
                _SINK.accounting.add(
                    Row(
                        frame.actor or "workflow:?",
                        "stepfunctions",
                        "AsynchronousExecution",
                        _state_machine_name(env),
                        count=1,
                        states_entered=frame.states_entered,
                    )
                )

    return eval_body


def _counting_eval_body(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap each state's evaluation (``CommonStateField._eval_body``) to count it entered."""

    def eval_body(self: CommonStateField, env: Any) -> None:
        for frame in reversed(_frames.get()):
            if frame.service == "stepfunctions":
                frame.states_entered += 1
                break
        original(self, env)

    return eval_body


class _FrameInheritingThread(threading.Thread):
    """A thread that runs with its creator's frame on its stack. The interpreter runs each Task
    state in a thread of its own (to time it out): the Lambda invocations and SDK calls made
    there are the workflow's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accounting_frame = _frame()

    def run(self) -> None:
        if self._accounting_frame is None:
            super().run()
            return
        with _pushed(self._accounting_frame):
            super().run()


class _Sink:
    """The process's accounting middleware, for counts made outside any request."""

    accounting: RequestAccounting | None = None


_SINK = _Sink()


def _install_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        Table.query = _measured_read(Table.query, "filter_expression", "projection_expressions")  # type: ignore[method-assign]
        Table.scan = _measured_read(Table.scan, "filter_expression", "projection_expression")  # type: ignore[method-assign]
        CommonStateField._eval_body = _counting_eval_body(CommonStateField._eval_body)  # type: ignore[method-assign]
        Program.eval = _program_eval(Program.eval)  # type: ignore[method-assign]
        Program._eval_body = _program_eval_body(Program._eval_body)  # type: ignore[method-assign]
        execute_state.Thread = _FrameInheritingThread  # type: ignore[attr-defined]
        _hooks_installed = True


# --- the middleware ------------------------------------------------------------------------------


class RequestAccounting:
    """WSGI middleware: counts each request it serves, then hands it to ``app`` unchanged."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str, str], Row] = {}
        self._since = time.time()

    # -- counters --------------------------------------------------------------------------------

    def add(self, row: Row) -> None:
        key = (row.caller, row.service, row.operation, row.resource)
        with self._lock:
            total = self._rows.get(key)
            if total is None:
                self._rows[key] = row
                return
            total.count += row.count
            total.errors += row.errors
            total.entries += row.entries
            total.wru += row.wru
            total.rru += row.rru
            total.states_entered += row.states_entered
            total.seconds += row.seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            rows = [asdict(row) for row in self._rows.values()]
            since = self._since
        return {"since": since, "now": time.time(), "rows": rows}

    def reset(self) -> None:
        with self._lock:
            self._rows = {}
            self._since = time.time()

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(ACCOUNTING_PATH):
            return self._serve_accounting(environ, start_response)
        if path.startswith("/moto-api"):
            return self._app(environ, start_response)
        body = self._buffer_body(environ)
        request = classify(environ, body)
        caller = _caller(environ, _frames.get())
        capacity = _DynamoDBCapacity(environ, request) if request.service == "dynamodb" else None
        actor = None
        if request.service == "lambda" and request.operation == "Invoke":
            actor = f"lambda:{request.resource}"
        elif request.service == "stepfunctions" and request.operation.startswith("Start"):
            actor = f"workflow:{request.resource}"
        frame = _Frame(request.service, request.operation, actor)
        status: list[int] = []

        def recording_start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status.append(int(status_line.split(" ", 1)[0]))
            return start_response(status_line, headers, exc_info)

        started = time.perf_counter()
        with _pushed(frame):
            content = read_body(self._app(environ, recording_start_response))
        code = status[0] if status else 500
        row = Row(
            caller,
            request.service,
            request.operation,
            request.resource,
            count=1,
            errors=int(code >= 300),
            states_entered=frame.states_entered,
            seconds=time.perf_counter() - started,
        )
        row.entries = self._entries(request, code, content)
        if capacity is not None:
            row.wru, row.rru, row.entries = capacity.consumed(code, content, frame)
        self.add(row)
        return [content]

    @staticmethod
    def _buffer_body(environ: dict[str, Any]) -> bytes | None:
        """The body of a JSON-protocol (``X-Amz-Target``) or form request, read and put back;
        None for others (S3 data, Lambda payloads), which are left to stream untouched."""
        is_form = str(environ.get("CONTENT_TYPE", "")).startswith(_FORM_CONTENT)
        if not (environ.get("HTTP_X_AMZ_TARGET") or is_form):
            return None
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length <= 0:
            return None  # no body, or one of unknown length: left to stream
        body = bytes(environ["wsgi.input"].read(length))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    @staticmethod
    def _entries(request: _Request, status: int, content: bytes) -> int:
        if status >= 300:
            return 0
        if request.service == "sqs":
            if request.operation.endswith("Batch"):
                return len(request.document.get("Entries") or [])
            if request.operation == "ReceiveMessage":
                try:
                    return len(json.loads(content).get("Messages") or [])
                except ValueError:
                    return 0
            if request.operation in ("SendMessage", "DeleteMessage", "ChangeMessageVisibility"):
                return 1
        return 0

    def _serve_accounting(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        path = str(environ.get("PATH_INFO", "")).rstrip("/")
        if path == RESET_PATH and method == "POST":
            self.reset()
            document: dict[str, Any] = {"reset": True, "since": self._since}
        elif path == ACCOUNTING_PATH and method == "GET":
            document = self.snapshot()
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "GET /_htcgrid/accounting or POST /_htcgrid/accounting/reset"}']
        body = json.dumps(document).encode("utf-8")
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def install(app: WsgiApp) -> RequestAccounting:
    """Wrap ``app`` in the accounting middleware and hook moto's DynamoDB reads and the
    Step Functions interpreter (once per process)."""
    _install_hooks()
    accounting = RequestAccounting(app)
    _SINK.accounting = accounting
    return accounting


# --- reading the counters from another process ------------------------------------------------


def _http(endpoint_url: str, path: str, method: str) -> dict[str, Any]:
    url = endpoint_url.rstrip("/") + path
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) endpoint: {endpoint_url}")
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310 - http(s) only
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - http(s) only
        document: dict[str, Any] = json.loads(reply.read())
    if "rows" not in document and "reset" not in document:
        raise RuntimeError(f"no request accounting at {endpoint_url}: start it with {ENV_FLAG}=1")
    return document


def reset(endpoint_url: str) -> None:
    """Zero the emulator's counters."""
    _http(endpoint_url, RESET_PATH, "POST")


def fetch(endpoint_url: str) -> Accounting:
    """The emulator's counters since the last reset."""
    document = _http(endpoint_url, ACCOUNTING_PATH, "GET")
    return Accounting(
        rows=[Row(**row) for row in document["rows"]],
        seconds=float(document["now"]) - float(document["since"]),
    )


# --- sums and the report -------------------------------------------------------------------------

#: The per-task numbers the grid's cost budgets are stated in.
SUMMARY_KEYS = (
    "dynamodb_wru",
    "dynamodb_rru",
    "sqs_requests",
    "s3_requests",
    "lambda_invocations",
    "sfn_executions",
    "sfn_transitions",
)


@dataclass
class Accounting:
    """A snapshot of the counters, with sums by any of the row's dimensions."""

    rows: list[Row]
    seconds: float = 0.0

    def select(
        self,
        service: str | None = None,
        operation: str | None = None,
        caller: str | None = None,
        resource: str | None = None,
    ) -> list[Row]:
        return [
            row
            for row in self.rows
            if (service is None or row.service == service)
            and (operation is None or row.operation == operation)
            and (caller is None or row.caller == caller)
            and (resource is None or row.resource == resource)
        ]

    def total(self, measure: str = "count", **where: str | None) -> float:
        """Sum of ``measure`` (a Row field: count, entries, wru, rru, ...) over matching rows."""
        return float(sum(getattr(row, measure) for row in self.select(**where)))

    def summary(self, tasks: int) -> dict[str, float]:
        """The budget numbers, per task."""
        executions = sum(
            row.count
            for row in self.select(service="stepfunctions")
            if row.operation in ("StartExecution", "StartSyncExecution")
        )
        totals = {
            "dynamodb_wru": self.total("wru", service="dynamodb"),
            "dynamodb_rru": self.total("rru", service="dynamodb"),
            "sqs_requests": self.total(service="sqs"),
            "s3_requests": self.total(service="s3"),
            "lambda_invocations": self.total(service="lambda", operation="Invoke"),
            "sfn_executions": float(executions),
            "sfn_transitions": self.total("states_entered", service="stepfunctions"),
        }
        return {name: value / tasks for name, value in totals.items()}

    def table(self, tasks: int) -> str:
        """Every row (caller, service, operation, resource) with totals and per-task numbers."""
        header = (
            f"{'caller':<34} {'service':<13} {'operation':<22} {'resource':<30}"
            f" {'calls':>6} {'/task':>7} {'err':>4} {'entries':>7} {'WRU':>7} {'RRU':>6}"
            f" {'states':>6}"
        )
        lines = [header, "-" * len(header)]
        ordered = sorted(self.rows, key=lambda r: (r.service, r.caller, -r.count, r.operation))
        for row in ordered:
            lines.append(
                f"{row.caller[:34]:<34} {row.service[:13]:<13} {row.operation[:22]:<22}"
                f" {row.resource[-30:]:<30} {row.count:>6} {row.count / tasks:>7.4f}"
                f" {row.errors:>4} {row.entries:>7} {row.wru:>7.1f} {row.rru:>6.1f}"
                f" {row.states_entered:>6}"
            )
        return "\n".join(lines)
