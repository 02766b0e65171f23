"""The emulator's HTTP server keeps connections alive, and only where that is safe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import pytest
import urllib3.util.connection

from htcgrid_local.clients import client
from htcgrid_local.emulator import Emulator
from htcgrid_local.http_server import KeepAliveRequestHandler, KeepAliveServer

#: How long a test waits for an answer (or for the end of a stream) before it fails.
DEADLINE_S = 10.0


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers ``METHOD PATH BODY``; on /unread without reading the body, on /fail by raising,
    and with no Content-Length at all (the server must frame the answer itself)."""
    path = environ["PATH_INFO"]
    if path == "/fail":
        raise RuntimeError("the app failed")
    body = b"" if path == "/unread" else read_body(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {path} ".encode(), body]


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # werkzeug's de-chunked stream ends by itself
        return bytes(stream.read())
    return bytes(stream.read(int(environ.get("CONTENT_LENGTH") or 0)))


@pytest.fixture
def server() -> Iterator[KeepAliveServer]:
    serving = KeepAliveServer("127.0.0.1", 0, echo_app, handler=KeepAliveRequestHandler)
    thread = threading.Thread(target=serving.serve_forever, daemon=True)
    thread.start()
    yield serving
    serving.shutdown()
    serving.server_close()
    thread.join(DEADLINE_S)


def connect(server: KeepAliveServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    return connection


def read_response(stream: IO[bytes]) -> tuple[int, dict[str, str], bytes]:
    """One response from ``stream``: status code, headers (lower-case names), body."""
    status = stream.readline()
    assert status, "the server closed the connection instead of answering"
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"])) if "content-length" in headers else b""
    return int(status.split()[1]), headers, body


def request(method: str, path: str, body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    return (
        f"{method} {path} {version}\r\nHost: emulator\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_boto3_clients_requests_share_one_connection(
    local_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # urllib3 reuses its connection object after a close, reconnecting it: count the connects.
    connects: list[object] = []
    create_connection = urllib3.util.connection.create_connection

    def counted(*args: Any, **kwargs: Any) -> socket.socket:
        connects.append(args[0])
        return create_connection(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counted)
    sqs = client("sqs", local_emulator.endpoint_url)
    url = sqs.create_queue(QueueName="kept-alive")["QueueUrl"]

    for _ in range(20):
        sqs.get_queue_attributes(QueueUrl=url)

    assert len(connects) == 1


def test_requests_on_one_connection_are_answered_in_order(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        for index in range(3):
            connection.sendall(request("POST", f"/echo/{index}", b"payload"))
            assert read_response(stream)[2] == f"POST /echo/{index} payload".encode()

    assert server.accepted == 1


def test_a_body_the_app_leaves_unread_is_not_taken_for_the_next_request(
    server: KeepAliveServer,
) -> None:
    # GIVEN a body that reads as a request line, sent with the next request right behind it
    smuggled = request("GET", "/smuggled")
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/unread", smuggled) + request("POST", "/echo", b"x"))

        first = read_response(stream)
        second = read_response(stream)

    # THEN the second answer is the second request's: the unread body was skipped whole
    assert first[0] == 200
    assert first[2] == b"POST /unread "
    assert second[2] == b"POST /echo x"


def test_an_answer_without_a_length_is_given_one(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("GET", "/echo"))
        _, headers, body = read_response(stream)

    assert headers["content-length"] == str(len(body)) == str(len(b"GET /echo "))
    assert "connection" not in headers


def test_a_head_answer_has_no_body_and_the_connection_stays(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("HEAD", "/echo") + request("POST", "/echo", b"after"))

        status, headers, _ = read_response(stream)
        assert (status, headers.get("content-length")) == (200, None)
        assert read_response(stream)[2] == b"POST /echo after"


def test_a_chunked_request_is_served_and_its_connection_closed(server: KeepAliveServer) -> None:
    chunked = (
        b"POST /echo HTTP/1.1\r\nHost: emulator\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(chunked)

        status, headers, body = read_response_until_closed(stream)

    assert (status, body) == (200, b"POST /echo hello world")
    assert headers["connection"] == "close"


def test_an_http_1_0_request_is_served_and_its_connection_closed(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/echo", b"old", version="HTTP/1.0"))

        status, _, body = read_response_until_closed(stream)

    assert (status, body) == (200, b"POST /echo old")


def test_a_client_asking_to_close_gets_its_answer_and_a_closed_connection(
    server: KeepAliveServer,
) -> None:
    ask = b"GET /echo HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\n\r\n"
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(ask)

        status, _, body = read_response_until_closed(stream)

    assert (status, body) == (200, b"GET /echo ")


def test_an_app_error_answers_500_and_closes_the_connection(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("POST", "/fail", b"x"))

        status, headers, _ = read_response_until_closed(stream)

    assert status == 500
    assert headers["connection"] == "close"


def test_stopping_the_server_ends_its_idle_connections(server: KeepAliveServer) -> None:
    with connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request("GET", "/echo"))
        read_response(stream)

        server.shutdown()
        server.server_close()

        # The idle connection ends (its reader sees the end of the stream), instead of a
        # handler thread of a stopped server waiting on it, and answering it, forever.
        assert stream.read() == b""


def read_response_until_closed(stream: IO[bytes]) -> tuple[int, dict[str, str], bytes]:
    """A response of a connection the server closes after it: the body may be chunked."""
    status = stream.readline()
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    rest = stream.read()  # returns only once the server has closed the connection
    if headers.get("transfer-encoding") == "chunked":
        rest = dechunk(rest)
    return int(status.split()[1]), headers, rest


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]
