#!/usr/bin/env bash
# Prints the cluster's admin kubeconfig (admin.conf, bound by RBAC; never super-admin.conf, which
# bypasses it) on stdout, sealed: pulumi-command quotes a failed command's whole stdout in its error
# (remote/commandOutputs.go), which Pulumi prints in clear, so admin.conf never crosses the output
# unencrypted. openssl enc (AES-256-CBC, PBKDF2-HMAC-SHA256) with the staged output key, which only
# Pulumi's state holds; the program opens it (render/secrets.ts openSealedOutput).
#
# Inputs (environment): SEALED_OUTPUT_PREFIX, SEALED_OUTPUT_ITERATIONS.
# Inputs (staged files): output-key (secret). Safe to run again: it only reads. openssl is there:
# ca-certificates, which prepare-node.sh installs, depends on it (Debian bookworm's, checked with
# apt-cache here; Ubuntu's package is assumed the same, not checked).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env SEALED_OUTPUT_PREFIX SEALED_OUTPUT_ITERATIONS
KEY_FILE="$(staged output-key)"
ADMIN_CONF="$(root_path /etc/kubernetes/admin.conf)"
[ -s "$ADMIN_CONF" ] || die "$ADMIN_CONF is missing: the control plane is not initialised"
sealed="$(openssl enc -aes-256-cbc -pbkdf2 -iter "$SEALED_OUTPUT_ITERATIONS" -md sha256 -salt \
  -pass "file:$KEY_FILE" -in "$ADMIN_CONF" -a -A)" || die "openssl could not seal admin.conf"
printf '%s%s\n' "$SEALED_OUTPUT_PREFIX" "$sealed"
