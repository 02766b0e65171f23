"""htcgrid beside Celery (htcgrid_bench.peers): the ratios, targets, medians, request
attribution and summary line, from made-up runs. No grid, no Celery, nothing timed."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from urllib.parse import urlsplit

import pytest
from rich.console import Console

from htcgrid_bench import peer_workers, peers, runs
from htcgrid_bench.peers import CELERY, HTCGRID, NOOP, SEQUENTIAL, SLEEP, Run, Target
from htcgrid_local.accounting import Row


def _burst(system: str, workload: str, round_index: int, tasks_per_s: float) -> Run:
    return Run(system, workload, round_index, 1000, 1000 / tasks_per_s, 1.0)


def _sequential(system: str, round_index: int, latencies_ms: list[float]) -> Run:
    samples = [ms / 1000 for ms in latencies_ms]
    return Run(system, SEQUENTIAL, round_index, len(samples), sum(samples), 0.0, samples)


#: Three rounds: htcgrid twice as fast on no-op tasks in the median round, 1.2x on 10 ms tasks;
#: latencies of 30 ms (Celery) and 60 ms (htcgrid) in the middle of the pooled samples.
RUNS = [
    _burst(CELERY, NOOP, 0, 50),
    _burst(CELERY, NOOP, 1, 60),
    _burst(CELERY, NOOP, 2, 70),
    _burst(HTCGRID, NOOP, 0, 150),
    _burst(HTCGRID, NOOP, 1, 120),
    _burst(HTCGRID, NOOP, 2, 90),
    _burst(CELERY, SLEEP, 0, 50),
    _burst(HTCGRID, SLEEP, 0, 60),
    _sequential(CELERY, 0, [10, 30, 90]),
    _sequential(CELERY, 1, [20, 30, 40]),
    _sequential(HTCGRID, 0, [50, 60, 200]),
    _sequential(HTCGRID, 1, [55, 60, 70]),
]


def test_throughput_ratios_divide_the_medians_over_rounds() -> None:
    measured = peers.ratios(RUNS)

    assert peers.median_tasks_per_s(RUNS, CELERY, NOOP) == pytest.approx(60)
    assert peers.median_tasks_per_s(RUNS, HTCGRID, NOOP) == pytest.approx(120)
    assert measured["noop_ratio"] == pytest.approx(2.0)
    assert measured["sleep_ratio"] == pytest.approx(1.2)


def test_latency_percentiles_pool_every_rounds_samples() -> None:
    assert peers.latency_ms(RUNS, CELERY, 0.5) == pytest.approx(30)
    assert peers.latency_ms(RUNS, HTCGRID, 0.5) == pytest.approx(60)
    assert peers.latency_ms(RUNS, HTCGRID, 0.9) == pytest.approx(70)
    assert peers.ratios(RUNS)["p50_ratio"] == pytest.approx(2.0)


def test_throughput_targets_are_lower_bounds_and_latency_an_upper_one() -> None:
    noop, p50 = peers.TARGETS["noop_ratio"], peers.TARGETS["p50_ratio"]

    assert [noop.met(r) for r in (1.99, 2.0, 2.5)] == [False, True, True]
    assert [p50.met(r) for r in (0.8, 1.5, 1.51)] == [True, True, False]
    assert (str(noop), str(p50)) == (">= 2x", "<= 1.5x")
    assert str(peers.TARGETS["sleep_ratio"]) == ">= 1.5x"


def test_summary_line_says_no_unless_every_target_is_met() -> None:
    met = {"noop_ratio": 2.0, "sleep_ratio": 1.5, "p50_ratio": 1.5}
    assert peers.summary_line(met) == (
        "peers: noop_ratio=2.00 sleep_ratio=1.50 p50_ratio=1.50 targets_met=yes"
    )
    assert peers.summary_line({**met, "p50_ratio": 2.91}).endswith("targets_met=no")
    assert peers.summary_line({**met, "sleep_ratio": 1.32}).endswith("targets_met=no")


def test_rounds_alternate_which_system_goes_first() -> None:
    assert [peers.round_order(i)[0] for i in range(4)] == [CELERY, HTCGRID, CELERY, HTCGRID]
    assert all(sorted(peers.round_order(i)) == [CELERY, HTCGRID] for i in range(4))


def test_each_system_is_charged_only_its_own_callers_requests() -> None:
    """GIVEN the accounting's rows of a run, with the other system's idle polls in them."""
    rows = [
        Row("celery-client", "sqs", "SendMessage", "htcgrid-peer-celery", count=100),
        Row("external", "sqs", "ReceiveMessage", "htcgrid-peer-celery", count=50),
        Row("celery-worker", "sqs", "DeleteMessage", "htcgrid-peer-celery", count=100),
        Row("celery-worker", "dynamodb", "PutItem", "htcgrid-peer-results", count=100, wru=100),
        Row("celery-client", "dynamodb", "GetItem", "htcgrid-peer-results", count=150),
        Row(runs.AGENT_APP_ID, "sqs", "ReceiveMessage", "htcgrid-bench-p1", count=7),
        Row("workflow:htcgrid-bench-SubmitWorkflow", "lambda", "Invoke", "persist", count=3),
    ]

    celery = peers.requests_per_task(rows, CELERY, 100)
    htcgrid = peers.requests_per_task(rows, HTCGRID, 100)

    assert celery == pytest.approx(
        {
            "sqs_requests": 2.5,
            "dynamodb_requests": 2.5,
            "dynamodb_wru": 1.0,
            "other_requests": 0.0,
            "all_requests": 5.0,
        }
    )
    assert htcgrid == pytest.approx(
        {
            "sqs_requests": 0.07,
            "dynamodb_requests": 0.0,
            "dynamodb_wru": 0.0,
            "other_requests": 0.03,
            "all_requests": 0.10,
        }
    )


def test_worker_cpu_per_task_leaves_out_the_handlers_own() -> None:
    burst = runs.Burst(
        tasks=100,
        submit_s=1.0,
        total_s=2.0,
        handler_cpu_s=0.05,
        cpu=runs.CpuSample(agents_s=0.35, emulator_s=0.8, client_s=0.1, lambdas_s=0.2),
    )

    assert peers.cpu_ms_per_task(burst) == pytest.approx(
        {"workers": 3.0, "emulator": 10.0, "client": 1.0}
    )


def test_celery_settings_point_broker_and_results_at_the_emulator() -> None:
    tuning = peer_workers.CeleryTuning(polling_interval_s=0.02, prefetch_multiplier=2)

    settings = peer_workers.celery_settings("http://127.0.0.1:40123", tuning, "eu-west-1")

    broker = urlsplit(settings["broker_url"])
    backend = urlsplit(settings["result_backend"])
    assert (broker.scheme, broker.hostname, broker.port) == ("sqs", "127.0.0.1", 40123)
    assert (backend.scheme, backend.hostname, backend.port) == ("dynamodb", "127.0.0.1", 40123)
    assert backend.path == f"/{peer_workers.CELERY_RESULTS_TABLE}"
    options = settings["broker_transport_options"]
    assert options["is_secure"] is False  # kombu then builds an http:// endpoint
    assert options["region"] == "eu-west-1"
    assert options["polling_interval"] == 0.02
    assert options["queue_name_prefix"] == peer_workers.CELERY_QUEUE_PREFIX
    assert settings["worker_prefetch_multiplier"] == 2


def test_saved_results_report_the_same_summary_line() -> None:
    """GIVEN results as ``--json`` writes them, WHEN ``--from-json`` reads them back."""
    results = json.loads(
        json.dumps(
            {
                "config": {
                    "agents": 2,
                    "prefetch": 10,
                    "celery_workers": 2,
                    "celery_tuning": asdict(peer_workers.CeleryTuning()),
                    "repeats": 3,
                    "aws_latency_ms": 5,
                },
                "runs": [asdict(run) for run in RUNS],
            }
        )
    )
    printed = io.StringIO()

    line = peers.report(results, Console(file=printed, width=200))

    assert line == peers.summary_line(peers.ratios(RUNS))
    assert "targets_met=no" in line
    assert "only htcgrid's requests wait" in printed.getvalue()


def test_a_target_without_the_other_systems_number_is_not_met() -> None:
    assert not Target("x", 2.0, at_least=True).met(float("nan"))
