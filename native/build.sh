#!/usr/bin/env bash
# Builds the native engine and puts it at native/gsra_native.node. Idempotent and fast when
# nothing changed (cargo's own freshness check, then a byte compare before copying).
# Called by scripts/bootstrap.sh before every `npm test`, `npm run lab` and `npm run bench`.
#
# Why not `napi build`: @napi-rs/cli drives crates built on napi-rs/napi-derive (crates.io), and
# this crate deliberately has no dependencies (N-API is declared by hand in src/napi.rs). All the
# CLI would add here is "cargo build + copy", so we do exactly that.
#
#   GSRA_CARGO=/usr/bin/cargo bash native/build.sh     # build with another toolchain
#   bash native/build.sh --windows                      # cross-build gsra_native.win32-x64.node
#     (Debian's Rust + mingw-w64; node's N-API import library is made with dlltool from
#      node-api-headers' node_api.def, so the DLL imports its napi_* symbols from node.exe)
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = --windows ]; then
  implib=target/win-implib
  mkdir -p "$implib"
  def=../node_modules/node-api-headers/def/node_api.def
  if [ ! -f "$implib/libnode.a" ] || [ "$def" -nt "$implib/libnode.a" ]; then
    x86_64-w64-mingw32-dlltool -d "$def" -l "$implib/libnode.a" -D node.exe
  fi
  GSRA_NODE_IMPLIB_DIR="$PWD/$implib" CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --quiet --target x86_64-pc-windows-gnu --target-dir target/debian
  src=target/debian/x86_64-pc-windows-gnu/release/gsra_native.dll
  dst=gsra_native.win32-x64.node
  if ! cmp -s "$src" "$dst" 2>/dev/null; then
    cp "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
    echo "native/build.sh: built $dst" >&2
  fi
  exit 0
fi
cargo=${GSRA_CARGO:-}
if [ -z "$cargo" ]; then
  for c in "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" /root/.cargo/bin/cargo "$(command -v cargo || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then cargo=$c; break; fi
  done
fi
[ -n "$cargo" ] || { echo "native/build.sh: no cargo found" >&2; exit 1; }
target_dir=target
if [ "$cargo" = /usr/bin/cargo ]; then export RUSTC=/usr/bin/rustc; target_dir=target/debian; fi
"$cargo" build --release --quiet --target-dir "$target_dir"
src="$target_dir/release/libgsra_native.so"
dst=gsra_native.node
if ! cmp -s "$src" "$dst" 2>/dev/null; then
  cp "$src" "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
  echo "native/build.sh: built $dst" >&2
fi
