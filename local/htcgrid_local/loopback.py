"""Calls the emulator's process makes to itself skip the network.

Inside the emulator, the Lambda handlers and moto's state-machine interpreter call AWS through
boto3 at the emulator's own URL. Over HTTP each call costs a socket round trip, a server
thread's wake-up and two HTTP parses, all under the process's one GIL. This botocore
``before-send`` hook hands such a request
straight to the server's WSGI app in the calling thread instead. Everything after the socket is
unchanged: the same app (Lambda runtime in front of moto) sees the same request and
botocore parses the same response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.handlers import BUILTIN_HANDLERS
from moto.core.botocore_stubber import MockRawResponse
from werkzeug.test import EnvironBuilder

from htcgrid_local.lambda_runtime import WsgiApp


def read_body(chunks: Iterable[bytes]) -> bytes:
    """A WSGI response's body, read whole; the iterable is closed as PEP 3333 requires."""
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class Loopback:
    """Serves requests addressed to ``origins`` (scheme://host:port) with ``app`` in-process."""

    def __init__(self, app: WsgiApp, origins: Iterable[str]) -> None:
        self._app = app
        self._origins = {origin.rstrip("/") for origin in origins}

    def __call__(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
        """botocore's before-send: a response ends the send; None lets botocore send it."""
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" not in self._origins:
            return None
        environ = EnvironBuilder(
            method=request.method,
            base_url=f"{parts.scheme}://{parts.netloc}",
            # werkzeug decodes the path as a server would; the query string stays raw.
            path=parts.path or "/",
            query_string=parts.query,
            # botocore keeps some header values as bytes (X-Amz-Target, for one).
            headers=[
                (name, value.decode("utf-8") if isinstance(value, bytes) else value)
                for name, value in request.headers.items()
            ],
            data=_body_bytes(request.body),
        ).get_environ()
        status: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(
            status_line: str, response_headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            status.append(status_line)
            headers.extend(response_headers)

        content = read_body(self._app(environ, start_response))
        return AWSResponse(
            request.url,
            int(status[0].split(" ", 1)[0]),
            HTTPHeaders.from_pairs(headers),
            MockRawResponse(content),
        )


def _body_bytes(body: Any) -> bytes:
    """A prepared request's body (bytes, text, a stream or nothing) as bytes."""
    if hasattr(body, "read"):
        body = body.read()
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def install(app: WsgiApp, origins: Iterable[str]) -> Loopback:
    """Register the hook for every botocore session created from now on in this process."""
    loopback = Loopback(app, origins)
    BUILTIN_HANDLERS.append(("before-send", loopback))
    return loopback
