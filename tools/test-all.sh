#!/usr/bin/env bash
# The one test command (npm test): sets up what is missing (tools/setup.sh), then runs every suite.
# Suites that need a real tool (haproxy, shellcheck, bats, kubeadm, etcd, fake-gcs-server, systemd-analyze,
# the control-plane binaries, the lab's machines and root) run in CI (CI=true) or fail;
# outside CI a missing tool makes its suite skip loudly, naming the package to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tools/setup.sh
. tools/setup.sh
# haproxy and sshd live in /usr/sbin, which a non-root user's PATH may lack on Debian.
export PATH="$PATH:/usr/sbin:/sbin"

suites=(lint typecheck test:unit test:scripts test:lb test:backup test:artifacts test:control-plane test:cluster test:cluster-upgrade)
failed=()
durations=()
for suite in "${suites[@]}"; do
  printf '\n==> npm run %s\n' "$suite"
  started=$SECONDS
  if ! npm run --silent "$suite"; then failed+=("$suite"); fi
  durations+=("$suite $((SECONDS - started))s")
done
printf '\nsuite durations:'
printf ' %s;' "${durations[@]}"
printf '\n'
printf '\n'
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED suites: %s\n' "${failed[*]}"
  exit 1
fi
printf 'all suites passed: %s\n' "${suites[*]}"
