#!/usr/bin/env bats
# scripts/backup-install.sh on a stub machine: etcdutl from a (stub) etcd release checked against its
# SHA256SUMS, the scripts, environment file and systemd units installed, the timer enabled; a second
# run changes nothing, a new schedule restarts the timer.

setup() {
  load helpers
  setup_machine
  stub_systemd
  export ETCD_VERSION=3.6.8 ETCD_RELEASE_URL=https://github.test/etcd-io/etcd/releases/download/v3.6.8
  export BACKUP_UNIT=ha-k8s-etcd-backup
  # A release tarball like etcd's: etcd-v<version>-linux-amd64/{etcd,etcdctl,etcdutl}.
  release="$MACHINE_DIR/release"
  mkdir -p "$release/etcd-v3.6.8-linux-amd64"
  printf '#!/usr/bin/env bash\necho "etcdutl version: 3.6.8"\necho "API version: 3.6"\n' >"$release/etcd-v3.6.8-linux-amd64/etcdutl"
  echo etcd >"$release/etcd-v3.6.8-linux-amd64/etcd"
  chmod +x "$release/etcd-v3.6.8-linux-amd64/etcdutl"
  tar -czf "$release/etcd-v3.6.8-linux-amd64.tar.gz" -C "$release" etcd-v3.6.8-linux-amd64
  (cd "$release" && sha256sum etcd-v3.6.8-linux-amd64.tar.gz >SHA256SUMS && echo "0000  etcd-v3.6.8-darwin-arm64.zip" >>SHA256SUMS)
  export RELEASE="$release"
  stub curl 'out=""; url="${!#}"; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; cp "$RELEASE/${url##*/}" "$out"'
  for f in etcd-backup.sh lib.sh; do cp "$SCRIPTS/$f" "$HA_K8S_STAGE/$f"; done
  printf 'BACKUP_BUCKET=b\n' >"$HA_K8S_STAGE/etcd-backup.env"
  printf '[Service]\nType=oneshot\n' >"$HA_K8S_STAGE/ha-k8s-etcd-backup.service"
  printf '[Timer]\nOnCalendar=hourly\n' >"$HA_K8S_STAGE/ha-k8s-etcd-backup.timer"
}

installed() { echo "$HA_K8S_ROOT$1"; }

@test "installs etcdutl of the release after checking its checksum, the script, its environment and units, and enables the timer" {
  run_script backup-install.sh
  assert_success
  assert_call_order "^curl .*https://github.test/.*/etcd-v3.6.8-linux-amd64.tar.gz$" "^curl .*/SHA256SUMS$" \
    "^systemctl daemon-reload" "^systemctl enable ha-k8s-etcd-backup.timer" "^systemctl restart ha-k8s-etcd-backup.timer"
  [ "$(readlink "$(installed /usr/local/lib/ha-k8s/etcdutl)")" = etcd-v3.6.8/etcdutl ] # the path the scripts use
  run "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl)" version
  assert_line "etcdutl version: 3.6.8"
  [ ! -e "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcd)" ] # only etcdutl
  cmp "$SCRIPTS/etcd-backup.sh" "$(installed /usr/local/lib/ha-k8s/etcd-backup.sh)"
  cmp "$SCRIPTS/lib.sh" "$(installed /usr/local/lib/ha-k8s/lib.sh)"
  assert_equal "$(stat -c %a "$(installed /usr/local/lib/ha-k8s/etcd-backup.sh)")" 755
  assert_equal "$(stat -c %a "$(installed /etc/ha-k8s/etcd-backup.env)")" 600
  assert_equal "$(stat -c %a "$(installed /etc/systemd/system/ha-k8s-etcd-backup.timer)")" 644
  [ -f "$STATE/active-ha-k8s-etcd-backup.timer" ]
}

@test "a second run downloads nothing, reloads nothing and changes no file" {
  run_script backup-install.sh
  assert_success
  before="$(root_fingerprint)"
  : >"$CALLS"
  run_script backup-install.sh
  assert_success
  assert_equal "$(root_fingerprint)" "$before"
  [ "$(count_calls '^curl|daemon-reload|restart')" -eq 0 ]
  assert_output --partial "etcdutl 3.6.8 is installed"
}

@test "a new schedule reloads systemd and restarts the timer, so it takes effect" {
  run_script backup-install.sh
  assert_success
  printf '[Timer]\nOnCalendar=daily\n' >"$HA_K8S_STAGE/ha-k8s-etcd-backup.timer"
  : >"$CALLS"
  run_script backup-install.sh
  assert_success
  assert_call_order "^systemctl daemon-reload" "^systemctl restart ha-k8s-etcd-backup.timer"
  [ "$(count_calls '^curl')" -eq 0 ]
}

@test "a tarball that does not match SHA256SUMS is not installed" {
  echo tampered >>"$RELEASE/etcd-v3.6.8-linux-amd64.tar.gz"
  run_script backup-install.sh
  assert_failure
  assert_output --partial "does not match its SHA256SUMS entry; not installed"
  [ ! -e "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl)" ]
  [ "$(count_calls '^systemctl')" -eq 0 ]
}

@test "a release whose SHA256SUMS does not list the tarball is refused" {
  grep -v linux-amd64 "$RELEASE/SHA256SUMS" >"$RELEASE/SHA256SUMS.new" && mv "$RELEASE/SHA256SUMS.new" "$RELEASE/SHA256SUMS"
  run_script backup-install.sh
  assert_failure
  assert_output --partial "lists no checksum for etcd-v3.6.8-linux-amd64.tar.gz"
}

@test "an etcdutl of another version is replaced by the configured one" {
  mkdir -p "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8)"
  printf '#!/usr/bin/env bash\necho "etcdutl version: 3.6.7"\n' >"$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl)"
  chmod +x "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl)"
  run_script backup-install.sh
  assert_success
  [ "$(readlink "$(installed /usr/local/lib/ha-k8s/etcdutl)")" = etcd-v3.6.8/etcdutl ] # the path the scripts use
  run "$(installed /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl)" version
  assert_line "etcdutl version: 3.6.8"
}
