"""What both halves of the task table adapter share: the client and table name, batch reads
and writes that resend what DynamoDB left unprocessed, and full-walk queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from htcgrid_core import aws
from htcgrid_core.errors import RetryableError
from htcgrid_core.table.codec import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchWriteItem and BatchGetItem limits.
WRITE_BATCH, GET_BATCH = 25, 100
#: How many times unprocessed batch items are re-sent before the call counts as throttled.
BATCH_RETRIES = 10


class TableAccess:
    """A boto3 DynamoDB client and the task table's name. Thread-safe: it holds nothing else."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    def get_items(
        self, item_keys: Sequence[Item], *, consistent: bool = True, what: str = "reads"
    ) -> list[Item]:
        """The items that exist of ``item_keys`` (BatchGetItem, 100 keys per request), resending
        what DynamoDB left unprocessed with backoff."""
        found: list[Item] = []
        for start in range(0, len(item_keys), GET_BATCH):
            pending: dict[str, Any] = {
                self._name: {
                    "Keys": list(item_keys[start : start + GET_BATCH]),
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(BATCH_RETRIES):
                response = self._client.batch_get_item(RequestItems=pending)
                found.extend(response.get("Responses", {}).get(self._name, []))
                pending = dict(response.get("UnprocessedKeys") or {})
                if not pending:
                    break
                aws.pause_before_resend(attempt)
            else:
                raise RetryableError(f"{what} still unprocessed (throttled)")
        return found

    def delete_keys(self, item_keys: Sequence[Item]) -> None:
        """Delete the items with these keys, 25 per BatchWriteItem, resending what DynamoDB
        left unprocessed (deleting a missing item is not an error)."""
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in item_keys], "deletes")

    def _batch_write(self, requests: Sequence[Any], what: str) -> None:
        """BatchWriteItem ``requests``, 25 per call and several calls at once, resending what
        DynamoDB left unprocessed with backoff (botocore retries only requests that failed as
        a whole)."""

        def write(batch: list[Any]) -> None:
            for attempt in range(BATCH_RETRIES):
                response = self._client.batch_write_item(RequestItems={self._name: batch})
                batch = list(response.get("UnprocessedItems", {}).get(self._name, []))
                if not batch:
                    return
                aws.pause_before_resend(attempt)
            raise RetryableError(f"{len(batch)} {what} still unprocessed (throttled)")

        aws.in_parallel(
            write,
            [list(requests[i : i + WRITE_BATCH]) for i in range(0, len(requests), WRITE_BATCH)],
        )

    def _query_all(self, **query: Any) -> list[Item]:
        """Every item a query finds, page after page (boto3's paginator)."""
        pages = self._client.get_paginator("query").paginate(TableName=self._name, **query)
        return [item for page in pages for item in page.get("Items", [])]
