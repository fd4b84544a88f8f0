#!/usr/bin/env bats
# tools/deploy.sh and tools/destroy.sh (npm run deploy / destroy) against stub pulumi and gcloud,
# from a copy of tools/ in a temporary project folder.

setup() {
  load helpers
  export MACHINE_DIR="$BATS_TEST_TMPDIR"
  export CALLS="$MACHINE_DIR/calls.log" STATE="$MACHINE_DIR/state" STUBS="$MACHINE_DIR/bin"
  export HOME="$MACHINE_DIR/home" CLOUDSDK_CONFIG="$MACHINE_DIR/home/gcloud"
  mkdir -p "$STATE" "$STUBS" "$HOME"
  : >"$CALLS"
  unset PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE GOOGLE_CREDENTIALS GOOGLE_APPLICATION_CREDENTIALS
  PROJECT_COPY="$MACHINE_DIR/project"
  mkdir -p "$PROJECT_COPY/tools"
  cp "$REPO/tools/deploy.sh" "$REPO/tools/destroy.sh" "$REPO/tools/pulumi-env.sh" "$PROJECT_COPY/tools/"
  echo 'echo "setup $HA_K8S_SETUP_APT" >>"$CALLS"' >"$PROJECT_COPY/tools/setup.sh"
  stub pulumi '
case "$1 $2" in
  "whoami "*) [ -f "$STATE/logged-in" ] && echo "Backend URL: https://api.pulumi.com" ;;
  "stack select") [ -f "$STATE/stack-$3" ] ;;
  "stack init") touch "$STATE/stack-$3" ;;
  "config get") [ -f "$STATE/project" ] && cat "$STATE/project" ;;
  "config set") echo "$3" >"$STATE/project" ;;
  "up "*) echo "up backend=${PULUMI_BACKEND_URL:-} passphrase=${PULUMI_CONFIG_PASSPHRASE_FILE:-}" >>"$CALLS" ;;
  "destroy "*) if [ -f "$STATE/destroy-fails" ]; then rm "$STATE/destroy-fails"; exit 255; fi ;;
  "stack export") cat "$STATE/export.json" ;;
esac'
  stub gcloud '
case "$*" in
  "auth application-default print-access-token") [ -f "$STATE/gcloud-creds" ] && echo token ;;
  "config get-value project") if [ -f "$STATE/gcloud-project" ]; then cat "$STATE/gcloud-project"; else echo "(unset)"; fi ;;
esac'
  touch "$STATE/gcloud-creds"
  echo my-project-123 >"$STATE/gcloud-project"
  export PATH="$STUBS:$PATH"
}

deploy() { run bash "$PROJECT_COPY/tools/deploy.sh" "$@"; }

@test "without the Pulumi CLI: one line saying how to install it, and a failure" {
  rm "$STUBS/pulumi"
  run env PATH="$STUBS:/usr/bin:/bin" bash "$PROJECT_COPY/tools/deploy.sh"
  assert_failure
  assert_equal "${#lines[@]}" 1
  assert_output --partial "curl -fsSL https://get.pulumi.com | sh"
}

@test "without Google Cloud credentials: one line saying how to log in, nothing deployed" {
  rm "$STATE/gcloud-creds"
  deploy
  assert_failure
  assert_equal "${#lines[@]}" 1
  assert_output --partial "gcloud auth application-default login"
  [ "$(count_calls '^pulumi up')" -eq 0 ]
}

@test "a fresh clone: local file backend in the project, passphrase file 0600, stack dev, project from gcloud, then up" {
  deploy --yes
  assert_success
  [ -d "$PROJECT_COPY/.pulumi-state" ]
  assert_equal "$(stat -c %a "$PROJECT_COPY/.pulumi-passphrase")" 600
  [ -s "$PROJECT_COPY/.pulumi-passphrase" ]
  assert_call_order "^pulumi stack init dev" "^pulumi config set gcp:project my-project-123" "^setup 0" "^pulumi up --stack dev --yes"
  grep -q "^up backend=file://$PROJECT_COPY/.pulumi-state passphrase=$PROJECT_COPY/.pulumi-passphrase" "$CALLS"
}

@test "a second run reuses the passphrase and the stack" {
  deploy
  first="$(cat "$PROJECT_COPY/.pulumi-passphrase")"
  : >"$CALLS"
  deploy
  assert_success
  assert_equal "$(cat "$PROJECT_COPY/.pulumi-passphrase")" "$first"
  [ "$(count_calls '^pulumi stack init')" -eq 0 ]
  [ "$(count_calls '^pulumi config set')" -eq 0 ]
}

@test "PULUMI_BACKEND_URL wins over the local default" {
  PULUMI_BACKEND_URL=gs://team-state deploy
  assert_success
  [ ! -e "$PROJECT_COPY/.pulumi-state" ]
  grep -q "^up backend=gs://team-state passphrase=$PROJECT_COPY/.pulumi-passphrase" "$CALLS"
}

@test "logged in to Pulumi Cloud: that backend, no passphrase file" {
  touch "$STATE/logged-in"
  deploy
  assert_success
  [ ! -e "$PROJECT_COPY/.pulumi-state" ]
  [ ! -e "$PROJECT_COPY/.pulumi-passphrase" ]
}

@test "a named stack" {
  deploy prod
  assert_success
  assert_call_order "^pulumi stack init prod" "^pulumi up --stack prod"
}

@test "no project anywhere: one line saying how to set it" {
  rm "$STATE/gcloud-project"
  deploy
  assert_failure
  assert_output --partial "pulumi config set gcp:project <project-id> --stack dev"
  [ "$(count_calls '^pulumi up')" -eq 0 ]
}

@test "destroy that cannot reach machines drops only the remote commands from the state, then finishes" {
  touch "$STATE/stack-dev" "$STATE/destroy-fails"
  echo my-project-123 >"$STATE/project"
  cat >"$STATE/export.json" <<'JSON'
{"deployment":{"resources":[
  {"urn":"urn:pulumi:dev::ha-k8s::gcp:compute/instance:Instance::c-cp-1","type":"gcp:compute/instance:Instance"},
  {"urn":"urn:pulumi:dev::ha-k8s::command:remote:Command::c-cp-1-init","type":"command:remote:Command"},
  {"urn":"urn:pulumi:dev::ha-k8s::command:remote:Command::c-worker-1-join","type":"command:remote:Command"}]}}
JSON
  run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_success
  assert_call_order "^pulumi destroy --stack dev --yes" "^pulumi stack export" \
    "^pulumi state delete --stack dev --yes --target-dependents urn:pulumi:dev::ha-k8s::command:remote:Command::c-cp-1-init" \
    "^pulumi state delete .*c-worker-1-join" "^pulumi destroy --stack dev --yes"
  [ "$(count_calls '^pulumi state delete .*Instance')" -eq 0 ]
  [ "$(count_calls '^pulumi destroy')" -eq 2 ]
}
