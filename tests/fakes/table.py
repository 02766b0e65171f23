"""An in-memory ``TaskStore``: the task table's records and their conditional transitions.

A fake of our own interface (``htcgrid_core.ports``), never of DynamoDB's API: each transition
checks the same ``lifecycle`` expectation the adapter turns into a condition expression
(``Expectation.admits``), under one lock, so racing writers see what they would on the table.
Pages resume from keys of the form the adapter's pages return (``paging`` checks them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from htcgrid_core import keys
from htcgrid_core.errors import RetryableError, TransitionRejected
from htcgrid_core.lifecycle import (
    Expectation,
    expect_cancellable,
    expect_claimable,
    expect_failed_by,
    expect_holder,
    expect_redrivable,
)
from htcgrid_core.models import (
    AttemptFailure,
    Data,
    FailureCause,
    SessionFlags,
    TaskError,
    TaskRecord,
    TaskState,
    TaskSummary,
    compact_history,
)
from htcgrid_core.ports import Completion, CounterItem, Key, SubmissionRecord, SubmissionStage
from htcgrid_core.table import FINISHED_STATES, PERSISTING_STALE_AFTER_S, UNFINISHED_STATES

#: Keys per page when a session's records are listed for deletion (as the adapter's).
SESSION_KEYS_PAGE = 250
#: What every transition that ends or hands back a lease sets.
_NO_LEASE: Mapping[str, Any] = {"lease_token": None, "lease_expires_at": None}


@dataclass
class _Submission:
    stage: SubmissionStage | None
    task_count: int = 0
    started_at: float = 0.0
    content_sha256: str | None = None
    dispatch_deadline: float | None = None
    failed_error: str | None = None
    expires_at: int | None = None


class FakeSessionRecords:
    """Session records and counters, in memory."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        #: Each session record's attributes, by session (flags, counts, registry, tombstone).
        self.records: dict[str, dict[str, Any]] = {}
        self.counters: dict[tuple[str, int], dict[TaskState, int]] = {}

    def count_submitted(
        self, session_id: str, task_count: int, now: float, expires_at: int | None
    ) -> None:
        with self._lock:
            record = self.records.setdefault(session_id, {})
            record["submitted"] = record.get("submitted", 0) + task_count
            record.setdefault("created_at", now)
            record.setdefault("registry_shard", keys.registry_shard(session_id))
            record["last_submitted_at"] = now
            if expires_at is not None:
                record["expires_at"] = expires_at

    def newest(
        self, shard: int, limit: int, before: float | None
    ) -> tuple[list[tuple[float, str]], bool]:
        with self._lock:
            found = sorted(
                (
                    (record["created_at"], session_id)
                    for session_id, record in self.records.items()
                    if record.get("registry_shard") == keys.registry_partition(shard)
                    and (before is None or record["created_at"] < before)
                ),
                reverse=True,
            )
        return found[:limit], len(found) > limit

    def bury(self, session_id: str, now: float, expires_at: int) -> None:
        with self._lock:
            record = self.records.setdefault(session_id, {})
            for name in ("submitted", "created_at", "registry_shard", "last_submitted_at"):
                record.pop(name, None)
            record.update(deleted_at=now, expires_at=expires_at)

    def add_to_counter(
        self, session_id: str, shard: int, deltas: Mapping[TaskState, int], expires_at: int | None
    ) -> None:
        with self._lock:
            counter = self.counters.setdefault((session_id, shard), {})
            for state, count in deltas.items():
                counter[state] = counter.get(state, 0) + count

    def read_counters(self, session_ids: Iterable[str]) -> list[CounterItem]:
        ids = set(session_ids)
        with self._lock:
            found = [
                CounterItem(session_id=session_id, finished=dict(counts))
                for (session_id, _), counts in self.counters.items()
                if session_id in ids
            ]
            found.extend(
                CounterItem(
                    session_id=session_id,
                    submitted=record.get("submitted"),
                    created_at=record.get("created_at"),
                )
                for session_id, record in self.records.items()
                if session_id in ids
            )
        return found


class FakeTaskTable:
    """Task and submission records, in memory. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.tasks: dict[tuple[str, str], TaskRecord] = {}
        self.dead_lettered: set[tuple[str, str]] = set()
        self.submission_records: dict[tuple[str, str], _Submission] = {}
        self._sessions = FakeSessionRecords(self._lock)

    @property
    def sessions(self) -> FakeSessionRecords:
        return self._sessions

    # -- submissions ---------------------------------------------------------------------------

    def begin_submission(
        self, session_id: str, submission_token: str, task_count: int, now: float
    ) -> SubmissionStage | None:
        with self._lock:
            old = self.submission_records.get((session_id, submission_token))
            stale = (
                old is not None
                and old.stage is SubmissionStage.PERSISTING
                and old.started_at < now - PERSISTING_STALE_AFTER_S
            )
            if old is None or old.stage is None or stale:
                self.submission_records[(session_id, submission_token)] = _Submission(
                    SubmissionStage.PERSISTING, task_count, now
                )
                return None
            if old.stage is SubmissionStage.PERSISTING:
                raise RetryableError(
                    f"submission {submission_token} is being persisted by another attempt"
                )
            return old.stage

    def persist_at_once(
        self,
        session_id: str,
        submission_token: str,
        records: Sequence[TaskRecord],
        now: float,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str,
    ) -> SubmissionStage | None:
        with self._lock:  # re-entrant: one atomic step, as the adapter's transaction
            stage = self.begin_submission(session_id, submission_token, len(records), now)
            if stage is not None:
                return stage
            self.put_new_tasks(records)
            self.mark_persisted(
                session_id, submission_token, dispatch_deadline, expires_at, content_sha256
            )
            return None

    def mark_persisted(
        self,
        session_id: str,
        submission_token: str,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str | None,
    ) -> bool:
        with self._lock:
            record = self.submission_records.get((session_id, submission_token))
            if record is None or record.stage is not SubmissionStage.PERSISTING:
                return False
            record.stage = SubmissionStage.PERSISTED
            record.dispatch_deadline = dispatch_deadline
            record.failed_error = None
            if expires_at is not None:
                record.expires_at = expires_at
            if content_sha256 is not None:
                record.content_sha256 = content_sha256
            return True

    def advance_submission(
        self, session_id: str, submission_token: str, stage: SubmissionStage
    ) -> None:
        with self._lock:
            # The adapter's write expects the record to exist: a KeyError here is its refusal.
            record = self.submission_records[(session_id, submission_token)]
            record.stage = stage
            record.failed_error = None
            record.dispatch_deadline = None

    def record_rejection(
        self,
        session_id: str,
        submission_token: str,
        error: Exception,
        now: float,
        expires_at: int | None,
    ) -> None:
        with self._lock:
            record = self.submission_records.setdefault(
                (session_id, submission_token), _Submission(stage=None)
            )
            record.failed_error = type(error).__name__
            if expires_at is not None:
                record.expires_at = expires_at

    def persisted_content(self, session_id: str, submission_token: str) -> str | None:
        with self._lock:
            record = self.submission_records.get((session_id, submission_token))
            return record.content_sha256 if record else None

    def submissions(self, submissions: Sequence[tuple[str, str]]) -> list[SubmissionRecord]:
        with self._lock:
            return [
                SubmissionRecord(
                    session_id=session_id,
                    submission_token=token,
                    stage=record.stage,
                    task_count=record.task_count,
                    failed_error=record.failed_error,
                    expires_at=record.expires_at,
                )
                for session_id, token in dict.fromkeys(submissions)
                if (record := self.submission_records.get((session_id, token)))
            ]

    def stranded_submissions(
        self, shard: int, now: float, limit: int
    ) -> tuple[list[tuple[str, str]], bool]:
        with self._lock:
            found = sorted(
                (record.dispatch_deadline, session_id, token)
                for (session_id, token), record in self.submission_records.items()
                if record.dispatch_deadline is not None
                and record.dispatch_deadline < now
                and keys.dispatch_shard(token) == keys.dispatch_partition(shard)
            )
        return [(session_id, token) for _, session_id, token in found[:limit]], len(found) > limit

    def submission_keys(self, session_id: str) -> list[Key]:
        with self._lock:
            return [
                keys.submission_key(sid, token)
                for sid, token in self.submission_records
                if sid == session_id
            ]

    def put_new_tasks(self, records: Sequence[TaskRecord]) -> None:
        with self._lock:
            for record in records:
                self.tasks[(record.session_id, record.task_id)] = record

    # -- lifecycle transitions -----------------------------------------------------------------

    def _transition(
        self,
        session_id: str,
        task_id: str,
        name: str,
        expectation: Expectation,
        change: Callable[[TaskRecord], dict[str, Any]],
    ) -> TaskRecord:
        with self._lock:
            current = self.tasks.get((session_id, task_id))
            dead_lettered = (session_id, task_id) in self.dead_lettered
            if current is None or not expectation.admits(current, dead_lettered=dead_lettered):
                raise TransitionRejected(task_id, name, current)
            new = current.model_copy(update=change(current))
            self.tasks[(session_id, task_id)] = new
            return new

    def claim(
        self,
        session_id: str,
        task_id: str,
        attempt: int,
        lease_token: str,
        lease_expires_at: float,
        now: float,
    ) -> None:
        self._transition(
            session_id,
            task_id,
            "claim",
            expect_claimable(attempt),
            lambda _: {
                "state": TaskState.RUNNING,
                "lease_token": lease_token,
                "lease_expires_at": lease_expires_at,
                "started_at": now,
            },
        )

    def release(self, completion: Completion) -> None:
        self._transition(
            completion.session_id,
            completion.task_id,
            "release",
            expect_holder(completion.attempt, completion.lease_token),
            lambda _: {"state": TaskState.PENDING, **_NO_LEASE},
        )

    def extend_lease(self, completion: Completion, lease_expires_at: float) -> None:
        self._transition(
            completion.session_id,
            completion.task_id,
            "extend lease",
            expect_holder(completion.attempt, completion.lease_token),
            lambda _: {"lease_expires_at": lease_expires_at},
        )

    def record_success(self, completion: Completion, result: Data, now: float) -> None:
        self._transition(
            completion.session_id,
            completion.task_id,
            "record success",
            expect_holder(completion.attempt, completion.lease_token),
            lambda _: {
                "state": TaskState.SUCCEEDED,
                "result": result,
                "finished_at": now,
                **_NO_LEASE,
            },
        )

    def record_failure(self, failure: AttemptFailure, target: TaskState, now: float) -> TaskRecord:
        def change(record: TaskRecord) -> dict[str, Any]:
            update: dict[str, Any] = {
                "state": target,
                "errors": compact_history([*record.errors, failure.error]),
                **_NO_LEASE,
            }
            if target is TaskState.PENDING:
                update["attempt"] = record.attempt + 1
            else:
                update["finished_at"] = now
            return update

        with self._lock:
            record = self._transition(
                failure.session_id,
                failure.task_id,
                "record failure",
                expect_failed_by(failure.cause, failure.attempt, failure.lease_token, now),
                change,
            )
            if failure.cause is FailureCause.DEAD_LETTERED:
                self.dead_lettered.add((failure.session_id, failure.task_id))
            return record

    def redrive(self, session_id: str, task_id: str, attempt: int, max_attempts: int) -> TaskRecord:
        with self._lock:
            record = self._transition(
                session_id,
                task_id,
                "redrive",
                expect_redrivable(attempt),
                lambda current: {
                    "state": TaskState.PENDING,
                    "attempt": current.attempt + 1,
                    "max_attempts": max(max_attempts, attempt + 1),
                    "finished_at": None,
                },
            )
            self.dead_lettered.discard((session_id, task_id))
            return record

    def cancel(self, session_id: str, task_id: str, now: float) -> None:
        self._transition(
            session_id,
            task_id,
            "cancel",
            expect_cancellable(),
            lambda _: {"state": TaskState.CANCELLED, "finished_at": now, **_NO_LEASE},
        )

    def expired_leases(
        self, shard: int, now: float, start_key: Key | None, limit: int
    ) -> tuple[list[AttemptFailure], Key | None]:
        with self._lock:
            leased = sorted(
                (record.lease_expires_at, record.session_id, record.task_id, record)
                for record in self.tasks.values()
                if record.state is TaskState.RUNNING
                and record.lease_expires_at is not None
                and record.lease_expires_at < now
                and keys.lease_shard(record.task_id) == keys.lease_partition(shard)
            )
        after = tuple(start_key["after"]) if start_key else None
        if after is not None:
            leased = [entry for entry in leased if entry[:3] > after]
        page = leased[:limit]
        failures = [
            AttemptFailure(
                session_id=record.session_id,
                task_id=record.task_id,
                attempt=record.attempt,
                max_attempts=record.max_attempts,
                lease_token=record.lease_token,
                cause=FailureCause.LEASE_EXPIRED,
                error=TaskError(
                    type="LeaseExpired",
                    message="the worker running this attempt stopped renewing its lease",
                    attempt=record.attempt,
                    at=now,
                ),
            )
            for *_, record in page
        ]
        more = len(leased) > limit
        return failures, {"after": list(page[-1][:3])} if more else None

    def flag_session(self, session_id: str, now: float, *, whole_session: bool) -> None:
        with self._lock:
            record = self._sessions.records.setdefault(session_id, {})
            record["task_cancels"] = record.get("task_cancels", 0) + 1
            record["flagged_at"] = now
            if whole_session:
                record.setdefault("cancelled_at", now)

    def session_flags(self, session_id: str) -> SessionFlags:
        with self._lock:
            record = self._sessions.records.get(session_id, {})
            return SessionFlags(
                cancelled="cancelled_at" in record, has_cancelled_tasks="task_cancels" in record
            )

    # -- reads -----------------------------------------------------------------------------------

    def get_tasks(self, tasks: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TaskRecord]:
        with self._lock:
            return {pair: self.tasks[pair] for pair in tasks if pair in self.tasks}

    def get_records(self, session_id: str, task_ids: Iterable[str]) -> dict[str, TaskRecord]:
        with self._lock:
            return {
                task_id: self.tasks[(session_id, task_id)]
                for task_id in task_ids
                if (session_id, task_id) in self.tasks
            }

    def count_states(self, session_id: str) -> dict[TaskState, int]:
        counts = dict.fromkeys(TaskState, 0)
        with self._lock:
            for (sid, _), record in self.tasks.items():
                if sid == session_id:
                    counts[record.state] += 1
        return counts

    def _page(
        self,
        session_id: str,
        shard: int,
        start_key: Key | None,
        limit: int,
        states: Sequence[TaskState],
    ) -> tuple[list[TaskRecord], Key | None]:
        """A query of one shard in sort-key order: ``limit`` records read, those in ``states``
        kept, and the key of the last one read if more are left (as DynamoDB's Limit)."""
        with self._lock:
            shard_records = sorted(
                (record for (sid, _), record in self.tasks.items() if sid == session_id),
                key=lambda record: record.task_id,
            )
        shard_records = [r for r in shard_records if keys.shard_of(r.task_id) == shard]
        if start_key is not None:
            shard_records = [r for r in shard_records if r.task_id > start_key["sk"]["S"]]
        read = shard_records[:limit]
        kept = [r for r in read if r.state in states]
        if len(shard_records) <= limit:
            return kept, None
        return kept, {
            "pk": {"S": keys.shard_partition(session_id, shard)},
            "sk": {"S": read[-1].task_id},
        }

    def page_unfinished(
        self, session_id: str, shard: int, start_key: Key | None, limit: int
    ) -> tuple[list[str], Key | None]:
        page, key = self._page(session_id, shard, start_key, limit, UNFINISHED_STATES)
        return [record.task_id for record in page], key

    def page_finished(
        self, session_id: str, shard: int, start_key: Key | None, limit: int
    ) -> tuple[list[TaskRecord], Key | None]:
        return self._page(session_id, shard, start_key, limit, FINISHED_STATES)

    def page_tasks(
        self,
        session_id: str,
        shard: int,
        start_key: Key | None,
        limit: int,
        states: Sequence[TaskState] | None = None,
    ) -> tuple[list[TaskSummary], Key | None]:
        page, key = self._page(session_id, shard, start_key, limit, states or list(TaskState))
        return [
            TaskSummary.model_validate(record.model_dump(include=set(TaskSummary.model_fields)))
            for record in page
        ], key

    # -- deleting a session --------------------------------------------------------------------

    def session_keys(
        self, session_id: str, shard: int, start_key: Key | None
    ) -> tuple[list[Key], Key | None]:
        page, key = self._page(session_id, shard, start_key, SESSION_KEYS_PAGE, list(TaskState))
        return [keys.task_key(session_id, record.task_id) for record in page], key

    def delete_keys(self, item_keys: Sequence[Key]) -> None:
        with self._lock:
            for key in item_keys:
                self._delete(key["pk"]["S"], key["sk"]["S"])

    def _delete(self, pk: str, sk: str) -> None:
        if pk.startswith("counters#"):
            session_id, shard = pk.removeprefix("counters#").rsplit("#", 1)
            self._sessions.counters.pop((session_id, int(shard)), None)
        elif sk.startswith("submission#"):
            session_id = pk.removeprefix("session#")
            self.submission_records.pop((session_id, sk.removeprefix("submission#")), None)
        elif sk == "session":
            self._sessions.records.pop(pk.removeprefix("session#"), None)
        else:
            session_id = pk.rsplit("#", 1)[0]
            self.tasks.pop((session_id, sk), None)
            self.dead_lettered.discard((session_id, sk))
