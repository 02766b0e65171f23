#!/usr/bin/env bash
# Builds the Node.js example runtime into $1 (scripts/build-runtimes.sh passes
# .tools/runtimes/node): aws-lambda-ric as package-lock.json pins it (`npm ci`, which compiles
# curl, aws-lambda-cpp and the native addon: about a minute on two cores), the bootstrap that
# runs it, and the handler in task/ (the task root, /var/task on Lambda).
# Idempotent: npm runs again only when the lock file or the Node.js version changed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: build.sh OUTPUT_DIR}"
mkdir -p "$OUT/task"
OUT="$(cd "$OUT" && pwd)"

key="$(cat "$HERE/package.json" "$HERE/package-lock.json" <(node --version) | cksum | cut -d' ' -f1)"
if [[ "$(cat "$OUT/node_modules/.built" 2>/dev/null)" != "$key" ]]; then
    echo "build node runtime: aws-lambda-ric into $OUT/node_modules (compiles native code)"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$OUT/"
    # node-gyp downloads Node's headers unless told where they are; the machine's Node.js
    # ships them (include/node), and the download site is not reachable from every machine.
    node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
    if [[ -f "$node_prefix/include/node/node_api.h" ]]; then
        export npm_config_nodedir="$node_prefix"
    fi
    # The native build's makes run on every core (curl's own `make` is not parallel).
    MAKEFLAGS="-j$(nproc)" npm ci --prefix "$OUT" --no-audit --no-fund --loglevel=error
    echo "$key" > "$OUT/node_modules/.built"
fi
install -m 0755 "$HERE/bootstrap" "$OUT/bootstrap"
install -m 0644 "$HERE/index.mjs" "$OUT/task/index.mjs"
