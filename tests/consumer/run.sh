#!/usr/bin/env bash
# Installs the built tapegrad into a scratch prefix and builds + runs the consumer against it.
set -euo pipefail
build="$1"; src="$2"; scratch="$3"
rm -rf "$scratch" && mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" "${launcher[@]}" >/dev/null
cmake --build "$scratch/build" >/dev/null
"$scratch/build/consumer"
