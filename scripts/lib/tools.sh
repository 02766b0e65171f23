# shellcheck shell=bash
# Shared by the lint scripts (sourced, not run): timed steps and pinned tool venvs under .tools/.
# The sourcing script sets ROOT and PYTHON first; STEP_WIDTH pads step names in the timings.

now() { date +%s.%N; }
TIMINGS=()
step() { # step NAME CMD...: runs CMD, records its duration
    local name="$1"; shift
    local t0; t0="$(now)"
    echo "==> $name"
    "$@"
    local dt; dt="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
    TIMINGS+=("$(printf "%-${STEP_WIDTH:-40}s %6ss" "$name" "$dt")")
}

ensure_venv() { # ensure_venv DIR PIN...: (re)creates DIR unless its marker lists exactly PIN...
    local dir="$1"; shift
    local want="$*"
    if [[ -x "$dir/bin/python" && -f "$dir/.pins" && "$(cat "$dir/.pins")" == "$want" ]]; then
        return 0
    fi
    echo "    installing $want into ${dir#"$ROOT"/}"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    echo "$want" > "$dir/.pins"   # written last: an interrupted install is redone next time
}
