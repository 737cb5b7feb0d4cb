#!/usr/bin/env bash
# The Node.js runtime GSRA runs on: the machine's own `node` when it meets package.json's
# engines.node (Node 24 LTS or 22), otherwise the Node 24 that scripts/install-node.sh brought
# into .runtime/node/ from the npm registry.
#
# Sourced (scripts/bootstrap.sh, scripts/test.sh): `gsra_use_runtime` puts that runtime first on
# PATH, so everything started from then on runs on it: npm and npx, tsc, eslint, tap and the test
# files, tsx, the daemons and every `node` the tests spawn (they inherit PATH, also through
# `ip netns exec`; tap runs test files with its own process.execPath).
# Executed with a command (package.json's lab and bench scripts): runs the command on it.
#   bash scripts/runtime.sh tsx test/lab/main.ts

gsra_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GSRA_RUNTIME_DIR=$gsra_root/.runtime/node
# The one place the minimum is written: package.json's "engines": { "node": ">=X.Y" }.
GSRA_NODE_MIN=$(sed -nE 's/^ *"node": *">=([0-9]+(\.[0-9]+){0,2})".*/\1/p' "$gsra_root/package.json" | head -1)

# gsra_version_ge A B: dotted version A >= B.
gsra_version_ge() {
  local IFS=. i
  local -a a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  for i in 0 1 2; do
    if ((${a[i]:-0} > ${b[i]:-0})); then return 0; fi
    if ((${a[i]:-0} < ${b[i]:-0})); then return 1; fi
  done
  return 0
}

# gsra_node_ok NODE: NODE runs and is at least the minimum.
gsra_node_ok() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  gsra_version_ge "${v#v}" "$GSRA_NODE_MIN"
}

# The machine's own node: the first on PATH, not counting .runtime/node/bin (which a caller that
# already ran gsra_use_runtime has put there).
gsra_machine_node() {
  local p
  p=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$GSRA_RUNTIME_DIR/bin" | paste -sd:)
  PATH=$p command -v node || true
}

# Put the runtime first on PATH (nothing to do when the machine's node is recent enough).
gsra_use_runtime() {
  if [ -z "$GSRA_NODE_MIN" ]; then
    echo "runtime: no \"node\": \">=X.Y\" in package.json's engines" >&2
    return 1
  fi
  local machine
  machine=$(gsra_machine_node)
  if [ -n "$machine" ] && gsra_node_ok "$machine"; then return 0; fi
  if ! gsra_node_ok "$GSRA_RUNTIME_DIR/bin/node"; then
    echo "runtime: this machine's node (${machine:-none}: $("${machine:-false}" --version 2>/dev/null || echo -)) is" \
      "older than $GSRA_NODE_MIN and .runtime/node/ has no Node: run scripts/bootstrap.sh" >&2
    return 1
  fi
  case ":$PATH:" in
    ":$GSRA_RUNTIME_DIR/bin:"*) ;;
    *) PATH=$GSRA_RUNTIME_DIR/bin:$PATH ;;
  esac
  export PATH
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  gsra_use_runtime
  [ $# -gt 0 ] || { echo "usage: bash scripts/runtime.sh COMMAND [ARG...]" >&2; exit 2; }
  exec "$@"
fi
