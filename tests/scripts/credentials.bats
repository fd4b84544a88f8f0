#!/usr/bin/env bats
# scripts/refresh-credentials.sh: a valid token and fresh certificates right before each join.

setup() {
  load helpers
  setup_machine
  export JOIN_NODE=c-worker-3 JOIN_ROLE=worker KUBECONFIG_PATH=/etc/kubernetes/admin.conf
  echo "$TOKEN" >"$HA_K8S_STAGE/bootstrap-token"
  printf 'certificateKey: %s\n' "$CERT_KEY" >"$HA_K8S_STAGE/kubeadm-upload-certs.yaml"
  # No token yet; apply stores what it receives on stdin.
  stub kubectl '
case "$*" in
  *"get --raw /readyz"*) echo ok ;;
  *"get secret"*) [ -f "$STATE/token-expiration" ] && base64 -w0 <"$STATE/token-expiration" || exit 1 ;;
  *"apply -f -"*) cat >"$STATE/applied.yaml"; grep -o "expiration: \"[^\"]*\"" "$STATE/applied.yaml" | cut -d\" -f2 >"$STATE/token-expiration" ;;
esac'
  stub kubeadm 'echo "[upload-certs] Using certificate key: '"$CERT_KEY"'"'
}

@test "issues the missing token through kubectl's stdin, never a command line" {
  run_script refresh-credentials.sh
  assert_success
  grep -q 'token-secret: "0123456789abcdef"' "$STATE/applied.yaml"
  grep -q 'token-id: "abcdef"' "$STATE/applied.yaml"
  grep -q 'type: bootstrap.kubernetes.io/token' "$STATE/applied.yaml"
  run grep -c "0123456789abcdef" "$CALLS"
  assert_output 0
}

@test "a second run keeps the still-valid token" {
  run_script refresh-credentials.sh
  : >"$CALLS"
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "keeping it"
  [ "$(count_calls 'apply')" -eq 0 ]
}

@test "a token expiring within the hour is renewed" {
  date -u -d "+20 minutes" +%Y-%m-%dT%H:%M:%SZ >"$STATE/token-expiration"
  run_script refresh-credentials.sh
  assert_success
  [ "$(count_calls 'apply -f -')" -eq 1 ]
}

@test "control planes also get the certificates re-uploaded, key from a file, output redacted" {
  JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  assert_call_order "^kubeadm init phase upload-certs --upload-certs --config $HA_K8S_STAGE/kubeadm-upload-certs.yaml"
  refute_output --partial "$CERT_KEY"
  run grep -c "$CERT_KEY" "$CALLS"
  assert_output 0
}

@test "workers do not touch the certificates" {
  run_script refresh-credentials.sh
  [ "$(count_calls '^kubeadm')" -eq 0 ]
}

@test "a malformed token is refused" {
  echo "not-a-token" >"$HA_K8S_STAGE/bootstrap-token"
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "malformed"
}

@test "an API that does not answer fails the step with the node's name" {
  stub kubectl 'exit 1'
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "cannot prepare the join of c-worker-3"
}
