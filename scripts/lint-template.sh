#!/usr/bin/env bash
# Lints the control plane: cfn-lint, `sam validate --lint`, `sam build` (no container) and checkov
# on template.yaml and on its SAM-translated CloudFormation (so the IAM roles SAM generates are
# checked too). Every check must pass clean; the justified skips live next to the resources
# (Metadata.checkov in template.yaml), not here.
#
# The tools live in their own virtualenvs under .tools/ because aws-sam-cli and checkov pin their
# own boto3/botocore, which must not leak into the project's dev environment. A venv is reused when
# its marker file names exactly the pins below, so a second run installs nothing.
#
# Usage: scripts/lint-template.sh            (from anywhere; works on the repo it lives in)
#   PYTHON=python3.11   interpreter used to create the tool venvs (default python3)
#   SKIP_BUILD=1        skip `sam build` (e.g. while the handlers are still being written)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="$ROOT/.tools"
# cfn-lint is pinned next to aws-sam-cli because `sam validate --lint` imports it from the same venv.
SAM_PINS=(aws-sam-cli==1.170.0 cfn-lint==1.58.0)
CHECKOV_PINS=(checkov==3.3.30)
PYTHON="${PYTHON:-python3}"

# No telemetry, no prompts, no platform calls: only pip (tool installs, and `sam build` fetching
# the layer's wheels) uses the network. --skip-download below already implies BC_SKIP_MAPPING.
export SAM_CLI_TELEMETRY=0
export BC_SKIP_MAPPING=TRUE
# sam validate/build and samtranslator want a region; none of them call AWS here.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"

STEP_WIDTH=34
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

# Translates template.yaml to plain CloudFormation in-process (samtranslator ships inside
# aws-sam-cli), so checkov also sees the IAM roles, log groups and permissions SAM generates.
translate_template() {
    "$TOOLS_DIR/sam/bin/python" - "$ROOT/template.yaml" "$ROOT/.aws-sam/translated.json" <<'PY'
import json
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Resolves AWS managed policy names from the map bundled with samtranslator (no IAM call)."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        from samtranslator.internal.managed_policies import get_bundled_managed_policy_map

        return get_bundled_managed_policy_map("aws", fallback=None) or {}


source, target = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as handle:
    template = yaml_parse(handle.read())
# checkov resolves Conditions from parameter defaults: lint the widest grid (5 levels), so the
# conditional queue pairs p3 and p4 are checked too.
template["Parameters"]["PriorityLevels"]["Default"] = 5
# Code locations are what `sam package` would fill in; the values do not matter for checkov.
for resource in template.get("Resources", {}).values():
    props = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(props.get(key), str):
            props[key] = f"s3://htcgrid-lint/{key.lower()}.zip"
try:
    # passthrough_metadata copies each SAM resource's Metadata (its checkov skips) onto the
    # resources generated from it, e.g. a function's role.
    translated = transform(template, {}, OfflinePolicyLoader(), passthrough_metadata=True)
except InvalidDocumentException as error:
    for cause in error.causes:
        print(f"samtranslator: {cause.message}", file=sys.stderr)
    sys.exit(1)
with open(target, "w", encoding="utf-8") as handle:
    json.dump(translated, handle, indent=1, default=str)
PY
}

sam_build() { # quiet unless it fails: the full log stays in .aws-sam/sam-build.log
    mkdir -p .aws-sam
    if ! "$TOOLS_DIR/sam/bin/sam" build --template-file template.yaml --build-dir .aws-sam/build \
        > .aws-sam/sam-build.log 2>&1; then
        cat .aws-sam/sam-build.log >&2
        return 1
    fi
    grep -E '^Build Succeeded' .aws-sam/sam-build.log
}

checkov_file() { # checkov_file FILE: cloudformation checks, offline, quiet on success
    "$TOOLS_DIR/checkov/bin/checkov" -f "$1" --framework cloudformation --skip-download \
        --quiet --compact
}

step "tool venv .tools/sam" ensure_venv "$TOOLS_DIR/sam" "${SAM_PINS[@]}"
step "tool venv .tools/checkov" ensure_venv "$TOOLS_DIR/checkov" "${CHECKOV_PINS[@]}"
step "cfn-lint template.yaml" "$TOOLS_DIR/sam/bin/cfn-lint" template.yaml
step "sam validate --lint" "$TOOLS_DIR/sam/bin/sam" validate --lint --template-file template.yaml
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    ensure_python312
    step "sam build" sam_build
fi
mkdir -p .aws-sam
step "samtranslator (in-process)" translate_template
step "checkov template.yaml" checkov_file template.yaml
step "checkov translated template" checkov_file .aws-sam/translated.json

echo
echo "all template checks passed"
printf '  %s\n' "${TIMINGS[@]}"
