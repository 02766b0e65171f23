"""The payload store: payloads and results inline below a size threshold, in S3 above it.

Small JSON travels inside the SQS message and the task record (no S3 request at all); large
JSON goes to the data-plane bucket under the session's prefix, with its size and SHA-256
recorded so a reader detects a truncated or substituted object. boto3's managed transfer
switches to multipart uploads and ranged downloads for large objects.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from pydantic import JsonValue

from htcgrid_core.errors import (
    InvalidSubmissionError,
    PayloadIntegrityError,
    PayloadNotJsonError,
)
from htcgrid_core.models import Data, InlineData, StoredData

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Multipart above 64 MiB, in 16 MiB parts, 4 at a time.
_TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4
)


def session_prefix(session_id: str) -> str:
    """Every object of a session lives under this prefix, so deleting a session is one sweep."""
    return f"sessions/{session_id}/"


def payload_key(session_id: str, task_id: str) -> str:
    return f"{session_prefix(session_id)}payloads/{task_id}.json"


def result_key(session_id: str, task_id: str, attempt: int, execution: str) -> str:
    """Where one execution of an attempt stores its result. A task may run more than once (a
    duplicate delivery, a late worker), and every run uploads before it knows whether its
    record will win: a key of its own means no run can replace the object a recorded result
    names, and the record references only the winner's."""
    return f"{session_prefix(session_id)}results/{task_id}/{attempt}-{execution}.json"


def to_json_bytes(value: JsonValue, *, what: str) -> bytes:
    """Compact JSON of ``value``; a value JSON cannot hold is an error naming ``what``."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise InvalidSubmissionError(f"{what} is not JSON-serialisable: {error}") from None


class PayloadStore:
    """Encodes JSON values as inline or stored data, and decodes them back."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        inline_threshold_bytes: int,
        max_bytes: int,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._threshold = inline_threshold_bytes
        self._max_bytes = max_bytes

    def encode(self, value: JsonValue, key: str, *, what: str = "payload") -> Data:
        """``value`` inline if its JSON fits the threshold, else uploaded to ``key``."""
        body = to_json_bytes(value, what=what)
        if len(body) <= self._threshold:
            return InlineData(inline=value)
        if len(body) > self._max_bytes:
            raise InvalidSubmissionError(
                f"{what} is {len(body)} bytes of JSON; the limit is {self._max_bytes} bytes"
            )
        self._client.upload_fileobj(io.BytesIO(body), self._bucket, key, Config=_TRANSFER)
        return StoredData(s3_key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())

    def decode(self, data: Data) -> JsonValue:
        """The JSON value ``data`` holds, verified against its size and SHA-256 if stored."""
        if isinstance(data, InlineData):
            return data.inline
        buffer = io.BytesIO()
        self._client.download_fileobj(self._bucket, data.s3_key, buffer, Config=_TRANSFER)
        body = buffer.getvalue()
        if len(body) != data.size or hashlib.sha256(body).hexdigest() != data.sha256:
            raise PayloadIntegrityError(
                f"s3://{self._bucket}/{data.s3_key}: expected {data.size} bytes with SHA-256 "
                f"{data.sha256}, got {len(body)} bytes"
            )
        try:
            value: JsonValue = json.loads(body)
        except ValueError as error:  # JSONDecodeError, or UnicodeDecodeError of the bytes
            raise PayloadNotJsonError(
                f"s3://{self._bucket}/{data.s3_key}: {data.size} bytes that are not JSON: {error}"
            ) from None
        return value
