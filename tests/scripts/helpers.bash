# Shared setup for the script tests: every script runs for real (bash), against a temporary root
# (HA_K8S_ROOT) and stub system commands first on PATH. Each stub appends its name and arguments to
# $CALLS, and does what the test told it to (default: succeed silently).
# shellcheck shell=bash disable=SC2154 # BATS_TEST_TMPDIR, status and output come from bats

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

REPO="$(cd "$(dirname "${BATS_TEST_FILENAME}")/../.." && pwd)"
SCRIPTS="$REPO/scripts"

# shellcheck source=tests/scripts/stubs.bash
. "$REPO/tests/scripts/stubs.bash"

setup_machine() {
  export MACHINE_DIR="$BATS_TEST_TMPDIR"
  stub_machine
}

# run_script <name>: runs scripts/<name> with bats' run.
run_script() { run bash "$SCRIPTS/$1"; }

# Fails unless calls matching the regexes appear in this order (each after the previous match).
assert_call_order() {
  local previous=0 line regex
  for regex in "$@"; do
    line="$(grep -nE -e "$regex" "$CALLS" | cut -d: -f1 | awk -v after="$previous" '$1 > after' | head -n 1)"
    [ -n "$line" ] || fail "no call matching '$regex' after call $previous; calls:"$'\n'"$(cat -n "$CALLS")"
    previous="$line"
  done
}

# The deployer's machine for tools/deploy.sh and destroy.sh: a temporary HOME, stub folder and call
# log, none of the deployer's environment (a laptop, not CI: the CI tests set those themselves), and
# a project folder (PROJECT_COPY) whose tools/setup.sh only records that it ran.
setup_deployer() {
  export MACHINE_DIR="$BATS_TEST_TMPDIR"
  export CALLS="$MACHINE_DIR/calls.log" STATE="$MACHINE_DIR/state" STUBS="$MACHINE_DIR/bin"
  export HOME="$MACHINE_DIR/home" CLOUDSDK_CONFIG="$MACHINE_DIR/home/gcloud"
  mkdir -p "$STATE" "$STUBS" "$HOME"
  : >"$CALLS"
  unset PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE GOOGLE_CREDENTIALS GOOGLE_APPLICATION_CREDENTIALS \
    PULUMI_PARALLEL GOOGLE_PROJECT GOOGLE_CLOUD_PROJECT GCLOUD_PROJECT CLOUDSDK_CORE_PROJECT CI GITHUB_ACTIONS
  PROJECT_COPY="$MACHINE_DIR/project"
  mkdir -p "$PROJECT_COPY/tools"
  # shellcheck disable=SC2016 # the stub's text, expanded when it runs
  echo 'echo "setup $HA_K8S_SETUP_APT" >>"$CALLS"' >"$PROJECT_COPY/tools/setup.sh"
}
