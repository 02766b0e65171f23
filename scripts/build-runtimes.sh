#!/usr/bin/env bash
# Builds the example Lambda runtimes (examples/runtimes/*) that the agent's Runtime API path runs:
# installs the Debian packages each one lists in debian-packages.txt (apt-get, only those
# missing), then runs each one's build.sh, which writes into .tools/runtimes/<name>/ and is
# quick when nothing changed. `make runtimes` runs it; `make test` depends on it.
#
# Usage: scripts/build-runtimes.sh [name ...]     (default: every runtime)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.tools/runtimes"
mkdir -p "$OUT"

if [[ $# -gt 0 ]]; then
    names=("$@")
else
    names=()
    for dir in examples/runtimes/*/; do
        [[ -f "$dir/build.sh" ]] && names+=("$(basename "$dir")")
    done
fi

missing=()
for name in "${names[@]}"; do
    list="examples/runtimes/$name/debian-packages.txt"
    [[ -f "$list" ]] || continue
    while read -r package; do
        [[ -z "$package" || "$package" == \#* ]] && continue
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done < "$list"
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "build-runtimes: installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

for name in "${names[@]}"; do
    mkdir -p "$OUT/$name"
    bash "examples/runtimes/$name/build.sh" "$OUT/$name"
done
