#!/usr/bin/env bats
# What a step does when its SSH session does not last, against a real OpenSSH server (Debian's
# openssh-server) on loopback, with real bash, timeout and tee:
# - a bundle (render/bundle.ts) whose client goes away mid-step still runs its script to the end,
#   its output kept in the stage and its cleanup done;
# - a script over its budget is stopped by `timeout`, and the step's secrets are removed anyway;
# - sshd closes a connection left without channels after UnusedConnectionTimeout (the drop-in of
#   render/cloudinit.ts), which pulumi-command's never-closed clients rely on, and not one whose
#   session is still running.

setup_file() {
  load helpers
  SSHD="$(command -v sshd || echo /usr/sbin/sshd)"
  if [ ! -x "$SSHD" ]; then
    [ -z "${CI:-}" ] || { echo "session.bats needs sshd (Debian package openssh-server)" >&2; return 1; }
    skip "needs sshd (Debian package openssh-server)"
  fi
  dir="$BATS_FILE_TMPDIR/ssh"
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized"
  [ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || sudo -n mkdir -p /run/sshd
  address="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).7"
  port="$((20000 + RANDOM % 20000))"
  # The drop-in exactly as the cloud-config renders it, with the timeout shortened for the test.
  (cd "$REPO" && node "$REPO/node_modules/ts-node/dist/bin.js" --transpile-only -e '
    const c = require("./render/cloudinit");
    process.stdout.write(c.SSHD_UNUSED_DROP_IN);' >"$dir/rendered-unused.conf")
  grep -q '^UnusedConnectionTimeout ' "$dir/rendered-unused.conf"
  sed 's/^UnusedConnectionTimeout .*/UnusedConnectionTimeout 3/' "$dir/rendered-unused.conf" >"$dir/unused.conf"
  cat >"$dir/sshd.conf" <<EOC
ListenAddress $address:$port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
LogLevel VERBOSE
Include $dir/unused.conf
EOC
  # sshd accepts the rendered drop-in as it is (the cloud-config installs it only where it does).
  printf 'HostKey %s\nInclude %s\n' "$dir/host_key" "$dir/rendered-unused.conf" >"$dir/check.conf"
  "$SSHD" -t -f "$dir/check.conf"
  "$SSHD" -D -e -f "$dir/sshd.conf" 2>"$dir/sshd.log" &
  for _ in $(seq 50); do [ -s "$dir/sshd.pid" ] && break; sleep 0.1; done
  [ -s "$dir/sshd.pid" ] || { cat "$dir/sshd.log" >&2; false; }
  # Bundles of a test script: with a budget (as every step on a machine), and without.
  cat >"$dir/slow.sh" <<'EOS'
#!/usr/bin/env bash
set -euo pipefail
for i in 1 2 3 4 5 6; do
  echo "out $i"
  echo "err $i" >&2
  sleep "${SLOW_SLEEP:-1}"
done
echo finished >"$HA_K8S_ROOT/finished"
EOS
  (cd "$REPO" && DIR="$dir" node "$REPO/node_modules/ts-node/dist/bin.js" --transpile-only -e '
    const fs = require("fs");
    const { renderBundle } = require("./render/bundle");
    const dir = process.env.DIR;
    const sources = { "lib.sh": fs.readFileSync("scripts/lib.sh", "utf8"), "slow.sh": fs.readFileSync(dir + "/slow.sh", "utf8") };
    const files = [{ name: "secret", content: "s3cret", mode: 0o600, secret: true }];
    for (const [name, budgetSeconds] of [["bounded", 300], ["short", 2]]) {
      fs.writeFileSync(`${dir}/${name}.bundle`, renderBundle({ stepId: `t/${name}`, script: "slow.sh", env: {}, files, budgetSeconds }, sources));
    }
  ')
  export SSH_DIR="$dir" SSH_ADDRESS="$address" SSH_PORT="$port"
}

teardown_file() {
  [ -s "$SSH_DIR/sshd.pid" ] && kill "$(cat "$SSH_DIR/sshd.pid")" 2>/dev/null
  return 0
}

setup() {
  load helpers
  export ROOT="$BATS_TEST_TMPDIR/root"
  mkdir -p "$ROOT"
}

ssh_to() {
  ssh -i "$SSH_DIR/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o BatchMode=yes -p "$SSH_PORT" "$(id -un)@$SSH_ADDRESS" "$@"
}

# Pipes a bundle to `bash -s` over SSH (as Pulumi pipes it to `sudo bash -s`), and kills the
# client (the lost session) once the script has printed its second line; prints the client's pid.
run_and_drop() {
  ssh_to "HA_K8S_ROOT=$ROOT bash -s" <"$SSH_DIR/$1.bundle" >"$BATS_TEST_TMPDIR/client.out" 2>&1 &
  local client=$!
  for _ in $(seq 100); do grep -q "out 2" "$BATS_TEST_TMPDIR/client.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "out 2" "$BATS_TEST_TMPDIR/client.out"
  kill -9 "$client"
  wait "$client" || true
}

@test "a step whose SSH session is lost mid-run still runs its script to the end, its output kept in the stage" {
  run_and_drop bounded
  for _ in $(seq 150); do [ -f "$ROOT/finished" ] && break; sleep 0.1; done
  [ -f "$ROOT/finished" ]
  stage="$ROOT/var/lib/ha-k8s/steps/t--bounded"
  for _ in $(seq 50); do [ ! -e "$stage/secret" ] && break; sleep 0.1; done
  assert_equal "$(cat "$stage/stdout")" "$(printf 'out %s\n' 1 2 3 4 5 6)"
  assert_equal "$(cat "$stage/stderr")" "$(printf 'err %s\n' 1 2 3 4 5 6)"
  # The cleanup after the script ran too: the secret staged for the step is gone.
  [ ! -e "$stage/secret" ]
}

@test "a script over its budget is stopped by timeout (124), and the step's secrets are removed" {
  started=$SECONDS
  SLOW_SLEEP=10 run ssh_to "SLOW_SLEEP=10 HA_K8S_ROOT=$ROOT bash -s" <"$SSH_DIR/short.bundle"
  assert_equal "$status" 124
  [ $((SECONDS - started)) -lt 30 ]
  assert_output --partial "out 1"
  [ ! -f "$ROOT/finished" ]
  [ ! -e "$ROOT/var/lib/ha-k8s/steps/t--short/secret" ]
}

@test "the bundle still runs over SSH as before: its output and status reach the client" {
  run ssh_to "SLOW_SLEEP=0 HA_K8S_ROOT=$ROOT bash -s" <"$SSH_DIR/bounded.bundle"
  assert_success
  assert_line "out 6"
  assert_line "err 6"
  [ -f "$ROOT/finished" ]
}

@test "sshd closes a connection without channels after UnusedConnectionTimeout, not one whose session runs" {
  # ssh -N opens no channel at all: what pulumi-command's client is once its session has closed.
  started=$SECONDS
  run timeout 60 ssh -N -i "$SSH_DIR/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o BatchMode=yes -p "$SSH_PORT" "$(id -un)@$SSH_ADDRESS"
  elapsed=$((SECONDS - started))
  assert_equal "$status" 255 # closed by the server, not by timeout (124)
  [ "$elapsed" -ge 3 ] && [ "$elapsed" -lt 30 ]
  # A session longer than the timeout is not cut: only connections without channels are.
  run ssh_to 'sleep 6; echo slept'
  assert_success
  assert_output "slept"
}
