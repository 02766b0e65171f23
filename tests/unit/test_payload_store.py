"""The payload store's size limit: a payload or result above the grid's largest object is
refused naming its size and the limit, before any upload (moto in-process, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import StoredData
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.settings import GridSettings

BUCKET = "htcgrid-data"
KEY = "sessions/s1/payloads/p.json"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def objects(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_the_grids_largest_object_is_s3s_largest_single_put(
    offline_endpoints: GridEndpoints,
) -> None:
    assert GridSettings().max_payload_bytes == 5 * 1024**3
    assert Grid(offline_endpoints).payloads.max_bytes == GridSettings().max_payload_bytes


def test_a_payload_above_the_limit_is_refused_before_any_upload(s3: Any) -> None:
    store = PayloadStore(s3, BUCKET, inline_threshold_bytes=16, max_bytes=1000)
    with pytest.raises(
        InvalidSubmissionError, match=r"^payload is 1008 bytes of JSON; the limit is 1000 bytes"
    ):
        store.encode({"x": "y" * 1000}, KEY)
    assert objects(s3) == []
    # AND one at the limit is stored
    assert isinstance(store.encode("y" * 998, KEY), StoredData)
    assert objects(s3) == [KEY]


def test_a_result_above_the_limit_is_refused_before_any_upload(s3: Any) -> None:
    store = PayloadStore(s3, BUCKET, inline_threshold_bytes=16, max_bytes=1000)
    with pytest.raises(InvalidSubmissionError, match=r"^result is 1001 bytes of JSON; the limit"):
        store.encode_json(b'"' + b"y" * 999 + b'"', KEY, what="result")
    assert objects(s3) == []
