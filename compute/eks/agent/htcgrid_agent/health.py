"""Liveness and readiness over HTTP (``--health-port``), for Kubernetes probes.

``/healthz`` answers whether the agent is alive: every slot, its heartbeat and its reporter run,
and its fetch loop turned recently (a turn is at most a long poll or a second's wait for a free
slot, so a stale loop means a hung agent); or it is draining, when the loop has stopped on
purpose while held tasks finish. ``/readyz`` answers
whether it takes work: started, not draining, and at least one slot able to start its handler
or Lambda runtime. Both read the worker's state; neither calls AWS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

#: A fetch loop that has not turned for this long is hung. Far above one turn: a long poll
#: (``--long-poll``, 5 s) or the fetch back-off after AWS errors (at most 30 s).
DEFAULT_STALE_AFTER_S = 120.0


class WorkerState(Protocol):
    """What the probes read from the worker (``htcgrid_agent.worker.Worker``)."""

    @property
    def last_turn_at(self) -> float | None:
        """``time.monotonic()`` of the fetch loop's last turn; None before it first turns."""

    @property
    def draining(self) -> bool:
        """True once the worker was told to stop: it takes no more work."""

    def problems(self) -> list[str]:
        """What keeps it from working: dead slot, heartbeat or reporter threads (none: fine)."""

    def blocked(self) -> str | None:
        """Why it cannot run any task now (every slot's handler or runtime fails to start)."""


class Probes:
    """The two answers, as pure functions of the worker's state and the clock."""

    def __init__(
        self,
        worker: WorkerState,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker = worker
        self.stale_after_s = stale_after_s
        self._clock = clock
        # Before the first turn (slots still importing the handler) staleness counts from here,
        # so an agent that never gets going is restarted too.
        self._created_at = clock()

    def alive(self) -> tuple[bool, str]:
        """Whether the process should be left running, and why."""
        if self.worker.draining:
            return True, "draining: finishing held tasks"
        problems = self.worker.problems()
        if problems:
            return False, "; ".join(problems)
        last = self.worker.last_turn_at
        since = self._clock() - (self._created_at if last is None else last)
        if since > self.stale_after_s:
            return False, f"fetch loop stalled for {since:.0f} s"
        return True, "fetch loop alive" if last is not None else "starting"

    def ready(self) -> tuple[bool, str]:
        """Whether the agent takes work now."""
        if self.worker.draining:
            return False, "draining"
        if self.worker.last_turn_at is None:
            return False, "starting"
        blocked = self.worker.blocked()
        if blocked is not None:
            return False, blocked
        return True, "taking work"


class HealthServer:
    """Serves ``Probes`` on ``port`` from a daemon thread; ``stop()`` closes it."""

    def __init__(self, probes: Probes, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        # All interfaces: the kubelet probes the pod's IP. The answers carry no data.
        routes = {"/healthz": probes.alive, "/readyz": probes.ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                probe = routes.get(self.path.split("?", 1)[0])
                if probe is None:
                    status, reason = HTTPStatus.NOT_FOUND, "not found"
                else:
                    ok, reason = probe()
                    status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                body = f"{reason}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a probe every few seconds would drown the agent's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on (useful when started on port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
