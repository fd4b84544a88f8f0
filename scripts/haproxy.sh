#!/usr/bin/env bash
# Installs HAProxy on the load balancer and serves the rendered configuration.
#
# Inputs (staged files): haproxy.cfg, rendered by render/haproxy.ts from the control-plane list.
#
# The new configuration is checked with `haproxy -c` before it replaces the running one; a rejected
# configuration leaves the old one serving. A changed configuration is applied with a reload
# (master-worker: the listening sockets pass to the new process, open connections finish on the
# old one), never a restart. Safe to run again: same configuration, nothing happens.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NEW_CONFIG="$(staged haproxy.cfg)"
LIVE_CONFIG="$(root_path /etc/haproxy/haproxy.cfg)"

wait_for_cloud_init

if ! command -v haproxy >/dev/null 2>&1; then
  log "installing haproxy"
  retry 3 apt_get update -q
  retry 3 apt_get install -y -q haproxy || die "cannot install haproxy"
fi

log "checking the new configuration with $(haproxy -v 2>/dev/null | head -n 1)"
if ! check_output="$(haproxy -c -f "$NEW_CONFIG" 2>&1)"; then
  printf '%s\n' "$check_output" >&2
  die "haproxy rejected the new configuration; the running one is untouched"
fi

systemctl enable haproxy >/dev/null 2>&1
if install_file "$NEW_CONFIG" "$LIVE_CONFIG" 644; then
  if systemctl is-active --quiet haproxy; then
    log "configuration changed: reloading haproxy without dropping connections"
    systemctl reload haproxy
  else
    log "starting haproxy"
    systemctl start haproxy
  fi
elif ! systemctl is-active --quiet haproxy; then
  log "configuration unchanged but haproxy is not running: starting it"
  systemctl start haproxy
else
  log "configuration unchanged; haproxy running"
fi

wait_until 30 "haproxy to listen on :6443" listening_on 6443 || die "haproxy is not listening on :6443"
log "haproxy serves the API frontend on :6443 and its health endpoint on :8404"
