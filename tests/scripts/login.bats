#!/usr/bin/env bats
# scripts/wait-for-login.sh against real OpenSSH servers (Debian's openssh-server) that the test
# starts on loopback: a jump host, and targets behind it that accept the key at once, only after
# 20 s (as a fresh GCE VM does before its guest agent has created the login user), or never.

setup_file() {
  load helpers
  SSHD="$(command -v sshd || echo /usr/sbin/sshd)"
  [ -x "$SSHD" ] || skip "needs sshd (Debian package openssh-server)"
  dir="$BATS_FILE_TMPDIR/ssh"
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  # sshd wants its privilege separation directory (root creates it; others through sudo).
  [ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || sudo -n mkdir -p /run/sshd
  # Addresses and port of this run only: two runs on one machine never share them.
  prefix="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))"
  port="$((20000 + RANDOM % 20000))"
  # name address authorized_keys-file
  start_sshd() {
    cat >"$dir/$1.conf" <<EOF
ListenAddress $2:$port
HostKey $dir/host_key
PidFile $dir/$1.pid
AuthorizedKeysFile $3
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel VERBOSE
EOF
    "$SSHD" -D -e -f "$dir/$1.conf" 2>"$dir/$1.log" &
  }
  cp "$dir/client_key.pub" "$dir/authorized_jump"
  cp "$dir/client_key.pub" "$dir/authorized_ready"
  : >"$dir/authorized_late" # the key arrives 20 s after the test asks for it
  : >"$dir/authorized_never"
  start_sshd jump "$prefix.2" "$dir/authorized_jump"
  start_sshd ready "$prefix.3" "$dir/authorized_ready"
  start_sshd late "$prefix.4" "$dir/authorized_late"
  start_sshd never "$prefix.5" "$dir/authorized_never"
  for name in jump ready late never; do
    for _ in $(seq 50); do [ -s "$dir/$name.pid" ] && break; sleep 0.1; done
    [ -s "$dir/$name.pid" ] || { cat "$dir/$name.log" >&2; false; }
  done
  export SSH_DIR="$dir" PREFIX="$prefix" SSH_PORT="$port"
}

teardown_file() {
  for pid in "$SSH_DIR"/*.pid; do [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null; done
  return 0
}

setup() {
  load helpers
  export HA_K8S_STAGE="$BATS_TEST_TMPDIR/stage" HA_K8S_SLEEP=1
  mkdir -p "$HA_K8S_STAGE"
  install -m 600 "$SSH_DIR/client_key" "$HA_K8S_STAGE/ssh-key"
  export SSH_USER="$(id -un)" JUMP_HOST="$PREFIX.2" LOGIN_TIMEOUT_SECONDS=120
}

@test "a machine that accepts the key logs in at once, through the jump host" {
  NODE_NAME=c-worker-1 TARGET_HOST="$PREFIX.3" run_script wait-for-login.sh
  assert_success
  assert_output --partial "c-worker-1 accepts SSH logins (attempt 1)"
}

@test "the jump host itself, directly" {
  NODE_NAME=c-lb-1 TARGET_HOST="$PREFIX.2" JUMP_HOST="" run_script wait-for-login.sh
  assert_success
  assert_output --partial "c-lb-1 accepts SSH logins (attempt 1)"
}

@test "a machine that refuses the key for its first 20 s is waited for" {
  (sleep 20 && cp "$SSH_DIR/client_key.pub" "$SSH_DIR/authorized_late") &
  started=$SECONDS
  NODE_NAME=c-worker-2 TARGET_HOST="$PREFIX.4" run_script wait-for-login.sh
  elapsed=$((SECONDS - started))
  assert_success
  [ "$elapsed" -ge 19 ]
  assert_output --regexp "c-worker-2 accepts SSH logins \(attempt ([2-9]|[1-9][0-9]+)\)"
  # Each attempt was a new connection: the target saw several refused logins before the good one.
  [ "$(grep -c 'Connection from' "$SSH_DIR/late.log")" -ge 3 ]
}

@test "a machine that never accepts fails within the bound, naming the machine and the error" {
  started=$SECONDS
  NODE_NAME=c-worker-3 TARGET_HOST="$PREFIX.5" LOGIN_TIMEOUT_SECONDS=10 run_script wait-for-login.sh
  elapsed=$((SECONDS - started))
  assert_failure
  [ "$elapsed" -ge 10 ] && [ "$elapsed" -le 25 ]
  assert_output --partial "c-worker-3 ($PREFIX.5 via $PREFIX.2) did not accept an SSH login as $SSH_USER within 10s"
  assert_output --partial "Permission denied (publickey)"
}

@test "nothing listening: the same bounded failure" {
  NODE_NAME=c-worker-4 TARGET_HOST="$PREFIX.9" LOGIN_TIMEOUT_SECONDS=5 run_script wait-for-login.sh
  assert_failure
  assert_output --partial "c-worker-4 ($PREFIX.9 via $PREFIX.2) did not accept an SSH login"
}
