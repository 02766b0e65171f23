"""What the template's checkov skips and their replacements claim, where a claim is behaviour:
each skip's reason (Metadata.checkov in template.yaml) must be true, so it is tested here."""

from __future__ import annotations

from typing import Any

import pytest

from htcgrid_core import aws
from htcgrid_core.errors import PayloadIntegrityError
from htcgrid_core.models import StoredData
from htcgrid_core.payloads import result_key
from htcgrid_core.resources import GridResources
from tests import iam

CLIENT_FACING = {"StatusFunction", "CancelFunction", "DeleteFunction", "SessionFunction"}


def functions(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in rendered["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def test_functions_clients_call_directly_reserve_their_concurrency() -> None:
    """CKV_AWS_115: status, cancel, delete and session are capped (a client's flood is throttled
    there, not in the account pool the workflows' functions draw from); the workflows' are not."""
    reserved = {
        name: properties.get("ReservedConcurrentExecutions")
        for name, properties in functions(iam.render()).items()
    }
    assert {name for name, value in reserved.items() if value is not None} == CLIENT_FACING
    assert {reserved[name] for name in CLIENT_FACING} == {"20"}
    unreserved = functions(iam.render({"ClientFunctionConcurrency": "0"}))
    assert not [p for p in unreserved.values() if "ReservedConcurrentExecutions" in p]


def test_an_access_trail_records_session_data_and_client_calls_when_asked() -> None:
    """CKV_AWS_18: with AccessTrailBucketName, CloudTrail data events name who read or wrote
    each session object and who called status, cancel, delete or session."""
    assert not [
        r for r in iam.render()["Resources"].values() if r["Type"] == "AWS::CloudTrail::Trail"
    ]
    rendered = iam.render({"AccessTrailBucketName": "audit-logs"})
    (trail,) = [
        r["Properties"]
        for r in rendered["Resources"].values()
        if r["Type"] == "AWS::CloudTrail::Trail"
    ]
    assert trail["S3BucketName"] == "audit-logs"
    assert trail["IsLogging"] is True
    assert trail["EnableLogFileValidation"] is True
    by_type = {}
    for selector in trail["AdvancedEventSelectors"]:
        category, kind, arn = selector["FieldSelectors"]
        assert category == {"Field": "eventCategory", "Equals": ["Data"]}
        assert kind["Field"] == "resources.type"
        (resource_type,) = kind["Equals"]
        by_type[resource_type] = arn
    bucket = rendered["Physical"]["DataBucket"]
    assert by_type["AWS::S3::Object"] == {
        "Field": "resources.ARN",
        "StartsWith": [f"arn:aws:s3:::{bucket}/sessions/"],
    }
    function_arns = {
        f"arn:aws:lambda:{iam.REGION}:{iam.ACCOUNT}:function:{rendered['Physical'][name]}"
        for name in CLIENT_FACING
    }
    assert set(by_type["AWS::Lambda::Function"]["Equals"]) == function_arns


@pytest.mark.shared_stack
def test_an_overwritten_stored_result_is_refused_not_read(
    grid: GridResources, session_id: str
) -> None:
    """CKV_AWS_21: versions would restore an overwritten object, but none needs restoring: a
    stored result is read through its record's size and SHA-256, so an overwrite fails the
    read rather than being returned."""
    key = result_key(session_id, "task-1", 1, "run")
    stored = grid.payloads.encode({"price": "x" * 20_000}, key, what="result")
    assert isinstance(stored, StoredData)
    s3 = aws.client("s3", grid.settings.endpoint_url, grid.settings.region)
    # Someone with write access to the bucket overwrites it.
    s3.put_object(Bucket=grid.settings.bucket_name, Key=key, Body=b'{"price": "forged"}')
    with pytest.raises(PayloadIntegrityError):
        grid.payloads.decode(stored)
