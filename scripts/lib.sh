#!/usr/bin/env bash
# Shared functions for the ha-k8s machine scripts. Sourced, never run. Every script is run by root
# through a bundle (render/bundle.ts) that stages this file next to it.
#
# Test hooks (bats sets them; production leaves them empty/default):
#   HA_K8S_ROOT   prefix for every absolute path a script touches
#   HA_K8S_SLEEP  seconds between retries and polls (default 5)

HA_K8S_ROOT="${HA_K8S_ROOT:-}"
HA_K8S_SLEEP="${HA_K8S_SLEEP:-5}"
HA_K8S_SCRIPT="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"

log() { printf '%s [%s] %s\n' "$(date -u +%H:%M:%S)" "$HA_K8S_SCRIPT" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

# A path on the machine (under HA_K8S_ROOT in tests).
root_path() { printf '%s%s' "$HA_K8S_ROOT" "$1"; }

# retry <attempts> <command...>: runs the command until it succeeds, waiting a little longer each
# time (HA_K8S_SLEEP, 2x, 3x ...). Returns the last exit code when every attempt failed.
retry() {
  local attempts="$1" n=1 rc=0
  shift
  while true; do
    "$@" && return 0
    rc=$?
    if [ "$n" -ge "$attempts" ]; then
      warn "gave up after $attempts attempts: $*"
      return "$rc"
    fi
    log "attempt $n of $attempts failed (exit $rc): $*; retrying"
    sleep "$((HA_K8S_SLEEP * n))"
    n=$((n + 1))
  done
}

# wait_until <attempts> <description> <command...>: polls a condition every HA_K8S_SLEEP seconds.
wait_until() {
  local attempts="$1" what="$2" n=1
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$n" -ge "$attempts" ]; then
      log "timed out waiting for $what"
      return 1
    fi
    [ $((n % 12)) -eq 0 ] && log "still waiting for $what"
    sleep "$HA_K8S_SLEEP"
    n=$((n + 1))
  done
}

# cloud-init must finish before we touch apt: it may still be installing packages on first boot.
# Exit code 2 (newer cloud-init: finished with recoverable errors) is not ours to fail on.
wait_for_cloud_init() {
  command -v cloud-init >/dev/null 2>&1 || return 0
  log "waiting for cloud-init to finish"
  local rc=0
  cloud-init status --wait >/dev/null 2>&1 || rc=$?
  case "$rc" in
    0) ;;
    2) warn "cloud-init finished with recoverable errors; continuing" ;;
    *) warn "cloud-init status exited $rc; continuing" ;;
  esac
}

# apt's and dpkg's lock files. `apt-get update` takes the lists lock and fails at once when another
# process holds it; DPkg::Lock::Timeout covers only dpkg's frontend lock (apt's apt-pkg/init and
# pkgsystem code), and unattended-upgrades runs on a fresh Ubuntu VM's first boot.
APT_LOCK_FILES=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
APT_LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-600}"

# The processes holding one of those locks, as "pid/name" words; empty when apt is free. fuser
# (psmisc, on Ubuntu's server images) names the lock holders; without it, apt and dpkg processes.
apt_lock_holders() {
  local pids pid
  if command -v fuser >/dev/null 2>&1; then
    pids="$(fuser "${APT_LOCK_FILES[@]/#/$HA_K8S_ROOT}" 2>/dev/null || true)"
  else
    pids="$(pgrep -x 'apt|apt-get|aptitude|dpkg|unattended-upgr' 2>/dev/null || true)"
  fi
  for pid in $pids; do
    printf '%s/%s ' "$pid" "$(ps -o comm= -p "$pid" 2>/dev/null || echo '?')"
  done
}

# Waits until apt is free, at most APT_LOCK_TIMEOUT seconds, saying who holds it.
wait_for_apt_locks() {
  local holders waited=0
  while holders="$(apt_lock_holders)" && [ -n "$holders" ]; do
    if [ "$waited" -ge "$APT_LOCK_TIMEOUT" ]; then
      die "apt is still locked after ${APT_LOCK_TIMEOUT}s by: ${holders% } (unattended-upgrades on first boot? see journalctl -u unattended-upgrades)"
    fi
    [ $((waited % 30)) -eq 0 ] && log "waiting for apt's locks, held by: ${holders% }"
    sleep "$((HA_K8S_SLEEP > 0 ? HA_K8S_SLEEP : 1))"
    waited=$((waited + (HA_K8S_SLEEP > 0 ? HA_K8S_SLEEP : 1)))
  done
}

# apt-get once apt's locks are free (and still waiting for dpkg's lock, should another process take
# it meanwhile), keeping existing config files, and keeping Ubuntu's needrestart from restarting
# services mid-bootstrap.
apt_get() {
  wait_for_apt_locks
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# install_file <source> <destination> <mode>: installs the file only when its content or mode
# differs. Returns 0 when it changed something, 1 when the destination was already right.
install_file() {
  local src="$1" dst="$2" mode="$3"
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "$mode" ]; then
    return 1
  fi
  mkdir -p "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst"
  log "installed $dst"
  return 0
}

# write_file <destination> <mode> < content: install_file for generated content.
write_file() {
  local tmp rc=0
  tmp="$(mktemp)"
  cat >"$tmp"
  install_file "$tmp" "$1" "$2" || rc=$?
  rm -f "$tmp"
  return "$rc"
}

# Removes bootstrap tokens and 64-hex keys (certificate key, discovery hashes' digests) from text,
# so kubeadm's chatter can be shown without leaking what it echoes.
redact() {
  sed -E -e 's/[a-z0-9]{6}\.[a-z0-9]{16}/<redacted-token>/g' -e 's/[0-9a-fA-F]{64}/<redacted-key>/g'
}

# run_redacted <command...>: runs it with stdout and stderr redacted onto stderr; keeps its exit code.
run_redacted() {
  local rc=0
  "$@" 2>&1 | redact >&2 || rc=${PIPESTATUS[0]}
  return "$rc"
}

# The staged input file <name>, which must exist.
staged() {
  local file="${HA_K8S_STAGE:?HA_K8S_STAGE is not set}/$1"
  [ -f "$file" ] || die "staged file $1 is missing from $HA_K8S_STAGE"
  printf '%s' "$file"
}

# The staged input file <name> when the step stages it (an optional input), else nothing.
staged_if_present() {
  local file="${HA_K8S_STAGE:?HA_K8S_STAGE is not set}/$1"
  [ ! -f "$file" ] || printf '%s' "$file"
}

require_env() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || die "environment variable $name is not set"
  done
}

# kubectl with the admin kubeconfig and a bounded request time.
kctl() { kubectl --kubeconfig "$(root_path "${KUBECONFIG_PATH:-/etc/kubernetes/admin.conf}")" --request-timeout=20s "$@"; }

# etcdctl inside the local etcd static pod (its image carries etcdctl), authenticated with the
# kubeadm-generated etcd certificates. ETCDCTL_TIMEOUT (default 10s) bounds each command; a snapshot
# of a large database needs longer.
etcdctl_local() {
  local id
  id="$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)"
  [ -n "$id" ] || return 1
  crictl exec "$id" etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert=/etc/kubernetes/pki/etcd/ca.crt \
    --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
    --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
    --command-timeout="${ETCDCTL_TIMEOUT:-10s}" "$@"
}

# listening_on <port>: something accepts TCP connections on that local port.
listening_on() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# add_apt_repo <name> <url> [<key file>]: dearmors the repository's signing key into
# /etc/apt/keyrings/<name>-apt-keyring.gpg and writes /etc/apt/sources.list.d/<name>.list. The key is
# <key file> when given (an ASCII-armored key the configuration pins: kubernetesPackageKey,
# crioPackageKey, e.g. for a mirror that signs with its own key), and nothing is downloaded;
# otherwise <url>Release.key, downloaded (retried). Returns 0 when it changed something (an apt-get
# update is due), 1 when both were already right.
add_apt_repo() {
  local name="$1" url="$2" armored="${3:-}" key tmp changed=1
  mkdir -p "$(root_path /etc/apt/keyrings)"
  key="$(root_path "/etc/apt/keyrings/$name-apt-keyring.gpg")"
  tmp="$(mktemp)"
  if [ -n "$armored" ]; then
    log "the $name repository's key is the configured one (not downloading ${url}Release.key)"
  else
    armored="$tmp.asc"
    retry 5 curl -fsSL --connect-timeout 10 --max-time 60 "${url}Release.key" -o "$armored" ||
      die "cannot download the $name repository key from ${url}Release.key"
  fi
  gpg --batch --yes --dearmor -o "$tmp" "$armored" || die "the $name repository key is not an ASCII-armored OpenPGP key"
  rm -f "$tmp.asc"
  if install_file "$tmp" "$key" 644; then changed=0; fi
  rm -f "$tmp"
  if write_file "$(root_path "/etc/apt/sources.list.d/$name.list")" 644 <<APT; then changed=0; fi
deb [signed-by=/etc/apt/keyrings/$name-apt-keyring.gpg] $url /
APT
  return "$changed"
}

# The version of an installed Debian package, empty when it is not installed.
installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

# install_held <package[=version]>...: installs them (retried), moving held packages, and holds
# them again, so an unattended upgrade never moves Kubernetes or CRI-O.
install_held() {
  local names=() spec
  for spec in "$@"; do names+=("${spec%%=*}"); done
  apt-mark unhold "${names[@]}" >/dev/null 2>&1 || true
  retry 3 apt_get install -y -q --allow-change-held-packages "$@" || return 1
  apt-mark hold "${names[@]}" >/dev/null
}

# The gitVersion of a /version answer read on stdin (v1.36.3), and the minor of a version (1.36).
git_version() { sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n 1; }
minor_of() { cut -d. -f1,2 <<<"${1#v}"; }

# The kubelet version a node reports (status.nodeInfo.kubeletVersion), empty when unknown.
node_kubelet_version() { kctl get node "$1" -o jsonpath='{.status.nodeInfo.kubeletVersion}' 2>/dev/null || true; }

# drain_node <node> <timeout seconds>: cordons the node and evicts its pods through the Eviction
# API, so PodDisruptionBudgets are respected (kubectl drain), DaemonSet pods staying. A drain that
# fails stops the caller with kubectl's reason, naming the node and the pods still on it (neither
# DaemonSet pods nor the mirror pods of static pods, owned by the Node, which a drain leaves).
drain_node() {
  local node="$1" timeout="$2" output text rc=0 reason refusal pods blocking
  log "draining $node (PodDisruptionBudgets respected; at most ${timeout}s)"
  # Shown as it goes, and kept to quote kubectl's reason. (Through a file: /dev/stderr cannot be
  # opened when stderr is a socket.)
  output="$(mktemp)"
  kctl drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout="${timeout}s" 2>&1 | tee "$output" >&2 ||
    rc=${PIPESTATUS[0]}
  text="$(cat "$output")" && rm -f "$output"
  [ "$rc" -ne 0 ] || return 0
  # kubectl's last error, and the API server's last refusal of an eviction (a PodDisruptionBudget).
  reason="$(grep -E '^error' <<<"$text" | tail -n 1 || true)"
  refusal="$(grep -o 'Cannot evict pod.*' <<<"$text" | tail -n 1 || true)"
  [ -z "$refusal" ] || reason="$reason (the API server: $refusal)"
  # Each pod with the kind of its controller (none for a Pod that no controller manages).
  if pods="$(kctl get pods --all-namespaces \
    --field-selector "spec.nodeName=$node,status.phase!=Succeeded,status.phase!=Failed" \
    -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.ownerReferences[?(@.controller==true)].kind}{"\n"}{end}' \
    2>/dev/null)"; then
    blocking="$(awk '$2 != "DaemonSet" && $2 != "Node" { printf "%s%s", sep, $1; sep = " " }' <<<"$pods")"
    blocking="${blocking:-none}"
  else
    blocking="unknown (the API did not list them)"
  fi
  die "drain of $node failed (at most ${timeout}s): ${reason:-see the kubectl output above}; pods still on it: $blocking; the upgrade stops here, $node stays cordoned; let them leave (a PodDisruptionBudget that allows no disruption now, a Pod that no controller manages) and run pulumi up again"
}

# This machine's GCE instance id and the Node annotation that records it (render/steps.ts
# INSTANCE_ID_ANNOTATION): delete actions compare them so as to act only on the machine they were
# created for. GCE's metadata server answers instance/id with the id in decimal.
INSTANCE_ANNOTATION="ha-k8s.io/instance-id"
INSTANCE_ID_URL=http://169.254.169.254/computeMetadata/v1/instance/id
# shellcheck disable=SC2317 # called through retry
instance_id_once() { curl -sf --connect-timeout 2 --max-time 5 -H 'Metadata-Flavor: Google' "$INSTANCE_ID_URL"; }
# Prints the id, or fails when the metadata server does not give one (bounded: 3 tries of 5 s).
this_instance_id() {
  local id
  id="$(retry 3 instance_id_once 2>/dev/null || true)"
  [[ "$id" =~ ^[0-9]+$ ]] && printf '%s' "$id"
}
# node_instance <node>: which machine the Node of that name is now. Prints "present <its
# INSTANCE_ANNOTATION, empty when it has none>" or "absent"; fails, printing kubectl's error, when the
# API cannot tell (a delete or a member removal must not act on a guess).
node_instance() {
  local node="$1" id err
  if id="$(kctl get node "$node" -o "jsonpath={.metadata.annotations['ha-k8s\\.io/instance-id']}" 2>/dev/null)"; then
    printf 'present %s' "$id"
  elif err="$(kctl get node "$node" -o name 2>&1)" || ! grep -qiE 'NotFound|not found' <<<"$err"; then
    printf '%s' "${err//$'\n'/ }"
    return 1
  else
    printf 'absent'
  fi
}
# record_instance_id <kubectl command>: annotates the Node NODE_NAME with this machine's instance id,
# through the given kubectl (the kubelet's credentials on a joining node, admin.conf on the first).
record_instance_id() {
  local kubectl_as="$1" id
  id="$(this_instance_id)" ||
    die "cannot read this machine's instance id from the metadata server ($INSTANCE_ID_URL): $NODE_NAME must record it ($INSTANCE_ANNOTATION) so that no delete action meant for another machine of this name acts on it"
  wait_until 24 "the Node $NODE_NAME to be registered" "$kubectl_as" get node "$NODE_NAME" ||
    die "the Node $NODE_NAME was not registered in time; cannot record its instance id"
  retry 3 "$kubectl_as" annotate --overwrite node "$NODE_NAME" "$INSTANCE_ANNOTATION=$id" >&2 ||
    die "could not record $INSTANCE_ANNOTATION=$id on the Node $NODE_NAME"
  log "$NODE_NAME is instance $id ($INSTANCE_ANNOTATION on its Node)"
}

# --- Joins: the credentials, a lost machine's etcd member, the join itself. Shared by
# refresh-credentials.sh (on a live control plane, before another machine joins), join.sh, and
# kubeadm-init.sh (a rebuilt first control plane joining the cluster the others kept).

# issue_bootstrap_token <token file> <ttl hours> <whose join>: makes sure the bootstrap token is
# valid for a while. A token with more than a seventh of its life left is kept; otherwise it is
# written as its kube-system Secret through kubectl's stdin (never a command line or a log).
issue_bootstrap_token() {
  local token ttl min_remaining remaining=-1 expiration
  token="$(tr -d '[:space:]' <"$1")"
  [[ "$token" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "the staged bootstrap token is malformed"
  ttl=$(($2 * 3600))
  min_remaining=$((ttl / 7))
  BOOTSTRAP_TOKEN_ID="${token%%.*}"
  expiration="$(kctl -n kube-system get secret "bootstrap-token-$BOOTSTRAP_TOKEN_ID" -o jsonpath='{.data.expiration}' 2>/dev/null | base64 -d 2>/dev/null || true)"
  if [ -n "$expiration" ]; then
    remaining=$(($(date -u -d "$expiration" +%s) - $(date -u +%s)))
  fi
  if [ "$remaining" -gt "$min_remaining" ]; then
    log "bootstrap token $BOOTSTRAP_TOKEN_ID valid for another $((remaining / 3600)) h; keeping it"
    return 0
  fi
  log "bootstrap token $BOOTSTRAP_TOKEN_ID missing or expiring: issuing it for $2 h (until verification revokes it) for $3"
  kctl apply -f - >/dev/null <<YAML || die "cannot write the bootstrap token"
apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-$BOOTSTRAP_TOKEN_ID
  namespace: kube-system
type: bootstrap.kubernetes.io/token
stringData:
  description: "ha-k8s: join of $3"
  token-id: "$BOOTSTRAP_TOKEN_ID"
  token-secret: "${token#*.}"
  expiration: "$(date -u -d "@$(($(date -u +%s) + ttl))" +%Y-%m-%dT%H:%M:%SZ)"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
YAML
}

# member_answers <address>: the etcd member there answers its health endpoint, asked with this
# machine's kubeadm-made healthcheck-client certificate (so only a member of this etcd CA's cluster).
# shellcheck disable=SC2317 # called through retry
member_answers() {
  curl -sf --max-time 5 --cacert "$(root_path /etc/kubernetes/pki/etcd/ca.crt)" \
    --cert "$(root_path /etc/kubernetes/pki/etcd/healthcheck-client.crt)" \
    --key "$(root_path /etc/kubernetes/pki/etcd/healthcheck-client.key)" "https://$1:2379/health" >/dev/null
}

# remove_lost_member <etcdctl command> <node> <address> <instance id about to join>
#
# A control plane rebuilt after its VM was lost (pulumi up --refresh creates it again, at the same
# address) finds its old etcd member still listed, and kubeadm join does not add a member whose peer
# URL is listed: it starts the new, empty etcd as that old member (addMember in
# cmd/kubeadm/app/util/etcd/etcd.go, v1.36.3: "The peer URL ... already exists. Skipping etcd member
# addition"), which the cluster's log no longer fits. So the lost machine's member is removed, through
# a healthy member, before the join, and only when everything says it is the lost one's: its endpoint
# does not answer, and the Node of that name is absent or records another instance than the one
# about to join. A control plane that is only down (same instance: its member comes back with its
# data) and a live member are left alone.
remove_lost_member() {
  local etcdctl="$1" node="$2" ip="$3" joining="$4" peer="https://$3:2380" members member_id state recorded out
  members="$(retry 3 "$etcdctl" member list)" ||
    die "cannot list etcd's members through a healthy member; cannot prepare the join of $node"
  member_id="$(grep -F "$peer," <<<"$members" | cut -d, -f1 | head -n 1 || true)"
  if [ -z "$member_id" ]; then
    log "no etcd member at $peer: $node joins as a new member"
    return 0
  fi
  state="$(node_instance "$node")" ||
    die "cannot read the Node $node ($state), so cannot tell whether etcd member $member_id at $peer is a lost machine's"
  recorded=""
  [ "$state" = absent ] || recorded="${state#present }"
  if [ "$state" != absent ] && [ "$recorded" = "$joining" ]; then
    log "etcd member $member_id is $node's own (its Node records instance $joining): keeping it"
    return 0
  fi
  # A live member must never be taken for a lost one because of one slow answer: three tries.
  if retry 3 member_answers "$ip"; then
    if [ -z "$recorded" ]; then
      # A live member whose Node records no instance (it joined before ids were recorded) or has
      # none yet (an earlier join of this machine that stopped half-way): it is not a lost one.
      log "etcd member $member_id at $peer answers and its Node records no other instance: keeping it"
      return 0
    fi
    die "etcd member $member_id at $peer answers, yet the Node $node is instance $recorded, not instance $joining about to join: refusing to remove a live member; find out which machine answers at $ip"
  fi
  if [ "$state" != absent ] && [ -z "$recorded" ]; then
    die "etcd member $member_id at $peer does not answer and its Node $node records no $INSTANCE_ANNOTATION (joined before ids were recorded): cannot tell a lost machine from a stopped one; if $node's machine is lost, remove the member on a control plane (etcdctl member remove $member_id) and run pulumi up again; if it is only stopped, start it"
  fi
  log "removing etcd member $member_id of the lost $node (${recorded:+instance $recorded, }not answering) before instance $joining joins at $peer"
  if ! out="$(retry 4 "$etcdctl" member remove "$member_id" 2>&1)" && ! grep -q "member not found" <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "etcd did not remove the lost member $member_id of $node (without a quorum of the others it cannot: restore etcd first, docs/operating.md \"Restore etcd\")"
  fi
  log "etcd member $member_id removed; $node joins as a new member"
}

# kubeadm_config_now <staged config> <copy>: the copy names kubeadm's own version. A staged
# InitConfiguration names the version the cluster was created with (it must not change when the
# cluster is upgraded), and kubeadm refuses one more than a minor older than itself. The copy may
# hold secrets: root-only; the caller removes it.
kubeadm_config_now() {
  local version
  version="$(kubeadm version -o short)" || die "cannot read kubeadm's version"
  (umask 077 && sed "s/^kubernetesVersion: .*/kubernetesVersion: $version/" "$1" >"$2")
}

# node_joined <role>: this machine has joined (its kubelet runs with its credentials and, on a
# control plane, its etcd and API server manifests are in place).
node_joined() {
  local manifests
  manifests="$(root_path /etc/kubernetes/manifests)"
  [ -f "$(root_path /etc/kubernetes/kubelet.conf)" ] && systemctl is-active --quiet kubelet || return 1
  [ "$1" != control-plane ] || { [ -f "$manifests/etcd.yaml" ] && [ -f "$manifests/kube-apiserver.yaml" ]; }
}

# join_leftovers: what an earlier, unfinished join (or init) left, which kubeadm reset removes first.
join_leftovers() {
  [ -e "$(root_path /etc/kubernetes/kubelet.conf)" ] ||
    [ -n "$(ls -A "$(root_path /etc/kubernetes/manifests)" 2>/dev/null)" ] ||
    [ -n "$(ls -A "$(root_path /var/lib/etcd)" 2>/dev/null)" ]
}
