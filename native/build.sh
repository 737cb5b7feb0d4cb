#!/usr/bin/env bash
# Builds the native engine with @napi-rs/cli (`napi build --platform`), which names the addon
# for its platform; native/index.ts loads the one for the running platform:
#   bash native/build.sh             -> native/gsra_native.linux-x64-gnu.node (rustup's cargo)
#   bash native/build.sh --windows   -> native/gsra_native.win32-x64-gnu.node (Debian's Rust 1.63
#     + libstd-rust-dev-windows + mingw-w64; node's N-API import library is made here with
#     dlltool from node-api-headers' node_api.def, so the DLL imports napi_* from node.exe)
# Called by scripts/bootstrap.sh before every `npm test`, `npm run lab` and `npm run bench`, and
# by scripts/build-win.sh. Idempotent and fast when nothing changed (cargo's freshness check;
# napi copies the result atomically, so a running process keeps its mapped copy).
#
# The crate has no napi-rs dependency (N-API is declared by hand in src/napi.rs): `napi build`
# drives it as a plain cdylib given `napi.binaryName` in native/package.json. It warns that
# napi-derive is absent (no .d.ts generated; native/index.ts is the typed API); that one line is
# filtered out.
#
#   GSRA_CARGO=/usr/bin/cargo bash native/build.sh     # Linux build with another toolchain
set -euo pipefail
cd "$(dirname "$0")"
napi=../node_modules/.bin/napi
[ -x "$napi" ] || { echo "native/build.sh: @napi-rs/cli is not installed (npm ci)" >&2; exit 1; }
quiet() { grep -v -e 'napi-derive. crate is not used' -e '^\s*Finished' -e '^\s*$' >&2 || true; }

if [ "${1:-}" = --windows ]; then
  implib=target/win-implib
  mkdir -p "$implib"
  def=../node_modules/node-api-headers/def/node_api.def
  if [ ! -f "$implib/libnode.a" ] || [ "$def" -nt "$implib/libnode.a" ]; then
    # Atomically: two builds may run at once (the Windows tests build in parallel).
    x86_64-w64-mingw32-dlltool -d "$def" -l "$implib/libnode.a.$$" -D node.exe
    mv -f "$implib/libnode.a.$$" "$implib/libnode.a"
  fi
  # Debian's cargo/rustc (the Windows std comes from libstd-rust-dev-windows): first on PATH,
  # because napi runs `cargo metadata` from PATH.
  PATH=/usr/bin:$PATH CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc GSRA_NODE_IMPLIB_DIR="$PWD/$implib" \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    "$napi" build --platform --release --strip --no-js --target x86_64-pc-windows-gnu \
    --target-dir target/debian 2>&1 | quiet
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
PATH="$(dirname "$cargo"):$PATH" CARGO=$cargo "$napi" build --platform --release --no-js \
  --target-dir "$target_dir" 2>&1 | quiet
