"""The task table adapter: every DynamoDB expression of the task table, behind typed methods.

``TaskTable`` holds the task and submission records and their lifecycle transitions
(``tasks``), and, as ``TaskTable.sessions``, the session records and counters (``sessions``);
``codec`` turns records into items and expectations into condition expressions. Nothing else
in the grid builds a DynamoDB expression: the logic works through ``ports.TaskStore``.
"""

from htcgrid_core.ports import Completion, SubmissionRecord, SubmissionStage
from htcgrid_core.table.codec import Item, condition_for, decode_record, encode_record
from htcgrid_core.table.sessions import SessionRecords
from htcgrid_core.table.tasks import (
    FINISHED_STATES,
    PERSISTING_STALE_AFTER_S,
    SESSION_KEYS_PAGE,
    UNFINISHED_STATES,
    TaskTable,
)

__all__ = [
    "FINISHED_STATES",
    "PERSISTING_STALE_AFTER_S",
    "SESSION_KEYS_PAGE",
    "UNFINISHED_STATES",
    "Completion",
    "Item",
    "SessionRecords",
    "SubmissionRecord",
    "SubmissionStage",
    "TaskTable",
    "condition_for",
    "decode_record",
    "encode_record",
]
