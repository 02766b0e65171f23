"""The emulator's HTTP server: werkzeug's threaded server, with keep-alive connections.

werkzeug 3.1's request handler closes every connection ("http.server doesn't know how to drain
the stream before the next request line"), so every boto3 request to the emulator, from an
agent, a Lambda's environment or the client, paid a TCP connection and a server thread. Here a
request whose body has a known length is read whole before the app runs (the app gets a buffer:
whatever it leaves unread cannot be taken for the next request line) and its response is sent
framed, in one write, on a connection that stays open. Requests that cannot be framed that way
(chunked, HTTP/1.0, ``Connection: close``) go through werkzeug's handler unchanged, which
closes. Idle connections are shut down with the server, so they never outlive it.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.debug.tbtools import DebugTraceback
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import ThreadedWSGIServer

LOG = logging.getLogger(__name__)
_WERKZEUG_LOG = logging.getLogger("werkzeug")

#: Responses that carry no body, whatever their headers say (RFC 9110, 6.4.1).
_BODYLESS_STATUSES = frozenset({204, 304})


class KeepAliveServer(ThreadedWSGIServer):
    """werkzeug's threaded WSGI server that knows its open connections, to close them when it
    stops: a handler thread waiting for a kept-alive connection's next request would otherwise
    go on serving it after ``server_close``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        #: Connections accepted since the start (tests read it: one per kept-alive client).
        self.accepted = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            # Wakes the handler blocked reading the next request line: it sees the end of the
            # stream and exits. Its own shutdown_request closes the socket.
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client or its handler: nothing left to end


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler with keep-alive connections and Nagle's algorithm off.

    Nagle off: werkzeug's own path sends a response's headers and body in separate writes, and
    with Nagle on the body waits for the client's delayed ACK of the headers (up to 40 ms on
    loopback). The kept-alive path writes a response in one piece.
    """

    disable_nagle_algorithm = True
    # Set here rather than left to werkzeug, which sets it on the class it is given.
    protocol_version = "HTTP/1.1"
    server: KeepAliveServer

    def run_wsgi(self) -> None:
        length = self._body_length()
        if length is None:
            # werkzeug's handler: it reads what the app leaves unread and closes the connection.
            super().run_wsgi()
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away in the middle of its body
            return
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            self._respond(environ)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away before it had the answer

    def _body_length(self) -> int | None:
        """The request body's length if this connection may be kept alive after it, else None.

        A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112,
        6.3), like botocore's GETs; one with a chunked body, or over HTTP/1.0, or asking to
        close, is left to werkzeug.
        """
        if self.close_connection or self.request_version != "HTTP/1.1":
            return None
        if "Transfer-Encoding" in self.headers:
            return None
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if len(lengths) != 1 or not lengths[0].strip().isdigit():
            return None  # werkzeug answers a malformed length as it always has
        return int(lengths[0])

    def _respond(self, environ: dict[str, Any]) -> None:
        """Run the app, buffer its answer and send it with a Content-Length, in one write."""
        try:
            status, headers, body = _call(self.server.app, environ)
        except Exception as error:
            # Any error of the app, as werkzeug's handler does: logged, and answered with a 500.
            LOG.error("error on request:\n%s", DebugTraceback(error).render_traceback_text())
            status, headers, body = _call(InternalServerError(), environ)
            self.close_connection = True
        code = int(status.split(None, 1)[0])
        bodyless = _bodyless(code, environ)
        names = {name.lower() for name, _ in headers}
        declared = [value for name, value in headers if name.lower() == "content-length"]
        if "transfer-encoding" in names or (
            not bodyless and any(value.strip() != str(len(body)) for value in declared)
        ):
            # The app framed its answer itself, or its length is not the body's: sent as it
            # says, as werkzeug would, and the connection is not trusted for another request.
            self.close_connection = True
        elif not declared and not bodyless:
            headers.append(("Content-Length", str(len(body))))
        if any(
            name.lower() == "connection" and value.strip().lower() == "close"
            for name, value in headers
        ):
            self.close_connection = True
        elif self.close_connection:
            headers.append(("Connection", "close"))
        if bodyless:
            body = b""
        lines = [f"{self.protocol_version} {status}", f"Server: {self.version_string()}"]
        lines.append(f"Date: {self.date_time_string()}")
        lines.extend(f"{name}: {value}" for name, value in headers)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)
        if _WERKZEUG_LOG.isEnabledFor(logging.INFO):  # the per-request line werkzeug logs
            self.log_request(code, len(body))


def _bodyless(code: int, environ: dict[str, Any]) -> bool:
    return environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in _BODYLESS_STATUSES


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """``app``'s status, headers and whole body; the iterable is closed as PEP 3333 requires."""
    answer: list[Any] = []
    # PEP 3333's write(): old frameworks' way to send a body, buffered like the rest of it.
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is None and answer:
            raise AssertionError("start_response called twice without exc_info")
        # Nothing is sent before the app has finished, so a later call replaces the answer.
        answer[:] = [status, list(headers)]
        return written.append

    chunks: Iterable[bytes] = app(environ, start_response)
    try:
        for chunk in chunks:  # in order: a generator may call write() between its chunks
            written.append(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if not answer:
        raise AssertionError("the app returned without calling start_response")
    return answer[0], answer[1], b"".join(written)
