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
# Inputs (environment): JOIN_NODE, JOIN_ROLE (control-plane|worker), KUBECONFIG_PATH, TOKEN_TTL_HOURS;
#   for control planes JOIN_IP and JOIN_INSTANCE_ID (the GCE instance id of the machine about to join).
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

wait_until 24 "the API" kctl get --raw /readyz || die "the API does not answer; cannot prepare the join of $JOIN_NODE"
issue_bootstrap_token "$TOKEN_FILE" "$TOKEN_TTL_HOURS" "$JOIN_NODE"

if [ "$JOIN_ROLE" = control-plane ]; then
  require_env JOIN_IP JOIN_INSTANCE_ID
  # A lost machine's member goes before its rebuilt machine joins (remove_lost_member, lib.sh).
  remove_lost_member etcdctl_local "$JOIN_NODE" "$JOIN_IP" "$JOIN_INSTANCE_ID"
  current="$HA_K8S_STAGE/kubeadm-upload-certs.current.yaml"
  kubeadm_config_now "$(staged kubeadm-upload-certs.yaml)" "$current"
  log "re-uploading control-plane certificates for $JOIN_NODE; output redacted"
  rc=0
  run_redacted kubeadm init phase upload-certs --upload-certs --config "$current" --skip-certificate-key-print || rc=$?
  rm -f "$current"
  [ "$rc" -eq 0 ] || die "kubeadm could not upload the control-plane certificates"
  uid="$(kctl -n kube-system get secret "bootstrap-token-$BOOTSTRAP_TOKEN_ID" -o jsonpath='{.metadata.uid}')" ||
    die "cannot read the bootstrap token's Secret to tie the certificates to it"
  [ -n "$uid" ] || die "the bootstrap token's Secret has no uid"
  log "tying the uploaded certificates to bootstrap token $BOOTSTRAP_TOKEN_ID (instead of kubeadm's 2-hour token)"
  kctl -n kube-system patch secret kubeadm-certs --type=merge -p "{\"metadata\":{\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"name\":\"bootstrap-token-$BOOTSTRAP_TOKEN_ID\",\"uid\":\"$uid\",\"controller\":true}]}}" >/dev/null ||
    die "cannot re-tie the kubeadm-certs Secret to bootstrap token $BOOTSTRAP_TOKEN_ID"
fi
log "join credentials ready for $JOIN_NODE ($JOIN_ROLE)"
