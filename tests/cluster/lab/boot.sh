#!/usr/bin/env bash
# PID 1 of a lab machine, inside its namespaces (machine.sh start): mounts its disk over the host's
# file system, sets up the machine image on first boot, then becomes the systemd stand-in
# (labtool systemctl __init), which starts the enabled units (sshd) and reaps orphans.
#
# The machine image is the host's own Debian root, copy-on-write, with what a cloud image and its
# guest agent would provide, each adjustment named:
#   - its own host name, /etc/hosts, machine-id and SSH host keys;
#   - the login user with the stack's key and passwordless sudo (GCE's guest agent does this from
#     the ssh-keys metadata), and only sshd enabled;
#   - the rendered cloud-config's files (the lab's cloud-init stand-in, from the seed), and
#     cloud-init reported as done;
#   - the lab CA trusted (the mirror's certificate), no other apt source (nothing else is
#     reachable: the machine image has no distribution mirror), and no Kubernetes package;
#   - the kernel's module list, so `modprobe overlay br_netfilter` finds them built in;
#   - cgroup v1 (this host): the kubelet told not to refuse it (--fail-cgroupv1=false in
#     /etc/default/kubelet, kubeadm's drop-in reads it) and kubeadm's SystemVerification preflight
#     skipped (a kubeadm wrapper in /usr/local/sbin); kubeadm 1.35+ refuses cgroup v1 otherwise.
#   - this host's open-files cap (20000): HAProxy's connection limit lowered to 4096 (-n) through
#     /etc/default/haproxy, which Debian's unit reads; the rendered haproxy.cfg is unchanged;
#   - the kernel-wide sysctls a machine would set (the kubelet's, and sysctl.d's) are files of its
#     own; the rest of /proc/sys but the network's is read-only, so no machine changes the host.
# Arguments: <name> <disk> <seed> <labtool>.
set -euo pipefail
name="$1" disk="$2" seed="$3" labtool="$4"
log() { printf '%s boot[%s]: %s\n' "$(date -u +%H:%M:%S)" "$name" "$*"; }

hostname "$name"

# --- file systems ------------------------------------------------------------------------------
# /sys is this network namespace's sysfs (`ip netns exec` mounted it), made read-only here; the
# cgroup hierarchies as this cgroup namespace sees them (only the machine's subtree), as kind does.
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
while IFS=: read -r _ ctrl _; do
  case "$ctrl" in
    "") mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
    name=systemd) mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd ;;
    *) mkdir -p "/sys/fs/cgroup/$ctrl" && mount -t cgroup -o "$ctrl" cgroup "/sys/fs/cgroup/$ctrl" ;;
  esac
done </proc/self/cgroup
# Comounted controllers are reached under each name, as on a systemd host.
for pair in cpu,cpuacct:cpu cpu,cpuacct:cpuacct net_cls,net_prio:net_cls net_cls,net_prio:net_prio; do
  [ -d "/sys/fs/cgroup/${pair%%:*}" ] && [ ! -e "/sys/fs/cgroup/${pair#*:}" ] && ln -s "${pair%%:*}" "/sys/fs/cgroup/${pair#*:}"
done

# The disk: copy-on-write layers over the host's directories, and real directories for what runs
# containers (containerd's overlay snapshots cannot live on an overlay; the kubelet's volumes). etcd's
# data stays in /var's layer, a plain directory as on a VM's disk (a restore renames it).
for dir in usr etc var opt root home; do
  mkdir -p "$disk/$dir-upper" "$disk/$dir-work"
  mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$disk/$dir-upper,workdir=$disk/$dir-work" "/$dir"
done
for dir in kubelet containerd; do
  mkdir -p "$disk/var-lib-$dir" "/var/lib/$dir"
  mount --bind "$disk/var-lib-$dir" "/var/lib/$dir"
done
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/sshd /run/systemd/system

# Kernel-wide sysctls: files of the machine's own, holding what the kubelet wants
# (setupKernelTunables in pkg/kubelet/cm/container_manager_linux.go) and what sysctl.d sets; the
# network's (per namespace) stay writable, the rest read-only.
mkdir -p "$disk/sysctl"
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,rw /proc/sys/net
declare -A wanted=([vm/overcommit_memory]=1 [vm/panic_on_oom]=0 [kernel/panic]=10 [kernel/panic_on_oops]=1
  [kernel/keys/root_maxkeys]=1000000 [kernel/keys/root_maxbytes]=25000000)
while read -r key; do
  [ -n "$key" ] && [ -z "${wanted[$key]:-}" ] && wanted[$key]="$(cat "/proc/sys/$key" 2>/dev/null || echo 0)"
done < <(cat /usr/lib/sysctl.d/*.conf /etc/sysctl.d/*.conf 2>/dev/null |
  sed -nE 's/^[[:space:]]*-?([a-z][a-z0-9_.]*)[[:space:]]*=.*/\1/p' | tr . / | grep -v '^net/' || true)
for key in "${!wanted[@]}"; do
  [ -e "/proc/sys/$key" ] || continue
  file="$disk/sysctl/${key//\//.}"
  [ -f "$file" ] || echo "${wanted[$key]}" >"$file"
  mount --bind "$file" "/proc/sys/$key"
done

# --- the machine image, on first boot --------------------------------------------------------
if [ ! -f "$disk/image-ready" ]; then
  log "first boot: preparing the machine image"
  echo "$name" >/etc/hostname
  rm -f /etc/resolv.conf /etc/machine-id
  cp "$seed/hosts" /etc/hosts
  cp "$seed/resolv.conf" /etc/resolv.conf
  tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
  # No distribution mirror: only the repositories the project adds.
  rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
  : >/etc/apt/sources.list
  rm -rf /var/lib/apt/lists/*
  # No Kubernetes package yet, as on a cloud image (this host's own image carries Google Cloud CLI's
  # kubectl, whose epoch would outrank every pkgs.k8s.io version).
  for package in kubelet kubeadm kubectl cri-tools kubernetes-cni cri-o; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      dpkg --purge --force-depends "$package" >/dev/null
    fi
  done
  # Only sshd starts at boot, as on a cloud image; packages enable what they install.
  find /etc/systemd/system -path '*.wants/*' -type l -delete
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /lib/systemd/system/ssh.service /etc/systemd/system/multi-user.target.wants/ssh.service
  # Its own host keys.
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -A >/dev/null
  # The login user, its key and sudo (GCE's guest agent).
  user="$(cat "$seed/user")"
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
  install -d -m 700 -o "$user" -g "$user" "/home/$user/.ssh"
  install -m 600 -o "$user" -g "$user" "$seed/authorized_keys" "/home/$user/.ssh/authorized_keys"
  echo "$user ALL=(ALL:ALL) NOPASSWD:ALL" >"/etc/sudoers.d/90-$user"
  chmod 440 "/etc/sudoers.d/90-$user"
  # The cloud-config's files (the cloud-init stand-in).
  cp -a "$seed/root/." /
  # The lab CA (the mirror's certificate authority).
  # What update-ca-certificates does for one local certificate (it takes seconds to redo them all).
  install -D -m 644 "$seed/lab-ca.crt" /usr/local/share/ca-certificates/ha-k8s-lab.crt
  ln -sf /usr/local/share/ca-certificates/ha-k8s-lab.crt /etc/ssl/certs/ha-k8s-lab.pem
  ln -sf ha-k8s-lab.pem "/etc/ssl/certs/$(openssl x509 -hash -noout -in "$seed/lab-ca.crt").0"
  cat "$seed/lab-ca.crt" >>/etc/ssl/certs/ca-certificates.crt
  # Built-in modules, for modprobe.
  modules="/usr/lib/modules/$(uname -r)"
  mkdir -p "$modules"
  printf 'kernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br_netfilter.ko\nkernel/net/netfilter/nf_conntrack.ko\n' >"$modules/modules.builtin"
  touch "$modules/modules.order"
  depmod "$(uname -r)" 2>/dev/null || true
  # cgroup v1 (see above).
  echo 'KUBELET_EXTRA_ARGS=--fail-cgroupv1=false' >/etc/default/kubelet
  # This host caps open files at 20000; the rendered maxconn 20000 needs twice that, so HAProxy's
  # connection limit is lowered on its command line (-n overrides maxconn; haproxy(1)) through
  # Debian's unit's environment file. The configuration stays as rendered.
  echo 'EXTRAOPTS="-S /run/haproxy-master.sock -n 4096"' >/etc/default/haproxy
  install -D -m 755 "$seed/kubeadm-wrapper" /usr/local/sbin/kubeadm
  touch "$disk/image-ready"
fi

# The systemd stand-in, at the path the machine's tools call.
cp "$labtool" /usr/bin/systemctl.new && mv /usr/bin/systemctl.new /usr/bin/systemctl
# cloud-init has run (the stand-in wrote its files above): `cloud-init status` says done.
mkdir -p /run/cloud-init
printf '{"v1": {"datasource": "DataSourceNone", "errors": []}}\n' >/run/cloud-init/result.json
printf '{"v1": {"datasource": "DataSourceNone", "stage": null, "init": {"errors": [], "finished": 1, "start": 1}, "modules-final": {"errors": [], "finished": 1, "start": 1}}}\n' >/run/cloud-init/status.json
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount --make-rshared /
log "booted; starting the enabled units"
exec /usr/bin/systemctl __init
