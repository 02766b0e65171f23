#!/usr/bin/env bash
# Builds the Java 17 example runtime into the folder $1 (scripts/build-runtimes.sh passes
# .tools/runtimes/java), which is also the example function's task root (--task-root):
#   bootstrap        the entry point: starts the JVM (see its flags there)
#   runtime.jar      the runtime, htcgrid.runtime.* (JDK only, no Maven)
#   runtime.jsa      its class-data sharing archive, from a training run
#   lib/example.jar  the function's code, as Lambda finds it in $LAMBDA_TASK_ROOT/lib:
#                    example.OptionPricer and example.Handler
# Quick when nothing changed: a fingerprint of the sources, this script and the JDK decides.
set -euo pipefail

usage="usage: examples/runtimes/java/build.sh OUTPUT_DIR"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:?$usage}" && cd "$1" && pwd -P)"
for tool in java javac jar; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool not found: install a JDK 17 (Debian: openjdk-17-jdk-headless)" >&2
        exit 1
    }
done

fingerprint="$(
    cd "$here"
    { find build.sh bootstrap src -type f -print0 | sort -z | xargs -0 sha256sum
      java -version 2>&1; } | sha256sum
)"
if [[ -f "$out/.fingerprint" && "$(<"$out/.fingerprint")" == "$fingerprint" ]]; then
    echo "java runtime: up to date in $out"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mapfile -t runtime_sources < <(find "$here/src/htcgrid" -name '*.java')
mapfile -t example_sources < <(find "$here/src/example" -name '*.java')
javac --release 17 -Xlint:all -Werror -d "$work/runtime" "${runtime_sources[@]}"
javac --release 17 -Xlint:all -Werror -cp "$work/runtime" -d "$work/example" \
    "${example_sources[@]}"
rm -rf "${out:?}/lib" "$out/runtime.jsa" "$out/.fingerprint"
mkdir -p "$out/lib"
jar --create --file "$out/runtime.jar" -C "$work/runtime" .
jar --create --file "$out/lib/example.jar" -C "$work/example" .
install -m 755 "$here/bootstrap" "$out/bootstrap"
# The archive names runtime.jar by this path: the bootstrap's class path starts with the same.
java -XX:ArchiveClassesAtExit="$out/runtime.jsa" -XX:+UseSerialGC -XX:-UsePerfData \
    -Xlog:cds=error -cp "$out/runtime.jar" htcgrid.runtime.ArchiveTraining
echo "$fingerprint" >"$out/.fingerprint"
echo "java runtime: built in $out"
