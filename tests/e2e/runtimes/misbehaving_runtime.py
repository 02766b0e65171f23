"""A Lambda runtime that does, on request, everything a runtime can do wrong.

Run by the agent as ``--bootstrap "python misbehaving_runtime.py"`` (or by a test, as a
sidecar would be). Its ``_HANDLER`` picks how it starts: ``init-error`` reports an init error
and exits, ``exit-at-start`` exits without a word, anything else serves invocations. Each event's
``do`` picks what it does with that invocation. It speaks the Runtime API over one keep-alive
connection with the standard library only, as a small custom runtime would.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from typing import Any

API = "/2018-06-01/runtime"


def post(conn: http.client.HTTPConnection, path: str, body: bytes, **headers: str) -> int:
    conn.request("POST", f"{API}{path}", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def serve(conn: http.client.HTTPConnection, started_at: float) -> None:
    while True:
        conn.request("GET", f"{API}/invocation/next")
        response = conn.getresponse()
        event: dict[str, Any] = json.loads(response.read())
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        do = event.get("do", "echo")
        path = f"/invocation/{request_id}"
        if do == "echo":
            post(conn, f"{path}/response", json.dumps({"echo": event}).encode())
        elif do == "describe":
            described = {
                "headers": {k: v for k, v in response.headers.items() if k.startswith("Lambda")},
                "env": {
                    name: os.environ.get(name)
                    for name in (
                        "AWS_LAMBDA_RUNTIME_API",
                        "_HANDLER",
                        "LAMBDA_TASK_ROOT",
                        "AWS_LAMBDA_FUNCTION_NAME",
                        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                        "AWS_REGION",
                        "AWS_ACCESS_KEY_ID",
                        "AWS_SECRET_ACCESS_KEY",
                    )
                },
                "cwd": os.getcwd(),
                "pid": os.getpid(),
                "started_at": started_at,
            }
            post(conn, f"{path}/response", json.dumps(described).encode())
        elif do == "error":
            document = {
                "errorType": event.get("type", "ValueError"),
                "errorMessage": "the event asked for an error",
                "stackTrace": ['  File "app.py", line 7, in handler', "    raise ValueError"],
            }
            post(
                conn,
                f"{path}/error",
                json.dumps(document).encode(),
                **{"Lambda-Runtime-Function-Error-Type": "Unhandled"},
            )
        elif do == "sleep":
            if "mark" in event:  # tells the test the invocation has started
                with open(event["mark"], "w") as mark:
                    mark.write(request_id)
            time.sleep(float(event["seconds"]))
            post(conn, f"{path}/response", b'{"slept": true}')
        elif do == "exit":
            os._exit(int(event.get("code", 1)))
        elif do == "big":
            status = post(conn, f"{path}/response", json.dumps("x" * int(event["bytes"])).encode())
            assert status == 413, status
        elif do == "not-json":
            post(conn, f"{path}/response", b"this is not JSON")
        elif do == "no-next":
            post(conn, f"{path}/response", b'{"and": "now silence"}')
            time.sleep(3600)


def main() -> None:
    started_at = time.time()
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
    conn = http.client.HTTPConnection(host, int(port))
    handler = os.environ.get("_HANDLER", "")
    if handler == "init-error":
        document = {"errorType": "Runtime.ImportModuleError", "errorMessage": "no module 'app'"}
        post(conn, "/init/error", json.dumps(document).encode())
        sys.exit(1)
    if handler == "exit-at-start":
        sys.exit(3)
    serve(conn, started_at)


if __name__ == "__main__":
    main()
