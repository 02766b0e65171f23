#!/usr/bin/env bash
# Builds the Python example runtime into $1 (scripts/build-runtimes.sh passes
# .tools/runtimes/python): a venv of its own holding awslambdaric as requirements.txt pins it,
# the bootstrap that runs it, and the handler in task/ (the task root, /var/task on Lambda).
# Idempotent: the venv is made again only when requirements.txt or the interpreter changed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: build.sh OUTPUT_DIR}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "build.sh: awslambdaric 4 needs Python 3.10 or later; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
mkdir -p "$OUT/task"
OUT="$(cd "$OUT" && pwd)"

# The venv is keyed on what goes into it: the pinned requirements and the interpreter.
key="$(cat "$HERE/requirements.txt" <("$PYTHON" -c 'import sys; print(sys.version)') | cksum | cut -d' ' -f1)"
if [[ "$(cat "$OUT/venv/.built" 2>/dev/null)" != "$key" ]]; then
    echo "build python runtime: awslambdaric into $OUT/venv"
    rm -rf "$OUT/venv"
    "$PYTHON" -m venv "$OUT/venv"
    # --require-hashes: every file installed is one requirements.txt names by its SHA-256.
    "$OUT/venv/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes \
        -r "$HERE/requirements.txt"
    echo "$key" > "$OUT/venv/.built"
fi
install -m 0755 "$HERE/bootstrap" "$OUT/bootstrap"
install -m 0644 "$HERE/app.py" "$OUT/task/app.py"
