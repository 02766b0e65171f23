"""How the emulator's request accounting names a request's resource (``accounting.classify``):
pure logic on a WSGI environ, no emulator."""

from __future__ import annotations

import json

from htcgrid_local.accounting import classify

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20261206/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def dynamodb_request(operation: str, document: dict[str, object]) -> tuple[dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "HTTP_AUTHORIZATION": AUTHORIZATION,
        "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
    }
    return environ, json.dumps(document).encode()


def test_a_transaction_is_counted_against_the_tables_its_items_name() -> None:
    put = {"Put": {"TableName": "grid-TaskTable-ABCDEFGHIJ12", "Item": {}}}
    request = classify(*dynamodb_request("TransactWriteItems", {"TransactItems": [put, put]}))
    assert (request.service, request.operation) == ("dynamodb", "TransactWriteItems")
    assert request.resource == "grid-TaskTable"  # without CloudFormation's suffix


def test_single_and_batch_requests_name_their_tables() -> None:
    single = classify(*dynamodb_request("PutItem", {"TableName": "t1", "Item": {}}))
    batch = classify(*dynamodb_request("BatchWriteItem", {"RequestItems": {"t2": [], "t1": []}}))
    assert single.resource == "t1"
    assert batch.resource == "t1,t2"
