#!/usr/bin/env bash
# npm run destroy [-- <stack>] [pulumi destroy flags]: removes the stack's cluster. When delete-time
# commands fail because their machines cannot be reached (a VM deleted outside Pulumi, a broken
# network), it drops exactly those remote commands from the state (their machines are gone or being
# deleted anyway), says which, and destroys again. Anything else that fails, a GCP API error for
# example, fails the destroy and keeps the state as it is: nothing is dropped blindly.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"
pulumi_env "$@"

if pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]}"; then exit 0; fi

echo "ha-k8s: destroy did not finish; checking which machines the remaining remote commands cannot reach" >&2
work="$(umask 077 && mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The state with secrets shown (the commands' connections are secret), only inside $work (0700).
pulumi stack export --stack "$STACK" --show-secrets >"$work/state.json" ||
  fail "Cannot export the state of stack $STACK; it is kept as it is."
node "$REPO/tools/state-commands.js" "$work/state.json" "$work/ssh-key" >"$work/commands.tsv"

# Each machine once: the same bounded login check that runs before a machine's first step.
: >"$work/checked"
unreachable=()
while IFS=$'\t' read -r urn host jump user; do
  [ -n "$urn" ] || continue
  jump="${jump#-}"
  target="$host${jump:+ via $jump}"
  verdict="$(grep -F -x -m1 -e "reachable $target" -e "unreachable $target" "$work/checked" | cut -d' ' -f1 || true)"
  if [ -z "$verdict" ]; then
    verdict=reachable
    if [ "$host" = "?" ] || [ ! -s "$work/ssh-key" ]; then
      echo "ha-k8s: cannot read the connection of $urn; keeping it" >&2
    elif ! NODE_NAME="$host" TARGET_HOST="$host" JUMP_HOST="$jump" SSH_USER="$user" \
      LOGIN_TIMEOUT_SECONDS="${HA_K8S_UNREACHABLE_AFTER:-60}" HA_K8S_STAGE="$work" \
      bash "$REPO/scripts/wait-for-login.sh" 2>"$work/login.log"; then
      verdict=unreachable
      echo "ha-k8s: $target cannot be reached: $(tail -n 1 "$work/login.log")" >&2
    fi
    echo "$verdict $target" >>"$work/checked"
  fi
  if [ "$verdict" = unreachable ]; then unreachable+=("$urn"); fi
done <"$work/commands.tsv"

if [ "${#unreachable[@]}" -eq 0 ]; then
  fail "ha-k8s: the destroy failed for a reason other than unreachable machines (see pulumi's errors above); nothing was dropped and the state of stack $STACK is kept. Fix the cause and run npm run destroy again."
fi
for urn in "${unreachable[@]}"; do
  echo "ha-k8s: dropping from the state (its machine cannot be reached): $urn" >&2
  pulumi state delete --stack "$STACK" --yes --target-dependents "$urn" >/dev/null 2>&1 ||
    echo "ha-k8s: $urn is no longer in the state (dropped with a command it depends on)" >&2
done
exec pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]}"
