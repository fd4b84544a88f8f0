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

# member_answers <address>: the etcd member there answers its health endpoint, asked with the
# kubeadm-made healthcheck-client certificate.
# shellcheck disable=SC2317 # called through retry
member_answers() {
  curl -sf --max-time 5 --cacert "$(root_path /etc/kubernetes/pki/etcd/ca.crt)" \
    --cert "$(root_path /etc/kubernetes/pki/etcd/healthcheck-client.crt)" \
    --key "$(root_path /etc/kubernetes/pki/etcd/healthcheck-client.key)" "https://$1:2379/health" >/dev/null
}

# A control plane rebuilt after its VM was lost (pulumi up --refresh creates it again, at the same
# address) finds its old etcd member still listed, and kubeadm join does not add a member whose peer
# URL is listed: it starts the new, empty etcd as that old member (addMember in
# cmd/kubeadm/app/util/etcd/etcd.go, v1.36.3: "The peer URL ... already exists. Skipping etcd member
# addition"), which the cluster's log no longer fits. So the lost machine's member is removed here,
# from this healthy control plane, before the join, and only when everything says it is the lost
# one's: its endpoint does not answer, and the Node of that name is absent or records another
# instance than the one about to join. A control plane that is only down (same instance: its
# member comes back with its data) and a live member are left alone.
remove_lost_member() {
  local peer="https://$JOIN_IP:2380" members member_id state recorded out
  members="$(retry 3 etcdctl_local member list)" ||
    die "cannot list etcd's members on this control plane; cannot prepare the join of $JOIN_NODE"
  member_id="$(grep -F "$peer," <<<"$members" | cut -d, -f1 | head -n 1 || true)"
  if [ -z "$member_id" ]; then
    log "no etcd member at $peer: $JOIN_NODE joins as a new member"
    return 0
  fi
  state="$(node_instance "$JOIN_NODE")" ||
    die "cannot read the Node $JOIN_NODE ($state), so cannot tell whether etcd member $member_id at $peer is a lost machine's"
  recorded=""
  [ "$state" = absent ] || recorded="${state#present }"
  if [ "$state" != absent ] && [ "$recorded" = "$JOIN_INSTANCE_ID" ]; then
    log "etcd member $member_id is $JOIN_NODE's own (its Node records instance $JOIN_INSTANCE_ID): keeping it"
    return 0
  fi
  # A live member must never be taken for a lost one because of one slow answer: three tries.
  if retry 3 member_answers "$JOIN_IP"; then
    if [ -z "$recorded" ]; then
      # A live member whose Node records no instance (it joined before ids were recorded) or has
      # none yet (an earlier join of this machine that stopped half-way): it is not a lost one.
      log "etcd member $member_id at $peer answers and its Node records no other instance: keeping it"
      return 0
    fi
    die "etcd member $member_id at $peer answers, yet the Node $JOIN_NODE is instance $recorded, not instance $JOIN_INSTANCE_ID about to join: refusing to remove a live member; find out which machine answers at $JOIN_IP"
  fi
  if [ "$state" != absent ] && [ -z "$recorded" ]; then
    die "etcd member $member_id at $peer does not answer and its Node $JOIN_NODE records no $INSTANCE_ANNOTATION (joined before ids were recorded): cannot tell a lost machine from a stopped one; if $JOIN_NODE's machine is lost, remove the member on a control plane (etcdctl member remove $member_id) and run pulumi up again; if it is only stopped, start it"
  fi
  log "removing etcd member $member_id of the lost $JOIN_NODE (${recorded:+instance $recorded, }not answering) before instance $JOIN_INSTANCE_ID joins at $peer"
  if ! out="$(retry 4 etcdctl_local member remove "$member_id" 2>&1)" && ! grep -q "member not found" <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "etcd did not remove the lost member $member_id of $JOIN_NODE (without a quorum of the others it cannot: restore etcd first, docs/operating.md \"Restore etcd\")"
  fi
  log "etcd member $member_id removed; $JOIN_NODE joins as a new member"
}

if [ "$JOIN_ROLE" = control-plane ]; then
  require_env JOIN_IP JOIN_INSTANCE_ID
  remove_lost_member
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
