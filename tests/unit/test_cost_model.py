"""The cost and capacity model (htcgrid_bench.cost_model): pure arithmetic over measured counts."""

from __future__ import annotations

import math

import pytest

from htcgrid_bench.cost_model import (
    ComputeAssumption,
    Quotas,
    TaskRequests,
    Workload,
    billed_sfn_gb_s,
    ceiling,
    cost_per_million,
    htc_grid_task_requests,
    limits,
    load_prices,
    requirements,
    task_requests,
)

#: What the request accounting measured at 2,000 tasks, prefetch 10 (rounded).
MEASURED = TaskRequests(
    dynamodb_wru=2.0,
    dynamodb_rru=0.01,
    sqs_requests=0.44,
    lambda_invocations=0.007,
    sfn_executions=0.0035,
)


def test_shipped_prices_are_dated_and_sourced() -> None:
    prices = load_prices()
    assert prices.dynamodb_wru == pytest.approx(0.625e-6)
    assert prices.sqs_request == pytest.approx(0.40e-6)
    assert prices.s3_put == pytest.approx(5e-6)
    assert set(prices.sources) == {"dynamodb", "sqs", "s3", "lambda", "stepfunctions_express"}
    for url, checked in prices.sources.values():
        assert url.startswith("https://aws.amazon.com/")
        assert len(checked) == 10  # an ISO date


def test_requests_only_cost_is_the_sum_of_counts_times_prices() -> None:
    cost = cost_per_million(MEASURED, load_prices())
    # 2 x $0.625 + 0.01 x $0.125 + 0.44 x $0.40 + 0.007 x $0.20 + 0.0035 x $1.00
    assert cost.by_service["dynamodb"] == pytest.approx(1.25125)
    assert cost.by_service["sqs"] == pytest.approx(0.176)
    assert cost.by_service["s3"] == 0
    assert cost.total == pytest.approx(1.25125 + 0.176 + 0.0014 + 0.0035)


def test_compute_assumption_adds_lambda_and_express_duration() -> None:
    prices = load_prices()
    compute = ComputeAssumption(lambda_memory_mb=512, lambda_duration_s=0.1, sfn_duration_s=0.25)
    plain = cost_per_million(MEASURED, prices)
    with_compute = cost_per_million(MEASURED, prices, compute)
    # 0.007 invocations x 0.05 GB-s x $0.0000133334, per million tasks
    lambda_extra = 1e6 * 0.007 * 0.05 * 0.0000133334
    assert with_compute.by_service["lambda"] - plain.by_service["lambda"] == pytest.approx(
        lambda_extra
    )
    # 0.25 s bills as 0.3 s at 64 MB: 0.01875 GB-s per execution
    sfn_extra = 1e6 * 0.0035 * 0.01875 * 0.00001667
    assert with_compute.by_service["stepfunctions"] - plain.by_service[
        "stepfunctions"
    ] == pytest.approx(sfn_extra)


def test_express_duration_rounds_up_to_100_ms_and_64_mb() -> None:
    prices = load_prices()
    assert billed_sfn_gb_s(0.1, 64, prices) == pytest.approx(0.1 * 64 / 1024)
    assert billed_sfn_gb_s(0.101, 64, prices) == pytest.approx(0.2 * 64 / 1024)
    assert billed_sfn_gb_s(0.05, 65, prices) == pytest.approx(0.1 * 128 / 1024)


def test_default_quotas_bind_first_at_the_new_tables_warm_throughput() -> None:
    """GIVEN 2 WRU per task on a freshly created on-demand table, THEN its 4,000 WRU/s warm
    throughput binds at 2,000 tasks/s, long before the table's 40,000 WRU/s quota."""
    first = ceiling(MEASURED, Workload(), Quotas())
    assert first.name == "DynamoDB new table warm throughput"
    assert first.tasks_per_s == pytest.approx(2_000)


def test_a_prewarmed_table_binds_at_the_table_quota() -> None:
    found = limits(MEASURED, Workload(), Quotas(), prewarmed=True)
    assert found[0].name == "DynamoDB table write units"
    assert found[0].tasks_per_s == pytest.approx(20_000)
    assert [limit.tasks_per_s for limit in found] == sorted(limit.tasks_per_s for limit in found)
    by_name = {limit.name: limit.tasks_per_s for limit in found}
    assert by_name["DynamoDB partition keys of a session"] == pytest.approx(32_000)
    assert by_name["SQS in-flight messages"] == pytest.approx(120_000 / 0.51)


def test_long_tasks_hit_the_in_flight_quota() -> None:
    """A minute per task keeps 120,000 messages in flight at under 2,000 tasks/s."""
    first = ceiling(MEASURED, Workload(task_duration_s=60, held_s=0), Quotas(), prewarmed=True)
    assert first.name == "SQS in-flight messages"
    assert first.tasks_per_s == pytest.approx(2_000)


def test_100k_tasks_per_second_needs_shards_queues_and_a_raised_table_quota() -> None:
    needed = {
        r.name: r
        for r in requirements(100_000, MEASURED, Workload(task_duration_s=1.0, held_s=0.5))
    }
    assert needed["table write units/s"].needed == pytest.approx(200_000)
    assert not needed["table write units/s"].within_default
    assert needed["partition keys per session"].needed == 200
    assert needed["partition keys per session"].change == "SESSION_SHARDS = 256"
    assert needed["in-flight messages"].needed == pytest.approx(150_000)
    assert needed["in-flight messages"].change == "2 task queues per priority"
    assert needed["Express starts/s"].within_default  # 350 starts/s
    assert needed["Lambda concurrency"].within_default


def test_summary_of_the_accounting_maps_onto_task_requests() -> None:
    summary = {
        "dynamodb_wru": 2.01,
        "dynamodb_rru": 0.014,
        "sqs_requests": 0.4435,
        "s3_requests": 0.0,
        "lambda_invocations": 0.007,
        "sfn_executions": 0.0035,
        "sfn_transitions": 0.007,
    }
    requests = task_requests(summary)
    assert requests.sqs_requests == 0.4435
    assert requests.tasks_per_execution == pytest.approx(1 / 0.0035)


def test_htc_grid_costs_more_per_task_mostly_in_s3() -> None:
    prices = load_prices()
    counted = htc_grid_task_requests(tasks_per_submission=100, item_bytes=700)
    reference = cost_per_million(counted, prices)
    ours = cost_per_million(MEASURED, prices)
    # Submit, claim, finish: one unit each for a row under 1 KB.
    assert counted.dynamodb_wru == 3
    # Ten polls, each reading half the session at 700 bytes a row, eventually consistent.
    assert counted.dynamodb_rru == pytest.approx(10 * 0.5 * 700 / 4096 / 2)
    assert reference.by_service["sqs"] == pytest.approx(3.1 * 0.40)
    assert reference.by_service["s3"] == pytest.approx(2.01 * 5 + 2.01 * 0.4)
    assert reference.total > 5 * ours.total
    assert math.isinf(htc_grid_task_requests().tasks_per_execution)
