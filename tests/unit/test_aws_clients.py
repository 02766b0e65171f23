"""The grid's boto3 clients (``aws.make_client``): what they send is botocore's, built for less."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.useragent import UserAgentString
from moto import mock_aws

from htcgrid_core import aws


def test_the_user_agent_is_botocores_own_built_once_per_set_of_features() -> None:
    build = UserAgentString.to_string
    builds = 0

    def counted(self: UserAgentString) -> str:
        nonlocal builds
        builds += 1
        return build(self)

    with mock_aws():
        # GIVEN a grid client, each request's header beside the one botocore would build for
        # it (in the request's own context: the features it used), and a count of builds
        client = aws.make_client(boto3.session.Session(), "sqs", region="us-east-1")
        sent: list[tuple[str, str]] = []

        def record(request: Any, **_: Any) -> None:
            header = request.headers["User-Agent"]
            sent.append((header.decode() if isinstance(header, bytes) else header, build(creator)))

        creator = client._user_agent_creator
        client.meta.events.register_first("before-send", record)
        UserAgentString.to_string = counted  # type: ignore[method-assign]
        try:
            # WHEN it makes the same request three times
            for _ in range(3):
                client.list_queues()
        finally:
            UserAgentString.to_string = build  # type: ignore[method-assign]
    # THEN each carries the header botocore builds for it, assembled once per set of features
    # and reused: one set when the request is serialised, one more once it is signed (botocore
    # alone assembles it twice per request, six times here)
    # (Powertools, once imported, appends its own part to every boto3 request's header.)
    assert all(header.startswith(own) for header, own in sent)
    assert [own for _, own in sent] == [sent[0][1]] * 3
    assert "Botocore/" in sent[0][0]
    assert builds <= 2


def test_a_client_without_parameter_validation_leaves_the_check_to_aws() -> None:
    # GIVEN a request botocore's model refuses (a queue name that is not a string)
    with mock_aws():
        session = boto3.session.Session()
        checked = aws.make_client(session, "sqs", region="us-east-1")
        unchecked = aws.make_client(session, "sqs", region="us-east-1", validate_parameters=False)
        # WHEN each client sends it
        # THEN the default one refuses it before sending; the other sends it and AWS answers
        with pytest.raises(ParamValidationError, match="Invalid type for parameter QueueName"):
            checked.get_queue_url(QueueName=7)
        with pytest.raises(ClientError, match="GetQueueUrl"):
            unchecked.get_queue_url(QueueName=7)
