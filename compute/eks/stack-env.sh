#!/usr/bin/env bash
# Writes a kustomize env file (the agents' HTCGRID_* settings and the task queue URLs KEDA
# watches) from a deployed control plane stack's outputs:
#   compute/eks/stack-env.sh htcgrid > compute/eks/manifests/overlays/dev/stack.env
# Which output carries which setting is said once, in htcgrid_core (GridSettings'
# STACK_OUTPUTS): this runs `python -m htcgrid_core.stack`, so it needs the core, from the
# repository's .venv (`make dev`) or an interpreter named by PYTHON (`pip install ./client`).
set -euo pipefail
STACK="${1:?usage: stack-env.sh STACK_NAME}"
REGION="${AWS_REGION:-$(aws configure get region)}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON=python3

exec "$PYTHON" -m htcgrid_core.stack "$STACK" --region "$REGION"
