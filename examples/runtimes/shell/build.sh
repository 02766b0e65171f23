#!/usr/bin/env bash
# Builds the shell example runtime into the folder $1 (scripts/build-runtimes.sh passes
# .tools/runtimes/shell), which is also the example function's task root (--task-root): the
# bootstrap, executable, and the handlers' files: function.sh, wordcount.sh. Nothing to compile.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: examples/runtimes/shell/build.sh OUTPUT_DIR}"
mkdir -p "$out"
install -m 755 "$here/bootstrap" "$out/bootstrap"
install -m 644 "$here/function.sh" "$here/wordcount.sh" "$out/"
echo "shell runtime: built in $out"
