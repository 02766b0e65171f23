"""Celery on SQS, the peer ``make bench-peers`` runs beside htcgrid: its app, its one task and
its worker. The bench builds the settings (``peers.celery_settings``: broker and result backend
on the local grid's emulator) and hands them to each worker as JSON in ``SETTINGS_VARIABLE``;
``python -m htcgrid_bench.peer_celery worker -c 1`` is then ``celery worker -c 1`` on that app.

Celery comes from requirements-peers.txt, not from the development environment: it is imported
where an app is made, so that the rest of the bench (and its tests) never needs it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from htcgrid_bench.handlers import timed

#: The name the bench's task is registered and sent under.
TASK_NAME = "htcgrid_peer.run"
#: The worker's settings, as the JSON of a Celery configuration mapping.
SETTINGS_VARIABLE = "HTCGRID_PEER_CELERY_SETTINGS"


def run(payload: dict[str, Any]) -> dict[str, float]:
    """The same work as htcgrid's bench handler (``handlers.timed``): sleep if asked, report
    when it ran and the CPU it used; and which process ran it (the bench waits until every
    worker has run a task)."""
    return {**timed(payload, None), "pid": os.getpid()}


def make_app(settings: Mapping[str, Any]) -> Any:
    """A Celery app with ``settings`` and the bench's task. (Celery has no type hints.)"""
    from celery import Celery

    app = Celery("htcgrid_peer", set_as_current=False)
    app.conf.update(dict(settings))
    app.task(name=TASK_NAME)(run)
    return app


def main(argv: list[str] | None = None) -> None:
    """``celery <argv>`` (e.g. ``worker -c 1``) on the app the environment's settings make."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    make_app(settings).worker_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
