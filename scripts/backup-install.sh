#!/usr/bin/env bash
# Sets up the scheduled etcd snapshots on a control plane: etcdutl of the etcd release kubeadm runs,
# etcd-backup.sh with lib.sh, its environment file, and the systemd service + timer (rendered by
# render/backup.ts), then enables the timer. `systemctl list-timers ha-k8s-etcd-backup.timer` shows
# the next run, `systemctl status ha-k8s-etcd-backup` and the journal the last one.
#
# etcdutl: the etcd image kubeadm runs is not guaranteed to carry it (kubernetes/kubernetes
# cluster/images/etcd/Makefile, while the image was built there, installed only etcd and etcdctl of
# each release; etcd-io/etcd#13764), and etcdctl 3.6 no longer checks or restores snapshots. So the
# host gets etcd's own release tarball, checked against the release's SHA256SUMS.
#
# Inputs (environment): ETCD_VERSION, ETCD_RELEASE_URL, BACKUP_UNIT; staged files etcd-backup.sh,
#   lib.sh, etcd-backup.env, <unit>.service, <unit>.timer.
# Safe to run again: it changes only what differs and restarts the timer only when it changed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env ETCD_VERSION ETCD_RELEASE_URL BACKUP_UNIT
LIB_DIR=/usr/local/lib/ha-k8s
etcd_dir="$(root_path "$LIB_DIR/etcd-v$ETCD_VERSION")"

# (Output captured first: grep -q in a pipeline may end before the writer, failing it under pipefail.)
etcdutl_ok() {
  local out
  [ -x "$etcd_dir/etcdutl" ] && out="$("$etcd_dir/etcdutl" version 2>/dev/null)" && grep -qx "etcdutl version: $ETCD_VERSION" <<<"$out"
}
if etcdutl_ok; then
  log "etcdutl $ETCD_VERSION is installed"
else
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) die "no etcd release for this machine's architecture $(uname -m)" ;;
  esac
  tarball="etcd-v$ETCD_VERSION-linux-$arch.tar.gz"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading $ETCD_RELEASE_URL/$tarball and its SHA256SUMS"
  retry 3 curl -fsSL --max-time 300 -o "$work/$tarball" "$ETCD_RELEASE_URL/$tarball" ||
    die "could not download $ETCD_RELEASE_URL/$tarball"
  retry 3 curl -fsSL --max-time 60 -o "$work/SHA256SUMS" "$ETCD_RELEASE_URL/SHA256SUMS" ||
    die "could not download $ETCD_RELEASE_URL/SHA256SUMS"
  grep -E "^[0-9a-f]{64}  $tarball\$" "$work/SHA256SUMS" >"$work/expected" ||
    die "$ETCD_RELEASE_URL/SHA256SUMS lists no checksum for $tarball"
  (cd "$work" && sha256sum --quiet -c expected) >&2 || die "$tarball does not match its SHA256SUMS entry; not installed"
  tar -xzf "$work/$tarball" -C "$work" --strip-components=1 "etcd-v$ETCD_VERSION-linux-$arch/etcdutl" ||
    die "$tarball holds no etcdutl"
  install -D -m 0755 "$work/etcdutl" "$etcd_dir/etcdutl"
  etcdutl_ok || die "the installed etcdutl does not report version $ETCD_VERSION"
  log "installed etcdutl $ETCD_VERSION in $LIB_DIR/etcd-v$ETCD_VERSION"
fi

# The snapshot scripts call etcdutl by a path that names no version (ETCDUTL), so moving etcdutl to
# a new etcd (after a Kubernetes upgrade) changes only this step, not the snapshots' inputs.
if [ "$(readlink "$(root_path "$LIB_DIR/etcdutl")" 2>/dev/null)" != "etcd-v$ETCD_VERSION/etcdutl" ]; then
  ln -sfn "etcd-v$ETCD_VERSION/etcdutl" "$(root_path "$LIB_DIR/etcdutl")"
  log "etcdutl now points at etcd $ETCD_VERSION's"
fi

install_file "$(staged etcd-backup.sh)" "$(root_path "$LIB_DIR/etcd-backup.sh")" 755 || true
install_file "$(staged lib.sh)" "$(root_path "$LIB_DIR/lib.sh")" 644 || true
install_file "$(staged etcd-backup.env)" "$(root_path /etc/ha-k8s/etcd-backup.env)" 600 || true
units_changed=false
for unit in "$BACKUP_UNIT.service" "$BACKUP_UNIT.timer"; do
  if install_file "$(staged "$unit")" "$(root_path "/etc/systemd/system/$unit")" 644; then units_changed=true; fi
done

if [ "$units_changed" = true ]; then
  systemctl daemon-reload
  # A running timer keeps its old schedule until restarted.
  systemctl enable "$BACKUP_UNIT.timer" >&2
  systemctl restart "$BACKUP_UNIT.timer"
  log "enabled and (re)started $BACKUP_UNIT.timer"
else
  systemctl enable --now "$BACKUP_UNIT.timer" >&2
fi
systemctl list-timers --all --no-pager "$BACKUP_UNIT.timer" >&2 || true
log "scheduled etcd snapshots are set up (the etcd leader uploads)"
