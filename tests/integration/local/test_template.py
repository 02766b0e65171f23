"""Reading and translating SAM templates (no emulator involved)."""

from __future__ import annotations

from pathlib import Path

from htcgrid_local.template import LOCAL_METADATA_KEY, load_template, translate
from tests.integration.local.conftest import FIXTURE_TEMPLATE, REPO_TEMPLATE


def test_short_form_tags_read_as_long_form(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      Ref: !Ref B\n"
        "      Att: !GetAtt B.Arn.Deep\n"
        "      Sub: !Sub '${B}-x'\n"
        "      If: !If [C, !Ref B, !Ref AWS::NoValue]\n"
        "      Not: !Not [!Equals [!Ref P, '1']]\n"
        "      Cond: !Condition C\n"
    )

    properties = load_template(path)["Resources"]["A"]["Properties"]

    assert load_template(path)["AWSTemplateFormatVersion"] == "2010-09-09"
    assert properties == {
        "Ref": {"Ref": "B"},
        "Att": {"Fn::GetAtt": ["B", "Arn.Deep"]},
        "Sub": {"Fn::Sub": "${B}-x"},
        "If": {"Fn::If": ["C", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]},
        "Not": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, "1"]}]},
        "Cond": {"Condition": "C"},
    }


def test_translation_stages_code_and_records_where_each_function_lives() -> None:
    translated = translate(FIXTURE_TEMPLATE, staging_bucket="stage", region="us-east-1")

    resources = translated.template["Resources"]
    assert not any(r["Type"].startswith("AWS::Serverless::") for r in resources.values())
    echo = resources["EchoFunction"]
    assert echo["Properties"]["Code"]["S3Bucket"] == "stage"
    assert echo["Metadata"][LOCAL_METADATA_KEY] == {
        "CodeDir": str(FIXTURE_TEMPLATE.parent / "functions" / "echo"),
        "PythonPath": [str(FIXTURE_TEMPLATE.parent / "layer")],
    }
    workflow = resources["Workflow"]["Properties"]
    assert workflow["StateMachineType"] == "EXPRESS"
    assert workflow["DefinitionS3Location"]["Bucket"] == "stage"
    staged = {artifact.key for artifact in translated.artifacts}
    assert workflow["DefinitionS3Location"]["Key"] in staged
    assert echo["Properties"]["Code"]["S3Key"] in staged


def test_packaging_is_deterministic() -> None:
    first = translate(FIXTURE_TEMPLATE, staging_bucket="stage", region="us-east-1")
    second = translate(FIXTURE_TEMPLATE, staging_bucket="stage", region="us-east-1")

    assert [a.key for a in first.artifacts] == [a.key for a in second.artifacts]


def test_repo_template_functions_import_the_core_layer_from_its_source() -> None:
    translated = translate(REPO_TEMPLATE, staging_bucket="stage", region="us-east-1")

    functions = {
        logical_id: resource["Metadata"][LOCAL_METADATA_KEY]
        for logical_id, resource in translated.template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert {"SubmissionFunction", "DispatchFunction", "StatusFunction"} <= set(functions)
    for metadata in functions.values():
        assert metadata["PythonPath"] == [str(REPO_TEMPLATE.parent / "layers" / "core")]
        assert Path(metadata["CodeDir"], "app.py").is_file()


def test_clients_cannot_write_the_table_or_delete_data_themselves() -> None:
    """Least privilege: clients read and delete through functions, so no client can write a
    task's record (forge a result) or delete another session's objects."""
    statements = load_template(REPO_TEMPLATE)["Resources"]["ClientPolicy"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    actions = [
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    ]
    assert not [a for a in actions if a.startswith("dynamodb:")]
    assert "s3:DeleteObject" not in actions
    (invoke,) = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert {"Fn::GetAtt": ["DeleteFunction", "Arn"]} in invoke["Resource"]
