"""The Runtime API's pure pieces: what a runtime's error and response documents become, the
headers and environment a runtime gets, and finding a sidecar's process by its connection."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time

import pytest

from htcgrid_agent.context import TaskContext
from htcgrid_agent.runtime_api import (
    error_outcome,
    invocation_headers,
    is_permanent_error,
    lambda_environment,
    peer_pid,
    response_outcome,
)


def test_an_error_document_keeps_type_trace_then_message() -> None:
    outcome = error_outcome(
        {
            "errorType": "ZeroDivisionError",
            "errorMessage": "division by zero",
            "stackTrace": ['  File "app.py", line 3', "    1 / 0"],
        },
        "Unhandled",
    )
    assert outcome.error_type == "ZeroDivisionError"
    assert outcome.error_message == '  File "app.py", line 3\n    1 / 0\ndivision by zero'
    assert outcome.retryable


def test_nodes_trace_field_is_the_stack_trace() -> None:
    # aws-lambda-ric (Node.js) posts the stack trace as "trace".
    outcome = error_outcome({"errorType": "Error", "errorMessage": "boom", "trace": ["at f"]}, None)
    assert outcome.error_message == "at f\nboom"


@pytest.mark.parametrize(
    "document",
    [None, [], "text", {"errorType": 7, "errorMessage": ["x"], "stackTrace": "not a list"}],
)
def test_a_malformed_error_document_still_fails_the_attempt(document: object) -> None:
    outcome = error_outcome(document, "Unhandled")
    assert outcome.error_type == "Unhandled"  # the header's type, when the body has none
    assert outcome.error_message == ""
    assert error_outcome(document, None).error_type == "Runtime.Unknown"


@pytest.mark.parametrize(
    ("error_type", "permanent"),
    [
        ("PermanentTaskError", True),
        ("com.example.PermanentTaskError", True),
        ("PermanentTaskErrorX", False),
        ("ValueError", False),
    ],
)
def test_permanent_errors_are_named_so(error_type: str, permanent: bool) -> None:
    assert is_permanent_error(error_type) is permanent
    assert error_outcome({"errorType": error_type}, None).retryable is not permanent


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "Expecting value"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b'"\xff"', "utf-8"),
        (b"", "Expecting value"),
    ],
)
def test_a_response_that_is_not_json_in_utf8_fails_for_good(body: bytes, why: str) -> None:
    outcome = response_outcome(body)
    assert outcome.error_type == "ResultNotJson"
    assert why in outcome.error_message
    assert not outcome.retryable


def test_a_json_response_is_the_result_as_sent() -> None:
    body = '{"price": 10.5, "name": "été"}'.encode()
    assert response_outcome(body).result == body


#: An attempt's context without a trace of its own.
CONTEXT = TaskContext(
    function_name="pricer",
    aws_request_id="t-1",
    session_id="s-1",
    attempt=2,
    memory_limit_in_mb=512,
    deadline=1_700_000_000.25,
)


def test_invocation_headers_name_the_task_and_its_deadline() -> None:
    headers = invocation_headers(CONTEXT, "eu-west-1")
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "t-1"
    assert headers["Lambda-Runtime-Deadline-Ms"] == "1700000000250"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].startswith("arn:aws:lambda:eu-west-1:")
    root, parent, sampled = headers["Lambda-Runtime-Trace-Id"].split(";")
    version, epoch, unique = root.removeprefix("Root=").split("-")
    assert (version, len(epoch), len(unique)) == ("1", 8, 24)
    assert parent.startswith("Parent=")
    assert sampled == "Sampled=0"
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {
        "custom": {"session_id": "s-1", "attempt": "2"}
    }


def test_invocation_headers_carry_the_tasks_trace() -> None:
    traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    context = dataclasses.replace(CONTEXT, trace_id=traced)
    assert invocation_headers(context, "eu-west-1")["Lambda-Runtime-Trace-Id"] == traced


def test_a_runtime_environment_is_lambdas_over_the_agents() -> None:
    env = lambda_environment(
        {"PATH": "/bin", "_HANDLER": "stale"},
        api_address="127.0.0.1:9001",
        handler="app.h",
        task_root="/var/task",
        runtime_dir="/opt",
        function_name="f",
        memory_mb=256,
        region="us-east-2",
    )
    assert env["PATH"] == "/bin"
    assert env["_HANDLER"] == "app.h"
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-2"


def test_the_process_at_the_other_end_of_a_connection_is_found() -> None:
    # GIVEN a process (a sidecar's runtime) connected to a port this process serves
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket, sys, time\n"
                "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
                "time.sleep(60)",
                str(port),
            ]
        )
        try:
            accepted, (_, peer_port) = server.accept()
            with accepted:
                # THEN its pid is found from the connection's ports alone
                assert peer_pid(port, peer_port) == child.pid
                assert peer_pid(port, peer_port + 1 if peer_port < 65535 else 1) is None
        finally:
            child.kill()
            child.wait()
    deadline = time.monotonic() + 5
    while peer_pid(port, peer_port) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer_pid(port, peer_port) is None
