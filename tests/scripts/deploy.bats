#!/usr/bin/env bats
# tools/deploy.sh and tools/destroy.sh (npm run deploy / destroy) against stub pulumi and gcloud,
# from a copy of tools/ in a temporary project folder.

setup() {
  load helpers
  setup_deployer
  mkdir -p "$PROJECT_COPY/scripts"
  cp "$REPO/tools/deploy.sh" "$REPO/tools/destroy.sh" "$REPO/tools/pulumi-env.sh" "$REPO/tools/state-commands.js" \
    "$PROJECT_COPY/tools/"
  cp "$REPO/scripts/wait-for-login.sh" "$REPO/scripts/lib.sh" "$PROJECT_COPY/scripts/"
  # The plan's parallelism (npm run parallel) and an OpenSSH client that logs in everywhere.
  stub npm 'case "$*" in *"run --silent parallel -- --stack"*) echo 216 ;; esac'
  stub ssh 'echo ha-k8s-login-ok'
  export HA_K8S_SLEEP=0
  stub pulumi '
case "$1 $2" in
  "whoami "*) [ -f "$STATE/logged-in" ] && echo "Backend URL: https://api.pulumi.com" ;;
  "stack select") [ -f "$STATE/stack-$3" ] ;;
  "stack init") touch "$STATE/stack-$3" ;;
  "config get") [ -f "$STATE/project" ] && cat "$STATE/project" ;;
  "config set") echo "$3" >"$STATE/project" ;;
  "up "*) echo "up backend=${PULUMI_BACKEND_URL:-} passphrase=${PULUMI_CONFIG_PASSPHRASE_FILE:-}" >>"$CALLS" ;;
  "destroy "*) if [ -f "$STATE/destroy-fails" ]; then rm "$STATE/destroy-fails"; cat "$STATE/destroy-output" 2>/dev/null; exit 255; fi ;;
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
  assert_call_order "^pulumi stack init dev" "^pulumi config set gcp:project my-project-123" "^setup 0" \
    "^npm run --silent parallel -- --stack dev" "^pulumi up --stack dev --parallel 216 --yes"
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
  assert_call_order "^pulumi stack init prod" "^npm run --silent parallel -- --stack prod" "^pulumi up --stack prod --parallel 216"
}

@test "a --parallel of your own wins over the plan's" {
  deploy dev --parallel 32 --yes
  assert_success
  assert_call_order "^pulumi up --stack dev --parallel 32 --yes"
  [ "$(count_calls '^npm run')" -eq 0 ]
}

@test "PULUMI_PARALLEL of your own wins over the plan's too (pulumi reads it as --parallel's default)" {
  PULUMI_PARALLEL=12 deploy dev --yes
  assert_success
  assert_call_order "^pulumi up --stack dev --yes"
  [ "$(count_calls ' --parallel')" -eq 0 ]
  [ "$(count_calls '^npm run')" -eq 0 ]
  assert_output --partial "up to 12 operations at once (PULUMI_PARALLEL)"
}

@test "in CI without PULUMI_BACKEND_URL: one line, no local state made on the runner, nothing deployed" {
  GITHUB_ACTIONS=true CI=true deploy dev --yes
  assert_failure
  assert_equal "${#lines[@]}" 1
  assert_output --partial "PULUMI_BACKEND_URL is empty in CI"
  assert_output --partial "set the repository secret PULUMI_BACKEND_URL"
  [ ! -e "$PROJECT_COPY/.pulumi-state" ]
  [ "$(count_calls '^pulumi (up|stack init)')" -eq 0 ]
}

@test "in CI without PULUMI_CONFIG_PASSPHRASE: one line, no random passphrase made on the runner, nothing deployed" {
  CI=true PULUMI_BACKEND_URL=gs://team-state deploy dev --yes
  assert_failure
  assert_output --partial "ha-k8s: backend gs://team-state, stack dev"
  assert_output --partial "PULUMI_CONFIG_PASSPHRASE is empty in CI"
  [ ! -e "$PROJECT_COPY/.pulumi-passphrase" ]
  [ "$(count_calls '^pulumi (up|stack init)')" -eq 0 ]
}

@test "in CI with both, or logged in to Pulumi Cloud: deploys" {
  CI=true PULUMI_BACKEND_URL=gs://team-state PULUMI_CONFIG_PASSPHRASE=secret deploy dev --yes
  assert_success
  touch "$STATE/logged-in"
  CI=true deploy dev --yes
  assert_success
  [ "$(count_calls '^pulumi up')" -eq 2 ]
  # CI=false is not CI.
  rm "$STATE/logged-in"
  CI=false deploy dev --yes
  assert_success
}

@test "without the OpenSSH client: one line saying how to install it, nothing deployed" {
  rm "$STUBS/ssh"
  # The system's commands, all but ssh.
  mkdir "$MACHINE_DIR/no-ssh"
  for tool in /usr/bin/* /bin/*; do
    [ "$(basename "$tool")" = ssh ] || ln -sf "$tool" "$MACHINE_DIR/no-ssh/"
  done
  run env PATH="$STUBS:$MACHINE_DIR/no-ssh" bash "$PROJECT_COPY/tools/deploy.sh"
  assert_failure
  assert_equal "${lines[${#lines[@]} - 1]}" \
    "The OpenSSH client (ssh) is not installed: install it (Debian/Ubuntu: apt-get install openssh-client), then run this again."
  [ "$(count_calls '^pulumi up')" -eq 0 ]
}

# A state with a VM, a command on a reachable machine and one on a machine that is gone. The
# connections are secrets, shown as `pulumi stack export --show-secrets` shows them.
# Stack dev exists with its project; its next destroy fails once; the state holds its commands.
a_destroy_that_fails() {
  touch "$STATE/stack-dev" "$STATE/destroy-fails"
  echo my-project-123 >"$STATE/project"
  write_state
}

write_state() {
  node -e '
const secret = (v) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(v) });
const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n";
const cmd = (name, host) => ({ urn: `urn:pulumi:dev::ha-k8s::command:remote:Command::${name}`, type: "command:remote:Command",
  inputs: { connection: secret({ host, user: "k8sadmin", privateKey: key, proxy: { host: "198.51.100.7", user: "k8sadmin", privateKey: key } }) } });
console.log(JSON.stringify({ deployment: { resources: [
  { urn: "urn:pulumi:dev::ha-k8s::gcp:compute/instance:Instance::c-cp-1", type: "gcp:compute/instance:Instance" },
  cmd("c-cp-2-member", "10.10.0.10"), cmd("c-worker-1-join", "10.10.0.20"), cmd("c-worker-1-removal", "10.10.0.10") ] } }));
' >"$STATE/export.json"
}

@test "destroy drops only the commands whose machine cannot be reached, then finishes" {
  a_destroy_that_fails
  # worker-1 (10.10.0.20) is gone: its login times out; cp-1 (10.10.0.10) answers.
  stub ssh 'case "$*" in *10.10.0.20*) echo "ssh: connect to host 10.10.0.20 port 22: Connection timed out" >&2; exit 255 ;; esac; echo ha-k8s-login-ok'
  HA_K8S_UNREACHABLE_AFTER=1 run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_success
  assert_call_order "^pulumi destroy --stack dev --parallel 216 --yes" "^pulumi stack export --stack dev --show-secrets" \
    "^pulumi state delete --stack dev --yes --target-dependents urn:pulumi:dev::ha-k8s::command:remote:Command::c-worker-1-join" \
    "^pulumi destroy --stack dev --parallel 216 --yes"
  [ "$(count_calls '^pulumi state delete')" -eq 1 ]
  assert_output --partial "10.10.0.20 via 198.51.100.7 cannot be reached"
  [ "$(count_calls '^pulumi destroy')" -eq 2 ]
  # Each machine was checked once, through the jump host, with the key from the state.
  [ "$(count_calls '^ssh .*k8sadmin@10.10.0.10')" -eq 1 ]
  grep -q "ProxyCommand=ssh .* -W %h:%p k8sadmin@198.51.100.7" "$CALLS"
}

@test "a destroy that fails for another reason (a GCP API error) fails and drops nothing" {
  a_destroy_that_fails
  run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_failure
  assert_output --partial "failed for a reason other than unreachable machines"
  assert_output --partial "the state of stack dev is kept"
  [ "$(count_calls '^pulumi state delete')" -eq 0 ]
  [ "$(count_calls '^pulumi destroy')" -eq 1 ]
}

@test "the exported state with its secrets does not outlive the destroy" {
  a_destroy_that_fails
  export TMPDIR="$MACHINE_DIR/tmp" && mkdir -p "$TMPDIR"
  run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  [ -z "$(ls -A "$TMPDIR")" ]
}

@test "destroy checks the jump host first: when it cannot be reached, nothing behind it is tried and all is dropped" {
  a_destroy_that_fails
  stub ssh 'echo "ssh: connect to host 198.51.100.7 port 22: Connection timed out" >&2; exit 255'
  HA_K8S_UNREACHABLE_AFTER=1 run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_success
  [ "$(count_calls '^ssh ')" -ge 1 ]
  [ "$(count_calls '^ssh .*ProxyCommand')" -eq 0 ] # no machine behind it was tried
  [ "$(count_calls '^pulumi state delete')" -eq 3 ]
  assert_output --partial "10.10.0.20 cannot be reached: neither can its jump host 198.51.100.7"
}

@test "destroying the whole stack drops a control plane's removal that etcd refused for quorum, then finishes" {
  a_destroy_that_fails
  printf '    command:remote:Command (c-cp-2-member):\n      12:00:01 [member-remove.sh] WARNING: REFUSED: etcd will not remove the member of c-cp-2 (91bc3c398fb3c146): without it ...\n' >"$STATE/destroy-output"
  run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_success
  assert_output --partial "etcd refused to remove c-cp-2's member; the whole cluster goes"
  assert_call_order "^pulumi state delete --stack dev --yes --target-dependents urn:pulumi:dev::ha-k8s::command:remote:Command::c-cp-2-member" \
    "^pulumi destroy --stack dev"
  [ "$(count_calls '^pulumi state delete')" -eq 1 ]
  [ "$(count_calls '^pulumi destroy')" -eq 2 ]
}

@test "a targeted destroy keeps a refused removal and fails, as pulumi up does" {
  a_destroy_that_fails
  printf 'WARNING: REFUSED: etcd will not remove the member of c-cp-2 (91bc3c398fb3c146): ...\n' >"$STATE/destroy-output"
  run bash "$PROJECT_COPY/tools/destroy.sh" --yes --target urn:pulumi:dev::ha-k8s::gcp:compute/instance:Instance::c-cp-2
  assert_failure
  assert_output --partial "this destroy is targeted: keeping urn:pulumi:dev::ha-k8s::command:remote:Command::c-cp-2-member"
  [ "$(count_calls '^pulumi state delete')" -eq 0 ]
}

@test "the exported state and the key do not outlive a destroy that dropped commands and destroyed again" {
  a_destroy_that_fails
  stub ssh 'echo "ssh: connect to host 198.51.100.7 port 22: Connection timed out" >&2; exit 255'
  export TMPDIR="$MACHINE_DIR/tmp" && mkdir -p "$TMPDIR"
  HA_K8S_UNREACHABLE_AFTER=1 run bash "$PROJECT_COPY/tools/destroy.sh" --yes
  assert_success
  [ "$(count_calls '^pulumi destroy')" -eq 2 ]
  [ -z "$(ls -A "$TMPDIR")" ]
}

@test "a destroy without --yes that did not finish (a declined prompt, no terminal) edits nothing and says how to go on" {
  a_destroy_that_fails
  run bash "$PROJECT_COPY/tools/destroy.sh"
  assert_failure
  assert_output --partial "the state of stack dev is kept"
  assert_output --partial "run npm run destroy -- dev --yes"
  [ "$(count_calls '^pulumi (stack export|state delete)')" -eq 0 ]
  [ "$(count_calls '^ssh ')" -eq 0 ]
  # PULUMI_SKIP_CONFIRMATIONS and -f (--skip-preview) confirm as --yes does.
  touch "$STATE/destroy-fails"
  PULUMI_SKIP_CONFIRMATIONS=true run bash "$PROJECT_COPY/tools/destroy.sh"
  [ "$(count_calls '^pulumi stack export')" -eq 1 ]
}

@test "--stack names the stack, wherever it stands among the flags" {
  deploy --yes --stack prod
  assert_success
  assert_call_order "^pulumi stack init prod" "^pulumi up --stack prod --parallel 216 --yes$"
  touch "$STATE/destroy-fails"
  write_state
  run bash "$PROJECT_COPY/tools/destroy.sh" -s prod --yes
  assert_call_order "^pulumi destroy --stack prod --parallel 216 --yes$" "^pulumi stack export --stack prod --show-secrets"
  [ "$(count_calls ' --stack dev')" -eq 0 ]
}

@test "a stack with its own secrets provider, or a passphrase set empty, gets no passphrase file, in CI too" {
  echo 'secretsprovider: gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k' >"$PROJECT_COPY/Pulumi.prod.yaml"
  CI=true PULUMI_BACKEND_URL=gs://team-state deploy prod --yes
  assert_success
  [ ! -e "$PROJECT_COPY/.pulumi-passphrase" ]
  PULUMI_CONFIG_PASSPHRASE="" deploy dev --yes
  assert_success
  [ ! -e "$PROJECT_COPY/.pulumi-passphrase" ]
}
