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
