"""How an exception the agent meets while processing a task becomes that attempt's error.

The handler's own exceptions come back from its slot as outcomes (``slots``). Anything else that
goes wrong with a task in the agent (a stored payload that is not JSON, a result no document
can carry, a bug) is still the attempt's failure, recorded with its cause, so no task can stop
a slot. Pure code: no AWS.
"""

from __future__ import annotations

from htcgrid_agent.slots import Outcome


def is_permanent(error: BaseException) -> bool:
    """Whether retrying the task cannot help: a value or type error comes from the task's data
    (a payload that is not JSON, text no document can hold), which a retry brings back as it
    was. Anything else (an OS error, a handler that would not restart) may pass."""
    return isinstance(error, ValueError | TypeError)


def unexpected_outcome(error: Exception) -> Outcome:
    """The failed outcome of an attempt the agent could not process because of ``error``."""
    return Outcome(
        error_type=type(error).__name__,
        error_message=f"the agent could not process the task: {error}",
        retryable=not is_permanent(error),
    )
