#!/usr/bin/env bash
# npm run destroy [-- <stack>] [pulumi destroy flags]: removes the stack's cluster. Always finishes:
# when delete-time commands cannot reach their machines (VMs already gone, cluster broken), it
# removes only those remote commands from the state (their targets are being deleted anyway),
# says which, and destroys again. GCP resources are never dropped from the state, only deleted.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"
pulumi_env "$@"

if pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]}"; then exit 0; fi

echo "ha-k8s: destroy did not finish; removing unreachable delete-time commands from the state and retrying" >&2
mapfile -t commands < <(pulumi stack export --stack "$STACK" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const r of JSON.parse(s).deployment.resources??[])if(r.type==="command:remote:Command")console.log(r.urn)})')
for urn in "${commands[@]}"; do
  echo "ha-k8s: dropping from state (its machine is being deleted): $urn" >&2
  pulumi state delete --stack "$STACK" --yes --target-dependents "$urn" >/dev/null 2>&1 || true
done
exec pulumi destroy --stack "$STACK" "${PULUMI_ARGS[@]}"
