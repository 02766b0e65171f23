"""The documents: limits, clear errors naming the field, and published schemas kept current."""

import json
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    DISPATCH_BATCH_OVERHEAD_BYTES,
    MAX_DISPATCH_BATCH_BYTES,
    MAX_TASKS_PER_SUBMISSION,
    MAX_TIMEOUT_S,
    TASK_STATE_OVERHEAD_BYTES,
    CancelRequest,
    DispatchBatch,
    InlineData,
    StatusFunctionInput,
    Submission,
    TaskMessage,
)
from htcgrid_core.schema import schemas
from htcgrid_core.settings import MAX_PRIORITY_LEVELS, GridSettings
from htcgrid_core.submissions import (
    check_against_settings,
    dispatch_batch,
    parse_document,
    state_bytes,
)

REPO = Path(__file__).resolve().parents[2]


def submission(**overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "session_id": "s1",
        "submission_token": "t1",
        "tasks": [{"payload": {"inline": {"x": 1}}}],
    }
    document.update(overrides)
    return document


def test_a_valid_submission_parses() -> None:
    parsed = parse_document(Submission, submission())
    assert parsed.tasks[0].payload.inline == {"x": 1}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"session_id": "bad id!"}, "session_id"),
        ({"session_id": "../other"}, "session_id"),
        ({"session_id": "a/b"}, "session_id"),
        ({"session_id": "café"}, "session_id"),
        ({"session_id": "caf\udce9"}, "session_id"),
        ({"session_id": "s" * 49}, "session_id"),
        ({"session_id": "s1\n"}, "session_id"),
        ({"submission_token": "t" * 65}, "submission_token"),
        ({"submission_token": "../t"}, "submission_token"),
        ({"submission_token": "tök"}, "submission_token"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"payload": {"inline": 1}}] * (MAX_TASKS_PER_SUBMISSION + 1)}, "tasks"),
        ({"tasks": [{"payload": {"inline": 1}, "timeout_s": 0}]}, "tasks.0.timeout_s"),
        ({"tasks": [{"payload": {"inline": 1}, "priority": 9}]}, "tasks.0.priority"),
        ({"tasks": [{"payload": {"inline": 1}, "colour": "red"}]}, "tasks.0.colour"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_submission_error_names_the_field(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidSubmissionError, match=named):
        parse_document(Submission, submission(**overrides))


@pytest.mark.parametrize("task_id", ["../t", "a/b", "tâche", "t" * 101, "t\n"])
@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (StatusFunctionInput, {"action": "results", "session_id": "s1"}),
        (CancelRequest, {"session_id": "s1"}),
    ],
    ids=["results query", "cancel request"],
)
def test_a_task_id_the_grid_never_issues_is_refused_naming_the_field(
    task_id: str, model: type[BaseModel], fields: dict[str, object]
) -> None:
    with pytest.raises(InvalidSubmissionError, match=r"\btask_ids\.0: "):
        parse_document(model, {**fields, "task_ids": [task_id]})


def test_priority_beyond_the_grids_levels_is_rejected_with_the_range() -> None:
    parsed = parse_document(
        Submission, submission(tasks=[{"payload": {"inline": 1}, "priority": 3}])
    )
    with pytest.raises(InvalidSubmissionError, match=r"tasks\.0\.priority: 3 .* \(0 to 2\)"):
        check_against_settings(parsed, GridSettings(priority_levels=3))


def test_oversized_inline_payload_is_rejected_with_its_size_and_the_limit() -> None:
    parsed = parse_document(Submission, submission(tasks=[{"payload": {"inline": "x" * 100}}]))
    with pytest.raises(InvalidSubmissionError, match=r"102 bytes inline; the inline limit is 64"):
        check_against_settings(parsed, GridSettings(inline_threshold_bytes=64))


def stored_payload(s3_key: str, size: int = 1) -> dict[str, object]:
    return {"s3_key": s3_key, "size": size, "sha256": "0" * 64}


@pytest.mark.parametrize(
    "s3_key",
    [
        "sessions/other/payloads/x.json",
        "sessions/s1-and-more/payloads/x.json",
        "sessions/s1/../other/payloads/x.json",
        "sessions/s1/payloads/../../other/x.json",
        "sessions/s1/./payloads/x.json",
        "sessions/s1//payloads/x.json",
        "sessions/s1/payloads/..",
        "sessions/s1/",
    ],
)
def test_stored_payload_outside_the_session_prefix_is_rejected(s3_key: str) -> None:
    parsed = parse_document(Submission, submission(tasks=[{"payload": stored_payload(s3_key)}]))
    with pytest.raises(
        InvalidSubmissionError, match=r"tasks\.0\.payload\.s3_key: must lie under .*sessions/s1/"
    ):
        check_against_settings(parsed, GridSettings())


def test_text_no_utf_8_document_can_hold_is_refused_before_any_write() -> None:
    # GIVEN a submission from another SDK whose JSON escapes a lone surrogate (valid JSON
    # text, but no DynamoDB item, SQS message or UTF-8 document can carry it)
    inline = json.loads(json.dumps(submission(tasks=[{"payload": {"inline": "caf\udce9"}}])))
    stored = submission(tasks=[{"payload": stored_payload("sessions/s1/payloads/\udce9.json")}])
    # THEN it is refused naming the field: by the inline size check, or (a key) by the model
    with pytest.raises(InvalidSubmissionError, match=r"tasks\.0\.payload .*lone surrogate"):
        check_against_settings(parse_document(Submission, inline), GridSettings())
    with pytest.raises(InvalidSubmissionError, match=r"tasks\.0\.payload\.StoredData\.s3_key"):
        parse_document(Submission, stored)
    # AND valid Unicode, astral planes included, is fine
    fine = submission(tasks=[{"payload": {"inline": {"név": "café ☃ 𝄞"}}}])
    check_against_settings(parse_document(Submission, fine), GridSettings())


@pytest.mark.parametrize("s3_key", ["sessions/s1/payloads/..x.json", "sessions/s1/a.b/.c"])
def test_dots_that_are_not_a_path_segment_of_their_own_are_fine(s3_key: str) -> None:
    parsed = parse_document(Submission, submission(tasks=[{"payload": stored_payload(s3_key)}]))
    check_against_settings(parsed, GridSettings())


def test_a_stored_payload_declared_larger_than_the_grid_stores_is_rejected_with_the_limit() -> None:
    limit = GridSettings().max_payload_bytes
    assert limit == 5 * 1024**3  # S3's largest single PUT
    key = "sessions/s1/payloads/x.json"
    at_limit = submission(tasks=[{"payload": stored_payload(key, limit)}])
    check_against_settings(parse_document(Submission, at_limit), GridSettings())
    over = parse_document(
        Submission, submission(tasks=[{"payload": stored_payload(key, limit + 1)}])
    )
    with pytest.raises(
        InvalidSubmissionError,
        match=rf"tasks\.0\.payload\.size: {limit + 1} bytes; the largest .* is {limit} bytes",
    ):
        check_against_settings(over, GridSettings())


def test_task_ids_are_deterministic_per_token_and_distinct_per_index() -> None:
    first = [keys.task_id_for("s", "tok", i) for i in range(1000)]
    assert first == [keys.task_id_for("s", "tok", i) for i in range(1000)]
    assert len(set(first)) == 1000
    assert keys.task_id_for("s", "other", 0) != first[0]


def test_shards_spread_a_session_evenly() -> None:
    counts = [0] * keys.SESSION_SHARDS
    for i in range(64_000):
        counts[keys.shard_of(keys.task_id_for("s", "t", i))] += 1
    assert min(counts) > 800
    assert max(counts) < 1200


def test_published_json_schemas_match_the_models() -> None:
    for name, text in schemas().items():
        published = REPO / "docs" / "schema" / name
        assert published.read_text() == text, f"regenerate with `make schemas`: {name}"


def longest_queue_url() -> str:
    return "https://sqs.us-east-1.amazonaws.com/123456789012/" + "q" * 80


def test_a_submission_too_large_for_the_workflows_state_is_refused_before_any_write() -> None:
    # GIVEN 1,000 tiny tasks (a document another SDK may send): 31 KB in, but about 400 KB of
    # task messages out of the persist step, over Step Functions' 256 KiB
    parsed = parse_document(
        Submission,
        submission(
            session_id="s" * 48,
            tasks=[{"payload": {"inline": {"x": 1}}}] * MAX_TASKS_PER_SUBMISSION,
            result_queue_url=longest_queue_url(),
        ),
    )
    # THEN building the persist step's output refuses it, naming the field and the limit
    with pytest.raises(InvalidSubmissionError, match=r"tasks: 1000 tasks make \d+ bytes.*229376"):
        dispatch_batch(parsed, GridSettings(), time.time())
    # AND a submission within the limit passes
    small = parse_document(Submission, submission(tasks=[{"payload": {"inline": 1}}] * 100))
    assert (
        state_bytes(dispatch_batch(small, GridSettings(), time.time())) < MAX_DISPATCH_BATCH_BYTES
    )


def test_a_tasks_share_of_the_workflows_state_is_bounded_by_the_published_overhead() -> None:
    # GIVEN a dispatch batch with every field at its longest, payloads and queue URLs aside
    url = longest_queue_url()
    message = TaskMessage(
        session_id="s" * 48,
        task_id="t" * 100,
        attempt=1,
        max_attempts=100,
        priority=MAX_PRIORITY_LEVELS - 1,
        timeout_s=MAX_TIMEOUT_S,
        payload=InlineData(inline=None),
        submitted_at=time.time(),
        result_queue_url=url,
    )
    tasks = 500
    batch = DispatchBatch(
        session_id="s" * 48,
        submission_token="t" * 64,
        task_ids=[message.task_id] * tasks,
        messages=[message] * tasks,
    )
    # THEN each task takes at most the published overhead besides its payload and queue URL
    own = tasks * (TASK_STATE_OVERHEAD_BYTES + len(json.dumps(None)) + len(json.dumps(url)))
    assert state_bytes(batch) <= DISPATCH_BATCH_OVERHEAD_BYTES + own
