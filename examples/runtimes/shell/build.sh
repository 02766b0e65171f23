#!/usr/bin/env bash
# Builds the shell example runtime into the folder $1 (scripts/build-runtimes.sh passes
# .tools/runtimes/shell): the bootstrap beside it, executable, and the handler's file in task/
# (LAMBDA_TASK_ROOT), as Lambda lays out a custom runtime and its function. Nothing to compile.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: examples/runtimes/shell/build.sh OUTPUT_DIR}"
mkdir -p "$out/task"
install -m 755 "$here/bootstrap" "$out/bootstrap"
install -m 644 "$here/function.sh" "$out/task/function.sh"
echo "shell runtime: built in $out"
