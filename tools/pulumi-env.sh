#!/usr/bin/env bash
# Sourced by tools/deploy.sh and tools/destroy.sh: everything `pulumi up` / `pulumi destroy` need,
# derived where possible, each missing piece reported in one line that says how to fix it.
#   - the Pulumi CLI on PATH;
#   - Google Cloud credentials (GOOGLE_CREDENTIALS, GOOGLE_APPLICATION_CREDENTIALS, or gcloud's
#     application-default login);
#   - a backend: PULUMI_BACKEND_URL if set, else the backend you are logged in to (pulumi whoami),
#     else a local file backend inside this folder (.pulumi-state, git-ignored);
#   - a passphrase for the file backend's secrets: PULUMI_CONFIG_PASSPHRASE(_FILE) if set, else a
#     random one kept in .pulumi-passphrase (0600, git-ignored; back it up with the state);
#   - the stack (created when missing) and the GCP project: gcp:project, else GOOGLE_PROJECT,
#     GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT or CLOUDSDK_CORE_PROJECT (the provider's fallbacks), else
#     gcloud's config (then written to gcp:project);
#   - Node 24 and the npm dependencies (tools/setup.sh, without the test-only Debian packages);
#   - the OpenSSH client (every machine's login is checked from here before its first step);
#   - the --parallel the stack's plan needs (npm run parallel): pulumi's default, 4 x this machine's
#     CPUs, would make a large cluster's steps queue; a --parallel/-p you pass, or PULUMI_PARALLEL, wins.
# In CI (CI or GITHUB_ACTIONS set) the local file backend and the random passphrase are refused:
# they would live on the runner's disk only.
# Usage, from a script in tools/: . pulumi-env.sh; pulumi_env "$@"
# Sets STACK (first argument unless it is a flag, or --stack/-s; default dev) and PULUMI_ARGS (the
# rest, with --parallel added).

fail() {
  printf '%s\n' "$*" >&2
  exit 1
}

pulumi_env() {
  REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  STACK="${STACK:-dev}"
  if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    STACK="$1"
    shift
  fi
  # A --stack/-s among the flags names the stack too (taken out: the scripts pass --stack themselves).
  PULUMI_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -s | --stack)
        [ $# -ge 2 ] || fail "$1 needs a stack name."
        STACK="$2"
        shift 2
        ;;
      --stack=*)
        STACK="${1#--stack=}"
        shift
        ;;
      *)
        PULUMI_ARGS+=("$1")
        shift
        ;;
    esac
  done

  command -v pulumi >/dev/null 2>&1 ||
    fail "The Pulumi CLI is not installed: install it with 'curl -fsSL https://get.pulumi.com | sh' (https://www.pulumi.com/docs/install/), then run this again."

  has_gcp_credentials() {
    [ -n "${GOOGLE_CREDENTIALS:-}" ] && return 0
    [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && [ -f "$GOOGLE_APPLICATION_CREDENTIALS" ] && return 0
    [ -f "${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json" ] && return 0
    command -v gcloud >/dev/null 2>&1 && gcloud auth application-default print-access-token >/dev/null 2>&1
  }
  has_gcp_credentials ||
    fail "No Google Cloud credentials: run 'gcloud auth application-default login' (or set GOOGLE_APPLICATION_CREDENTIALS to a key file)."

  # In CI (GitHub Actions sets CI and GITHUB_ACTIONS) the runner's disk goes with the job: a local
  # state or a random passphrase made there would be lost, and the cluster with it. Refuse instead.
  local in_ci="" flag
  for flag in "${CI:-}" "${GITHUB_ACTIONS:-}"; do
    case "$flag" in "" | 0 | false | False | FALSE | no) ;; *) in_ci=yes ;; esac
  done

  if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
    [ -z "$in_ci" ] ||
      fail "PULUMI_BACKEND_URL is empty in CI: a local state would be lost with the runner; set the repository secret PULUMI_BACKEND_URL (e.g. gs://<bucket>) or log in to Pulumi Cloud (PULUMI_ACCESS_TOKEN)."
    mkdir -p "$REPO/.pulumi-state"
    export PULUMI_BACKEND_URL="file://$REPO/.pulumi-state"
  fi
  backend="${PULUMI_BACKEND_URL:-$(pulumi whoami --verbose 2>/dev/null | sed -n 's/^Backend URL: //p')}"
  printf 'ha-k8s: backend %s, stack %s\n' "${backend:-(logged in)}" "$STACK" >&2

  # Self-managed backends keep secrets with a passphrase unless the stack names another secrets
  # provider (secretsprovider: gcpkms://... in its Pulumi.<stack>.yaml); Pulumi Cloud needs none. An
  # empty passphrase that is set is a passphrase too.
  local provider=""
  if [ -f "$REPO/Pulumi.$STACK.yaml" ]; then
    provider="$(sed -n 's/^secretsprovider:[[:space:]]*//p' "$REPO/Pulumi.$STACK.yaml" | tr -d "\"'")"
  fi
  if [[ "$backend" != https://* ]] && [[ -z "$provider" || "$provider" == passphrase* ]] &&
    [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    passphrase_file="$REPO/.pulumi-passphrase"
    [ -z "$in_ci" ] || [ -s "$passphrase_file" ] ||
      fail "PULUMI_CONFIG_PASSPHRASE is empty in CI: a random passphrase made here would be lost with the runner, and the stack's secrets with it; set the repository secret PULUMI_CONFIG_PASSPHRASE."
    if [ ! -s "$passphrase_file" ]; then
      (umask 077 && head -c 32 /dev/urandom | base64 >"$passphrase_file")
      printf 'ha-k8s: created %s (0600): it encrypts this stack'"'"'s secrets; keep it with the state\n' "$passphrase_file" >&2
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
  fi

  cd "$REPO" || fail "Cannot enter $REPO."
  pulumi stack select "$STACK" >/dev/null 2>&1 || pulumi stack init "$STACK" >/dev/null ||
    fail "Cannot select or create stack $STACK (see pulumi's message above)."

  # The GCP provider's own fallbacks (pulumi-gcp resources.go): google-github-actions/auth sets them.
  env_project="${GOOGLE_PROJECT:-${GOOGLE_CLOUD_PROJECT:-${GCLOUD_PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}}}"
  if [ -n "$env_project" ] && ! pulumi config get gcp:project >/dev/null 2>&1; then
    printf 'ha-k8s: GCP project %s (from the environment)\n' "$env_project" >&2
  elif ! pulumi config get gcp:project >/dev/null 2>&1; then
    project=""
    if command -v gcloud >/dev/null 2>&1; then project="$(gcloud config get-value project 2>/dev/null || true)"; fi
    if [ -z "$project" ] || [ "$project" = "(unset)" ]; then
      fail "No GCP project: run 'pulumi config set gcp:project <project-id> --stack $STACK' (or set GOOGLE_CLOUD_PROJECT, or 'gcloud config set project <project-id>')."
    fi
    pulumi config set gcp:project "$project" >/dev/null
    printf 'ha-k8s: gcp:project set to %s (from gcloud)\n' "$project" >&2
  fi

  # shellcheck source=tools/setup.sh
  HA_K8S_SETUP_APT=0 . "$REPO/tools/setup.sh"

  command -v ssh >/dev/null 2>&1 ||
    fail "The OpenSSH client (ssh) is not installed: install it (Debian/Ubuntu: apt-get install openssh-client), then run this again."

  local arg parallel
  for arg in "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}"; do
    case "$arg" in -p | -p* | --parallel | --parallel=*) return 0 ;; esac
  done
  # PULUMI_PARALLEL is pulumi's own default for --parallel (pkg/cmd/pulumi/operations/up.go): yours wins too.
  if [ -n "${PULUMI_PARALLEL:-}" ]; then
    printf 'ha-k8s: pulumi runs up to %s operations at once (PULUMI_PARALLEL)\n' "$PULUMI_PARALLEL" >&2
    return 0
  fi
  parallel="$(npm run --silent parallel -- --stack "$STACK")" ||
    fail "Cannot work out the parallelism stack $STACK needs (npm run parallel -- --stack $STACK says why)."
  printf 'ha-k8s: pulumi runs up to %s operations at once (--parallel %s, from the plan)\n' "$parallel" "$parallel" >&2
  PULUMI_ARGS=(--parallel "$parallel" "${PULUMI_ARGS[@]+"${PULUMI_ARGS[@]}"}")
}
