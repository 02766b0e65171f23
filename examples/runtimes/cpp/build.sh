#!/usr/bin/env bash
# Builds the C++ runtime's `bootstrap` into the folder given as $1 (scripts/build-runtimes.sh
# passes .tools/runtimes/cpp).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$HERE/cmake-build.sh" "$HERE" "${1:?usage: build.sh OUT_DIR}"
