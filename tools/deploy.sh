#!/usr/bin/env bash
# npm run deploy [-- <stack>] [pulumi up flags]: one command from a fresh clone to a cluster.
# Sets up Node and the npm dependencies (tools/setup.sh), then the Pulumi environment
# (tools/pulumi-env.sh: CLI, credentials, backend, passphrase, stack, project) and runs pulumi up.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${STACK:-dev}"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  STACK="$1"
  shift
fi
# shellcheck source=tools/pulumi-env.sh
. "$REPO/tools/pulumi-env.sh"
HA_K8S_SETUP_APT=0 . "$REPO/tools/setup.sh"
exec pulumi up --stack "$STACK" "$@"
