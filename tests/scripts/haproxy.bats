#!/usr/bin/env bats
# scripts/haproxy.sh: install, check with haproxy -c, install the config, reload only on change.

setup() {
  load helpers
  setup_machine
  stub_systemd
  stub ss 'echo "LISTEN 0 4096 *:6443 *:*"'
  stub haproxy '[ "$1" = -v ] && echo "HAProxy version 2.8.5"; exit 0'
  echo "config v1" >"$HA_K8S_STAGE/haproxy.cfg"
}

@test "installs haproxy when missing, checks the config, starts it" {
  rm "$STUBS/haproxy"
  stub apt-get 'case " $* " in *" install "*) printf "#!/usr/bin/env bash\nprintf \"%%s %%s\\\\n\" haproxy \"\$*\" >>\"\$CALLS\"\n" >"$STUBS/haproxy"; chmod +x "$STUBS/haproxy" ;; esac'
  run env PATH="$STUBS:/usr/bin:/bin" bash "$SCRIPTS/haproxy.sh"
  assert_success
  assert_call_order "^apt-get .* update" "^apt-get .* install .*haproxy" "^haproxy -c -f .*/haproxy.cfg" "^systemctl start haproxy"
  cmp "$HA_K8S_STAGE/haproxy.cfg" "$HA_K8S_ROOT/etc/haproxy/haproxy.cfg"
}

@test "same config again: nothing installed, no reload" {
  run_script haproxy.sh
  assert_success
  : >"$CALLS"
  run_script haproxy.sh
  assert_success
  [ "$(count_calls '^systemctl (reload|restart|start)')" -eq 0 ]
  [ "$(count_calls '^apt-get')" -eq 0 ]
  assert_output --partial "configuration unchanged"
}

@test "a changed config is checked, then reloaded (not restarted)" {
  run_script haproxy.sh
  echo "config v2" >"$HA_K8S_STAGE/haproxy.cfg"
  : >"$CALLS"
  run_script haproxy.sh
  assert_success
  assert_call_order "^haproxy -c -f" "^systemctl reload haproxy"
  [ "$(count_calls '^systemctl restart')" -eq 0 ]
  assert_equal "$(cat "$HA_K8S_ROOT/etc/haproxy/haproxy.cfg")" "config v2"
}

@test "a config haproxy rejects leaves the running one untouched" {
  run_script haproxy.sh
  echo "broken" >"$HA_K8S_STAGE/haproxy.cfg"
  stub haproxy '[ "$1" = -c ] && { echo "[ALERT] parsing [x:1]: unknown keyword broken" >&2; exit 1; }; exit 0'
  : >"$CALLS"
  run_script haproxy.sh
  assert_failure
  assert_output --partial "unknown keyword broken"
  assert_output --partial "the running one is untouched"
  assert_equal "$(cat "$HA_K8S_ROOT/etc/haproxy/haproxy.cfg")" "config v1"
  [ "$(count_calls '^systemctl reload')" -eq 0 ]
}

@test "fails when nothing listens on 6443 after starting" {
  stub ss 'exit 0'
  run_script haproxy.sh
  assert_failure
  assert_output --partial "not listening on :6443"
}
