#!/usr/bin/env bats
# tools/deploy.sh's checks before pulumi up (npm run deploy): the project's APIs and the region's
# quotas, against a stub gcloud that prints captured answers (tests/unit/fixtures-*.json) and the
# real comparison (cli/preflight.ts, render/quotas.ts), from a project folder that links this one's
# program and dependencies.

setup() {
  load helpers
  setup_deployer
  cp "$REPO/tools/deploy.sh" "$REPO/tools/pulumi-env.sh" "$PROJECT_COPY/tools/"
  for linked in node_modules cli render Pulumi.yaml tsconfig.json package.json; do
    ln -s "$REPO/$linked" "$PROJECT_COPY/$linked"
  done
  cp "$REPO/Pulumi.dev.yaml" "$PROJECT_COPY/"
  # 3 control planes and 100 workers, in the region of the captured answer.
  printf 'config:\n  gcp:region: us-central1\n  ha-k8s:clusterName: big\n  ha-k8s:workerCount: 100\n' \
    >"$PROJECT_COPY/Pulumi.big.yaml"
  stub npm 'case "$*" in *"run --silent parallel -- --stack"*) echo 16 ;; esac'
  stub ssh 'echo ha-k8s-login-ok'
  stub pulumi '
case "$1 $2" in
  "whoami "*) exit 1 ;;
  "stack select") [ -f "$STATE/stack-$3" ] ;;
  "stack init") touch "$STATE/stack-$3" ;;
  "config get") [ "$3" = gcp:project ] && echo my-project-123 ;;
  "stack export") cat "$STATE/export.json" 2>/dev/null || echo "{\"version\": 3, \"deployment\": {}}" ;;
esac'
  # gcloud answers as captured (region.json; services.json says which APIs are on, default all three).
  stub gcloud '
case "$*" in
  "auth application-default print-access-token") echo token ;;
  "services list --enabled --project my-project-123 --format=json")
    if [ -f "$STATE/not-logged-in" ]; then echo "ERROR: (gcloud.services.list) You do not currently have an active account selected." >&2; exit 1; fi
    cat "$STATE/services.json" ;;
  "compute regions describe "*" --project my-project-123 --format=json")
    if [ -f "$STATE/not-logged-in" ]; then echo "ERROR: (gcloud.compute.regions.describe) You do not currently have an active account selected." >&2; exit 1; fi
    cat "$STATE/region.json" ;;
esac'
  cp "$REPO/tests/unit/fixtures-region-quotas.json" "$STATE/region.json"
  node -e '
const s = require(process.argv[1]);
s.push({ config: { name: "iam.googleapis.com" }, name: "projects/123456789012/services/iam.googleapis.com", state: "ENABLED" });
console.log(JSON.stringify(s));' "$REPO/tests/unit/fixtures-services-enabled.json" >"$STATE/services.json"
  export PATH="$STUBS:$PATH"
}

deploy() { run bash "$PROJECT_COPY/tools/deploy.sh" "$@"; }

@test "dev fits the region's quotas and its APIs are on: says so, then pulumi up" {
  deploy dev --yes
  assert_success
  assert_output --partial "ha-k8s: APIs enabled; quotas in europe-west1 suffice (CPUS 12, IN_USE_ADDRESSES 1, INSTANCES 6, INTERNAL_ADDRESSES 6, SSD_TOTAL_GB 300, STATIC_ADDRESSES 1)"
  assert_call_order "^gcloud services list --enabled --project my-project-123 --format=json" \
    "^gcloud compute regions describe europe-west1 --project my-project-123 --format=json" "^pulumi up --stack dev"
}

@test "an API that is off: one line naming it and the command to enable it, nothing deployed" {
  cp "$REPO/tests/unit/fixtures-services-enabled.json" "$STATE/services.json" # iam.googleapis.com is off
  deploy dev --yes
  assert_failure
  assert_equal "${lines[${#lines[@]} - 1]}" \
    "Project my-project-123 does not have iam.googleapis.com enabled (pulumi up would fail with accessNotConfigured): run 'gcloud services enable iam.googleapis.com --project my-project-123', then this again."
  [ "$(count_calls '^pulumi up')" -eq 0 ]
}

@test "3 + 100 workers in a new project's region: one line per quota too low, with the amount needed, nothing deployed" {
  deploy big --yes
  assert_failure
  [ "$(printf '%s\n' "${lines[@]}" | grep -c '^Quota ')" -eq 2 ]
  assert_output --partial "Quota CPUS in us-central1 is too low: the plan needs 208, so 208 more; 20 free (limit 24, in use 4). Ask for at least 212"
  assert_output --partial "Quota SSD_TOTAL_GB in us-central1 is too low: the plan needs 5200, so 5200 more; 400 free (limit 500, in use 100). Ask for at least 5300"
  [ "$(count_calls '^pulumi up')" -eq 0 ]
}

@test "a running stack's own resources are not counted twice" {
  # big already runs with 104 VMs: the region's usage is theirs, nothing is added.
  node -e '
const vm = (i) => ({ type: "gcp:compute/instance:Instance", inputs: { zone: "us-central1-a", machineType: i === 0 ? "e2-small" : "e2-medium", bootDisk: { initializeParams: { size: 50, type: "pd-balanced" } } } });
const resources = Array.from({ length: 104 }, (_, i) => vm(i));
for (let i = 0; i < 104; i++) resources.push({ type: "gcp:compute/address:Address", inputs: { region: "us-central1", addressType: "INTERNAL" } });
resources.push({ type: "gcp:compute/address:Address", inputs: { region: "us-central1", addressType: "EXTERNAL" } });
console.log(JSON.stringify({ version: 3, deployment: { resources } }));' >"$STATE/export.json"
  deploy big --yes
  assert_success
  refute_output --partial "skipped"
  assert_output --partial "quotas in us-central1 suffice"
  [ "$(count_calls '^pulumi up --stack big')" -eq 1 ]
}

@test "gcloud cannot answer (no account): says which checks it skipped, then pulumi up" {
  touch "$STATE/not-logged-in"
  deploy dev --yes
  assert_success
  assert_output --partial "could not list the project's enabled APIs (see gcloud's message above): skipped that check"
  assert_output --partial "could not read the quotas of europe-west1 (see gcloud's message above): skipped that check"
  [ "$(count_calls '^pulumi up')" -eq 1 ]
}

@test "without gcloud: says the checks were skipped, then pulumi up" {
  rm "$STUBS/gcloud"
  mkdir -p "$CLOUDSDK_CONFIG" && echo '{}' >"$CLOUDSDK_CONFIG/application_default_credentials.json"
  # The system's commands, all but gcloud (one cp for them all: a link each is slow).
  mkdir "$MACHINE_DIR/no-gcloud"
  cp -s /usr/bin/* /bin/* "$MACHINE_DIR/no-gcloud/" 2>/dev/null || true
  rm -f "$MACHINE_DIR/no-gcloud/gcloud"
  run env PATH="$STUBS:$MACHINE_DIR/no-gcloud" bash "$PROJECT_COPY/tools/deploy.sh" dev --yes
  assert_success
  assert_output --partial "ha-k8s: gcloud is not installed: skipped the checks of the project's APIs and the region's quotas"
  [ "$(count_calls '^pulumi up')" -eq 1 ]
}
