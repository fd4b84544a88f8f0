#!/usr/bin/env bats
# scripts/lib.sh's add_apt_repo: the repository's key, downloaded or the one the configuration pins
# (kubernetesPackageKey, crioPackageKey, staged by the step), dearmored by the real gpg.

setup() {
  load helpers
  setup_machine
  stub_downloads
  KEY="$REPO/tests/artifacts/fixtures/openpgp-public-key.asc"
  URL=https://apt.example.com/pkgs-k8s/core:/stable:/v1.36/deb/
  export GNUPGHOME="$BATS_TEST_TMPDIR/gnupg" # gpg's own home, never the user's
  mkdir -m 700 "$GNUPGHOME"
}

# add_apt <args...>: add_apt_repo in a shell that sourced lib.sh; prints its exit status last.
add_apt() {
  run bash -c '. "$1/lib.sh"; shift; rc=0; add_apt_repo "$@" || rc=$?; echo "rc=$rc"' _ "$SCRIPTS" "$@"
}

@test "a configured key: installed dearmored (real gpg), and Release.key is never downloaded" {
  rm "$STUBS/gpg"
  add_apt kubernetes "$URL" "$KEY"
  assert_success
  assert_output --partial "the kubernetes repository's key is the configured one (not downloading ${URL}Release.key)"
  assert_line "rc=0" # changed: an apt-get update is due
  [ "$(count_calls '^curl')" -eq 0 ]
  cmp <(gpg --batch --dearmor <"$KEY") "$HA_K8S_ROOT/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
  assert_equal "$(stat -c %a "$HA_K8S_ROOT/etc/apt/keyrings/kubernetes-apt-keyring.gpg")" 644
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/sources.list.d/kubernetes.list")" \
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $URL /"
  # The same key again: nothing changed, no update due.
  add_apt kubernetes "$URL" "$KEY"
  assert_line "rc=1"
}

@test "no configured key: <url>Release.key is downloaded and dearmored, as before" {
  add_apt cri-o "$URL" ""
  assert_success
  assert_line "rc=0"
  assert_call_order "^curl -fsSL .* ${URL}Release.key -o " "^gpg --batch --yes --dearmor -o "
  refute_output --partial "configured one"
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/keyrings/cri-o-apt-keyring.gpg")" dearmored
}

@test "a configured key that gpg cannot read stops with a clear message" {
  rm "$STUBS/gpg"
  echo "not a key" >"$BATS_TEST_TMPDIR/bad.asc"
  add_apt kubernetes "$URL" "$BATS_TEST_TMPDIR/bad.asc"
  assert_failure
  assert_output --partial "the kubernetes repository key is not an ASCII-armored OpenPGP key"
  [ ! -e "$HA_K8S_ROOT/etc/apt/sources.list.d/kubernetes.list" ]
  [ "$(count_calls '^curl')" -eq 0 ]
}

@test "staged_if_present: the staged file's path when the step staged it, nothing otherwise" {
  touch "$HA_K8S_STAGE/kubernetes-release.key"
  run bash -c '. "$1/lib.sh"; echo "[$(staged_if_present kubernetes-release.key)] [$(staged_if_present cri-o-release.key)]"' _ "$SCRIPTS"
  assert_success
  assert_output "[$HA_K8S_STAGE/kubernetes-release.key] []"
}
