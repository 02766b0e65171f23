"""A task's X-Ray trace on the local grid: the trace its submission ran in reaches its handler
and its retries, as on AWS (the local grid's workflows and Lambdas run in traces as AWS's do)."""

from __future__ import annotations

from htcgrid import Grid
from htcgrid_core import aws, keys
from htcgrid_core.table.codec import decode_record
from htcgrid_core.traces import trace_header, trace_root
from htcgrid_local.grid import LocalGrid


def submission_trace(grid: LocalGrid, session_id: str, task_id: str) -> str:
    """The trace the task's record keeps: its submission's (the submit workflow's execution)."""
    item = aws.dynamodb(grid.endpoint_url, "us-east-1").get_item(
        TableName=grid.outputs["TaskTableName"], Key=keys.task_key(session_id, task_id)
    )["Item"]
    header = decode_record(item).trace_header
    assert header is not None
    assert trace_header(header) == header
    return header


def test_a_handler_runs_in_its_submissions_trace_and_so_do_its_retries(
    local_grid: LocalGrid, client: Grid
) -> None:
    with client.open_session() as session:
        first, retried = session.submit([{"trace": True}, {"trace": True, "fail_attempts": 1}])
        done = {completed.task_id: completed for completed in session.wait(timeout=60)}
    for task_id in (first, retried):
        assert done[task_id].ok, done[task_id].error
        seen = done[task_id].value["trace_id"]
        assert trace_root(seen) == trace_root(submission_trace(local_grid, session.id, task_id))
    assert done[retried].value["attempt"] == 2
    # one trace per submission: both tasks are in the same one
    assert trace_root(done[first].value["trace_id"]) == trace_root(done[retried].value["trace_id"])
