"""AWS replies that throttled a call, counted as they arrive.

botocore's standard retry mode retries a throttled request with backoff, so a throttle never
reaches the grid's code: it shows only as latency. Every client the grid makes
(``aws.make_client``) reports each throttled reply here, and whoever counts them (the Lambdas'
EMF metrics, the agent's Prometheus counter) listens; nothing is written to AWS per reply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

#: Called with the service's name (``dynamodb``, ``sqs``...) for each throttled reply.
Listener = Callable[[str], None]

_THROTTLING = ThrottledRetryableChecker()
# A process-wide registry, as logging's handlers are: the clients are shared and cached
# (``aws.client``), so whoever counts cannot hand them a callback of its own.
_listeners: list[Listener] = []
_lock = threading.Lock()


def listen(listener: Listener) -> None:
    """Call ``listener`` for every throttled reply from now on (once, however often added)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def watch(client: Any) -> None:
    """Report this client's throttled replies to the listeners. Every reply (each retry's
    too) goes through botocore's ``response-received`` event, injected faults included."""
    service = client.meta.service_model.service_name

    def received(parsed_response: dict[str, Any] | None = None, **_: Any) -> None:
        if parsed_response is None:  # no reply: a connection error or a timeout
            return
        context = RetryContext(attempt_number=1, parsed_response=parsed_response)
        if _THROTTLING.is_retryable(context):
            with _lock:
                listeners = list(_listeners)
            for listener in listeners:
                listener(service)

    client.meta.events.register("response-received", received)
