#!/usr/bin/env bash
# Runs after a node joined and waits until its Node is Ready and, for a control plane, until etcd
# lists it as a started voting member and every member is healthy. For a control plane it runs on
# the first control plane (admin credentials, the local etcd); the next control plane joins only
# after it (etcd admits one learner at a time). For a worker it runs on the worker itself with the
# kubelet's credentials (KUBECONFIG_PATH=/etc/kubernetes/kubelet.conf), which may read its own Node
# (the Node authorizer), so hundreds of workers put no load on a control plane's SSH.
#
# Inputs (environment): MEMBER_NODE, MEMBER_ROLE (control-plane|worker), MEMBER_IP, KUBECONFIG_PATH.
#
# Safe to run again: it only reads. Its delete-time counterpart is member-remove.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env MEMBER_NODE MEMBER_ROLE MEMBER_IP KUBECONFIG_PATH

node_ready() { kctl wait --for=condition=Ready --timeout=5s "node/$MEMBER_NODE"; }
# "<id>, started, <name>, https://<ip>:2380, <client urls>, false" - a started voter (not a learner).
etcd_voter() { etcdctl_local member list | grep -Eq "^[0-9a-f]+, started, [^,]+, https://${MEMBER_IP//./\\.}:2380, .*, false$"; }
etcd_healthy() { etcdctl_local endpoint health --cluster; }

wait_until 120 "$MEMBER_NODE to be Ready" node_ready || die "$MEMBER_NODE did not become Ready"
if [ "$MEMBER_ROLE" = control-plane ]; then
  wait_until 60 "$MEMBER_NODE to be a started etcd voting member" etcd_voter ||
    die "$MEMBER_NODE ($MEMBER_IP) is not a started voting etcd member"
  wait_until 24 "every etcd member to be healthy" etcd_healthy || die "etcd is not healthy after $MEMBER_NODE joined"
fi
log "$MEMBER_NODE is Ready$([ "$MEMBER_ROLE" = control-plane ] && echo " and a healthy etcd member")"
