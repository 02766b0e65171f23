"""The documents: limits, clear errors naming the field, and published schemas kept current."""

from pathlib import Path

import pytest

from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import MAX_TASKS_PER_SUBMISSION, Submission
from htcgrid_core.schema import schemas
from htcgrid_core.settings import GridSettings
from htcgrid_core.submissions import check_against_settings, parse_document

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


def test_stored_payload_outside_the_session_prefix_is_rejected() -> None:
    stored = {"s3_key": "sessions/other/payloads/x.json", "size": 1, "sha256": "0" * 64}
    parsed = parse_document(Submission, submission(tasks=[{"payload": stored}]))
    with pytest.raises(InvalidSubmissionError, match=r"s3_key: must lie under .*sessions/s1/"):
        check_against_settings(parsed, GridSettings())


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
