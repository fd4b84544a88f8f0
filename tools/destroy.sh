#!/usr/bin/env bash
# npm run destroy [-- <stack>] [pulumi destroy flags]: removes the stack's cluster. When it fails,
# it works out why from the state and the machines, drops exactly the remote commands that cannot
# finish, says which, and destroys again:
#   - commands whose machines cannot be reached (a VM deleted outside Pulumi, a broken network):
#     their machines are gone or being deleted anyway;
#   - on a destroy of the whole stack only, control planes' removals that etcd refused because the
#     other members would lose their quorum (member-remove.sh, "REFUSED"): the whole cluster goes,
#     so its quorum no longer matters. A targeted destroy keeps them, and fails, as `pulumi up` does.
# Anything else that fails, a GCP API error for example, fails the destroy and keeps the state as
# it is: nothing is dropped blindly.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"
pulumi_env "$@"

work="$(umask 077 && mktemp -d)"
trap 'rm -rf "$work"' EXIT

whole_stack=yes
confirmed=""
case "${PULUMI_SKIP_CONFIRMATIONS:-}" in 1 | true | TRUE | True) confirmed=yes ;; esac
for arg in "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}"; do
  case "$arg" in
    -t | -t* | --target | --target=* | --exclude | --exclude=*) whole_stack="" ;;
    -y | -f | -yf | -fy | --yes | --skip-preview) confirmed=yes ;;
  esac
done
# pulumi's errors, read for etcd's refusals. pulumi asks for confirmation only on a terminal, so
# an interactive destroy without --yes keeps it and is not read.
destroy() {
  if [ -t 1 ] && [ -z "$confirmed" ]; then
    pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}"
    return
  fi
  pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}" 2>&1 | tee "$work/destroy.log"
  return "${PIPESTATUS[0]}"
}

rc=0
destroy || rc=$?
[ "$rc" -ne 0 ] || exit 0
# Without --yes the destroy may not even have started (a declined prompt; pulumi refuses to run
# without a terminal): the state is never edited behind a question nobody answered.
if [ -z "$confirmed" ]; then
  echo "ha-k8s: the destroy did not finish; the state of stack $STACK is kept. If machines are gone or etcd refused a control plane's removal (REFUSED above), run npm run destroy -- $STACK --yes: it drops exactly the commands that cannot finish, then destroys again." >&2
  exit "$rc"
fi

echo "ha-k8s: destroy did not finish; checking which machines the remaining remote commands cannot reach" >&2
# The state with secrets shown (the commands' connections are secret), only inside $work (0700).
pulumi stack export --stack "$STACK" --show-secrets >"$work/state.json" ||
  fail "Cannot export the state of stack $STACK; it is kept as it is."
node "$REPO/tools/state-commands.js" "$work/state.json" "$work/ssh-key" >"$work/commands.tsv"

# One bounded login check (the one that runs before a machine's first step) per machine.
check_login() { # <host> <jump or empty> <user> <verdict file>
  local log="$4.log"
  if NODE_NAME="$1" TARGET_HOST="$1" JUMP_HOST="$2" SSH_USER="$3" \
    LOGIN_TIMEOUT_SECONDS="${HA_K8S_UNREACHABLE_AFTER:-60}" HA_K8S_STAGE="$work" \
    bash "$REPO/scripts/wait-for-login.sh" 2>"$log"; then
    echo reachable >"$4"
  else
    echo "ha-k8s: $1${2:+ via $2} cannot be reached: $(tail -n 1 "$log")" >&2
    echo unreachable >"$4"
  fi
}
verdict_file() { printf '%s/verdict-%s' "$work" "$(printf '%s' "$1" | tr -c 'A-Za-z0-9.' _)"; }

if [ -s "$work/ssh-key" ]; then
  # Every machine behind a jump host is unreachable when the jump host is: check it alone first.
  cut -f3,4 "$work/commands.tsv" | sort -u | while IFS=$'\t' read -r jump user; do
    [ "$jump" != - ] || continue
    check_login "$jump" "" "$user" "$(verdict_file "$jump via ")" </dev/null
  done
  # Then the machines, a few at a time (each check is one SSH connection, bounded).
  running=0
  while IFS=$'\t' read -r host jump user; do
    [ "$host" != "?" ] || continue
    jump="${jump#-}"
    [ ! -f "$(verdict_file "$host via $jump")" ] || continue # the jump host itself, checked above
    if [ -n "$jump" ] && [ "$(cat "$(verdict_file "$jump via ")")" = unreachable ]; then
      echo "ha-k8s: $host cannot be reached: neither can its jump host $jump" >&2
      echo unreachable >"$(verdict_file "$host via $jump")"
      continue
    fi
    check_login "$host" "$jump" "$user" "$(verdict_file "$host via $jump")" </dev/null &
    running=$((running + 1))
    if [ "$running" -ge "${HA_K8S_LOGIN_CHECKS:-16}" ]; then
      wait -n || true
      running=$((running - 1))
    fi
  done < <(cut -f2-4 "$work/commands.tsv" | sort -u)
  wait
fi

refused_nodes=""
if [ -f "$work/destroy.log" ]; then
  refused_nodes="$(grep -o 'REFUSED: etcd will not remove the member of [^ ]*' "$work/destroy.log" |
    awk '{print $NF}' | sort -u || true)"
fi

drop=()
while IFS=$'\t' read -r urn host jump user; do
  [ -n "$urn" ] || continue
  jump="${jump#-}"
  if [ "$host" = "?" ] || [ ! -s "$work/ssh-key" ]; then
    echo "ha-k8s: cannot read the connection of $urn; keeping it" >&2
  elif [ "$(cat "$(verdict_file "$host via $jump")")" = unreachable ]; then
    echo "ha-k8s: dropping from the state (its machine cannot be reached): $urn" >&2
    drop+=("$urn")
    continue
  fi
  for node in $refused_nodes; do
    [[ "$urn" == *"::$node-member" ]] || continue
    if [ -n "$whole_stack" ]; then
      echo "ha-k8s: dropping from the state (etcd refused to remove $node's member; the whole cluster goes): $urn" >&2
      drop+=("$urn")
    else
      echo "ha-k8s: etcd refused to remove $node's member and this destroy is targeted: keeping $urn (bring the other control planes back, then run again)" >&2
    fi
  done
done <"$work/commands.tsv"

if [ "${#drop[@]}" -eq 0 ]; then
  fail "ha-k8s: the destroy failed for a reason other than unreachable machines (see pulumi's errors above); nothing was dropped and the state of stack $STACK is kept. Fix the cause and run npm run destroy again."
fi
for urn in "${drop[@]}"; do
  pulumi state delete --stack "$STACK" --yes --target-dependents "$urn" >/dev/null 2>&1 ||
    echo "ha-k8s: $urn is no longer in the state (dropped with a command it depends on)" >&2
done
# Not exec: the EXIT trap must remove $work (the exported state and the SSH key).
rc=0
destroy || rc=$?
exit "$rc"
