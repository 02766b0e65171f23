"""Turn a SAM ``template.yaml`` into the plain CloudFormation an emulator can create.

Reads the YAML (with CloudFormation's short-form tags), points every local ``CodeUri``,
``ContentUri`` and ``DefinitionUri`` at an S3 object staged on the target endpoint, translates
with aws-sam-translator, and records on each Lambda function where its source lives, so the
local Lambda runtime can run the real handler. The template stays the only list of resources.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import (
    to_py27_compatible_template,
    undo_mark_unicode_str_in_template,
)

#: Key under a translated Lambda function's ``Metadata`` that tells the local runtime where the
#: function's code and its layers' code are on this machine.
LOCAL_METADATA_KEY = "HtcgridLocal"

#: Which property of which SAM resource type names local code, and how it is packaged.
_ARTIFACT_PROPERTIES: dict[str, tuple[str, str]] = {
    "AWS::Serverless::Function": ("CodeUri", "zip"),
    "AWS::Serverless::LayerVersion": ("ContentUri", "zip"),
    "AWS::Serverless::StateMachine": ("DefinitionUri", "file"),
}

#: Files never worth packaging.
_SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


# --- YAML with CloudFormation tags ----------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # untyped PyYAML
    """A SafeLoader that reads ``!Ref``, ``!Sub``, ``!GetAtt``, ``!If``... as their long forms.

    It also keeps ISO dates as strings (``AWSTemplateFormatVersion: 2010-09-09`` unquoted), as
    CloudFormation does.
    """


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = tag_suffix
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "GetAtt":
            # Short form "Resource.Attribute"; the attribute itself may contain dots.
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)
CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template file (YAML or JSON) into plain Python values."""
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# --- Artifacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One local file or directory the template references, packaged for S3."""

    source: Path
    body: bytes
    key: str


def package_artifact(source: Path, kind: str) -> Artifact:
    """Package ``source``: a directory as a deterministic zip, a file as itself.

    The S3 key is the content's SHA-256, so restaging unchanged code uploads nothing new.
    """
    if kind == "file":
        body = source.read_bytes()
        suffix = source.suffix or ".bin"
    else:
        body = _zip_directory(source)
        suffix = ".zip"
    digest = hashlib.sha256(body).hexdigest()
    return Artifact(source=source, body=body, key=f"artifacts/{digest}{suffix}")


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(_walk(directory)):
            # A fixed timestamp keeps the zip (and so its key) identical for identical code.
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _walk(directory: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_NAMES and not d.endswith(".egg-info")]
        files.extend(Path(root) / name for name in names if not name.endswith(".pyc"))
    return files


# --- Translation ----------------------------------------------------------------------------


@dataclass
class TranslatedTemplate:
    """Plain CloudFormation ready for ``create_stack``, and the artifacts it expects in S3."""

    template: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)


def translate(
    template_path: Path,
    *,
    staging_bucket: str,
    region: str,
    parameters: dict[str, str] | None = None,
) -> TranslatedTemplate:
    """Translate the SAM template at ``template_path`` into CloudFormation.

    Every local path in ``CodeUri``/``ContentUri``/``DefinitionUri`` (directly or through
    ``Globals``) becomes ``s3://<staging_bucket>/<key>``; the returned artifacts must be uploaded
    there before the stack is created. Each resulting ``AWS::Lambda::Function`` carries
    ``Metadata.HtcgridLocal`` with ``CodeDir`` and ``PythonPath`` (its layers' import roots).
    """
    sam = load_template(template_path)
    base = template_path.parent.resolve()
    artifacts: dict[str, Artifact] = {}

    def stage(value: Any, kind: str) -> Any:
        if not isinstance(value, str) or value.startswith("s3://"):
            return value  # already remote, or an intrinsic the translator resolves
        source = (base / value).resolve()
        if not source.exists():
            raise FileNotFoundError(f"{template_path}: {value} does not exist")
        artifact = package_artifact(source, kind)
        uri = f"s3://{staging_bucket}/{artifact.key}"
        artifacts[uri] = artifact
        return uri

    globals_function = sam.get("Globals", {}).get("Function", {})
    for resource in sam["Resources"].values():
        spec = _ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        if spec is None:
            continue
        prop, kind = spec
        properties = resource.setdefault("Properties", {})
        if prop in properties:
            properties[prop] = stage(properties[prop], kind)
        elif prop == "CodeUri" and "CodeUri" in globals_function and "InlineCode" not in properties:
            # Resolved per function rather than in Globals: each needs its own S3 object.
            properties[prop] = stage(globals_function["CodeUri"], kind)
    if "CodeUri" in globals_function:
        del globals_function["CodeUri"]

    cfn = _run_translator(sam, parameters or {}, region)
    _annotate_functions(cfn, artifacts, staging_bucket)
    return TranslatedTemplate(template=cfn, artifacts=list(artifacts.values()))


def _run_translator(sam: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    """``samtranslator.translator.transform.transform``, with the region given, not guessed.

    transform() reads the region from the environment; the Translator takes a session instead.
    The managed-policy map is the one bundled with samtranslator (no IAM call).
    """
    policy_map = get_bundled_managed_policy_map("aws") or {}
    loader = _BundledPolicyLoader(policy_map)
    fragment = copy.deepcopy(sam)  # the translator mutates its input
    parameter_values: dict[str, Any] = dict(parameters)
    to_py27_compatible_template(fragment, parameter_values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    translated = translator.translate(
        fragment, parameter_values=parameter_values, get_managed_policy_map=loader.load
    )
    return undo_mark_unicode_str_in_template(translated)  # type: ignore[no-any-return]


class _BundledPolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]
    """Managed policy names to ARNs from the map shipped inside samtranslator, not from IAM."""

    def __init__(self, policy_map: dict[str, str]) -> None:
        self._policy_map = policy_map

    def load(self) -> dict[str, str]:
        return self._policy_map


def _annotate_functions(
    cfn: dict[str, Any], artifacts: dict[str, Artifact], staging_bucket: str
) -> None:
    """Record on each Lambda function the local directories of its code and layers."""
    resources: dict[str, Any] = cfn["Resources"]

    def local_source(location: Any, bucket_key: str, key_key: str) -> Path | None:
        if not isinstance(location, dict) or location.get(bucket_key) != staging_bucket:
            return None
        artifact = artifacts.get(f"s3://{staging_bucket}/{location.get(key_key)}")
        return artifact.source if artifact else None

    layer_roots: dict[str, Path] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Lambda::LayerVersion":
            content = resource.get("Properties", {}).get("Content")
            source = local_source(content, "S3Bucket", "S3Key")
            if source is not None:
                layer_roots[logical_id] = _layer_import_root(source)

    for resource in resources.values():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        properties = resource.get("Properties", {})
        code_dir = local_source(properties.get("Code"), "S3Bucket", "S3Key")
        if code_dir is None:
            continue
        python_path = [
            str(layer_roots[layer["Ref"]])
            for layer in properties.get("Layers", [])
            if isinstance(layer, dict) and layer.get("Ref") in layer_roots
        ]
        resource.setdefault("Metadata", {})[LOCAL_METADATA_KEY] = {
            "CodeDir": str(code_dir),
            "PythonPath": python_path,
        }


def _layer_import_root(layer_dir: Path) -> Path:
    """Where Python imports a layer's code from: ``python/`` inside it if present (Lambda's
    ``/opt/python``), else the directory itself (what ``sam build``'s python BuildMethod does
    with a source directory)."""
    python_dir = layer_dir / "python"
    return python_dir if python_dir.is_dir() else layer_dir
