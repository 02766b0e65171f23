"""Batch requests sent several at once: every batch is tried, errors surface after."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from htcgrid_core import aws


def test_every_batch_is_sent_at_most_workers_at_a_time() -> None:
    lock = threading.Lock()
    running, most, sent = 0, 0, []

    def send(batch: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)  # a round trip, so that batches overlap
        with lock:
            running -= 1
            sent.append(batch)

    aws.in_parallel(send, list(range(20)), workers=4)
    assert sorted(sent) == list(range(20))
    assert 1 < most <= 4


def test_a_failed_batch_raises_once_every_other_batch_was_tried() -> None:
    sent: list[int] = []

    def send(batch: int) -> None:
        if batch == 0:
            raise RuntimeError("batch 0 throttled past its retries")
        time.sleep(0.005)
        sent.append(batch)

    with pytest.raises(RuntimeError, match="batch 0"):
        aws.in_parallel(send, list(range(10)), workers=3)
    assert sorted(sent) == list(range(1, 10))


def test_a_single_batch_is_sent_on_the_calling_thread() -> None:
    threads: list[threading.Thread] = []
    aws.in_parallel(lambda _: threads.append(threading.current_thread()), ["only"])
    assert threads == [threading.current_thread()]


def test_the_first_batch_is_sent_on_the_calling_thread_the_others_on_a_pool() -> None:
    # A thread costs about a millisecond to start: the caller sends one batch itself.
    threads: dict[int, threading.Thread] = {}

    def send(batch: int) -> None:
        threads[batch] = threading.current_thread()
        time.sleep(0.005)  # a round trip, so that the two overlap

    aws.in_parallel(send, [0, 1])
    assert threads[0] is threading.current_thread()
    assert threads[1] is not threading.current_thread()


def test_a_batch_cannot_change_the_callers_context() -> None:
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="caller's")
    aws.in_parallel(lambda batch: request.set(f"batch {batch}"), [0, 1, 2], workers=3)
    assert request.get() == "caller's"


def test_each_batch_runs_in_a_copy_of_the_callers_context() -> None:
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")
    request.set("submission-42")
    seen: list[str] = []
    aws.in_parallel(lambda _: seen.append(request.get()), [1, 2, 3], workers=3)
    assert seen == ["submission-42"] * 3


def test_results_come_back_in_the_order_of_the_batches() -> None:
    def send(batch: int) -> int:
        time.sleep(0.001 * (10 - batch))  # later batches finish first
        return batch * batch

    assert aws.in_parallel(send, range(10), workers=4) == [b * b for b in range(10)]
