#!/usr/bin/env bash
# npm run test:scripts: the bats suites (which also run shellcheck). Needs Debian's bats,
# bats-assert, bats-support and shellcheck: in CI their absence fails; elsewhere it skips loudly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
missing=()
command -v bats >/dev/null || missing+=(bats)
command -v shellcheck >/dev/null || missing+=(shellcheck)
[ -f /usr/lib/bats/bats-assert/load.bash ] || missing+=(bats-assert)
[ -f /usr/lib/bats/bats-support/load.bash ] || missing+=(bats-support)
# login.bats starts real OpenSSH servers on loopback.
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null || missing+=(openssh-server)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test:scripts: missing Debian packages: ${missing[*]} (tools/setup.sh installs them)" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  echo "SKIPPING the script tests outside CI" >&2
  exit 0
fi
exec bats "$@" tests/scripts
