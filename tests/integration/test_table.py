"""The task table adapter on moto, held to the task store's contract: the tests of
``tests/unit/core/test_task_store.py`` (which run against the in-memory fake there) run here
against DynamoDB, so the fake and the table make the same decisions."""

from __future__ import annotations

import pytest

from tests.unit.core.test_task_store import (  # noqa: F401 - collected here, against moto
    test_a_concurrent_attempt_at_the_same_submission_is_told_to_retry_later,
    test_a_lone_task_being_persisted_by_another_attempt_is_told_to_retry_later,
    test_a_lone_task_is_persisted_in_one_write_once,
    test_a_long_error_history_stays_within_the_item_limit_and_counts_every_attempt,
    test_an_attempt_that_died_while_persisting_is_taken_over,
    test_cancelled_task_never_records_a_late_success,
    test_counts_and_pages_cover_every_shard,
    test_failed_attempts_retry_within_budget_then_fail_keeping_every_error,
    test_late_worker_whose_lease_was_taken_over_cannot_record,
    test_non_retryable_error_fails_the_task_at_once,
    test_only_dead_lettered_failures_can_be_redriven,
    test_only_leased_tasks_are_in_the_leases_index_and_only_expired_ones_are_found,
    test_persisted_tasks_are_pending_at_attempt_one,
    test_racing_claims_have_exactly_one_winner,
    test_racing_completions_record_exactly_one_result,
    test_reaper_loses_to_a_heartbeat_that_renewed_the_lease,
    test_resubmitting_a_token_after_progress_rewrites_nothing,
    test_unleased_completion_cannot_finish_a_leased_task,
)

pytestmark = pytest.mark.shared_stack
