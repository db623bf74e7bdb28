#!/usr/bin/env bash
# tapegrad's package as an outside project meets it. Usage: run.sh MODE SOURCE BUILD SCRATCH CXX
#   build-tree    the consumer (tests/consumer) against -Dtapegrad_DIR=BUILD, and the same code
#                 compiled for other SIMD flags refused at compile time by tapegrad_arch.hpp
#   install       the consumer against an install, then against that install moved elsewhere
#   library-only  a library-only configure with CLI11 and stb hidden succeeds; a full one fails
#                 naming the Debian package of what is missing
#   subproject    add_subdirectory(tapegrad) generates only the library targets
# Configures only where nothing has to run, and reuses the libraries BUILD already holds.
set -euo pipefail
mode="$1" src="$2" build="$3" scratch="$4" cxx="$5"
here="$src/tests/consumer"
rm -rf "$scratch" && mkdir -p "$scratch"
cmake_args=(-G Ninja -DCMAKE_CXX_COMPILER="$cxx")
command -v ccache >/dev/null && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fail() { echo "FAIL: $*" >&2; exit 1; }
mentions() { tr -s ' \n' '  ' <"$2" | grep -qF "$1"; }  # TEXT FILE, across CMake's line breaks

consumer() {  # BUILD_DIR CMAKE_ARGS...: configures, builds and runs tests/consumer
  local dir="$1"
  shift
  cmake -S "$here" -B "$dir" "${cmake_args[@]}" "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; fail "configure of the consumer"; }
  cmake --build "$dir" >>"$dir.log" 2>&1 || { cat "$dir.log"; fail "build of the consumer"; }
  "$dir/consumer"
}

# Packages of pkg-config's search path but stb, for a configure that must not need it.
hide_stb() {
  local pc_dir dir pc
  pc_dir="$scratch/pkgconfig-without-stb"
  mkdir -p "$pc_dir"
  IFS=: read -r -a dirs <<<"$(pkg-config --variable pc_path pkg-config)"
  for dir in "${dirs[@]}"; do
    for pc in "$dir"/*.pc; do
      [ -e "$pc" ] && [ "$(basename "$pc")" != stb.pc ] && ln -sf "$pc" "$pc_dir/"
    done
  done
  export PKG_CONFIG_LIBDIR="$pc_dir"
  ! pkg-config --exists stb || fail "stb is still visible to pkg-config"
}

case "$mode" in
build-tree)
  consumer "$scratch/build" -Dtapegrad_DIR="$build"
  if cmake --build "$scratch/build" --target other_arch >"$scratch/other_arch.log" 2>&1; then
    fail "code compiled for other SIMD flags than tapegrad's was accepted"
  fi
  grep -o 'error: #error "tapegrad was built with [^(]*' "$scratch/other_arch.log" | head -n 1 ||
    { cat "$scratch/other_arch.log"; fail "the other-SIMD build failed, but not with tapegrad_arch.hpp's message"; }
  echo "consumer ok: build tree; other SIMD flags refused"
  ;;
install)
  cmake --install "$build" --prefix "$scratch/first" >/dev/null
  consumer "$scratch/build-first" -DCMAKE_PREFIX_PATH="$scratch/first"
  # Moved: what a package manager or a copy to another machine does to an install.
  cp -a "$scratch/first" "$scratch/moved"
  rm -rf "$scratch/first"
  if grep -rlE --include='*.cmake' --include='*.hpp' "$build|$src|openblas-pthread" "$scratch/moved"; then
    fail "the install above names a path of the machine that built it"
  fi
  consumer "$scratch/build-moved" -DCMAKE_PREFIX_PATH="$scratch/moved"
  echo "consumer ok: install, and install moved to another prefix"
  ;;
library-only)
  hide_stb
  cmake -S "$src" -B "$scratch/library" "${cmake_args[@]}" -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF \
    -DTAPEGRAD_BUILD_BENCH=OFF -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON >"$scratch/library.log" 2>&1 ||
    { cat "$scratch/library.log"; fail "the library-only configure needs CLI11 or stb"; }
  if cmake -S "$src" -B "$scratch/no-cli11" "${cmake_args[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON >"$scratch/no-cli11.log" 2>&1; then
    fail "a configure with the tests passed without CLI11"
  fi
  mentions "install the Debian package libcli11-dev" "$scratch/no-cli11.log" || { cat "$scratch/no-cli11.log"; fail "no libcli11-dev in the message"; }
  if cmake -S "$src" -B "$scratch/no-stb" "${cmake_args[@]}" >"$scratch/no-stb.log" 2>&1; then
    fail "a configure with the tests passed without stb"
  fi
  mentions "install the Debian package libstb-dev" "$scratch/no-stb.log" || { cat "$scratch/no-stb.log"; fail "no libstb-dev in the message"; }
  echo "consumer ok: library-only configure without CLI11 and stb; missing ones named by Debian package"
  ;;
subproject)
  cmake -S "$here/subproject" -B "$scratch/subproject" "${cmake_args[@]}" -DTAPEGRAD_SOURCE_DIR="$src" \
    >"$scratch/subproject.log" 2>&1 || { cat "$scratch/subproject.log"; fail "configure of the subproject"; }
  # Every program and library the generated build can link, whether `all` builds it or not.
  linked="$(ninja -C "$scratch/subproject" -t targets all | sed -n 's/: CXX_[A-Z_]*_LINKER.*//p' | sort | tr '\n' ' ')"
  [ "$linked" = "consumer tapegrad/libtapegrad.a tapegrad/libtapegrad_datasets.a " ] ||
    fail "add_subdirectory(tapegrad) builds more or less than the library: $linked"
  echo "consumer ok: add_subdirectory builds only the library"
  ;;
*) fail "unknown mode $mode" ;;
esac
