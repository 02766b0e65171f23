#!/usr/bin/env bash
# Installs Prometheus (Debian's package) for `htcgrid-local up --monitoring` and the local
# monitoring tests, only when it is missing: apt-get, as root or through sudo. The package's
# service is not used (nothing here runs systemd): the local grid starts its own Prometheus, on
# a free port, with its own configuration and storage. `make prometheus` runs it; `make test`
# depends on it.
#
# Usage: scripts/install-prometheus.sh
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
echo "install-prometheus: installing Debian's prometheus package"
sudo_cmd=()
[[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null 2>&1 || {
    echo "install-prometheus: prometheus still not on PATH after apt-get" >&2
    exit 1
}
echo "install-prometheus: $(prometheus --version 2>&1 | head -1)"
