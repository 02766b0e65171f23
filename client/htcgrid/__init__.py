"""htcgrid's client: connect to a grid, open a session, submit tasks, stream their results.

from htcgrid import Grid

with Grid.local() as grid:              # or Grid.connect("my-stack")
    with grid.open_session() as session:
        session.submit([{"x": 1}, {"x": 2}])
        for done in session.results():
            print(done.task_id, done.value)

Every type in the client's signatures is importable from here, and every error it raises is a
``GridError``.
"""

from htcgrid._transport import Transport
from htcgrid.connection import GridEndpoints
from htcgrid.deadletters import DeadLetterQueues
from htcgrid.errors import (
    AccessDeniedError,
    CredentialsError,
    GridClosedError,
    GridError,
    GridNotFoundError,
    InvalidRequestError,
    NotFoundError,
    PartialSubmissionError,
    QueryFailedError,
    ResultsIncompleteError,
    ResultsTimeoutError,
    ServiceError,
    SubmissionFailedError,
    ThrottledError,
    UnreachableError,
)
from htcgrid.grid import Grid, QueueDepth
from htcgrid.ledger import TaskIds
from htcgrid.session import Completed, Session
from htcgrid_core.deadletters import DeadLetter, DeadLetterQueueDepth, RedriveReport
from htcgrid_core.models import (
    CancelReport,
    DeleteReport,
    InlineData,
    ResultsPage,
    SessionsList,
    SessionStatus,
    StoredData,
    Submission,
    SubmissionReceipt,
    TaskError,
    TaskMessage,
    TaskRecord,
    TaskResult,
    TasksPage,
    TaskSpec,
    TaskState,
    TaskSummary,
)
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.sessions import DeleteProgress
from htcgrid_core.settings import GridSettings

__all__ = [
    "AccessDeniedError",
    "CancelReport",
    "Completed",
    "CredentialsError",
    "DeadLetter",
    "DeadLetterQueueDepth",
    "DeadLetterQueues",
    "DeleteProgress",
    "DeleteReport",
    "Grid",
    "GridClosedError",
    "GridEndpoints",
    "GridError",
    "GridNotFoundError",
    "GridSettings",
    "InlineData",
    "InvalidRequestError",
    "NotFoundError",
    "PartialSubmissionError",
    "PayloadStore",
    "QueryFailedError",
    "QueueDepth",
    "RedriveReport",
    "ResultsIncompleteError",
    "ResultsPage",
    "ResultsTimeoutError",
    "ServiceError",
    "Session",
    "SessionStatus",
    "SessionsList",
    "StoredData",
    "Submission",
    "SubmissionFailedError",
    "SubmissionReceipt",
    "TaskError",
    "TaskIds",
    "TaskMessage",
    "TaskRecord",
    "TaskResult",
    "TaskSpec",
    "TaskState",
    "TaskSummary",
    "TasksPage",
    "ThrottledError",
    "Transport",
    "UnreachableError",
]
