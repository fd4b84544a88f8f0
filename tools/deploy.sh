#!/usr/bin/env bash
# npm run deploy [-- <stack>] [pulumi up flags]: one command from a fresh clone to a cluster.
# Sets up the Pulumi environment (tools/pulumi-env.sh: CLI, credentials, backend, passphrase, stack,
# project, then Node and the npm dependencies), checks the project and the region where gcloud
# exists (preflight below), and runs pulumi up.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"

# The project's APIs and the region's allocation quotas, before anything is created: pulumi up
# otherwise fails half-way (accessNotConfigured after a clean preview; a resource quota is not
# retried, render/quotas.ts says where the provider's retries stop). gcloud answers, the comparison
# is cli/preflight.ts (render/quotas.ts). Stops with one line per API or quota; where gcloud is
# missing or cannot answer, it says which check was skipped and goes on.
preflight() {
  local what="the checks of the project's APIs and the region's quotas"
  if ! command -v gcloud >/dev/null 2>&1; then
    printf 'ha-k8s: gcloud is not installed: skipped %s (docs/operating.md#a-first-deploy-in-a-fresh-project)\n' "$what" >&2
    return 0
  fi
  local check=("$REPO/node_modules/.bin/ts-node" --transpile-only "$REPO/cli/preflight.ts" --stack "$STACK" --project-dir "$REPO")
  if [ ! -x "${check[0]}" ]; then
    printf 'ha-k8s: the npm dependencies are missing: skipped %s\n' "$what" >&2
    return 0
  fi
  local gcp_project region dir
  gcp_project="$(pulumi config get gcp:project --stack "$STACK" 2>/dev/null || true)"
  gcp_project="${gcp_project:-${env_project:-}}"
  region="$("${check[@]}" --print-region)" || exit 1
  dir="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: dir is local
  trap "rm -rf '$dir'" EXIT
  gcloud services list --enabled --project "$gcp_project" --format=json >"$dir/services.json" || true
  gcloud compute regions describe "$region" --project "$gcp_project" --format=json >"$dir/region.json" || true
  # What a running stack already holds is not needed again (an empty state on a first deployment).
  pulumi stack export --stack "$STACK" >"$dir/state.json" 2>/dev/null || true
  "${check[@]}" --project "$gcp_project" --services "$dir/services.json" --region-quotas "$dir/region.json" \
    --state "$dir/state.json" || exit 1
  rm -rf "$dir"
  trap - EXIT
}

pulumi_env "$@"
preflight
exec pulumi up --stack "$STACK" "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}"
