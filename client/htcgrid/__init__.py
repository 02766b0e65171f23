"""htcgrid's client: connect to a grid, open a session, submit tasks, stream their results.

from htcgrid import Grid

grid = Grid.local()                     # or Grid.connect("my-stack")
with grid.open_session() as session:
    session.submit([{"x": 1}, {"x": 2}])
    for done in session.results():
        print(done.task_id, done.value)
"""

from htcgrid.errors import (
    GridError,
    GridNotFoundError,
    PartialSubmissionError,
    QueryFailedError,
    ResultsIncompleteError,
    ResultsTimeoutError,
    SubmissionFailedError,
)
from htcgrid.grid import Grid
from htcgrid.session import Completed, Session

__all__ = [
    "Completed",
    "Grid",
    "GridError",
    "GridNotFoundError",
    "PartialSubmissionError",
    "QueryFailedError",
    "ResultsIncompleteError",
    "ResultsTimeoutError",
    "Session",
    "SubmissionFailedError",
]
