#!/usr/bin/env bash
# A lab machine's power switch. A machine is its own network, mount, UTS, IPC, PID and cgroup
# namespaces (network from net.sh attach), a cgroup subtree of its own in every hierarchy, and a
# disk: a directory holding the copy-on-write layers over the host's /usr, /etc, /var, /opt, /root
# and /home and the real directories of /var/lib/{kubelet,containerd} (see boot.sh).
#
# Usage:
#   machine.sh start <lab> <name> <disk> <seed> <labtool>   boots it (in the foreground: run it detached)
#   machine.sh service <lab> <namespace> <command...>        a lab service (kill <lab> services ends them)
#   machine.sh kill <lab> <name>                            power off: every process of it ends at once
#   machine.sh cgroups <lab> <name>                         its cgroup directories, one per line
# `kill` succeeds when the machine is already off; it waits until the cgroups are empty and removes
# them (also those the kubelet created below them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The machine's cgroup directory in every hierarchy this process belongs to (cgroup v1 hybrid here:
# cpu, memory, ... and the unified one).
cgroup_dirs() {
  local lab="$1" name="$2" ctrl path mount
  while IFS=: read -r _ ctrl path; do
    case "$ctrl" in
      "") mount=unified ;;
      name=systemd) mount=systemd ;;
      *) mount="${ctrl%%,*}" ;;
    esac
    [ -d "/sys/fs/cgroup/$mount" ] || continue
    printf '/sys/fs/cgroup/%s%s/%s-%s\n' "$mount" "${path%/}" "$lab" "$name"
  done </proc/self/cgroup
}

# join <lab> <group>: this process into the cgroups <lab>-<group> (made when missing).
join() {
  local lab="$1" group="$2" dir parent
  local dirs=()
  mapfile -t dirs < <(cgroup_dirs "$lab" "$group")
  for dir in "${dirs[@]}"; do
    mkdir -p "$dir"
    if [[ "$dir" == /sys/fs/cgroup/cpuset/* ]]; then
      parent="$(dirname "$dir")"
      cat "$parent/cpuset.cpus" >"$dir/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$dir/cpuset.mems"
    fi
    echo "$$" >"$dir/cgroup.procs"
  done
}

start() {
  local lab="$1" name="$2" disk="$3" seed="$4" labtool="$5"
  join "$lab" "$name"
  mkdir -p "$disk"
  # This process, now in the machine's cgroups, becomes the namespaces' creator; its forked child
  # is the machine's PID 1 (boot.sh, then the systemd stand-in). The caller runs this detached.
  exec ip netns exec "$lab-m-$name" unshare --mount --uts --ipc --pid --cgroup --fork --mount-proc \
    --propagation private -- bash "$here/boot.sh" "$name" "$disk" "$seed" "$labtool"
}

# service <lab> <namespace> <command...>: a lab service (the mirror, the storage API) in the lab's
# "services" cgroups and one of its network namespaces, so that kill ends it like a machine.
service() {
  local lab="$1" ns="$2"
  shift 2
  join "$lab" services
  exec ip netns exec "$lab-$ns" "$@"
}

kill_machine() {
  local lab="$1" name="$2" dir pids left
  local dirs=()
  mapfile -t dirs < <(cgroup_dirs "$lab" "$name")
  # Every process of the machine, in every cgroup below its own: SIGKILL is a power cut.
  for _ in $(seq 1 100); do
    left=0
    for dir in "${dirs[@]}"; do
      [ -d "$dir" ] || continue
      pids="$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true)"
      if [ -n "$pids" ]; then
        left=1
        # shellcheck disable=SC2086 # one PID per word
        kill -KILL $pids 2>/dev/null || true
      fi
    done
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    if [ -d "$dir" ]; then
      printf 'machine.sh: %s still has processes or children\n' "$dir" >&2
      return 1
    fi
  done
  return 0
}

cmd="${1:-}"
shift || true
case "$cmd" in
  start) start "$@" ;;
  service) service "$@" ;;
  kill) kill_machine "$@" ;;
  cgroups) cgroup_dirs "$@" ;;
  *)
    printf 'usage: machine.sh start|kill|cgroups <lab> <name> ...\n' >&2
    exit 2
    ;;
esac
