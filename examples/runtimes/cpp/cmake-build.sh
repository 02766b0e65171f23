#!/usr/bin/env bash
# Configures and builds the CMake project in SOURCE_DIR into OUT_DIR: the build.sh of each C++
# runtime (this folder's and ../quantlib's) calls it. CMake keeps its cache in OUT_DIR, so a
# build with nothing changed takes well under a second.
#
# Usage: cmake-build.sh SOURCE_DIR OUT_DIR
set -euo pipefail

SOURCE="$(cd "${1:?usage: cmake-build.sh SOURCE_DIR OUT_DIR}" && pwd)"
mkdir -p "${2:?usage: cmake-build.sh SOURCE_DIR OUT_DIR}"
OUT="$(cd "$2" && pwd)"

# A cache made from another checkout (a moved or recloned repo) would make CMake refuse.
if [[ -f "$OUT/CMakeCache.txt" ]] &&
    ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$SOURCE" "$OUT/CMakeCache.txt"; then
    rm -rf "$OUT/CMakeCache.txt" "$OUT/CMakeFiles"
fi
cmake -S "$SOURCE" -B "$OUT" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$OUT" --parallel 2
