#!/usr/bin/env bash
# npm run restore-etcd -- [<stack>] [--from gs://<bucket>/<object> | --newest] [--only <node>[,<node>...]] [--yes]
# Restores etcd from a snapshot in Cloud Storage onto the stack's control planes: fresh ones (a stack
# rebuilt after losing its control planes), the existing ones (a change gone wrong), or, with
# --only, the ones that survived a loss of quorum (the others are rebuilt afterwards by the
# program). Destructive: the cluster goes back to the snapshot's moment, so it asks for the
# cluster's name unless --yes. docs/operating.md, "Restore etcd", is the procedure around it.
#
#   1. reads the stack's outputs (machines, jump host, SSH key, bucket, and the cluster CA in the
#      kubeconfig, whose notBefore is when Pulumi created this stack's cluster) with the Pulumi CLI;
#   2. picks the snapshot: --from, else the newest of the cluster in the stack's bucket, but only
#      when that one was taken before this stack's cluster was built (the last snapshot of an
#      earlier build, in a bucket kept across builds). A newer one is this cluster's own: on a
#      rebuilt stack that is the new, empty cluster (its pre-change snapshot), so the default is
#      refused and it asks for --from (the old bucket's snapshot) or --newest (this cluster's own
#      newest: a change gone wrong, a loss of quorum);
#   3. chooses the targets: every control plane of the stack, or those --only names (cp-1 or
#      <cluster>-cp-1; comma-separated or repeated), after a loss of quorum the surviving ones;
#   4. checks every target before it stops anything anywhere: the SSH login (through the jump
#      host), then, with the snapshot copied there, `etcd-restore.sh check` (a finished kubeadm join:
#      kubelet.conf, the etcd and API server manifests naming this member, etcd's certificates and
#      data; etcdutl runs and reads the snapshot; room on the disk). One failure stops the restore
#      with every problem listed and nothing stopped;
#   5. runs each phase on every target before the next: stop (etcd and the API servers held back),
#      restore (etcdutl snapshot restore, --initial-cluster naming the targets only, a new cluster
#      token), start (static pods back, kubelet, controller-manager and scheduler restarted), then
#      verify on the first target (one healthy member per target, API ready, kubeadm's cluster-info);
#   6. restarts the workers' kubelets and removes the snapshot copies from the targets.
# Control planes left out by --only are not touched at all: they are rebuilt by the program.
# Every phase is safe to run again: after a failure, fix what it names and run this again.
# Kubespray's recover-control-plane.yml is the model (recover_control_plane/etcd: with quorum lost,
# restore onto the first surviving member alone, --initial-cluster naming it only; the broken ones,
# named by the operator in broken_etcd, are rebuilt by cluster.yml).
set -euo pipefail
# shellcheck source=tools/pulumi-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/pulumi-env.sh"

from=""
newest=false
confirmed=false
only=()
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --from)
      [ $# -ge 2 ] || fail "--from needs gs://<bucket>/<object>"
      from="$2"
      shift 2
      ;;
    --newest)
      newest=true
      shift
      ;;
    --only)
      [ $# -ge 2 ] || fail "--only needs control-plane names (cp-1 or <cluster>-cp-1, comma-separated)"
      IFS=, read -r -a names_given <<<"$2"
      only+=("${names_given[@]}")
      shift 2
      ;;
    --only=*)
      IFS=, read -r -a names_given <<<"${1#--only=}"
      only+=("${names_given[@]}")
      shift
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
[ -z "$from" ] || [ "$newest" != true ] || fail "--from and --newest exclude each other: name one snapshot."
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
# CLUSTER_CREATED, when this stack's cluster was built: the notBefore of the cluster CA in the
# kubeconfig output. Pulumi made that CA (@pulumi/tls SelfSignedCert, components/pki.ts) in the
# stack's first deployment, and terraform-provider-tls sets NotBefore to the moment it signs
# (internal/provider/common_cert.go, createCertificate); it stays while machines are replaced and
# restored, and a stack rebuilt after a destroy gets a new one. Read from the outputs, it needs no
# machine (after a loss of quorum the API that could tell kube-system's age is down, and a restore
# brings back the old cluster's namespaces). "unknown" when the output carries no CA.
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
let created = "";
const ca = /certificate-authority-data:\s*(\S+)/.exec(o.kubeconfig ?? "");
if (ca) {
  try {
    const pem = Buffer.from(ca[1], "base64").toString("utf8");
    created = new Date(new (require("crypto").X509Certificate)(pem).validFrom).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  } catch {
    created = "";
  }
}
console.log(`CLUSTER_CREATED=${safe(created || "unknown", "CA time")}`);
' "$work/key" <<<"$outputs" >"$work/vars" || fail "The outputs of stack $STACK are not what this tool expects (see above)."
# shellcheck source=/dev/null # written just above
. "$work/vars"
# shellcheck disable=SC2153 # CONTROL_PLANES and WORKERS come from the vars file
read -r -a control_planes <<<"$CONTROL_PLANES"
# shellcheck disable=SC2153
read -r -a workers <<<"$WORKERS"
[ "${#control_planes[@]}" -gt 0 ] || fail "Stack $STACK has no control planes."

# The targets: every control plane, or the ones --only names (in the stack's order, so the first
# control plane, when it is one, verifies).
targets=()
excluded=()
if [ "${#only[@]}" -eq 0 ]; then
  targets=("${control_planes[@]}")
else
  for name in "${only[@]}"; do
    found=false
    for entry in "${control_planes[@]}"; do
      node="${entry%%:*}"
      if [ "$name" = "$node" ] || [ "$CLUSTER-$name" = "$node" ]; then found=true; fi
    done
    [ "$found" = true ] || fail "--only $name: not a control plane of stack $STACK (they are: ${control_planes[*]%%:*})."
  done
  for entry in "${control_planes[@]}"; do
    node="${entry%%:*}"
    chosen=false
    for name in "${only[@]}"; do
      if [ "$name" = "$node" ] || [ "$CLUSTER-$name" = "$node" ]; then chosen=true; fi
    done
    if [ "$chosen" = true ]; then targets+=("$entry"); else excluded+=("$entry"); fi
  done
fi
names() {
  local entry out=()
  for entry in "$@"; do out+=("${entry%%:*}"); done
  printf '%s' "${out[*]}"
}
short_names() {
  local entry out=()
  for entry in "$@"; do out+=("${entry%%:*}"); done
  out=("${out[@]#"$CLUSTER"-}")
  local IFS=,
  printf '%s' "${out[*]}"
}

if [ -z "$from" ]; then
  # Object names start with the UTC time (scripts/etcd-backup.sh), so the last one is the newest.
  listing="$(gcloud storage ls "gs://$BUCKET/etcd/$CLUSTER/" 2>/dev/null | grep -E '\.db$' | sort || true)"
  from="$(tail -n 1 <<<"$listing")"
  [ -n "$from" ] || fail "No snapshot under gs://$BUCKET/etcd/$CLUSTER/: name one with --from gs://<bucket>/<object>."
  taken="$(basename "$from" | cut -c1-16)"
  if [ "$newest" = true ]; then
    printf 'ha-k8s: --newest: the newest snapshot of gs://%s/etcd/%s/, taken %s\n' "$BUCKET" "$CLUSTER" "$taken" >&2
  elif [ "$CLUSTER_CREATED" = unknown ]; then
    fail "Cannot tell when stack $STACK's cluster was built (its kubeconfig output has no CA), so not" \
      "choosing a snapshot for you: name one with --from gs://<bucket>/etcd/$CLUSTER/<object>.db, or pass" \
      "--newest for $from."
  elif ! [[ "$taken" =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || [[ ! "$taken" < "$CLUSTER_CREATED" ]]; then
    {
      printf 'ha-k8s: the newest snapshot, %s, was taken after stack %s'"'"'s cluster was built (%s, its CA):\n' \
        "$from" "$STACK" "$CLUSTER_CREATED"
      printf '  it holds this cluster'"'"'s data, never an earlier build'"'"'s. On a rebuilt stack that is the new, empty cluster.\n'
      printf '  Choose:\n'
      printf '  - after a rebuild: the old cluster'"'"'s snapshot, in the bucket the destroyed stack left:\n'
      printf '      gcloud storage ls gs://<old bucket>/etcd/%s/\n' "$CLUSTER"
      printf '      npm run restore-etcd -- %s --from gs://<old bucket>/etcd/%s/<object>.db\n' "$STACK" "$CLUSTER"
      printf '  - this cluster'"'"'s own snapshot (a change gone wrong, quorum lost): --newest for the one above, or --from one of:\n'
      tail -n 5 <<<"$listing" | sed 's/^/      /'
    } >&2
    fail "Not restoring the newest snapshot by default; nothing changed."
  else
    printf 'ha-k8s: the newest snapshot, taken %s, is from before this cluster was built (%s): an earlier build'"'"'s last\n' \
      "$taken" "$CLUSTER_CREATED" >&2
  fi
fi

printf 'ha-k8s: restoring etcd of %s (stack %s) on %s from %s\n' "$CLUSTER" "$STACK" "$(names "${targets[@]}")" "$from" >&2
if [ "${#excluded[@]}" -gt 0 ]; then
  printf 'ha-k8s: left out, not touched, to be rebuilt afterwards: %s; etcd will have %s member(s)\n' \
    "$(names "${excluded[@]}")" "${#targets[@]}" >&2
fi
printf 'ha-k8s: everything written to the cluster after that snapshot is lost\n' >&2
if [ "$confirmed" != true ]; then
  read -r -p "Type the cluster name ($CLUSTER) to go on: " answer
  [ "$answer" = "$CLUSTER" ] || fail "Not confirmed; nothing changed."
fi

# SSH as the deployment does: the stack's key, through the load balancer as jump host. Host keys are
# not pinned by the deployment either; this run trusts what it sees first (docs/limitations.md) for
# the machines behind the hop. The hop itself is not pinned: with two HAProxy VMs the external load
# balancer may hand a connection to either (both, when every backend is unhealthy, as while the API
# servers are stopped), each with its own host key, and a pinned hop would refuse the second.
SSH_USER=k8sadmin
ssh_base=(-i "$work/key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20)
ssh_opts=("${ssh_base[@]}" -o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=accept-new)
hop_opts=("${ssh_base[@]}" -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR)
on() {
  local ip="$1"
  shift
  ssh "${ssh_opts[@]}" -o ProxyCommand="ssh ${hop_opts[*]} -W %h:%p $SSH_USER@$JUMP" "$SSH_USER@$ip" "$@"
}
REMOTE=/var/lib/ha-k8s/restore
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
initial_cluster=""
for entry in "${targets[@]}"; do
  initial_cluster+="${initial_cluster:+,}${entry%%:*}=https://${entry##*:}:2380"
done

# ---- preflight: nothing is stopped until every target passes ----------------------------------
printf 'ha-k8s: preflight: logging in to the jump host %s and to %s\n' "$JUMP" "$(names "${targets[@]}")" >&2
ssh "${hop_opts[@]}" "$SSH_USER@$JUMP" true ||
  fail "Cannot log in to the jump host $JUMP (ssh's message above): nothing behind it can be reached; nothing changed."
unreachable=()
reachable=()
for entry in "${targets[@]}"; do
  if on "${entry##*:}" "sudo -n true"; then reachable+=("$entry"); else unreachable+=("$entry"); fi
done
if [ "${#unreachable[@]}" -gt 0 ]; then
  printf 'ha-k8s: cannot log in to %s (ssh'"'"'s messages above); nothing was changed\n' "$(names "${unreachable[@]}")" >&2
  if [ "${#reachable[@]}" -gt 0 ]; then
    printf 'ha-k8s: if they are lost, restore onto the others and rebuild the lost ones afterwards:\n' >&2
    printf '  npm run restore-etcd -- %s --only %s ...\n' "$STACK" "$(short_names "${reachable[@]}")" >&2
  fi
  fail "Preflight failed: not every control plane to restore onto can be reached."
fi

gcloud storage cp "$from" "$work/snapshot.db" >&2 || fail "Cannot download $from with your gcloud credentials; nothing changed."

for entry in "${targets[@]}"; do
  printf 'ha-k8s: copying the snapshot and the restore script to %s\n' "${entry%%:*}" >&2
  on "${entry##*:}" "sudo mkdir -p $REMOTE && sudo chmod 700 $REMOTE && sudo tee $REMOTE/snapshot.db >/dev/null" <"$work/snapshot.db" ||
    fail "Cannot copy the snapshot to ${entry%%:*}; nothing was stopped."
  on "${entry##*:}" "sudo tee $REMOTE/lib.sh >/dev/null" <"$REPO/scripts/lib.sh" ||
    fail "Cannot copy lib.sh to ${entry%%:*}; nothing was stopped."
  on "${entry##*:}" "sudo tee $REMOTE/etcd-restore.sh >/dev/null" <"$REPO/scripts/etcd-restore.sh" ||
    fail "Cannot copy etcd-restore.sh to ${entry%%:*}; nothing was stopped."
done

not_ready=()
for entry in "${targets[@]}"; do
  verify_here=""
  [ "$entry" != "${targets[0]}" ] || verify_here="KUBECONFIG_PATH=/etc/kubernetes/admin.conf"
  printf 'ha-k8s: check on %s\n' "${entry%%:*}" >&2
  # shellcheck disable=SC2086 # verify_here is one assignment or nothing
  on "${entry##*:}" "sudo env SNAPSHOT=$REMOTE/snapshot.db MEMBER_NAME=${entry%%:*} MEMBER_PEER_URL=https://${entry##*:}:2380 $verify_here bash $REMOTE/etcd-restore.sh check" ||
    not_ready+=("$entry")
done
if [ "${#not_ready[@]}" -gt 0 ]; then
  printf 'ha-k8s: %s cannot be restored onto (the problems are above); nothing was stopped\n' "$(names "${not_ready[@]}")" >&2
  if [ "${#not_ready[@]}" -lt "${#targets[@]}" ]; then
    ready=()
    for entry in "${targets[@]}"; do
      case " ${not_ready[*]} " in *" $entry "*) ;; *) ready+=("$entry") ;; esac
    done
    printf 'ha-k8s: a control plane that never finished its join is rebuilt, not restored onto: leave it out,\n' >&2
    printf '  npm run restore-etcd -- %s --only %s ...   and rebuild it afterwards\n' "$STACK" "$(short_names "${ready[@]}")" >&2
  fi
  fail "Preflight failed; nothing was stopped."
fi
printf 'ha-k8s: preflight passed on %s\n' "$(names "${targets[@]}")" >&2

# ---- the restore ----------------------------------------------------------------------------------
# phase <name> <node:ip> [VAR=value ...]
phase() {
  local name="$1" entry="$2"
  shift 2
  printf 'ha-k8s: %s on %s\n' "$name" "${entry%%:*}" >&2
  on "${entry##*:}" "sudo env $* bash $REMOTE/etcd-restore.sh $name" ||
    fail "The $name phase failed on ${entry%%:*} (its messages are above); fix that and run this again."
}
for entry in "${targets[@]}"; do phase stop "$entry"; done
for entry in "${targets[@]}"; do
  phase restore "$entry" SNAPSHOT="$REMOTE/snapshot.db" MEMBER_NAME="${entry%%:*}" \
    MEMBER_PEER_URL="https://${entry##*:}:2380" INITIAL_CLUSTER="$initial_cluster" CLUSTER_TOKEN="ha-k8s-restore-$stamp"
done
for entry in "${targets[@]}"; do phase start "$entry"; done
phase verify "${targets[0]}" EXPECTED_MEMBERS="${#targets[@]}" KUBECONFIG_PATH=/etc/kubernetes/admin.conf

for entry in "${workers[@]}"; do
  on "${entry##*:}" "sudo systemctl restart kubelet" ||
    printf 'ha-k8s: WARNING: could not restart the kubelet on %s; restart it by hand\n' "${entry%%:*}" >&2
done
for entry in "${targets[@]}"; do on "${entry##*:}" "sudo rm -f $REMOTE/snapshot.db" || true; done
printf 'ha-k8s: etcd of %s restored from %s onto %s.\n' "$CLUSTER" "$from" "$(names "${targets[@]}")" >&2
if [ "${#excluded[@]}" -gt 0 ]; then
  printf 'ha-k8s: etcd has %s member(s); rebuild %s through the program (docs/operating.md, "Restore etcd", step 4).\n' \
    "${#targets[@]}" "$(names "${excluded[@]}")" >&2
fi
printf 'ha-k8s: on a rebuilt stack the service-account signing key is new: delete pods that use older tokens (kubectl delete pods -A --all), and run pulumi up to re-check the cluster.\n' >&2
