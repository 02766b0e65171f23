"""The local grid's EventBridge Scheduler: fire the schedules the emulator holds.

moto stores schedules (the template's, created through ``moto_patches``) but never runs them.
This thread, inside the emulator process, starts each enabled schedule's target every
``period_s`` seconds, whatever its rate expression says: on AWS the reaper runs every minute
(Scheduler's finest rate), locally every 10 s by default (every 2 s in the chaos run) so a dead
worker's task comes back within a test's patience. Not faster by default: on the emulator each
run's index queries walk the whole table, which a 10,000-task demo would feel. Only Step
Functions targets are fired (the only kind the template has); the start goes through the
emulator's own API, as Scheduler's would through AWS's.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

LOG = logging.getLogger(__name__)

#: Default local period between two firings of every schedule.
DEFAULT_PERIOD_S = 10.0


def fire_all(scheduler: Any, stepfunctions: Any) -> int:
    """Start the target of every enabled Step Functions schedule once. Returns how many."""
    fired = 0
    for page in scheduler.get_paginator("list_schedules").paginate(State="ENABLED"):
        for summary in page.get("Schedules", []):
            schedule = scheduler.get_schedule(
                Name=summary["Name"], GroupName=summary.get("GroupName", "default")
            )
            target = schedule["Target"]
            if ":states:" not in target["Arn"]:
                continue
            # Named, as Scheduler names its executions: moto would call every unnamed one
            # "None", and refuse the second as already existing.
            stepfunctions.start_execution(
                stateMachineArn=target["Arn"],
                name=f"{summary['Name']}-{uuid.uuid4()}"[:80],
                input=target.get("Input") or "{}",
            )
            fired += 1
    return fired


class ScheduleFirer:
    """A daemon thread firing every schedule each ``period_s`` until stopped."""

    def __init__(self, scheduler: Any, stepfunctions: Any, period_s: float) -> None:
        self._scheduler = scheduler
        self._stepfunctions = stepfunctions
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                fire_all(self._scheduler, self._stepfunctions)
            except (ClientError, BotoCoreError) as error:  # the next period tries again
                LOG.warning("firing schedules failed: %s", error)
