"""The payload store: payloads and results inline below a size threshold, in S3 above it.

Small JSON travels inside the SQS message and the task record (no S3 request at all); large
JSON goes to the data-plane bucket under the session's prefix, with its size and SHA-256
recorded so a reader detects a truncated or substituted object. boto3's managed transfer
switches to multipart uploads for large objects. A reader fetches at most the declared size
(and one byte more, to see a longer object): an object larger than its record says is never
read whole into memory.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from pydantic import JsonValue

from htcgrid_core.errors import (
    InvalidSubmissionError,
    PayloadIntegrityError,
    PayloadMissingError,
    PayloadNotJsonError,
)
from htcgrid_core.models import Data, InlineData, StoredData

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Multipart above 64 MiB, in 16 MiB parts, 4 at a time.
_TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4
)
#: What S3 answers for a key that is not there: 404, or 403 to a reader without
#: s3:ListBucket (AccessDenied from GetObject, a bare 403 from HeadObject).
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound", "AccessDenied", "403"})


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
    """Compact JSON of ``value`` (ASCII, non-ASCII text escaped); a value JSON cannot hold is
    an error naming ``what``: NaN, an infinity, a type JSON has not, or text holding a lone
    surrogate (which Python's JSON escapes, but no UTF-8 document, record or message can
    carry: its task would fail to be written, after its submission began)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        if "\\ud" in text:  # a surrogate's escape: paired (fine) or lone (refused)
            json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as error:
        lone = error.object[error.start : error.end]
        raise InvalidSubmissionError(
            f"{what} is not JSON-serialisable: its text holds a lone surrogate ({lone!r}), "
            "which no UTF-8 document can carry"
        ) from None
    except (TypeError, ValueError) as error:
        raise InvalidSubmissionError(f"{what} is not JSON-serialisable: {error}") from None
    return text.encode()


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
        return self._store(body, key, what)

    def encode_json(self, body: bytes, key: str, *, what: str = "result") -> Data:
        """JSON already encoded (UTF-8; a handler's result as its slot sends it): inline if it
        fits the threshold, else uploaded to ``key`` as it is, never parsed and re-encoded."""
        if len(body) <= self._threshold:
            return InlineData(inline=json.loads(body))
        return self._store(body, key, what)

    def _store(self, body: bytes, key: str, what: str) -> StoredData:
        if len(body) > self._max_bytes:
            raise InvalidSubmissionError(
                f"{what} is {len(body)} bytes of JSON; the limit is {self._max_bytes} bytes"
            )
        self._client.upload_fileobj(io.BytesIO(body), self._bucket, key, Config=_TRANSFER)
        return StoredData(s3_key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())

    @property
    def max_bytes(self) -> int:
        """Largest payload or result stored in S3."""
        return self._max_bytes

    def decode(self, data: Data) -> JsonValue:
        """The JSON value ``data`` holds, verified against its size and SHA-256 if stored."""
        if isinstance(data, InlineData):
            return data.inline
        body = self.fetch(data)
        try:
            value: JsonValue = json.loads(body)
        except ValueError as error:  # JSONDecodeError, or UnicodeDecodeError of the bytes
            raise PayloadNotJsonError(
                f"s3://{self._bucket}/{data.s3_key}: {data.size} bytes that are not JSON: {error}"
            ) from None
        return value

    def fetch(self, data: StoredData) -> bytes:
        """The bytes of a stored payload or result, verified against its size and SHA-256.

        Reads at most ``data.size + 1`` bytes whatever the object holds. Raises
        ``PayloadMissingError`` if S3 says the key is missing or not readable, and
        ``PayloadIntegrityError`` if the object is not the one recorded."""
        where = f"s3://{self._bucket}/{data.s3_key}"
        if data.size > self._max_bytes:
            raise PayloadIntegrityError(
                f"{where}: declared {data.size} bytes, above the limit of {self._max_bytes}"
            )
        # One byte past the declared end shows an object longer than declared. (An empty
        # range cannot be asked for: a declared size of 0 reads without one.)
        extra: dict[str, Any] = {"Range": f"bytes=0-{data.size}"} if data.size else {}
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=data.s3_key, **extra)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise PayloadMissingError(
                    f"{where} is missing or unreadable (S3 said {code}; it says AccessDenied "
                    "for a missing key to a reader without s3:ListBucket)"
                ) from None
            if code == "InvalidRange":  # the object is empty, not the size declared
                raise PayloadIntegrityError(
                    f"{where}: expected {data.size} bytes, got an empty object"
                ) from None
            raise
        stream = response["Body"]
        try:
            total = _object_size(response)
            if total is not None and total != data.size:
                raise PayloadIntegrityError(
                    f"{where}: expected {data.size} bytes, the object has {total}"
                )
            limit = data.size + 1
            body = stream.read(limit)
            while len(body) < limit and (more := stream.read(limit - len(body))):
                body += more
        finally:
            stream.close()
        if len(body) != data.size or hashlib.sha256(body).hexdigest() != data.sha256:
            raise PayloadIntegrityError(
                f"{where}: expected {data.size} bytes with SHA-256 {data.sha256}, "
                f"got {len(body)} bytes"
            )
        return body


def _object_size(response: Any) -> int | None:
    """The whole object's size from a GetObject response: the total of its Content-Range (a
    ranged read) or its Content-Length (a whole one)."""
    content_range = response.get("ContentRange")
    if content_range:
        total = str(content_range).rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.get("ContentLength")
    return int(length) if length is not None else None
