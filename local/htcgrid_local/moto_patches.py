"""Every change the local grid makes to moto 5.2.5, each one small, named and explained.

moto is the embedded AWS emulator. Where it falls short of what ``template.yaml`` and the grid
need, one function here replaces exactly one method (or adds one) and says in its docstring what
moto does wrong and why the replacement is right. ``apply_all`` runs them once, in the server
process, before any resource exists. Each patch has a test in ``tests/integration/local/``.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from moto import backends
from moto.awslambda.models import LayerVersion
from moto.cloudformation import parsing as cloudformation_parsing
from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.moto_api._internal import mock_random
from moto.s3.models import s3_backends
from moto.settings import moto_server_port
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import MAXIMUM_MESSAGE_DELAY, Message, Queue, SQSBackend
from moto.stepfunctions.exceptions import InvalidExecutionInput
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.api import StateMachineType
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.backend.execution import SyncExecution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse, get_backend

_applied: set[str] = set()
_apply_lock = threading.Lock()


class StateMachineTypeNotSupported(AWSError):
    """AWS's answer to StartSyncExecution on a STANDARD state machine."""

    TYPE = "StateMachineTypeNotSupported"
    STATUS = 400


class ExecutionDisabled(AWSError):
    """StartSyncExecution on a server whose state machines do not execute (config not set)."""

    TYPE = "InvalidArn"
    STATUS = 400


# --- Step Functions -------------------------------------------------------------------------


def run_sync_execution(
    backend: StepFunctionsParserBackend,
    state_machine_arn: str,
    name: str | None,
    execution_input: str,
) -> SyncExecution:
    """Run one Express execution to its end in the calling thread and return it.

    The execution is not added to the state machine's execution list: AWS keeps no history of
    synchronous Express executions (DescribeExecution does not know them), and moto's list is
    scanned linearly on every StartExecution, so keeping thousands of them would slow the server.
    """
    state_machine = backend.describe_state_machine(state_machine_arn)
    if state_machine.type != StateMachineType.EXPRESS.value:
        raise StateMachineTypeNotSupported(
            "This operation is not supported by this type of state machine"
        )
    try:
        json.loads(execution_input)
    except ValueError as error:
        raise InvalidExecutionInput(f"Invalid State Machine Execution Input: '{error}'") from error
    exec_name = name or str(uuid.uuid4())
    # A shallow copy is the snapshot the execution runs against: the definition string is
    # immutable, and the copy must say EXPRESS (moto's StateMachine always says STANDARD in
    # ``sm_type``, keeping the real type in ``type``).
    snapshot = copy.copy(state_machine)
    snapshot.sm_type = StateMachineType.EXPRESS
    execution = SyncExecution(
        name=exec_name,
        sm_type=StateMachineType.EXPRESS,
        role_arn=state_machine.roleArn,
        exec_arn=(
            f"arn:{backend.partition}:states:{backend.region_name}:{backend.account_id}"
            f":express:{state_machine.name}:{exec_name}:{uuid.uuid4()}"
        ),
        account_id=backend.account_id,
        region_name=backend.region_name,
        state_machine=snapshot,  # type: ignore[arg-type]
        start_date=datetime.datetime.now(tz=datetime.UTC),
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=execution_input,
    )
    execution.start()  # a SyncExecutionWorker evaluates the program in this thread
    return execution


def _start_sync_execution(self: StepFunctionResponse) -> ActionResult:
    backend = self.stepfunction_backend
    if not isinstance(backend, StepFunctionsParserBackend):
        raise ExecutionDisabled(
            "StartSyncExecution needs moto's config stepfunctions.execute_state_machine=true"
        )
    execution = run_sync_execution(
        backend,
        self._get_param("stateMachineArn"),
        self._get_param("name"),
        self._get_param("input", if_none="{}"),
    )
    return ActionResult(dict(execution.to_start_sync_execution_output()))


def patch_stepfunctions_start_sync_execution() -> None:
    """Implement StartSyncExecution, which moto routes to nothing (HTTP 500).

    moto 5.2.5's StepFunctionResponse has no ``start_sync_execution``, so the call raises
    NotImplementedError, although moto ships the pieces (``SyncExecution`` and a worker that
    evaluates in the caller's thread). The patch starts the execution in the executing backend,
    waits for it in the request thread and answers with AWS's output: executionArn,
    stateMachineArn, name, startDate, stopDate, status (SUCCEEDED, FAILED or TIMED_OUT), input,
    output on success and error/cause on failure. STANDARD machines are refused as on AWS.
    """
    StepFunctionResponse.start_sync_execution = _start_sync_execution  # type: ignore[attr-defined]


def apply_definition_substitutions(definition: str, substitutions: dict[str, Any]) -> str:
    """Replace each ``${Key}`` of ``definition`` named in ``substitutions``, as CloudFormation does.

    Placeholders with no substitution are left alone (``${...}`` is not special in ASL itself).
    """
    if not substitutions:
        return definition

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in substitutions:
            return match.group(0)
        value = substitutions[key]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return re.sub(r"\$\{([^}]+)\}", replace, definition)


def _state_machine_definition(properties: dict[str, Any], account_id: str, partition: str) -> str:
    """The definition a CloudFormation StateMachine declares, in any of its three forms."""
    if "DefinitionString" in properties:
        return str(properties["DefinitionString"])
    if "Definition" in properties:
        return json.dumps(properties["Definition"])
    if "DefinitionS3Location" in properties:
        location = properties["DefinitionS3Location"]
        key = s3_backends[account_id][partition].get_object(location["Bucket"], location["Key"])
        if key is None:
            raise ValueError(f"DefinitionS3Location {location} does not exist")
        return bytes(key.value).decode("utf-8")
    return ""


def _create_state_machine_from_cfn(
    cls: type[StateMachine],
    /,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> StateMachine:
    properties = cloudformation_json["Properties"]
    backend = get_backend(account_id, region_name)
    definition = apply_definition_substitutions(
        _state_machine_definition(properties, account_id, backend.partition),
        properties.get("DefinitionSubstitutions", {}),
    )
    tags = [{"key": tag["Key"], "value": tag["Value"]} for tag in properties.get("Tags", [])]
    return backend.create_state_machine(
        name=properties.get("StateMachineName", resource_name),
        definition=definition,
        roleArn=properties.get("RoleArn", ""),
        tags=tags,
        loggingConfiguration=_lower_first_keys(properties.get("LoggingConfiguration")),
        tracingConfiguration=_lower_first_keys(properties.get("TracingConfiguration")),
        sm_type=properties.get("StateMachineType", StateMachineType.STANDARD.value),
    )


def _delete_state_machine_from_cfn(
    cls: type[StateMachine],
    /,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> None:
    get_backend(account_id, region_name).delete_state_machine(resource_name)


def _lower_first_keys(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """CloudFormation spells ``Level``/``Enabled``; the Step Functions API ``level``/``enabled``."""
    if value is None:
        return None
    return {key[:1].lower() + key[1:]: item for key, item in value.items()}


def patch_cloudformation_state_machine() -> None:
    """Make ``AWS::StepFunctions::StateMachine`` in a stack behave like CloudFormation's.

    moto's ``StateMachine.create_from_cloudformation_json`` reads only ``DefinitionString``
    (SAM's ``DefinitionUri`` becomes ``DefinitionS3Location``), ignores
    ``DefinitionSubstitutions`` (so ``${SubmissionFunctionArn}`` stays literal),
    ignores ``StateMachineType`` (every machine becomes STANDARD) and writes into the
    non-executing backend, so the machine is invisible once execution is turned on. The
    replacement reads all three definition forms, applies the substitutions, keeps the type and
    creates the machine in whichever backend the API uses (``responses.get_backend``). Deleting
    the stack deletes from that same backend.
    """
    StateMachine.create_from_cloudformation_json = classmethod(  # type: ignore[assignment]
        _create_state_machine_from_cfn
    )
    StateMachine.delete_from_cloudformation_json = classmethod(  # type: ignore[assignment]
        _delete_state_machine_from_cfn
    )


def patch_stepfunctions_program_cache() -> None:
    """Parse each state-machine definition once, not once per execution.

    ``ExecutionWorker._get_evaluation_entrypoint`` runs the ANTLR ASL parser on the definition
    for every execution: about 20 ms of pure-Python parsing for the submit workflow, under the
    server's one GIL. The parsed program is a tree of declarations; everything an execution
    changes lives in its own ``Environment`` (retry counters included: they are kept in the
    environment's heap under each component's ``heap_key``). So one program per definition
    string serves every execution. The heap keys, which moto creates lazily, are created
    before the program is shared so that concurrent executions never race to make them.
    """
    programs: dict[str, Any] = {}
    lock = threading.Lock()

    def cached_entrypoint(self: ExecutionWorker) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        program = programs.get(definition)
        if program is None:
            with lock:
                program = programs.get(definition)
                if program is None:
                    program = AmazonStateLanguageParser.parse(definition)[0]
                    _create_heap_keys(program)
                    programs[definition] = program
        return program

    ExecutionWorker._get_evaluation_entrypoint = cached_entrypoint  # type: ignore[method-assign]


def _create_heap_keys(root: Component) -> None:
    """Touch ``heap_key`` on every evaluable component reachable from ``root``."""
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, EvalComponent):
            _ = item.heap_key
        if isinstance(item, Component):
            pending.extend(vars(item).values())
        elif isinstance(item, list | tuple | set):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())


# --- CloudFormation -------------------------------------------------------------------------


def _cfn_string(value: Any) -> Any:
    """A scalar as CloudFormation's intrinsic functions see it: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def patch_cloudformation_equals_strings() -> None:
    """Compare ``Fn::Equals`` operands as strings, as CloudFormation does.

    moto turns a passed parameter of ``Type: Number`` into an int, then compares it with the
    string literal of the condition: ``!Equals [!Ref PriorityLevels, "1"]`` is ``1 == "1"``,
    false, so with PriorityLevels=1 the template's HasLevel1 (``!Not`` of it) is true and the
    optional queues are created anyway. In CloudFormation every parameter reaches an intrinsic
    as a string. The replacement evaluates ``Fn::Equals`` on string forms (booleans as
    "true"/"false", which moto already did) and leaves every other condition to moto.
    """
    original: Callable[..., bool] = cloudformation_parsing.parse_condition

    def parse_condition(
        condition: dict[str, Any] | bool, resources_map: Any, condition_map: dict[str, Any]
    ) -> bool:
        if isinstance(condition, dict) and list(condition) == ["Fn::Equals"]:
            left, right = (
                condition_map[value["Condition"]]
                if isinstance(value, dict) and "Condition" in value
                else cloudformation_parsing.clean_json(value, resources_map)
                for value in condition["Fn::Equals"]
            )
            return bool(_cfn_string(left) == _cfn_string(right))
        return original(condition, resources_map, condition_map)

    # Module-level: moto's Fn::Not/And/Or and the condition map call it through the module.
    cloudformation_parsing.parse_condition = parse_condition


# --- Step Functions interpreter -------------------------------------------------------------


def patch_stepfunctions_start_execution_parameters() -> None:
    """Let a state start another workflow (``arn:aws:states:::states:startExecution``).

    ASL names the integration's parameters as the API does, ``StateMachineArn``, ``Input`` and
    ``Name``; boto3 calls them ``stateMachineArn``, ``input`` and ``name``. moto's port of the
    interpreter leaves the base class's renaming step empty, so the call fails with
    ``KeyError: 'StateMachineArn'`` inside botocore and the state with ``States.Runtime``. The
    patch renames the parameters after moto's own normalisation (which turns ``Input`` into a
    JSON string), as AWS does, and names unnamed executions as AWS does.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn,
    )

    service = state_task_service_sfn.StateTaskServiceSfn
    original = service._normalise_parameters

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original(self, parameters, boto_service_name, service_action_name)
        for name in [key for key in parameters if key[:1].isupper()]:
            parameters[name[0].lower() + name[1:]] = parameters.pop(name)
        # AWS names an unnamed execution with a UUID; moto's server would call it "None".
        parameters.setdefault("name", str(uuid.uuid4()))

    service._normalise_parameters = normalise_parameters  # type: ignore[method-assign]


def patch_stepfunctions_client_cache() -> None:
    """Reuse the interpreter's boto3 clients instead of building one per Task state.

    moto's ``boto_client_for`` calls ``boto3.client(...)`` every time a state calls a service
    (each Lambda invoke, each SQS or DynamoDB integration). Building a client loads and parses
    the service model: tens of milliseconds of CPU under the server's one GIL, per state. boto3
    clients are thread-safe, and the arguments (region, service, the server's own endpoint)
    repeat (moto signs every call with the same dummy keys, whatever role the state names), so
    one client per (region, service) is equivalent. The key includes the port, read when called,
    as moto reads ``MOTO_PORT``.
    """
    original: Callable[..., Any] = boto_client.boto_client_for
    cache: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def cached_boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto ignores ``state_credentials`` (every client signs with fixed dummy keys), so the
        # role a state names cannot change the client either.
        key = (region, service, moto_server_port())
        client = cache.get(key)
        if client is None:
            with lock:
                client = cache.get(key)
                if client is None:
                    client = original(region=region, service=service)
                    cache[key] = client
        return client

    _replace_module_function("boto_client_for", original, cached_boto_client_for)


def _replace_module_function(name: str, original: Any, replacement: Any) -> None:
    """Point every moto module that imported ``name`` by value at ``replacement``."""
    for module in list(sys.modules.values()):
        if (
            module is not None
            and module.__name__.startswith("moto.stepfunctions")
            and getattr(module, name, None) is original
        ):
            setattr(module, name, replacement)


# --- Lambda ---------------------------------------------------------------------------------


def _layer_version_physical_resource_id(self: LayerVersion) -> str:
    return self.arn


def patch_lambda_layer_version_ref() -> None:
    """Make ``!Ref`` of an ``AWS::Lambda::LayerVersion`` resolve to its version ARN.

    moto's LayerVersion has no ``physical_resource_id``, so CloudFormation's ``Ref`` returns the
    model object itself and a function's ``Layers: [!Ref CoreLayer]`` becomes unusable (the
    function then fails to create or lists an empty layer). On AWS, Ref of a LayerVersion is its
    ARN; the property returns exactly that.
    """
    LayerVersion.physical_resource_id = property(  # type: ignore[attr-defined]
        _layer_version_physical_resource_id
    )


# --- SQS ------------------------------------------------------------------------------------


def _is_message_valid_based_on_retention_period(
    self: SQSBackend, queue_name: str, message: Any
) -> bool:
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000  # type: ignore[attr-defined]
    return bool(retain_until > time.time())


def patch_sqs_retention_check() -> None:
    """Check a received message's retention period in O(1) instead of O(queue depth).

    For every message it hands out, moto's ``receive_message`` calls
    ``is_message_valid_based_on_retention_period``, which asks ``get_queue_attributes`` for
    MessageRetentionPeriod; that builds the queue's full attribute dict twice, and the dict
    includes ApproximateNumberOfMessages{,NotVisible,Delayed}, each a scan of every message with
    two datetime-based clock reads per message. A receive of 10 at depth 1,000 thus costs tens of
    thousands of clock reads. The replacement reads the queue's retention period attribute and
    compares with ``time.time()`` (the same epoch seconds moto's ``unix_time`` computes).
    """
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        _is_message_valid_based_on_retention_period
    )


def _message_visible(self: Message) -> bool:
    return bool(time.time() * 1000 > self.visible_at)


def _message_delayed(self: Message) -> bool:
    return bool(time.time() * 1000 < self.delayed_until)


def patch_sqs_message_clock() -> None:
    """Read the clock with ``time.time()`` in ``Message.visible`` and ``Message.delayed``.

    moto computes "now" in these two properties with ``unix_time_millis()``, which builds two
    naive datetimes and subtracts them (several microseconds). Both run once per message in every
    scan of a queue (each receive walks all visible messages; ApproximateNumberOfMessages* walk
    all messages), so the clock dominates at depth. ``time.time() * 1000`` is the same quantity,
    epoch milliseconds, about ten times cheaper.
    """
    Message.visible = property(_message_visible)  # type: ignore[method-assign,assignment]
    Message.delayed = property(_message_delayed)  # type: ignore[method-assign,assignment]


def _had_receipt_handle(self: Message, receipt_handle: str) -> bool:
    return receipt_handle == self.receipt_handle or receipt_handle in self._old_receipt_handles


def patch_sqs_receipt_handle_lookup() -> None:
    """Match a receipt handle without building a list per message.

    ``Queue.delete_message`` asks every message of the queue ``had_receipt_handle``; moto answers
    by concatenating the current and old handles into a new list each time. Comparing with the
    current handle, then searching the old ones, gives the same answer with no allocation.
    """
    Message.had_receipt_handle = _had_receipt_handle  # type: ignore[method-assign]


class _VisibleMessages:
    """The visible, undelayed messages of a queue, found as they are iterated.

    Behaves as the list moto builds for ``Queue.messages`` does for its three users: iteration
    (same messages, same order), ``len`` and truth.
    """

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages

    def __iter__(self) -> Iterator[Message]:
        return (m for m in self._messages if m.visible and not m.delayed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


def _queue_messages(self: Queue) -> _VisibleMessages:
    return _VisibleMessages(self._messages)


def patch_sqs_lazy_visible_messages() -> None:
    """Find the visible messages a receive needs, not every visible message of the queue.

    ``receive_message`` loops over ``queue.messages``, a list of all visible messages that moto
    builds on every call (and on every wake-up of a long poll), to take the first few: O(queue
    depth) for a receive of one message. The replacement yields the same messages in the same
    order as they are reached, so a receive stops after the messages it takes (plus those in
    flight ahead of them); ``len`` and truth still see the whole queue.
    """
    Queue.messages = property(_queue_messages)  # type: ignore[method-assign,assignment]


def _delete_message(self: Queue, receipt_handle: str) -> None:
    if receipt_handle in self.deleted_messages:
        return  # deleted already: moto (unlike AWS) accepts that again
    # Under the lock ``add_message`` appends with: moto rebuilds the list unguarded, so a
    # message sent during a delete could land in the discarded list and be lost.
    with self._messages_lock:
        messages = self._messages
        index = next(
            (i for i, m in enumerate(messages) if m.had_receipt_handle(receipt_handle)), None
        )
        if index is None:
            raise ReceiptHandleIsInvalid()
        message = messages[index]
        # A new list, as moto makes: a receive iterating the old one is not disturbed.
        self._messages = messages[:index] + messages[index + 1 :]
    self.pending_messages.discard(message)
    self.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]


def patch_sqs_delete_stops_at_the_message() -> None:
    """Delete a message with one scan that stops where the message is.

    moto's ``Queue.delete_message`` scans the whole queue twice (is the handle known? then a
    rebuild of the list without it), calling ``had_receipt_handle`` on every message each time.
    Received messages sit near the head of the queue, so a scan that stops at the match, then a
    list copy without it (one C-level copy), does the same in a fraction of the time. It runs
    under the queue's message lock, which also closes moto's window for losing a message sent
    while the list is rebuilt.
    """
    Queue.delete_message = _delete_message  # type: ignore[method-assign]


def patch_sqs_standard_queue_send() -> None:
    """Send to a standard queue in O(1) instead of O(queue depth).

    To learn whether content-based deduplication applies, moto's ``send_message`` reads
    ``queue.attributes.get("ContentBasedDeduplication")``; ``attributes`` builds every attribute
    of the queue, including the three ApproximateNumberOfMessages* counts that each scan all
    messages. A standard queue has no such attribute (it is FIFO-only), so the answer is always
    "no". The replacement takes moto's own steps for standard queues (validate, build the
    message, check DelaySeconds, mark it sent, add it) without that read, and hands FIFO queues
    to moto's method unchanged.
    """
    original = SQSBackend.send_message

    def send_message(
        self: SQSBackend,
        queue_name: str,
        message_body: str,
        message_attributes: dict[str, Any] | None = None,
        delay_seconds: int | None = None,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        system_attributes: dict[str, Any] | None = None,
        validate_group_id: bool = True,
    ) -> Message:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            return original(
                self,
                queue_name,
                message_body,
                message_attributes,
                delay_seconds,
                deduplication_id,
                group_id,
                system_attributes,
                validate_group_id,
            )
        self._validate_message(
            queue,
            message_body=message_body,
            delay_seconds=int(delay_seconds or 0),
            deduplication_id=deduplication_id,
            group_id=group_id,
            validate_group_id=validate_group_id,
        )
        delay = int(delay_seconds) if delay_seconds is not None else int(queue.delay_seconds)  # type: ignore[attr-defined]
        message = Message(str(mock_random.uuid4()), message_body, system_attributes)
        if deduplication_id is not None:
            message.deduplication_id = deduplication_id
        if group_id is not None:
            message.group_id = group_id
        if message_attributes:
            message.message_attributes = message_attributes
        if delay > MAXIMUM_MESSAGE_DELAY:
            # Same text as moto: send_message_batch recognises it to report the entry as failed.
            raise InvalidParameterValue(
                f"Value {delay} for parameter DelaySeconds is invalid. "
                "Reason: DelaySeconds must be >= 0 and <= 900."
            )
        message.mark_sent(delay_seconds=delay)
        queue.add_message(message)
        return message

    SQSBackend.send_message = send_message  # type: ignore[method-assign]


# --- Server --------------------------------------------------------------------------------


def patch_server_module_listing() -> None:
    """List moto's service packages once, not on every request.

    moto's server picks the backend for each request with ``get_backend_for_host``, which asks
    ``backends.list_of_moto_modules()`` whether the host is a service name: a directory listing
    of the moto package and an ``isdir`` per entry (about 170), done under the dispatcher's
    global lock, for every request. The installed package does not change while the server
    runs, so the listing is computed once and reused; callers only iterate it or test ``in``.
    """
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    backends.list_of_moto_modules = list_of_moto_modules


# --- Entry point ----------------------------------------------------------------------------

#: Every patch, in the order ``apply_all`` applies them.
# --- CloudWatch ----------------------------------------------------------------------------


def _alarm_resource_class() -> type:
    """The ``AWS::CloudWatch::Alarm`` resource, built on moto's own PutMetricAlarm."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel

    class CloudFormationAlarm(CloudFormationModel):
        def __init__(self, name: str) -> None:
            self.name = name

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return False

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CloudFormationAlarm:
            props = cloudformation_json["Properties"]
            name = props.get("AlarmName", resource_name)
            cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=name,
                namespace=props["Namespace"],
                metric_name=props["MetricName"],
                comparison_operator=props["ComparisonOperator"],
                evaluation_periods=int(props["EvaluationPeriods"]),
                period=int(props["Period"]),
                threshold=float(props["Threshold"]),
                statistic=props.get("Statistic", "Average"),
                description=props.get("AlarmDescription", ""),
                dimensions=list(props.get("Dimensions", [])),
                alarm_actions=list(props.get("AlarmActions", [])),
                treat_missing_data=props.get("TreatMissingData"),
            )
            return cls(name)

    return CloudFormationAlarm


def patch_cloudformation_alarm() -> None:
    """Create ``AWS::CloudWatch::Alarm`` resources of a stack.

    moto has CloudWatch's PutMetricAlarm but no CloudFormation resource for alarms: it skips
    them with a warning, so the template's DLQ and queue-age alarms would silently not exist.
    The resource class registers itself (moto finds resources by subclass); the cached model
    maps are cleared so a stack created afterwards sees it.
    """
    from moto.cloudformation import parsing

    _alarm_resource_class()
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


# --- DynamoDB -------------------------------------------------------------------------------


def patch_dynamodb_query_skips_the_full_sort() -> None:
    """Query without sorting the whole table first.

    moto's ``Table.query`` walks ``Table.all_items()``, which sorts every item of the table by
    its key (``DynamoType`` comparisons in Python), and then sorts the matching items again by
    the query's own key. With thousands of tasks, each query (a session's status, the reaper's
    16 index queries per run) cost a sort of the whole table, and the emulator's one core went
    to that. Inside ``query`` the first sort is skipped: the matches are sorted by their full
    key afterwards anyway, so results and pages are the same.
    """
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items
    querying = threading.local()

    def all_items(self: Table) -> list[Any]:
        if not getattr(querying, "active", False):
            return original_all_items(self)
        items: list[Any] = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        return items

    # Same signature as moto's (accounting.py binds Table.query's arguments by name).
    @functools.wraps(original_query)
    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        querying.active = True
        try:
            return original_query(self, *args, **kwargs)
        finally:
            querying.active = False

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


def patch_dynamodb_conditional_writes_are_atomic() -> None:
    """Make each DynamoDB write one atomic step, as DynamoDB's are.

    moto checks a write's ConditionExpression and then applies it, with nothing between the
    two: two threads of the server can both pass the check (``state = PENDING``) and both
    write. That is the one guarantee the grid's exactly-once recording rests on, and a racing
    test caught moto breaking it. Item writes of a backend are serialised by one lock (reads
    stay concurrent); the emulator's DynamoDB throughput is CPU-bound on one core anyway.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def serialised(
            self: DynamoDBBackend, *args: Any, __original: Any = original, **kwargs: Any
        ) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(serialised))


# --- EventBridge Scheduler ------------------------------------------------------------------


def _schedule_resource_class() -> type:
    """The ``AWS::Scheduler::Schedule`` resource, built on moto's own CreateSchedule."""
    from moto.core.common_models import CloudFormationModel
    from moto.scheduler.models import scheduler_backends

    class CloudFormationSchedule(CloudFormationModel):
        def __init__(self, name: str, group_name: str, account_id: str, region: str) -> None:
            self.name = name
            self.group_name = group_name
            self.account_id = account_id
            self.region = region

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Scheduler::Schedule"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return (
                f"arn:aws:scheduler:{self.region}:{self.account_id}:schedule/"
                f"{self.group_name}/{self.name}"
            )

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CloudFormationSchedule:
            props = cloudformation_json["Properties"]
            name = props.get("Name", resource_name)
            group = props.get("GroupName", "default")
            scheduler_backends[account_id][region_name].create_schedule(
                description=props.get("Description", ""),
                end_date=props.get("EndDate"),
                flexible_time_window=props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
                group_name=group,
                kms_key_arn=props.get("KmsKeyArn"),
                name=name,
                schedule_expression=props["ScheduleExpression"],
                schedule_expression_timezone=props.get("ScheduleExpressionTimezone"),
                start_date=props.get("StartDate"),
                state=props.get("State", "ENABLED"),
                target=props["Target"],
                action_after_completion=None,
            )
            return cls(name, group, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
        ) -> None:
            backend = scheduler_backends[account_id][region_name]
            group = cloudformation_json.get("Properties", {}).get("GroupName", "default")
            backend.schedule_groups[group].schedules.pop(resource_name, None)

    return CloudFormationSchedule


def patch_cloudformation_schedule() -> None:
    """Create ``AWS::Scheduler::Schedule`` resources of a stack (the reaper's schedule).

    moto has EventBridge Scheduler's API but no CloudFormation resource for it: it would skip
    the schedule with a warning, and the local grid (``schedules.py``), which fires the
    schedules moto holds, would have nothing to fire.
    """
    from moto.cloudformation import parsing

    _schedule_resource_class()
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


PATCHES: dict[str, Callable[[], None]] = {
    "server_module_listing": patch_server_module_listing,
    "stepfunctions_start_sync_execution": patch_stepfunctions_start_sync_execution,
    "cloudformation_state_machine": patch_cloudformation_state_machine,
    "cloudformation_equals_strings": patch_cloudformation_equals_strings,
    "stepfunctions_client_cache": patch_stepfunctions_client_cache,
    "stepfunctions_start_execution_parameters": patch_stepfunctions_start_execution_parameters,
    "stepfunctions_program_cache": patch_stepfunctions_program_cache,
    "lambda_layer_version_ref": patch_lambda_layer_version_ref,
    "sqs_retention_check": patch_sqs_retention_check,
    "sqs_message_clock": patch_sqs_message_clock,
    "sqs_receipt_handle_lookup": patch_sqs_receipt_handle_lookup,
    "sqs_standard_queue_send": patch_sqs_standard_queue_send,
    "sqs_lazy_visible_messages": patch_sqs_lazy_visible_messages,
    "sqs_delete_stops_at_the_message": patch_sqs_delete_stops_at_the_message,
    "cloudformation_alarm": patch_cloudformation_alarm,
    "cloudformation_schedule": patch_cloudformation_schedule,
    "dynamodb_query_skips_the_full_sort": patch_dynamodb_query_skips_the_full_sort,
    "dynamodb_conditional_writes_are_atomic": patch_dynamodb_conditional_writes_are_atomic,
}


def apply_all() -> None:
    """Apply every patch once (later calls do nothing). Call before any resource is created."""
    with _apply_lock:
        for name, patch in PATCHES.items():
            if name not in _applied:
                patch()
                _applied.add(name)
