#!/usr/bin/env bash
# Runs on a live control plane right before another node joins: makes sure the bootstrap token is
# valid and, for a control-plane join, re-uploads the control-plane certificates.
#
# The join credentials stay valid until the verification at the end of a deployment revokes them
# (verify.sh), not for a fixed two hours: a join that failed and is retried by a later `pulumi up`
# must find them again, and Pulumi re-runs only the failed join, not this step. So the token lives
# TOKEN_TTL_HOURS, and the uploaded certificates (kubeadm ties the kubeadm-certs Secret to a 2-hour
# token of its own, through an ownerReference that the garbage collector follows: kubeadm's
# phases/copycerts) are re-tied to our token, so they live exactly as long as it does.
#
# Inputs (environment): JOIN_NODE, JOIN_ROLE (control-plane|worker), KUBECONFIG_PATH, TOKEN_TTL_HOURS.
# Inputs (staged files): bootstrap-token (secret); for control planes kubeadm-upload-certs.yaml
#   (an InitConfiguration carrying the certificate key; secret).
#
# The token is written as its kube-system Secret through kubectl's stdin, so it never appears in a
# command line or a log. Safe to run again: a token with more than a seventh of its life left is kept; the
# certificate upload and the owner change are idempotent.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env JOIN_NODE JOIN_ROLE KUBECONFIG_PATH TOKEN_TTL_HOURS
TOKEN_FILE="$(staged bootstrap-token)"
TOKEN="$(tr -d '[:space:]' <"$TOKEN_FILE")"
[[ "$TOKEN" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "the staged bootstrap token is malformed"
TOKEN_ID="${TOKEN%%.*}"
TOKEN_SECRET="${TOKEN#*.}"
TTL=$((TOKEN_TTL_HOURS * 3600))
MIN_REMAINING=$((TTL / 7))

wait_until 24 "the API" kctl get --raw /readyz || die "the API does not answer; cannot prepare the join of $JOIN_NODE"

remaining=-1
expiration="$(kctl -n kube-system get secret "bootstrap-token-$TOKEN_ID" -o jsonpath='{.data.expiration}' 2>/dev/null | base64 -d 2>/dev/null || true)"
if [ -n "$expiration" ]; then
  remaining=$(($(date -u -d "$expiration" +%s) - $(date -u +%s)))
fi
if [ "$remaining" -gt "$MIN_REMAINING" ]; then
  log "bootstrap token $TOKEN_ID valid for another $((remaining / 3600)) h; keeping it"
else
  log "bootstrap token $TOKEN_ID missing or expiring: issuing it for $TOKEN_TTL_HOURS h (until verification revokes it) for $JOIN_NODE"
  kctl apply -f - >/dev/null <<YAML || die "cannot write the bootstrap token"
apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-$TOKEN_ID
  namespace: kube-system
type: bootstrap.kubernetes.io/token
stringData:
  description: "ha-k8s: join of $JOIN_NODE"
  token-id: "$TOKEN_ID"
  token-secret: "$TOKEN_SECRET"
  expiration: "$(date -u -d "@$(($(date -u +%s) + TTL))" +%Y-%m-%dT%H:%M:%SZ)"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
YAML
fi

if [ "$JOIN_ROLE" = control-plane ]; then
  # The staged configuration names the version the cluster was created with (it must not change
  # when the cluster is upgraded); kubeadm refuses one more than a minor older than itself, so the
  # copy it reads names kubeadm's own version. The copy holds the certificate key: root-only, removed.
  current="$HA_K8S_STAGE/kubeadm-upload-certs.current.yaml"
  kubeadm_version="$(kubeadm version -o short)" || die "cannot read kubeadm's version"
  sed "s/^kubernetesVersion: .*/kubernetesVersion: $kubeadm_version/" "$(staged kubeadm-upload-certs.yaml)" >"$current"
  log "re-uploading control-plane certificates for $JOIN_NODE (kubeadm $kubeadm_version); output redacted"
  rc=0
  run_redacted kubeadm init phase upload-certs --upload-certs --config "$current" --skip-certificate-key-print || rc=$?
  rm -f "$current"
  [ "$rc" -eq 0 ] || die "kubeadm could not upload the control-plane certificates"
  uid="$(kctl -n kube-system get secret "bootstrap-token-$TOKEN_ID" -o jsonpath='{.metadata.uid}')" ||
    die "cannot read the bootstrap token's Secret to tie the certificates to it"
  [ -n "$uid" ] || die "the bootstrap token's Secret has no uid"
  log "tying the uploaded certificates to bootstrap token $TOKEN_ID (instead of kubeadm's 2-hour token)"
  kctl -n kube-system patch secret kubeadm-certs --type=merge -p "{\"metadata\":{\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"name\":\"bootstrap-token-$TOKEN_ID\",\"uid\":\"$uid\",\"controller\":true}]}}" >/dev/null ||
    die "cannot re-tie the kubeadm-certs Secret to bootstrap token $TOKEN_ID"
fi
log "join credentials ready for $JOIN_NODE ($JOIN_ROLE)"
