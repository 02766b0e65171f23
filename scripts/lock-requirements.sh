#!/usr/bin/env bash
# Regenerates the hashed lock files from their inputs, for CPython 3.12 on Linux (the Lambda
# runtime and the agent image):
#   layers/core/requirements.in  -> layers/core/requirements.txt   (the Lambda layer)
#   compute/eks/requirements.in  -> compute/eks/requirements.txt   (the agent image)
# Each lock pins every transitive dependency and lists the SHA-256 of every file the package
# index has for each pin (every platform's wheels), so the same lock serves arm64 and amd64
# builds, which install it with --require-hashes. Run it after changing a .in file, review the
# diff, commit both.
#
# pip-compile runs with no pip configuration (PIP_CONFIG_FILE=/dev/null): a local mirror or
# find-links directory would contribute only its own files' hashes.
#
# Usage: scripts/lock-requirements.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="$ROOT/.tools"
PIP_TOOLS_PINS=(pip-tools==7.6.2 build==1.6.1 click==8.5.1 packaging==26.4 pyproject_hooks==1.3.3)
STEP_WIDTH=40
export PIP_CONFIG_FILE=/dev/null
# Written into each lock's header as the command that made it.
export CUSTOM_COMPILE_COMMAND="scripts/lock-requirements.sh"
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"

# Environment markers are evaluated for the interpreter pip-compile runs on: it must be 3.12.
ensure_python312
PYTHON=python3.12

lock() { # lock INPUT OUTPUT
    "$TOOLS_DIR/lock/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links --resolver backtracking \
        --output-file "$2" "$1"
}

step "tool venv .tools/lock" ensure_venv "$TOOLS_DIR/lock" "${PIP_TOOLS_PINS[@]}"
step "lock layers/core" lock layers/core/requirements.in layers/core/requirements.txt
step "lock compute/eks (agent image)" lock compute/eks/requirements.in compute/eks/requirements.txt

echo
printf '  %s\n' "${TIMINGS[@]}"
