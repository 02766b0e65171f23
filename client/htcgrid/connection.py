"""Finding a grid: by CloudFormation stack name, from a local grid's state file, or explicitly.

Everything the client needs is in the stack's Outputs; ``GridEndpoints`` holds them and the
settings they carry (``GridSettings.from_stack_outputs``). The client's settings come from
those outputs and the caller's arguments only, never from ``HTCGRID_*`` environment variables.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import boto3
from pydantic import ValidationError

from htcgrid.errors import GridNotFoundError, InvalidRequestError, calling
from htcgrid_core import aws
from htcgrid_core.settings import REQUIRED_STACK_OUTPUTS, GridSettings
from htcgrid_core.stack import read_outputs

#: Where ``htcgrid-local up`` writes the running local grid's endpoint and outputs.
LOCAL_STATE_FILE = Path(".htcgrid") / "local.json"

#: The outputs a client needs: those of the settings, and the workflow and functions it calls.
_REQUIRED_OUTPUTS = (
    *REQUIRED_STACK_OUTPUTS,
    "SubmitWorkflowArn",
    "StatusFunctionName",
    "SessionFunctionName",
)


class GridEndpoints:
    """The deployed grid's resources, as its stack outputs name them, the settings they carry,
    and the boto3 session (any credential source boto3 supports) that reaches them."""

    def __init__(
        self,
        outputs: dict[str, str],
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        boto_session: boto3.session.Session | None = None,
    ) -> None:
        missing = [name for name in _REQUIRED_OUTPUTS if not outputs.get(name)]
        if missing:
            raise GridNotFoundError(f"the grid's outputs lack {', '.join(missing)}")
        try:
            #: What the outputs and arguments say, and nothing from the environment.
            self.settings = GridSettings.from_stack_outputs(
                outputs, endpoint_url=endpoint_url, region=region
            )
        except ValidationError as error:
            raise GridNotFoundError(f"the grid's outputs are not a grid's: {error}") from None
        self.outputs = dict(outputs)
        self.endpoint_url = endpoint_url
        self.region = region
        self._session = boto_session or boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def output(self, name: str) -> str:
        return self.outputs[name]

    def client(self, service: str) -> Any:
        """A shared boto3 client for ``service`` at this grid's endpoint, with retries."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = aws.make_client(
                    self._session, service, self.endpoint_url, self.region
                )
            return self._clients[service]

    def close(self) -> None:
        """Close every client made here (their connection pools); a later ``client`` call
        makes a new one."""
        with self._lock:
            made, self._clients = list(self._clients.values()), {}
        for client in made:
            client.close()

    @classmethod
    def from_stack(
        cls,
        stack_name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        boto_session: boto3.session.Session | None = None,
    ) -> GridEndpoints:
        """Read a deployed stack's outputs (any boto3 credential source works: the default
        chain, or the given session's profile or credentials)."""
        session = boto_session or boto3.session.Session()
        with calling("cloudformation:DescribeStacks", stack_name):
            cloudformation = aws.make_client(session, "cloudformation", endpoint_url, region)
        try:
            with calling("cloudformation:DescribeStacks", stack_name):
                outputs = read_outputs(cloudformation, stack_name)
        except InvalidRequestError as error:
            # CloudFormation answers a stack that does not exist with a ValidationError.
            region_name = cloudformation.meta.region_name
            raise GridNotFoundError(
                f"no stack {stack_name!r} in region {region_name}"
            ) from error.__cause__
        finally:
            cloudformation.close()
        return cls(outputs, endpoint_url=endpoint_url, region=region, boto_session=session)

    @classmethod
    def from_local_state(cls, path: Path | None = None) -> GridEndpoints:
        """Connect to the local grid that ``htcgrid-local up`` started."""
        state_file = path or Path(os.environ.get("HTCGRID_LOCAL_STATE", LOCAL_STATE_FILE))
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError:
            raise GridNotFoundError(
                f"no local grid state at {state_file}: start one with `htcgrid-local up`"
            ) from None
        return cls.for_emulator(
            state["outputs"], state["endpoint_url"], state.get("region", "us-east-1")
        )

    @classmethod
    def for_emulator(
        cls, outputs: dict[str, str], endpoint_url: str, region: str = "us-east-1"
    ) -> GridEndpoints:
        """A grid on an emulator, which accepts any credentials: use dummy ones so none need
        configuring (and a developer's real credentials are never sent to it)."""
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - an emulator's dummy credentials
            region_name=region,
        )
        return cls(outputs, endpoint_url=endpoint_url, region=region, boto_session=session)
