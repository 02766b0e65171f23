"""Validates rendered Kubernetes manifests offline: every object against a schema, strictly.

Core kinds go to kubernetes-validate (the API's OpenAPI schema for one Kubernetes version, unknown
fields rejected). Custom resources go to the openAPIV3Schema of their CRD, made strict the same
way, because kubernetes-validate passes kinds it has no schema for without a word. Karpenter's
kinds are validated by validate-karpenter.mjs (their schemas ship in an npm package); a kind with
no schema at all fails here, unless listed in UNVALIDATED with the reason.

Usage (from scripts/lint-k8s.sh, in the .tools/k8s venv):
    python validate_manifests.py --kubernetes 1.33.0 --crd KEDA.yaml -- rendered.yaml ...
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

#: Kinds checked elsewhere or that cannot be checked offline, and why.
UNVALIDATED = {
    ("karpenter.sh/v1", "NodePool"): "validated by validate-karpenter.mjs",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "validated by validate-karpenter.mjs",
    ("monitoring.coreos.com/v1", "PodMonitor"): "validated by validate-prometheus-operator.mjs",
    # No CRD schema of KEDA's TriggerAuthentication is available offline (../shared/schemas has
    # the ScaledObject's only): checked structurally below instead.
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "structural check only",
}


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists the fields an object has.

    The API server prunes (or, with kubectl's default strict field validation, rejects) unknown
    fields of a structural CRD; plain JSON Schema would accept them, so a misspelt field such as
    ``minReplicaCont`` would pass. Open maps (``additionalProperties``) and
    ``x-kubernetes-preserve-unknown-fields`` stay open."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def crd_validators(paths: list[Path]) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> a strict validator, for every served version of each CRD."""
    validators = {}
    for path in paths:
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # apiVersion/kind/metadata are the API server's to check; metadata's schema in a
                # CRD is just "object".
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                validators[key] = jsonschema.Draft7Validator(strict(schema))
    return validators


def check_trigger_authentication(obj: dict[str, Any]) -> list[str]:
    """What can be checked without KEDA's TriggerAuthentication schema."""
    identity = obj.get("spec", {}).get("podIdentity", {})
    problems = []
    if identity.get("provider") != "aws":
        problems.append("spec.podIdentity.provider must be 'aws' (EKS Pod Identity)")
    if identity.get("identityOwner") not in (None, "keda", "workload"):
        problems.append("spec.podIdentity.identityOwner must be 'keda' or 'workload'")
    return problems


def validate(
    obj: dict[str, Any],
    kubernetes: str,
    crds: dict[tuple[str, str], jsonschema.Draft7Validator],
) -> list[str]:
    """Problems found in one object (empty if none)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in crds:
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in sorted(crds[key].iter_errors(obj), key=lambda e: list(e.absolute_path))
        ]
    if key == ("keda.sh/v1alpha1", "TriggerAuthentication"):
        return check_trigger_authentication(obj)
    if key in UNVALIDATED:
        return []
    try:
        kubernetes_validate.validate(obj, kubernetes, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path) or "(root)"
        return [f"{path}: {error.message}"]
    except kubernetes_validate.utils.SchemaNotFoundError:
        # Not a core kind of this version, and no CRD given: a typo, or a custom resource that
        # needs its CRD (--crd) or a reason in UNVALIDATED. Never a silent pass.
        return [f"no schema for {key[0]} {key[1]} (Kubernetes {kubernetes}, CRDs given)"]
    return []


def check_eksctl(path: Path, rendered: list[dict[str, Any]]) -> list[str]:
    """The eksctl ClusterConfig (no schema of it exists offline): its shape, and that the cluster
    name agrees with what the Karpenter EC2NodeClass discovers and runs as."""
    text = path.read_text(encoding="utf-8").replace("${AWS_ACCOUNT_ID}", "123456789012")
    config = yaml.safe_load(text)
    problems = []
    if (config.get("apiVersion"), config.get("kind")) != ("eksctl.io/v1alpha5", "ClusterConfig"):
        problems.append("not an eksctl.io/v1alpha5 ClusterConfig")
    name = config.get("metadata", {}).get("name", "")
    if config.get("metadata", {}).get("tags", {}).get("karpenter.sh/discovery") != name:
        problems.append(f"metadata.tags karpenter.sh/discovery must be the cluster name {name!r}")
    addons = {addon.get("name") for addon in config.get("addons", [])}
    if "eks-pod-identity-agent" not in addons:
        problems.append("addons must include eks-pod-identity-agent (the agents' credentials)")
    for obj in rendered:
        if obj.get("kind") != "EC2NodeClass":
            continue
        spec = obj["spec"]
        if spec.get("role") != f"KarpenterNodeRole-{name}":
            problems.append(f"EC2NodeClass role {spec.get('role')!r} is not of cluster {name!r}")
        for terms in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
            tags = [term.get("tags", {}).get("karpenter.sh/discovery") for term in spec[terms]]
            if tags != [name]:
                problems.append(f"EC2NodeClass {terms} discover {tags}, not cluster {name!r}")
    return [f"{path.name}: {problem}" for problem in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes", required=True, help="Kubernetes version, e.g. 1.33.0")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="CRD YAML file")
    parser.add_argument("--eksctl", type=Path, help="eksctl ClusterConfig to check against")
    parser.add_argument("manifests", type=Path, nargs="+")
    args = parser.parse_args(argv)
    crds = crd_validators(args.crd)
    failures = 0
    rendered: list[dict[str, Any]] = []
    for path in args.manifests:
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not obj:
                continue
            rendered.append(obj)
            name = f"{path.name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            problems = validate(obj, args.kubernetes, crds)
            for problem in problems:
                print(f"{name}: {problem}", file=sys.stderr)
            failures += bool(problems)
            if not problems:
                key = (str(obj.get("apiVersion")), str(obj.get("kind")))
                how = UNVALIDATED.get(key, "valid")
                print(f"  {name}: {how}")
    if args.eksctl is not None:
        problems = check_eksctl(args.eksctl, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        failures += len(problems)
        if not problems:
            print(f"  {args.eksctl.name}: consistent with the EC2NodeClass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
