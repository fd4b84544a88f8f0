#!/usr/bin/env bash
# One etcd snapshot, checked and uploaded to Cloud Storage. Run by the ha-k8s-etcd-backup timer
# (backupSchedule) on every control plane, where only the current etcd leader uploads (one snapshot
# per period), and by the snapshot step before risky changes on the first control plane, which
# uploads whatever member it is.
#
# Each run: `etcdctl snapshot save` inside the etcd static pod, `etcdutl snapshot status` on the
# host, an upload through the Cloud Storage JSON API with the metadata server's access token (no
# key on disk), the uploaded MD5 compared, and the local copy deleted whatever happens. A failed
# run leaves nothing behind (the next run starts over) and never uploads over an existing object.
#
# Upload attempts (three at most): each asks the metadata server for a token of its own (one may
# have expired during the previous attempt), and each writes an object of its own name (attempt n >
# 1 adds "-attempt<n>" before .db). An attempt whose success response was lost has stored its
# object; the next one, under the same name, would get 412 from ifGenerationMatch=0 and fail a run
# that succeeded, and this machine cannot look at what exists (roles/storage.objectCreator grants
# storage.objects.create only: no get, no list). A lost response thus leaves two identical objects.
#
# Time: the whole run is bounded by BACKUP_RUN_SECONDS (default below, the same number as
# BACKUP_RUN_SECONDS in render/backup.ts, whose systemd unit gives the run that long plus a margin
# to clean up; tests/backup/bounds.test.ts keeps them equal): the wait for another run's lock, the
# snapshot and each upload attempt get at most what is left of it.
#
# Inputs (environment; /etc/ha-k8s/etcd-backup.env for the timer): BACKUP_BUCKET, CLUSTER_NAME,
#   NODE_NAME, ETCDUTL (path), BACKUP_REASON (scheduled|pre-change), BACKUP_LEADER_ONLY (true|false);
#   the snapshot step also passes CONTROL_PLANE_COUNT and KUBERNETES_VERSION (logged).
# Test hooks, besides lib.sh's: HA_K8S_METADATA_URL and HA_K8S_STORAGE_URL replace the metadata
#   server and the Cloud Storage endpoint; BACKUP_RUN_SECONDS the run's bound.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env BACKUP_BUCKET CLUSTER_NAME NODE_NAME ETCDUTL
# GCE's metadata server (cloud.google.com/compute/docs/access/authenticate-workloads#applications:
# GET .../instance/service-accounts/default/token with "Metadata-Flavor: Google") and the Cloud
# Storage JSON API (cloud.google.com/storage/docs/json_api/v1/objects/insert).
METADATA_URL="${HA_K8S_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
STORAGE_URL="${HA_K8S_STORAGE_URL:-https://storage.googleapis.com}"
# Any of these lets the token write objects; IAM narrows it to creating them in this one bucket.
UPLOAD_SCOPES="https://www.googleapis.com/auth/devstorage.read_write
https://www.googleapis.com/auth/devstorage.full_control
https://www.googleapis.com/auth/cloud-platform"
REASON="${BACKUP_REASON:-scheduled}"
# kubeadm mounts the host's etcd data directory into the etcd static pod at the same path
# (k8s.io/kubernetes v1.36.3, cmd/kubeadm/app/phases/etcd/local.go GetEtcdPodSpec: hostPath volume
# "etcd-data" = Etcd.Local.DataDir, default /var/lib/etcd, mounted read-write at that path), so a
# snapshot etcdctl writes under it inside the pod is the same file on the host.
SNAPSHOT_DIR=/var/lib/etcd/ha-k8s-snapshot
# What must stay free on etcd's disk after the snapshot is written.
RESERVE_BYTES=$((1024 * 1024 * 1024))
LAST_SUCCESS=/var/lib/ha-k8s/etcd-backup.last-success
UPLOAD_ATTEMPTS=3
# Caps within the run's bound: etcdctl's snapshot, and one upload attempt.
SNAPSHOT_SECONDS=900
UPLOAD_SECONDS=1200
# An upload attempt with less time than this left is not started.
MIN_ATTEMPT_SECONDS=30

# The run's bound. 2100 s (35 min) stays inside the 40 minutes Pulumi gives the snapshot step
# (stepTimeouts in render/steps.ts).
RUN_SECONDS="${BACKUP_RUN_SECONDS:-2100}"
[[ "$RUN_SECONDS" =~ ^[0-9]+$ ]] || die "BACKUP_RUN_SECONDS is not a number of seconds: $RUN_SECONDS"
deadline=$((SECONDS + RUN_SECONDS))
# left [cap]: seconds left of the run, at most cap.
left() {
  local n=$((deadline - SECONDS))
  [ "$n" -gt 0 ] || n=0
  if [ $# -gt 0 ] && [ "$n" -gt "$1" ]; then n="$1"; fi
  echo "$n"
}

# One run at a time on a machine (the timer and the snapshot step may meet on the first control
# plane): wait for the other at most a third of the run's bound, so this one still has time.
lock="$(root_path /run/lock/ha-k8s-etcd-backup.lock)"
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock -w $((RUN_SECONDS / 3)) 9 || die "another etcd snapshot has been running for $((RUN_SECONDS / 3)) s"

# "MemberID" : 123 and the like, from `etcdctl endpoint status -w fields`.
field() { sed -n "s/^\"$1\" : \\([0-9][0-9]*\\)\$/\\1/p" <<<"$status" | head -n 1; }
status="$(etcdctl_local endpoint status -w fields 2>&1)" || die "etcd does not answer on this machine: $status"
member="$(field MemberID)"
leader="$(field Leader)"
db_size="$(field DBSize)"
if [ -z "$member" ] || [ -z "$leader" ] || [ -z "$db_size" ]; then
  die "unexpected output of etcdctl endpoint status: $status"
fi
if [ "${BACKUP_LEADER_ONLY:-true}" = true ] && [ "$member" != "$leader" ]; then
  log "not the etcd leader (member $member; leader $leader): the leader uploads this period's snapshot"
  exit 0
fi

metadata() { curl -fsS --max-time 10 -H 'Metadata-Flavor: Google' "$METADATA_URL/$1"; }
scopes="$(metadata instance/service-accounts/default/scopes)" ||
  die "cannot read this VM's service-account scopes from the metadata server ($METADATA_URL)"
if ! grep -qxFf <(printf '%s\n' "$UPLOAD_SCOPES") <<<"$scopes"; then
  die "this VM's service account may not write to Cloud Storage: its scopes lack" \
    "https://www.googleapis.com/auth/devstorage.read_write (it has: $(tr '\n' ' ' <<<"$scopes"))." \
    "Control planes created before backups existed keep their old scopes until rolled" \
    "(docs/operating.md, \"Backups on existing clusters\")."
fi

host_dir="$(root_path "$SNAPSHOT_DIR")"
# A run killed half-way may have left a snapshot behind: start clean, so at most one copy exists.
rm -rf "$host_dir"
mkdir -p "$host_dir"
chmod 700 "$host_dir"
trap 'rm -rf "$host_dir"' EXIT
available="$(df -P -B1 "$host_dir" | awk 'NR == 2 { print $4 }')"
if [ "$available" -lt $((db_size + RESERVE_BYTES)) ]; then
  die "not enough free disk for a snapshot: $available bytes free, the database is $db_size bytes" \
    "and $RESERVE_BYTES bytes must stay free for etcd; nothing was written"
fi

started=$SECONDS
base="$(date -u +%Y%m%dT%H%M%SZ)-$NODE_NAME-$REASON"
name="$base.db"
file="$host_dir/$name"
change=""
[ -n "${CONTROL_PLANE_COUNT:-}" ] && change=" (before a change; $CONTROL_PLANE_COUNT control planes, Kubernetes ${KUBERNETES_VERSION:-?})"
log "etcd snapshot of member $member$change: $SNAPSHOT_DIR/$name"
out="$(ETCDCTL_TIMEOUT="$(left "$SNAPSHOT_SECONDS")s" etcdctl_local snapshot save "$SNAPSHOT_DIR/$name" 2>&1)" ||
  die "etcdctl snapshot save failed: $(tail -n 3 <<<"$out")"
[ -s "$file" ] || die "etcdctl reported success but $file does not exist on the host"

etcdutl_bin="$(root_path "$ETCDUTL")"
[ -x "$etcdutl_bin" ] || die "etcdutl is missing at $ETCDUTL (the backup step installs it)"
check="$("$etcdutl_bin" snapshot status "$file" -w json 2>/dev/null)" ||
  die "the snapshot failed etcdutl snapshot status: $("$etcdutl_bin" snapshot status "$file" 2>&1 | tail -n 1)"
json_number() { sed -n "s/.*\"$1\":\\([0-9][0-9]*\\).*/\\1/p" <<<"$check"; }
revision="$(json_number revision)"
keys="$(json_number totalKey)"
if [ -z "$keys" ] || [ "$keys" -eq 0 ]; then die "etcdutl finds no keys in the snapshot: $check"; fi
size="$(stat -c %s "$file")"
md5="$(openssl dgst -md5 -binary "$file" | base64)"
log "snapshot checked by etcdutl: revision $revision, $keys keys, $size bytes"

# One upload attempt: a fresh token, its own object name, and at most what is left of the run (or
# UPLOAD_SECONDS). A single-request (uploadType=media) upload streamed from the file;
# ifGenerationMatch=0 makes it succeed only if no live object has that name
# (cloud.google.com/storage/docs/json_api/v1/objects/insert). The token travels in a header read
# from stdin, never on the command line.
response="$host_dir/response.json"
attempt=0
object=""
upload() {
  local token_json token budget
  attempt=$((attempt + 1))
  object="etcd/$CLUSTER_NAME/$base.db"
  [ "$attempt" -eq 1 ] || object="etcd/$CLUSTER_NAME/$base-attempt$attempt.db"
  budget="$(left "$UPLOAD_SECONDS")"
  if [ "$budget" -lt "$MIN_ATTEMPT_SECONDS" ]; then
    printf '{"error":"no time left for upload attempt %s within BACKUP_RUN_SECONDS=%s"}' "$attempt" "$RUN_SECONDS" >"$response"
    return 1
  fi
  token_json="$(metadata instance/service-accounts/default/token)" || {
    printf '{"error":"the metadata server gave no access token for this VM'"'"'s service account"}' >"$response"
    return 1
  }
  token="$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$token_json")"
  [ -n "$token" ] || {
    printf '{"error":"the metadata server'"'"'s token response holds no access_token"}' >"$response"
    return 1
  }
  curl -sS --fail-with-body --max-time "$budget" --config - --request POST --upload-file "$file" \
    --header 'Content-Type: application/octet-stream' --output "$response" \
    "$STORAGE_URL/upload/storage/v1/b/$BACKUP_BUCKET/o?uploadType=media&ifGenerationMatch=0&name=${object//\//%2F}" \
    <<<"header = \"Authorization: Bearer $token\""
}
if ! retry "$UPLOAD_ATTEMPTS" upload; then
  die "upload to gs://$BACKUP_BUCKET/$object failed: $(head -c 300 "$response" 2>/dev/null | tr '\n' ' ');" \
    "the local copy is deleted, the next run tries again"
fi
json_string() { tr -d '\n' <"$response" | sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p"; }
[ "$(json_string md5Hash)" = "$md5" ] ||
  die "Cloud Storage stored gs://$BACKUP_BUCKET/$object with MD5 $(json_string md5Hash), the snapshot's is $md5"
[ "$(json_string size)" = "$size" ] ||
  die "Cloud Storage stored $(json_string size) bytes for gs://$BACKUP_BUCKET/$object, the snapshot has $size"

mkdir -p "$(dirname "$(root_path "$LAST_SUCCESS")")"
printf '%s gs://%s/%s revision=%s keys=%s bytes=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BACKUP_BUCKET" "$object" \
  "$revision" "$keys" "$size" >"$(root_path "$LAST_SUCCESS")"
log "uploaded gs://$BACKUP_BUCKET/$object ($size bytes, revision $revision, $keys keys) in $((SECONDS - started)) s"
