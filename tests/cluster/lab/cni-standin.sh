#!/usr/bin/env bash
# The real-cluster tier's stand-in for the cni step (install-cni.sh installs Calico, which cannot
# run here: no Calico release is served by the Go module proxy, and its images cannot be pulled).
# Run by the tier's engine in the cni step's place, in the same bundle form, on the first control
# plane. It installs a plain bridge plus routes instead: a DaemonSet on the host network whose agent
# (labtool cni-node) gives each node a bridge for its pod CIDR and routes to the others', as kind's
# kindnet does. And, as kind does for its nodes, kube-proxy is told to leave the conntrack table's
# size alone: a machine's network namespace cannot set nf_conntrack_max (the kernel allows it in the
# host's namespace only), and kube-proxy stops when it cannot (pkg/proxy/conntrack/sysctls.go).
#
# Inputs (environment): NODE_NAME, KUBECONFIG_PATH, CNI_IMAGE, API_HOST, API_PORT.
# Safe to run again: server-side apply of the same objects, the kube-proxy change made once.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME KUBECONFIG_PATH CNI_IMAGE API_HOST API_PORT

config="$(kctl -n kube-system get configmap kube-proxy -o jsonpath='{.data.config\.conf}')"
if grep -q '^  maxPerCore: null$' <<<"$config"; then
  log "kube-proxy: conntrack.maxPerCore 0 (leave nf_conntrack_max to the host)"
  patched="${config/$'\n'  maxPerCore: null$'\n'/$'\n'  maxPerCore: 0$'\n'}"
  kctl -n kube-system patch configmap kube-proxy --type merge \
    -p "$(jq -n --arg c "$patched" '{data: {"config.conf": $c}}')" >&2
  kctl -n kube-system rollout restart daemonset/kube-proxy >&2
fi

log "applying the bridge-and-routes DaemonSet ($CNI_IMAGE)"
kctl apply --server-side --force-conflicts -f - >&2 <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: lab-cni, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: lab-cni}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: lab-cni}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: lab-cni}
subjects:
- {kind: ServiceAccount, name: lab-cni, namespace: kube-system}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: lab-cni, namespace: kube-system, labels: {app: lab-cni}}
spec:
  selector: {matchLabels: {app: lab-cni}}
  template:
    metadata: {labels: {app: lab-cni}}
    spec:
      serviceAccountName: lab-cni
      hostNetwork: true
      priorityClassName: system-node-critical
      tolerations: [{operator: Exists}]
      containers:
      - name: cni-node
        image: $CNI_IMAGE
        args: [cni-node]
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        # The API at the endpoint, not the kubernetes Service: no Service works before a network.
        - {name: KUBERNETES_SERVICE_HOST, value: "$API_HOST"}
        - {name: KUBERNETES_SERVICE_PORT, value: "$API_PORT"}
        securityContext: {privileged: true}
        volumeMounts:
        - {name: cni-conf, mountPath: /host/etc/cni/net.d}
      volumes:
      - name: cni-conf
        hostPath: {path: /etc/cni/net.d, type: DirectoryOrCreate}
YAML

wait_until 120 "$NODE_NAME to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" ||
  die "$NODE_NAME did not become Ready after the network came up"
log "the bridge-and-routes network is up; $NODE_NAME is Ready"
