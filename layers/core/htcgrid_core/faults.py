"""Fault injection into this process's AWS calls, for chaos runs and reliability tests.

A botocore ``before-send`` hook answers a fraction of requests itself, before they leave the
process, with what AWS sends when it throttles (HTTP 400 ThrottlingException; S3: 503
SlowDown), fails (HTTP 500 InternalFailure) or hangs (a read timeout). The request was not
processed, as with the real faults, and the answer goes through botocore's own retry handler:
so a run with faults proves that every call path retries with backoff instead of failing.

``latency`` is the odd one out: its value is seconds, not a rate, and every request to the
service waits that long before it leaves. The local emulator answers in about a millisecond,
where AWS takes several: with a latency the local grid shows what concurrency buys on AWS
(``make bench``'s ``--aws-latency-ms``), which a GIL-bound emulator otherwise hides.

Driven by the ``HTCGRID_FAULTS`` setting (``GridSettings.faults``), e.g.
``dynamodb:throttle=0.02,sqs:throttle=0.02,stepfunctions:error=0.01,sqs:latency=0.005``. Off
when empty.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError

KINDS = ("throttle", "error", "timeout", "latency")

#: Faults injected so far in this process, by (service, kind): chaos runs report them.
injected: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()


@dataclass(frozen=True)
class Fault:
    service: str
    kind: str
    #: The fraction of requests answered with the fault; for ``latency``, the seconds added.
    rate: float


def parse(spec: str) -> list[Fault]:
    """The faults a ``HTCGRID_FAULTS`` value asks for; a clear error names a bad entry."""
    faults: list[Fault] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        try:
            target, rate_text = entry.split("=")
            service, kind = target.split(":")
            rate = float(rate_text)
        except ValueError:
            raise ValueError(
                f"HTCGRID_FAULTS entry {entry!r} is not '<service>:<kind>=<rate>'"
            ) from None
        if kind not in KINDS:
            raise ValueError(f"HTCGRID_FAULTS entry {entry!r}: kind must be one of {KINDS}")
        if not 0 <= rate <= 1:
            what = "latency (seconds)" if kind == "latency" else "rate"
            raise ValueError(f"HTCGRID_FAULTS entry {entry!r}: {what} must be within [0, 1]")
        faults.append(Fault(service.strip().lower(), kind, rate))
    return faults


class _Body:
    """The raw response botocore reads an injected answer from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _answer(kind: str, protocol: str, url: str) -> AWSResponse:
    if kind == "timeout":
        raise ReadTimeoutError(endpoint_url=url)
    if protocol == "rest-xml":  # S3
        status, code = (503, "SlowDown") if kind == "throttle" else (500, "InternalError")
        body = f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>".encode()
        headers = HTTPHeaders.from_dict({"Content-Type": "application/xml"})
        return AWSResponse(url, status, headers, _Body(body))
    status, code = (400, "ThrottlingException") if kind == "throttle" else (500, "InternalFailure")
    body = f'{{"__type": "{code}", "message": "injected fault"}}'.encode()
    headers = HTTPHeaders.from_dict(
        {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    )
    return AWSResponse(url, status, headers, _Body(body))


def install(client: Any, faults: list[Fault]) -> None:
    """Inject ``faults`` aimed at this client's service into its requests."""
    service = client.meta.service_model.service_name
    protocol = client.meta.service_model.protocol
    mine = [fault for fault in faults if fault.service == service and fault.rate > 0]
    delay_s = sum(fault.rate for fault in mine if fault.kind == "latency")
    mine = [fault for fault in mine if fault.kind != "latency"]
    if not mine and not delay_s:
        return

    def maybe_fail(request: Any, **_: Any) -> AWSResponse | None:
        if delay_s:
            time.sleep(delay_s)
        for fault in mine:
            if random.random() < fault.rate:  # noqa: S311 - fault sampling, not cryptography
                with _lock:
                    injected[(service, fault.kind)] += 1
                return _answer(fault.kind, protocol, request.url)
        return None

    client.meta.events.register("before-send", maybe_fail)
