"""``htcgrid`` never prints a traceback for an AWS, credential or input error: one line on
stderr, starting with what kind of error it is, and the exit code documented for that kind.

AWS answers come from botocore itself: its own credential chain finding nothing, moto for a
stack that does not exist, and botocore's ``Stubber`` for the error responses moto cannot
produce (an IAM refusal, an expired token, throttling), each parsed by botocore as AWS's would
be. No test reaches the network."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from htcgrid import Grid
from htcgrid._transport import QUERY_ATTEMPTS
from htcgrid.cli import app, main
from htcgrid.cli.exit_codes import (
    EXIT_ACCESS_DENIED,
    EXIT_CREDENTIALS,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_THROTTLED,
    EXIT_USAGE,
)
from htcgrid.connection import GridEndpoints
from htcgrid_core import aws

FUNCTION = "status"  # the offline grid's StatusFunctionName
REFUSAL = (
    "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
    f"lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    " because no identity-based policy allows the lambda:InvokeFunction action"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """The command's exit code and the lines it wrote on stderr."""
    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


@pytest.fixture
def offline_grid(offline_endpoints: GridEndpoints, monkeypatch: pytest.MonkeyPatch) -> Grid:
    """The grid every command connects to: at an address nothing listens on, so each call
    must be answered by a test's stub. Back-offs are recorded, not waited."""
    grid = Grid(offline_endpoints)
    monkeypatch.setattr(app, "_connect", lambda args: grid)
    monkeypatch.setattr(aws, "back_off", lambda attempt, *, base_s, cap_s: None)
    return grid


def stub_lambda(grid: Grid, code: str, message: str, status: int, times: int = 1) -> Stubber:
    stubber = Stubber(grid.transport.client("lambda"))
    for _ in range(times):
        stubber.add_client_error(
            "invoke", service_error_code=code, service_message=message, http_status_code=status
        )
    stubber.activate()
    return stubber


def test_missing_credentials_are_one_line_and_exit_code_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no credentials anywhere in boto3's chain (no environment, files, or instance role)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # WHEN the command connects to a stack (botocore refuses to sign: nothing is sent)
    code, said = run(
        capsys, "--stack", "htcgrid", "--region", "us-east-1", "--endpoint-url",
        "http://127.0.0.1:9", "status", "s1",
    )  # fmt: skip
    # THEN one line says so, with the credentials' exit code
    assert code == EXIT_CREDENTIALS
    assert said == [
        "credentials: Unable to locate credentials (boto3 looks in the environment, the shared "
        "config and credentials files, SSO, and the instance or pod role)"
    ]


def test_a_stack_that_does_not_exist_is_one_line_and_exit_code_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_aws():
        code, said = run(capsys, "--stack", "no-such-stack", "--region", "eu-west-1", "sessions")
    assert code == EXIT_NOT_FOUND
    assert said == ["grid not found: no stack 'no-such-stack' in region eu-west-1"]


def test_the_stack_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(app.STACK_VARIABLE, "from-env")
    with mock_aws():
        code, said = run(capsys, "--region", "us-east-1", "sessions")
        named, _ = run(capsys, "--stack", "named", "--region", "us-east-1", "sessions")
    assert code == EXIT_NOT_FOUND
    assert said == ["grid not found: no stack 'from-env' in region us-east-1"]
    assert named == EXIT_NOT_FOUND  # --stack still wins over the environment


def test_access_denied_names_the_action_and_resource_with_exit_code_5(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_lambda(offline_grid, "AccessDeniedException", REFUSAL, 403)
    code, said = run(capsys, "status", "s1")
    assert code == EXIT_ACCESS_DENIED
    assert said == [
        "access denied: arn:aws:iam::123456789012:user/alice may not lambda:InvokeFunction on "
        f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    ]


def test_expired_credentials_are_exit_code_6(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_lambda(
        offline_grid, "ExpiredTokenException", "The security token included in the request "
        "is expired", 403,
    )  # fmt: skip
    code, said = run(capsys, "status", "s1")
    assert code == EXIT_CREDENTIALS
    assert said == [
        "credentials: AWS refused the credentials (ExpiredTokenException): The security token "
        "included in the request is expired"
    ]


def test_a_call_throttled_past_every_retry_is_exit_code_7(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a function that answers throttled to every try (botocore's retries already spent)
    stubber = stub_lambda(
        offline_grid, "TooManyRequestsException", "Rate exceeded", 429, times=QUERY_ATTEMPTS
    )
    code, said = run(capsys, "status", "s1")
    assert code == EXIT_THROTTLED
    assert said == [
        "throttled: lambda:InvokeFunction throttled past its retries: TooManyRequestsException: "
        "Rate exceeded"
    ]
    stubber.assert_no_pending_responses()  # the client's own retries were all taken


def test_a_function_that_is_gone_is_exit_code_3(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_lambda(
        offline_grid, "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}", 404,
    )  # fmt: skip
    code, said = run(capsys, "status", "s1")
    assert code == EXIT_NOT_FOUND
    assert len(said) == 1
    assert said[0].startswith(f"not found: lambda:InvokeFunction: {FUNCTION}: Function not found")


def test_a_bad_session_id_names_the_field_with_exit_code_2_before_any_call(
    offline_grid: Grid, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(offline_grid.transport, "_invoke", lambda *args: pytest.fail("called"))
    code, said = run(capsys, "status", "../other")
    assert code == EXIT_USAGE
    assert len(said) == 1
    assert said[0].startswith("invalid input: session_id: String should match pattern")
    assert "'../other'" in said[0]


def test_a_bad_session_id_for_a_new_session_names_the_field(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = run(capsys, "submit", "--session", "a/b", '{"x": 1}')
    assert code == EXIT_USAGE
    assert len(said) == 1
    assert said[0].startswith("invalid input: session_id: 'a/b' is not a session id")


def test_a_message_with_markup_and_newlines_is_printed_as_it_is_on_one_line(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_lambda(offline_grid, "InternalFailure", "[bold]broken[/]\nsecond line", 500)
    code, said = run(capsys, "status", "s1")
    assert code == EXIT_FAILED
    assert said == ["error: lambda:InvokeFunction: InternalFailure: [bold]broken[/] second line"]


def test_the_grid_is_closed_when_the_command_ends(
    offline_grid: Grid, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_lambda(offline_grid, "AccessDeniedException", REFUSAL, 403)
    run(capsys, "status", "s1")
    assert offline_grid.transport.closed


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"htcgrid {version('htcgrid')}"


def without_rich(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which rich cannot be imported, as in a library
    install of the client (``pip install htcgrid``, no ``cli`` extra)."""
    return subprocess.run(
        [sys.executable, "-c", f"import sys\nsys.modules['rich'] = None\n{code}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_rich_the_command_says_what_to_install() -> None:
    ran = without_rich("from htcgrid.cli import main\nsys.exit(main(['sessions']))")
    assert ran.returncode == EXIT_FAILED
    assert ran.stderr.splitlines() == [
        "htcgrid: the command line needs the 'rich' package, which the client's 'cli' extra "
        "installs: pip install 'htcgrid[cli]'"
    ]


def test_the_library_needs_no_rich() -> None:
    ran = without_rich(
        "import htcgrid\n"
        "from htcgrid import Grid, Session, DeadLetterQueues, GridError\n"
        "print(len(htcgrid.__all__))"
    )
    assert ran.returncode == 0, ran.stderr
    # and the package asks for rich only with its cli extra
    needs = [r.replace(" ", "") for r in requires("htcgrid") or [] if r.startswith("rich")]
    assert needs
    assert all(r.endswith(';extra=="cli"') for r in needs)


def test_connect_maps_an_unknown_profile_to_a_credentials_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, said = run(capsys, "--profile", "nope", "--region", "us-east-1", "sessions")
    assert code == EXIT_CREDENTIALS
    assert said == ["credentials: The config profile (nope) could not be found"]
