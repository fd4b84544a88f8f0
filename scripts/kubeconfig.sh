#!/usr/bin/env bash
# Prints the cluster's admin kubeconfig (admin.conf, bound by RBAC; never super-admin.conf, which
# bypasses it) on stdout, which Pulumi keeps as a secret and never logs.
#
# Inputs: none. Safe to run again: it only reads.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADMIN_CONF="$(root_path /etc/kubernetes/admin.conf)"
[ -s "$ADMIN_CONF" ] || die "$ADMIN_CONF is missing: the control plane is not initialised"
cat "$ADMIN_CONF"
