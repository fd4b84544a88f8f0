#!/usr/bin/env bash
# Lab machine image only (/usr/local/sbin/kubeadm, before /usr/bin in root's PATH): the host is
# cgroup v1, which kubeadm 1.35+ refuses in its SystemVerification preflight check unless that
# check is skipped (CHANGELOG-1.35, #134744: "Ignore the error from the SystemVerification
# preflight check"). Adds that skip to the commands that run the check, then runs the real kubeadm
# from the package, unchanged otherwise.
set -euo pipefail
case "${1:-} ${2:-}" in
  "init "* | "join "* | "upgrade apply" | "upgrade node")
    case "${2:-}" in phase) exec /usr/bin/kubeadm "$@" ;; esac
    exec /usr/bin/kubeadm "$@" --ignore-preflight-errors=SystemVerification
    ;;
esac
exec /usr/bin/kubeadm "$@"
