#!/usr/bin/env bash
# npm run deploy [-- <stack>] [pulumi up flags]: one command from a fresh clone to a cluster.
# Sets up the Pulumi environment (tools/pulumi-env.sh: CLI, credentials, backend, passphrase, stack,
# project, then Node and the npm dependencies) and runs pulumi up.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"
pulumi_env "$@"
exec pulumi up --stack "$STACK" "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}"
