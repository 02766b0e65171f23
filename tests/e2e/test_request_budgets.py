"""The grid's cost budgets (ARCHITECTURE.md), measured on the local grid.

A local grid whose emulator counts every AWS request (``htcgrid_local.accounting``) runs a
warm-up session, then, counters reset, one session of small tasks (payload and result of about
200 bytes) through the real client, 2 agents with 4 slots and a prefetch of 10:
``local/bench/request_accounting.py`` is the same run at a larger size, with the full table.

The session is 2,000 tasks: SQS requests per task fall as the session's fixed requests (its
result queue, the client's last polls, the agents' idle long polls) spread over more tasks, from
0.44-0.49 at 600 tasks to 0.43-0.45 at 2,000 (and 0.44-0.47 at 5,000 in ``make bench``), under
the budget of 0.5 at a run of about 20 s. Not asserted: the total of DynamoDB write units
(2 per task plus 3 per submission for the submission record).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import JsonValue

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core import result_queues
from htcgrid_local import accounting, clients
from htcgrid_local.accounting import Accounting
from htcgrid_local.grid import LocalGrid
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"
TASKS = 2000
WARMUP_TASKS = 50
PAYLOAD_BYTES = 200
#: boto3 puts ``app/<id>`` in each request's User-Agent; the emulator names callers by it.
APP_ID_VARIABLE = "AWS_SDK_UA_APP_ID"
AGENT = "htcgrid-agent"
CLIENT = "htcgrid-client"


def payloads(count: int) -> list[JsonValue]:
    filler = "x" * (PAYLOAD_BYTES - len('{"value": "-00000"}'))
    return [{"value": f"{filler}-{index:05d}"} for index in range(count)]


def run_session(client: Grid, tasks: int) -> None:
    with client.open_session() as session:
        session.submit(payloads(tasks))
        results = session.wait(timeout=240)
    assert len(results) == tasks
    assert all(result.ok for result in results)


def acknowledged(endpoint_url: str, tasks: int) -> Accounting | None:
    """The counters once the agents have deleted every task message (their reporters send
    the notices first, the deletes a moment later), else None."""
    counted = accounting.fetch(endpoint_url)
    deleted = sum(
        row.entries
        for row in counted.select(caller=AGENT, service="sqs", operation="DeleteMessageBatch")
        if result_queues.INFIX not in row.resource
    )
    return counted if deleted >= tasks else None


@pytest.fixture(scope="module")
def budget_grid() -> Iterator[LocalGrid]:
    """A local grid whose emulator counts requests and whose agents name themselves."""
    grid = LocalGrid(
        agents=2,
        handler=HANDLER,
        slots=4,
        stack_name="htcgrid-budgets",
        agent_env={APP_ID_VARIABLE: AGENT},
        agent_args=["--prefetch", "10"],
        # The reaper's schedule costs per minute (a run is two Lambda invocations, a few SQS
        # receives and 16 index queries), not per task: left out of the per-task budgets.
        schedule_period_s=0,
    )
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(accounting.ENV_FLAG, "1")  # the emulator process inherits it
            grid.start()
        yield grid
    finally:
        grid.stop()


@pytest.fixture(scope="module")
def counted(budget_grid: LocalGrid) -> Accounting:
    """The counters of one session of TASKS tasks at steady state (after a warm-up)."""
    endpoint_url = budget_grid.endpoint_url
    with pytest.MonkeyPatch.context() as env:
        env.setenv(APP_ID_VARIABLE, CLIENT)  # read by the client's boto3 clients, made below
        client = Grid(GridEndpoints.for_emulator(dict(budget_grid.outputs), endpoint_url))
        run_session(client, WARMUP_TASKS)
        wait_for(lambda: acknowledged(endpoint_url, WARMUP_TASKS), 30, "warm-up acknowledged")
        accounting.reset(endpoint_url)
        run_session(client, TASKS)
    measured: Accounting = wait_for(
        lambda: acknowledged(endpoint_url, TASKS), 30, "every task acknowledged"
    )
    return measured


def test_inline_payloads_and_results_make_no_s3_requests(counted: Accounting) -> None:
    assert counted.total(service="s3") == 0


def test_sqs_takes_under_half_a_request_per_task_at_saturation(counted: Accounting) -> None:
    """Every SQS call of the run, whoever made it: the dispatch Lambda's batch sends, the
    agents' batch receives, deletes and result notices, the client's result-queue polls and its
    session queue. Batches of 10 make 0.1 each for send, receive and delete; notices and polls
    are batched further."""
    assert counted.total(service="sqs") / TASKS <= 0.5
    dispatched = [
        row
        for row in counted.select(service="sqs", operation="SendMessageBatch")
        if row.caller.startswith("lambda:")
    ]
    assert sum(row.entries for row in dispatched) == TASKS
    assert sum(row.count for row in dispatched) == pytest.approx(TASKS / 10, rel=0.05)


def test_lambda_and_step_functions_run_per_submission_not_per_task(counted: Accounting) -> None:
    executions = counted.total(service="stepfunctions", operation="StartSyncExecution")
    assert counted.total(caller=CLIENT, service="stepfunctions") == executions
    assert 1 <= executions <= TASKS / 100  # the client packs hundreds of small tasks into each
    invocations = counted.select(service="lambda", operation="Invoke")
    assert all(row.caller.startswith("workflow:") or row.caller == CLIENT for row in invocations)
    # The client's own calls are per session: the session function opens and closes its
    # result queue (and the status function is read if the session goes quiet).
    by_client = counted.total(caller=CLIENT, service="lambda", operation="Invoke")
    assert 2 <= by_client <= 3
    # Persist and Dispatch (submissions of hundreds of tasks): two Lambda invocations and three
    # states per execution (Persist, the choice of DispatchedYet, Dispatch).
    assert counted.total(service="lambda", operation="Invoke") - by_client == 2 * executions
    assert counted.total("states_entered", service="stepfunctions") == 3 * executions


def test_each_task_record_costs_two_write_units(counted: Accounting) -> None:
    """The PENDING record (BatchWriteItem) and the conditional completion: 1 unit each (the
    record stays under 1 KB with its payload and result), no lease write for short tasks,
    no read on the agent's path. The submission record's writes are per submission."""
    persisted = counted.select(service="dynamodb", operation="BatchWriteItem")
    assert sum(row.entries for row in persisted) == TASKS
    agent_writes = [
        row
        for row in counted.select(caller=AGENT, service="dynamodb")
        if row.operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
    ]
    assert [row.operation for row in agent_writes] == ["UpdateItem"]
    # One completion per task; the rest are session counter writes (1 unit each).
    counter_writes = agent_writes[0].count - TASKS
    assert counter_writes >= 1
    task_units = sum(row.wru for row in persisted) + agent_writes[0].wru - counter_writes
    assert task_units / TASKS <= 2.0
    executions = counted.total(service="stepfunctions", operation="StartSyncExecution")
    submission_units = counted.total("wru", service="dynamodb") - task_units - counter_writes
    # The submission record (taken, PERSISTED, DISPATCHED) and the session record's count.
    assert submission_units <= 4 * executions


def test_session_counters_cost_well_under_a_tenth_of_a_write_unit_per_task(
    counted: Accounting,
) -> None:
    """Agents add their finished tasks to the session's counters at most once a second, and a
    submission counts its tasks with one write: everything beyond the two units of each task's
    record, submission records included, stays far below 0.1 unit per task."""
    agent_updates = counted.total("count", caller=AGENT, service="dynamodb", operation="UpdateItem")
    assert (agent_updates - TASKS) / TASKS < 0.05
    overhead = counted.total("wru", service="dynamodb") - 2 * TASKS
    assert overhead / TASKS < 0.1


def test_capacity_units_follow_item_sizes(budget_grid: LocalGrid) -> None:
    """The accounting's own check: units as DynamoDB bills them, from item sizes (moto's
    ConsumedCapacity is a constant whatever the size, so the emulator computes them)."""
    endpoint_url = budget_grid.endpoint_url
    dynamodb = clients.client("dynamodb", endpoint_url)
    table = "budget-capacity-check"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    accounting.reset(endpoint_url)
    key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
    # 3 + 3 + 4 + 3,000 bytes: 3 write units.
    dynamodb.put_item(TableName=table, Item={**key, "data": {"S": "x" * 3000}})
    # Grows to 5,014 bytes: the larger of before and after, 5 units.
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET more = :m",
        ExpressionAttributeValues={":m": {"S": "y" * 2000}},
    )
    # Ten items of 1,507 bytes: 2 units each.
    filler = "z" * 1500
    dynamodb.batch_write_item(
        RequestItems={
            table: [
                {
                    "PutRequest": {
                        "Item": {"pk": {"S": "q"}, "sk": {"S": f"{i}"}, "d": {"S": filler}}
                    }
                }
                for i in range(10)
            ]
        }
    )
    # 5,014 bytes read eventually consistent: 2 x 4 KB at half a unit.
    dynamodb.get_item(TableName=table, Key=key)
    # The query reads 15,070 bytes whatever it projects: 4 x 4 KB, strongly consistent.
    dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ProjectionExpression="sk",
        ExpressionAttributeValues={":p": {"S": "q"}},
        ConsistentRead=True,
    )
    checked = accounting.fetch(endpoint_url)
    units = {row.operation: (row.wru, row.rru) for row in checked.select(resource=table)}
    assert units == {
        "PutItem": (3.0, 0.0),
        "UpdateItem": (5.0, 0.0),
        "BatchWriteItem": (20.0, 0.0),
        "GetItem": (0.0, 1.0),
        "Query": (0.0, 4.0),
    }


def test_a_lone_task_is_dispatched_without_the_dispatch_step(budget_grid: LocalGrid) -> None:
    """A submission of one batch of messages is sent by the submission function: its workflow
    invokes one Lambda, not two, and its message leaves one hop sooner. A lone task's records
    are written in one transaction, two round trips fewer than for larger submissions."""
    endpoint_url = budget_grid.endpoint_url
    outputs = dict(budget_grid.outputs)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(APP_ID_VARIABLE, CLIENT)
        client = Grid(GridEndpoints.for_emulator(outputs, endpoint_url))
        accounting.reset(endpoint_url)
        run_session(client, 1)
    counted: Accounting = wait_for(
        lambda: acknowledged(endpoint_url, 1), 30, "the lone task acknowledged"
    )
    by_workflow = [
        (row.resource, row.count)
        for row in counted.select(service="lambda", operation="Invoke")
        if row.caller.startswith("workflow:")
    ]
    # The emulator names a function without CloudFormation's random suffix.
    submission_function = "htcgrid-budgets-SubmissionFunction"
    assert outputs["SubmissionFunctionName"].startswith(submission_function + "-")
    assert by_workflow == [(submission_function, 1)]
    (sent,) = counted.select(
        service="sqs",
        operation="SendMessageBatch",
        caller=f"lambda:{submission_function}",
    )
    assert sent.entries == 1
    # Its records in one transaction; then the session's count and the DISPATCHED mark.
    writes = {
        row.operation: row.count
        for row in counted.select(service="dynamodb", caller=f"lambda:{submission_function}")
    }
    assert writes == {"TransactWriteItems": 1, "UpdateItem": 2}
    # Persist, DispatchedYet, Receipt.
    assert counted.total("states_entered", service="stepfunctions") == 3
