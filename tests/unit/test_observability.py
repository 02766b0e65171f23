"""What the grid's Lambdas put in their X-Ray traces: timings and errors, never payloads or
results (a trace is readable by anyone with X-Ray access to the account)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from htcgrid_core import observability
from htcgrid_local.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class RecordedSegment(BaseSegment):
    """A subsegment that keeps what the tracer puts on it."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.annotations: dict[str, Any] = {}

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata[key] = value

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class RecordingProvider(BaseProvider):
    """The tracing provider Powertools hands subsegments to, recording them instead of
    sending them to an X-Ray daemon."""

    def __init__(self) -> None:
        self.segments: list[RecordedSegment] = []

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment]:
        segment = RecordedSegment()
        self.segments.append(segment)
        yield segment

    @asynccontextmanager
    async def in_subsegment_async(
        self, name: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[BaseSegment]:
        raise NotImplementedError  # the grid's handlers are synchronous
        yield RecordedSegment()  # pragma: no cover - makes this an async generator

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        pass

    def patch_all(self) -> None:
        pass


class LambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())


def test_a_traced_handler_records_its_run_but_not_what_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN Powertools' default (capture the response) in the environment
    WHEN a handler wrapped by lambda_entrypoint returns a payload
    THEN its subsegment carries the cold-start annotation and no copy of the payload."""
    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    provider = RecordingProvider()
    monkeypatch.setattr(observability.tracer, "provider", provider)
    secret = {"payload": "portfolio of client 42"}

    handler = observability.lambda_entrypoint(lambda event, context: secret)
    assert handler({}, LambdaContext()) == secret

    (segment,) = provider.segments
    assert "ColdStart" in segment.annotations
    assert segment.metadata == {}


def test_every_function_keeps_responses_out_of_its_traces() -> None:
    variables = load_template(TEMPLATE)["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"


class CapturingEmitter:
    """An X-Ray SDK emitter that keeps each segment document instead of sending it over UDP to
    a daemon."""

    def __init__(self) -> None:
        self.documents: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(entity.serialize())

    def set_daemon_address(self, address: str | None) -> None:
        pass


def test_the_xray_sdk_emits_a_handlers_subsegment_without_its_payload_or_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN the X-Ray SDK's own recorder (what Powertools uses in Lambda), Powertools' default
    (capture the response) in the environment, and a handler whose event and response carry
    a payload
    WHEN the handler, wrapped by lambda_entrypoint, runs in a segment
    THEN the segment documents the SDK emits name the handler and hold no payload text."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core.recorder import AWSXRayRecorder

    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)  # Powertools disables it outside Lambda
    try:
        emitter = CapturingEmitter()
        recorder = AWSXRayRecorder()
        recorder.configure(emitter=emitter, sampling=False, context_missing="LOG_ERROR")
        monkeypatch.setattr(observability.tracer, "provider", recorder)
        secret = "portfolio of client 42"

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"payload": event["payload"], "result": secret.upper()}

        recorder.begin_segment("htcgrid-submission")
        observability.lambda_entrypoint(handler)({"payload": secret}, LambdaContext())
        recorder.end_segment()
    finally:
        global_sdk_config.set_sdk_enabled(enabled)

    (document,) = emitter.documents
    assert '"## handler"' in document
    assert secret not in document
    assert secret.upper() not in document


def test_every_function_and_workflow_is_traced() -> None:
    template = load_template(TEMPLATE)
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    resources = template["Resources"].values()
    functions = [r for r in resources if r["Type"] == "AWS::Serverless::Function"]
    assert functions
    assert all(r["Properties"].get("Tracing", "Active") == "Active" for r in functions)
    workflows = [r for r in resources if r["Type"] == "AWS::Serverless::StateMachine"]
    assert len(workflows) == 3  # submit, retry, reap
    assert all(r["Properties"]["Tracing"] == {"Enabled": True} for r in workflows)
