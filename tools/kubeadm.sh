#!/usr/bin/env bash
# Prints the path of a real kubeadm binary of exactly the given Kubernetes version, building it on
# first use from the Kubernetes Go modules (through the Go module proxy) and caching it outside the
# repository, keyed by version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/kubeadm/v<version>/kubeadm
# Usage: tools/kubeadm.sh 1.36.3
#
# How it is built (a wrapper module, staging modules pinned, version stamped with ldflags, flock)
# is tools/kubernetes.sh, which builds the other Kubernetes binaries the same way.
set -euo pipefail
version="${1:?usage: tools/kubeadm.sh <kubernetes version, e.g. 1.36.3>}"
exec bash "$(dirname "${BASH_SOURCE[0]}")/kubernetes.sh" "$version" kubeadm
