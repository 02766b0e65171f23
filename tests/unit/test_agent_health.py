"""The agent's liveness and readiness probes: the rules, and the HTTP endpoint that serves them."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from htcgrid_agent.__main__ import parse_args
from htcgrid_agent.health import HealthServer, Probes


@dataclass
class FakeWorker:
    last_turn_at: float | None = None
    draining: bool = False
    dead: list[str] = field(default_factory=list)
    cannot_start: str | None = None

    def problems(self) -> list[str]:
        return self.dead

    def blocked(self) -> str | None:
        return self.cannot_start


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_starting_agent_is_alive_but_not_ready(clock: FakeClock) -> None:
    probes = Probes(FakeWorker(), stale_after_s=60, clock=clock)
    assert probes.alive() == (True, "starting")
    assert probes.ready() == (False, "starting")


def test_an_agent_whose_slots_cannot_start_is_not_ready_but_alive(clock: FakeClock) -> None:
    # GIVEN an agent turning its loop whose every slot's runtime fails to start
    worker = FakeWorker(last_turn_at=clock.now, cannot_start="no slot can start: Runtime.InitError")
    probes = Probes(worker, stale_after_s=60, clock=clock)
    # THEN it takes no work (readiness) but is left running (its slots retry with back-off)
    assert probes.ready() == (False, "no slot can start: Runtime.InitError")
    assert probes.alive() == (True, "fetch loop alive")


def test_a_turning_fetch_loop_is_alive_and_ready(clock: FakeClock) -> None:
    worker = FakeWorker(last_turn_at=clock.now)
    probes = Probes(worker, stale_after_s=60, clock=clock)
    clock.now += 59
    assert probes.alive()[0]
    assert probes.ready() == (True, "taking work")


def test_a_fetch_loop_that_stopped_turning_fails_liveness(clock: FakeClock) -> None:
    worker = FakeWorker(last_turn_at=clock.now)
    probes = Probes(worker, stale_after_s=60, clock=clock)
    clock.now += 61
    alive, reason = probes.alive()
    assert not alive
    assert reason == "fetch loop stalled for 61 s"


def test_an_agent_that_never_starts_fails_liveness_after_the_same_delay(clock: FakeClock) -> None:
    probes = Probes(FakeWorker(), stale_after_s=60, clock=clock)
    clock.now += 61
    assert not probes.alive()[0]


def test_a_draining_agent_is_alive_while_its_loop_is_stopped_but_takes_no_work(
    clock: FakeClock,
) -> None:
    # GIVEN an agent whose fetch loop stopped long ago because it is finishing held tasks
    worker = FakeWorker(last_turn_at=clock.now, draining=True)
    probes = Probes(worker, stale_after_s=60, clock=clock)
    clock.now += 3600
    # THEN the kubelet must not kill it mid-task, and it is out of the ready set
    assert probes.alive() == (True, "draining: finishing held tasks")
    assert probes.ready() == (False, "draining")


def test_an_agent_with_a_dead_slot_heartbeat_or_reporter_fails_liveness(clock: FakeClock) -> None:
    # GIVEN an agent whose fetch loop still turns
    worker = FakeWorker(last_turn_at=clock.now)
    probes = Probes(worker, stale_after_s=60, clock=clock)
    # WHEN a slot and its heartbeat died
    worker.dead = ["slot 1 thread died", "heartbeat thread died"]
    # THEN the kubelet restarts it, and the reason names them
    assert probes.alive() == (False, "slot 1 thread died; heartbeat thread died")


@pytest.fixture
def served() -> Iterator[tuple[FakeWorker, str]]:
    worker = FakeWorker()
    server = HealthServer(Probes(worker, stale_after_s=60), port=0, host="127.0.0.1").start()
    try:
        yield worker, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoint_answers_200_or_503_with_the_reason(served: tuple[FakeWorker, str]) -> None:
    worker, base = served
    assert get(f"{base}/readyz") == (503, "starting\n")
    worker.last_turn_at = 1e12  # in the future for the real clock: a fresh turn
    assert get(f"{base}/healthz") == (200, "fetch loop alive\n")
    assert get(f"{base}/readyz") == (200, "taking work\n")
    worker.draining = True
    assert get(f"{base}/readyz") == (503, "draining\n")
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/metrics")[0] == 404


def test_health_port_is_an_agent_option() -> None:
    assert parse_args(["--handler", "m:f", "--health-port", "8081"]).health_port == 8081
    assert parse_args(["--handler", "m:f"]).health_port is None
