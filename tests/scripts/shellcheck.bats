#!/usr/bin/env bats
# shellcheck, with every warning, on all bash in the repository (rendered bundles: test:artifacts).

setup() { load helpers; }

@test "shellcheck finds nothing in scripts/, tools/, .ci/run, the test helpers, the control-plane stubs and tools, the lab" {
  cd "$REPO"
  run shellcheck -x scripts/*.sh tools/*.sh bench/*.sh .ci/run tests/scripts/*.bash tests/scripts/run.sh \
    tests/control-plane/run.sh tests/control-plane/machine-view.sh tests/control-plane/stubs/* \
    tests/cluster/run.sh tests/cluster/lab/*.sh tests/cluster/lab/packages/crio
  assert_success
  assert_output ""
}

@test "every machine script is strict and sources the shared library" {
  for script in "$SCRIPTS"/*.sh; do
    [ "$(basename "$script")" = lib.sh ] && continue
    grep -qE '^set -(euo|uo) pipefail$' "$script" || fail "$script: no 'set -euo pipefail'"
    grep -q '^\. "\$(dirname "\${BASH_SOURCE\[0\]}")/lib.sh"$' "$script" || fail "$script: does not source lib.sh"
  done
}
