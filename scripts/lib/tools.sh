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

# `sam build` and the lock files need CPython 3.12 (the Lambda runtime's) on PATH. A pyenv shim
# exists for every installed version but fails unless that version is selected, so probe it.
ensure_python312() {
    if python3.12 -c '' >/dev/null 2>&1; then return 0; fi
    local candidate
    for candidate in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin; do
        if [[ -x "$candidate/python3.12" ]]; then
            export PATH="$candidate:$PATH"
            return 0
        fi
    done
    echo "python3.12 not found: install it (e.g. pyenv install 3.12)" >&2
    return 1
}
