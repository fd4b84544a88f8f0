#!/usr/bin/env bash
# npm run restore-etcd -- [<stack>] [--from gs://<bucket>/<object>] [--yes]
# Restores etcd from a snapshot in Cloud Storage onto the stack's control planes: fresh ones (a stack
# rebuilt after losing its control planes) or the existing ones (a change gone wrong). Destructive:
# the cluster goes back to the snapshot's moment, so it asks for the cluster's name unless --yes.
#
#   1. reads the stack's outputs (machines, jump host, SSH key, bucket) with the Pulumi CLI;
#   2. takes the newest snapshot of the cluster (or --from, e.g. in the bucket a destroyed stack
#      left behind) and downloads it with gcloud, with your credentials: the nodes may only create
#      objects in the bucket, never read them;
#   3. copies it and scripts/etcd-restore.sh to every control plane over SSH (through the jump
#      host), and runs each phase on every control plane before the next: stop (etcd and the API
#      servers held back), restore (etcdutl snapshot restore, the same member list everywhere, a new
#      cluster token), start (static pods back, kubelet, controller-manager and scheduler
#      restarted), then verify on the first (healthy members, API ready, kubeadm's cluster-info);
#   4. restarts the workers' kubelets and removes the snapshot copies from the machines.
# Every phase is safe to run again: after a failure, fix what it names and run this again.
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"

from=""
confirmed=false
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --from)
      [ $# -ge 2 ] || fail "--from needs gs://<bucket>/<object>"
      from="$2"
      shift 2
      ;;
    --yes)
      confirmed=true
      shift
      ;;
    *)
      rest+=("$1")
      shift
      ;;
  esac
done
# No pulumi up here: a --parallel of our own spares pulumi_env working out the one a deployment needs.
pulumi_env "${rest[@]}" --parallel=1
command -v gcloud >/dev/null 2>&1 ||
  fail "gcloud is needed to read the snapshot from Cloud Storage (https://cloud.google.com/sdk/docs/install)."
[ -z "$from" ] || [[ "$from" =~ ^gs://[a-z0-9._-]+/.+\.db$ ]] || fail "--from $from is not gs://<bucket>/<object>.db"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
outputs="$(pulumi stack output --stack "$STACK" --json --show-secrets)" ||
  fail "Cannot read the outputs of stack $STACK (see pulumi's message above)."
# The outputs as shell assignments (values checked to be names and addresses), and the SSH key.
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
const safe = (v, what) => { if (!/^[A-Za-z0-9._:-]+$/.test(String(v))) throw new Error(`unexpected ${what}: ${v}`); return v; };
if (!o.backupBucket || !o.nodes || !o.sshPrivateKey) throw new Error("the stack has no backupBucket/nodes/sshPrivateKey outputs: deploy it with this version first");
require("fs").writeFileSync(process.argv[1], o.sshPrivateKey, { mode: 0o600 });
const list = (role) => o.nodes.filter((n) => n.role === role).map((n) => `${safe(n.name, "node")}:${safe(n.internalIp, "address")}`).join(" ");
console.log(`CLUSTER=${safe(o.clusterName, "cluster name")}`);
console.log(`BUCKET=${safe(o.backupBucket, "bucket")}`);
console.log(`JUMP=${safe(o.loadBalancerExternalIp, "jump host")}`);
console.log(`CONTROL_PLANES="${list("control-plane")}"`);
console.log(`WORKERS="${list("worker")}"`);
' "$work/key" <<<"$outputs" >"$work/vars" || fail "The outputs of stack $STACK are not what this tool expects (see above)."
# shellcheck source=/dev/null # written just above
. "$work/vars"
# shellcheck disable=SC2153 # CONTROL_PLANES and WORKERS come from the vars file
read -r -a control_planes <<<"$CONTROL_PLANES"
# shellcheck disable=SC2153
read -r -a workers <<<"$WORKERS"
[ "${#control_planes[@]}" -gt 0 ] || fail "Stack $STACK has no control planes."

if [ -z "$from" ]; then
  # Object names start with the UTC time (scripts/etcd-backup.sh), so the last one is the newest.
  from="$(gcloud storage ls "gs://$BUCKET/etcd/$CLUSTER/" 2>/dev/null | grep -E '\.db$' | sort | tail -n 1 || true)"
  [ -n "$from" ] || fail "No snapshot under gs://$BUCKET/etcd/$CLUSTER/: name one with --from gs://<bucket>/<object>."
fi

names=()
for entry in "${control_planes[@]}"; do names+=("${entry%%:*}"); done
printf 'ha-k8s: restoring etcd of %s (stack %s) on %s from %s\n' "$CLUSTER" "$STACK" "${names[*]}" "$from" >&2
printf 'ha-k8s: everything written to the cluster after that snapshot is lost\n' >&2
if [ "$confirmed" != true ]; then
  read -r -p "Type the cluster name ($CLUSTER) to go on: " answer
  [ "$answer" = "$CLUSTER" ] || fail "Not confirmed; nothing changed."
fi

gcloud storage cp "$from" "$work/snapshot.db" >&2 || fail "Cannot download $from with your gcloud credentials."

# SSH as the deployment does: the stack's key, through the load balancer as jump host. Host keys are
# not pinned by the deployment either; this run trusts what it sees first (docs/limitations.md).
SSH_USER=k8sadmin
ssh_opts=(-i "$work/key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20
  -o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=accept-new)
on() {
  local ip="$1"
  shift
  ssh "${ssh_opts[@]}" -o ProxyCommand="ssh ${ssh_opts[*]} -W %h:%p $SSH_USER@$JUMP" "$SSH_USER@$ip" "$@"
}
REMOTE=/var/lib/ha-k8s/restore
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
initial_cluster=""
for entry in "${control_planes[@]}"; do
  initial_cluster+="${initial_cluster:+,}${entry%%:*}=https://${entry##*:}:2380"
done

for entry in "${control_planes[@]}"; do
  printf 'ha-k8s: copying the snapshot and the restore script to %s\n' "${entry%%:*}" >&2
  on "${entry##*:}" "sudo mkdir -p $REMOTE && sudo chmod 700 $REMOTE && sudo tee $REMOTE/snapshot.db >/dev/null" <"$work/snapshot.db"
  on "${entry##*:}" "sudo tee $REMOTE/lib.sh >/dev/null" <"$REPO/scripts/lib.sh"
  on "${entry##*:}" "sudo tee $REMOTE/etcd-restore.sh >/dev/null" <"$REPO/scripts/etcd-restore.sh"
done

# phase <name> <node:ip> [VAR=value ...]
phase() {
  local name="$1" entry="$2"
  shift 2
  printf 'ha-k8s: %s on %s\n' "$name" "${entry%%:*}" >&2
  on "${entry##*:}" "sudo env $* bash $REMOTE/etcd-restore.sh $name" ||
    fail "The $name phase failed on ${entry%%:*} (its messages are above); fix that and run this again."
}
for entry in "${control_planes[@]}"; do phase stop "$entry"; done
for entry in "${control_planes[@]}"; do
  phase restore "$entry" SNAPSHOT="$REMOTE/snapshot.db" MEMBER_NAME="${entry%%:*}" \
    MEMBER_PEER_URL="https://${entry##*:}:2380" INITIAL_CLUSTER="$initial_cluster" CLUSTER_TOKEN="ha-k8s-restore-$stamp"
done
for entry in "${control_planes[@]}"; do phase start "$entry"; done
phase verify "${control_planes[0]}" EXPECTED_MEMBERS="${#control_planes[@]}" KUBECONFIG_PATH=/etc/kubernetes/admin.conf

for entry in "${workers[@]}"; do
  on "${entry##*:}" "sudo systemctl restart kubelet" ||
    printf 'ha-k8s: WARNING: could not restart the kubelet on %s; restart it by hand\n' "${entry%%:*}" >&2
done
for entry in "${control_planes[@]}"; do on "${entry##*:}" "sudo rm -f $REMOTE/snapshot.db" || true; done
printf 'ha-k8s: etcd of %s restored from %s.\n' "$CLUSTER" "$from" >&2
printf 'ha-k8s: on a rebuilt stack the service-account signing key is new: delete pods that use older tokens (kubectl delete pods -A --all), and run pulumi up to re-check the cluster.\n' >&2
