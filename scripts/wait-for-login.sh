#!/usr/bin/env bash
# Runs where `pulumi up` runs (a local command), before a machine's first step: waits until an SSH
# login to it works, and until cloud-init has finished there, so that every later step's connection
# meets a machine that accepts it. Bounded: fails after LOGIN_TIMEOUT_SECONDS, naming the machine
# and the last error.
#
# Why: @pulumi/command 1.2.1 retries only the TCP dial and the jump-host hop. Through a jump host it
# retries a failed SSH handshake on the connection that the failed handshake has already closed
# (provider/pkg/provider/remote/connection.go, Dial), so a VM whose sshd is up before the GCE guest
# agent has created the login user, or that restarts sshd for our cloud-config, fails its first
# step. Each attempt here is a new connection.
#
# Inputs (environment): NODE_NAME, TARGET_HOST, JUMP_HOST (empty: connect directly), SSH_USER,
#   LOGIN_TIMEOUT_SECONDS; SSH_PORT (default 22; the tests use their own).
# Inputs (staged files): ssh-key (the stack's private key; secret).
#
# Safe to run again: it only logs in.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME TARGET_HOST SSH_USER LOGIN_TIMEOUT_SECONDS
KEY="$(staged ssh-key)"
PORT="${SSH_PORT:-22}"
command -v ssh >/dev/null 2>&1 || die "the OpenSSH client (ssh) is needed on the machine running pulumi up to check $NODE_NAME"

# Host keys are not pinned (see docs/limitations.md): the VM regenerates them at first boot.
ssh_options=(-i "$KEY" -p "$PORT" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 -o ServerAliveInterval=10
  -o ServerAliveCountMax=3)
where="$TARGET_HOST"
if [ -n "${JUMP_HOST:-}" ]; then
  # ProxyCommand rather than -J: -J would not pass the key and options to the jump hop.
  ssh_options+=(-o "ProxyCommand=ssh ${ssh_options[*]} -W %h:%p $SSH_USER@$JUMP_HOST")
  where="$TARGET_HOST via $JUMP_HOST"
fi
# On the machine: wait for cloud-init (it restarts sshd for our drop-in), unless cloud-init never ran
# there (status "not run": no cloud-init on that machine; `status --wait` would wait forever).
# shellcheck disable=SC2016 # expanded on the machine, not here
remote='case "$(cloud-init status 2>/dev/null || true)" in ""|*"not run"*) ;; *) cloud-init status --wait >/dev/null 2>&1 || true ;; esac; echo ha-k8s-login-ok'

# bounded <seconds> <command...>: coreutils' timeout where there is one (not on stock macOS, where
# ConnectTimeout and ServerAlive* still bound each attempt).
bounded() {
  if command -v timeout >/dev/null 2>&1; then timeout "$@"; else "${@:2}"; fi
}

log "waiting (at most ${LOGIN_TIMEOUT_SECONDS}s) for $NODE_NAME ($where) to accept an SSH login as $SSH_USER"
deadline=$((SECONDS + LOGIN_TIMEOUT_SECONDS))
attempt=0
last="no attempt yet"
while :; do
  attempt=$((attempt + 1))
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || left=1
  if out="$(bounded "$left" ssh "${ssh_options[@]}" "$SSH_USER@$TARGET_HOST" "$remote" 2>&1)" &&
    [[ "$out" == *ha-k8s-login-ok* ]]; then
    log "$NODE_NAME accepts SSH logins (attempt $attempt)"
    exit 0
  fi
  last="$(printf '%s\n' "${out:-(no output)}" | grep -v '^$' | tail -n 1)"
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "$NODE_NAME ($where) did not accept an SSH login as $SSH_USER within ${LOGIN_TIMEOUT_SECONDS}s ($attempt attempts); last error: $last"
  fi
  [ $((attempt % 6)) -eq 0 ] && log "still waiting for $NODE_NAME: $last"
  sleep "$HA_K8S_SLEEP"
done
