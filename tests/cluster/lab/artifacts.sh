#!/usr/bin/env bash
# Builds everything the lab's machines download, and prints the directory holding it:
#   <dir>/labtool          the lab's own program (tests/cluster/labtool)
#   <dir>/fake-gcs-server  Cloud Storage's JSON API (tools/fake-gcs-server.sh)
#   <dir>/kubectl          the deployer's kubectl
#   <dir>/images/          an OCI image layout: the images kubeadm asks for (`kubeadm config images
#                          list` of each version), named as on registry.k8s.io ("pause:3.10.2",
#                          "coredns/coredns:v1.14.2") and under "k8s/" as kubeadm names them for a
#                          custom imageRepository ("k8s/coredns:v1.14.2"); the CNI stand-in and a
#                          workload image ("hak8slab/...")
#   <dir>/repo/            signed apt repositories laid out as their upstreams lay them out:
#                          kubernetes/core:/stable:/v<minor>/deb/ (pkgs.k8s.io: kubelet, kubeadm,
#                          kubectl, cri-tools, kubernetes-cni) and
#                          opensuse/isv:/cri-o:/stable:/v<minor>/deb/ (the CRI-O stand-in `cri-o`)
#                          and etcd/v<version>/ (etcd's release tarball and SHA256SUMS, as GitHub
#                          serves them)
#   <dir>/repo-key.asc     the repositories' signing key (public, ASCII-armored)
#   <dir>/versions         "<kubernetes patch> <etcd> <coredns> <pause>" per version
# Usage: tests/cluster/lab/artifacts.sh <kubernetes patch>...     e.g. 1.36.3 1.37.2
#
# Every binary is real and built here from its Go module (tools/kubernetes.sh, tools/etcd.sh,
# tools/go-install.sh; pause from its C source in the k8s.io/kubernetes module) or taken from
# Debian (iptables for kube-proxy's image, as the upstream image carries Debian's). Cached outside
# the repository under a key of the versions and of the files that shape the result, so a second
# run prints the same directory at once. Safe to run concurrently (flock).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
# shellcheck source=tools/go-cache.sh
. "$repo_root/tools/go-cache.sh"
log() { printf 'artifacts.sh: %s\n' "$*" >&2; }
[ "$#" -gt 0 ] || {
  log "usage: artifacts.sh <kubernetes patch>..."
  exit 2
}
CONTAINERD=v2.4.2
CRI_TOOLS=1.37.0
CNI_PLUGINS=1.9.1
# The repositories' package revisions, as pkgs.k8s.io numbers its builds (<version>-1.1).
REVISION=1.1
IMAGE_REPOSITORY_PATH=k8s

key="$(
  {
    printf '%s\n' "$@" "$CONTAINERD" "$CRI_TOOLS" "$CNI_PLUGINS"
    cat "$here/artifacts.sh" "$here"/packages/* "$here/../labtool"/*.go "$here/../labtool/go.mod" "$here/../labtool/go.sum"
  } | sha256sum | cut -c1-16
)"
out="$HA_K8S_CACHE/lab/$key"
if [ -f "$out/done" ]; then
  touch "$out/done"
  echo "$out"
  exit 0
fi
hold_lock "$HA_K8S_CACHE/lab/.lock-$key"
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
need_go "the lab's binaries"
started=$SECONDS
rm -rf "$out"
mkdir -p "$out/repo"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- the lab's own program, and Cloud Storage's API -------------------------------------------
cp "$(bash "$repo_root/tools/fake-gcs-server.sh")" "$out/fake-gcs-server"
log "building labtool"
(cd "$here/../labtool" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/labtool" .)
labtool="$out/labtool"

# --- binaries ----------------------------------------------------------------------------------
containerd_dir="$(bash "$repo_root/tools/go-install.sh" containerd "github.com/containerd/containerd/v2@$CONTAINERD" \
  --tags "no_btrfs no_devmapper no_zfs" --ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD" \
  cmd/containerd cmd/containerd-shim-runc-v2 cmd/ctr)"
crictl_dir="$(bash "$repo_root/tools/go-install.sh" cri-tools "sigs.k8s.io/cri-tools@v$CRI_TOOLS" \
  --ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS" cmd/crictl)"
cni_dir="$(bash "$repo_root/tools/go-install.sh" cni-plugins "github.com/containernetworking/plugins@v$CNI_PLUGINS" \
  --ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$CNI_PLUGINS" \
  plugins/main/bridge plugins/main/loopback plugins/main/ptp plugins/main/host-device plugins/main/macvlan \
  plugins/main/ipvlan plugins/main/vlan plugins/main/tap plugins/main/dummy plugins/ipam/host-local plugins/ipam/static \
  plugins/ipam/dhcp plugins/meta/portmap plugins/meta/bandwidth plugins/meta/firewall plugins/meta/tuning \
  plugins/meta/sbr plugins/meta/vrf)"

# --- the signing key -----------------------------------------------------------------------------
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "ha-k8s lab repositories <lab@ha-k8s.invalid>" ed25519 sign never
gpg --batch --armor --export >"$out/repo-key.asc"

# deb <out dir> <package> <version> <depends> <description> <root dir> [maintainer scripts dir]
deb() {
  local dir="$1" package="$2" version="$3" depends="$4" description="$5" root="$6" scripts="${7:-}" size
  mkdir -p "$root/DEBIAN" "$dir"
  size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: Kubernetes Authors <dev@kubernetes.io>\n' "$package" "$version"
    printf 'Installed-Size: %s\n' "$size"
    [ -z "$depends" ] || printf 'Depends: %s\n' "$depends"
    printf 'Section: admin\nPriority: optional\nHomepage: https://kubernetes.io\nDescription: %s\n %s\n' "$description" "$description"
  } >"$root/DEBIAN/control"
  if [ -n "$scripts" ]; then
    for s in postinst prerm postrm; do
      [ -f "$scripts.$s" ] && install -m 755 "$scripts.$s" "$root/DEBIAN/$s"
    done
  fi
  # Conffiles as upstream marks them (%config): /etc/default/<name> and /etc/crictl.yaml.
  (cd "$root" && find etc/default etc/crictl.yaml -type f 2>/dev/null | sed 's|^|/|' >DEBIAN/conffiles) || true
  [ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$root" "$dir/${package}_${version}_amd64.deb" >/dev/null
}

# sign_repo <repository dir> <origin> <label>: Packages, Release, InRelease, Release.gpg, Release.key
sign_repo() {
  local dir="$1" origin="$2" label="$3"
  (
    cd "$dir"
    apt-ftparchive packages amd64 >Packages
    gzip -9kf Packages
    apt-ftparchive -o "APT::FTPArchive::Release::Origin=$origin" -o "APT::FTPArchive::Release::Label=$label" \
      -o APT::FTPArchive::Release::Architectures=amd64 release . >Release
    gpg --batch --yes --clearsign -o InRelease Release
    gpg --batch --yes --armor --detach-sign -o Release.gpg Release
    cp "$out/repo-key.asc" Release.key
  )
}

# --- images --------------------------------------------------------------------------------------
images="$out/images"
# image_root <dir>: the minimal files every image has (users, /tmp).
image_root() {
  mkdir -p "$1/etc" "$1/tmp" "$1/usr/local/bin" "$1/var/run"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$1/etc/group"
  echo 'hosts: files dns' >"$1/etc/nsswitch.conf"
}
# image <entrypoint> <rootfs> <ref>...
image() {
  local entrypoint="$1" rootfs="$2" refs=()
  shift 2
  for r in "$@"; do refs+=(--ref "$r"); done
  "$labtool" image --out "$images" --rootfs "$rootfs" --entrypoint "$entrypoint" "${refs[@]}" >/dev/null
}
# with_libraries <rootfs> <binary>...: copies the binaries' shared libraries (Debian's).
with_libraries() {
  local rootfs="$1" lib
  shift
  for lib in $(ldd "$@" 2>/dev/null | awk '/=>/ {print $3} /ld-linux/ {print $1}' | sort -u); do
    [ -f "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

# The CNI stand-in and the workload, both the lab's own program.
lab_tag="$(sha256sum "$labtool" | cut -c1-12)"
fs="$work/lab-image"
image_root "$fs"
cp "$labtool" "$fs/labtool"
image "/labtool" "$fs" "hak8slab/labtool:$lab_tag"
echo "$lab_tag" >"$out/lab-image-tag"

: >"$out/versions"
for version in "$@"; do
  version="${version#v}"
  [[ "$version" =~ ^1\.([0-9]+)\.[0-9]+$ ]] || {
    log "\"$version\" is not a Kubernetes patch like 1.36.3"
    exit 2
  }
  minor="1.${BASH_REMATCH[1]}"
  log "Kubernetes $version: binaries"
  components=(kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
  mapfile -t paths < <(bash "$repo_root/tools/kubernetes.sh" "$version" "${components[@]}")
  declare -A bin=()
  for i in "${!components[@]}"; do bin[${components[$i]}]="${paths[$i]}"; done
  kubeadm="${bin[kubeadm]}"
  # The deployer's kubectl (the tests use the stack's kubeconfig with it), of the first version.
  [ -x "$out/kubectl" ] || cp "${bin[kubectl]}" "$out/kubectl"
  # What kubeadm deploys for this version: its own list, not ours.
  mapfile -t listed < <("$kubeadm" config images list --kubernetes-version "v$version" 2>/dev/null)
  etcd_tag="" coredns_tag="" pause_tag=""
  for ref in "${listed[@]}"; do
    case "$ref" in
      */etcd:*) etcd_tag="${ref##*:}" ;;
      */coredns:*) coredns_tag="${ref##*:}" ;;
      */pause:*) pause_tag="${ref##*:}" ;;
    esac
  done
  if [ -z "$etcd_tag" ] || [ -z "$coredns_tag" ] || [ -z "$pause_tag" ]; then
    log "kubeadm $version lists no etcd, CoreDNS or pause image: ${listed[*]}"
    exit 1
  fi
  etcd_dir="$(bash "$repo_root/tools/etcd.sh" "${etcd_tag%-*}")"
  coredns_dir="$(bash "$repo_root/tools/go-install.sh" coredns "github.com/coredns/coredns@$coredns_tag" .)"
  pause="$HA_K8S_CACHE/pause/$pause_tag/pause"
  if [ ! -x "$pause" ]; then
    # pause.c, from the module of the Kubernetes version (build/pause/linux), as its Makefile builds it.
    source_dir="$(cd "$work" && printf 'module x\ngo 1.26\n' >go.mod && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    mkdir -p "$(dirname "$pause")"
    gcc -Os -Wall -Werror -static -DVERSION="v$pause_tag" -o "$pause.tmp" "$source_dir/build/pause/linux/pause.c"
    strip "$pause.tmp"
    mv "$pause.tmp" "$pause"
  fi
  echo "$version ${etcd_tag%-*} $coredns_tag $pause_tag" >>"$out/versions"

  # etcd's release as GitHub serves it (etcdReleaseMirror): the tarball and SHA256SUMS.
  etcd="etcd-v${etcd_tag%-*}-linux-amd64"
  dir="$out/repo/etcd/v${etcd_tag%-*}"
  if [ ! -f "$dir/SHA256SUMS" ]; then
    mkdir -p "$dir" "$work/$etcd"
    cp "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$etcd_dir/etcdutl" "$work/$etcd/"
    tar -C "$work" --owner=0 --group=0 -czf "$dir/$etcd.tar.gz" "$etcd"
    (cd "$dir" && sha256sum "$etcd.tar.gz" >SHA256SUMS)
  fi

  log "Kubernetes $version: images"
  fs="$work/pause-$version"
  image_root "$fs"
  cp "$pause" "$fs/pause"
  image /pause "$fs" "pause:$pause_tag" "$IMAGE_REPOSITORY_PATH/pause:$pause_tag"
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    fs="$work/$component-$version"
    image_root "$fs"
    cp "${bin[$component]}" "$fs/usr/local/bin/"
    image "/usr/local/bin/$component" "$fs" "$component:v$version" "$IMAGE_REPOSITORY_PATH/$component:v$version"
  done
  fs="$work/etcd-$version"
  image_root "$fs"
  cp "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$etcd_dir/etcdutl" "$fs/usr/local/bin/"
  image /usr/local/bin/etcd "$fs" "etcd:$etcd_tag" "$IMAGE_REPOSITORY_PATH/etcd:$etcd_tag"
  fs="$work/coredns-$version"
  image_root "$fs"
  cp "$coredns_dir/coredns" "$fs/coredns"
  # kubeadm names CoreDNS coredns/coredns on registry.k8s.io and coredns under any other repository.
  image /coredns "$fs" "coredns/coredns:$coredns_tag" "$IMAGE_REPOSITORY_PATH/coredns:$coredns_tag"
  # kube-proxy with Debian's iptables (nft backend) and conntrack, as the upstream image carries them.
  fs="$work/kube-proxy-$version"
  image_root "$fs"
  cp "${bin[kube-proxy]}" "$fs/usr/local/bin/"
  mkdir -p "$fs/usr/sbin" "$fs/usr/lib/x86_64-linux-gnu"
  cp /usr/sbin/xtables-nft-multi /usr/sbin/conntrack "$fs/usr/sbin/"
  cp -r /usr/lib/x86_64-linux-gnu/xtables "$fs/usr/lib/x86_64-linux-gnu/"
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$fs/usr/sbin/$t"
  done
  with_libraries "$fs" /usr/sbin/xtables-nft-multi /usr/sbin/conntrack /usr/lib/x86_64-linux-gnu/xtables/*.so
  mkdir -p "$fs/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$fs/lib64/"
  ln -sfn usr/lib "$fs/lib"
  image /usr/local/bin/kube-proxy "$fs" "kube-proxy:v$version" "$IMAGE_REPOSITORY_PATH/kube-proxy:v$version"

  log "Kubernetes $version: packages"
  dir="$out/repo/kubernetes/core:/stable:/v$minor/deb"
  pkg="$work/pkg-$version"
  mkdir -p "$pkg"
  root="$pkg/kubelet"
  install -D -m 755 "${bin[kubelet]}" "$root/usr/bin/kubelet"
  install -D -m 644 "$here/packages/kubelet.service" "$root/lib/systemd/system/kubelet.service"
  mkdir -p "$root/etc/default" "$root/etc/kubernetes/manifests" "$root/var/lib/kubelet"
  echo 'KUBELET_EXTRA_ARGS=' >"$root/etc/default/kubelet"
  : >"$root/etc/kubernetes/manifests/.kubelet-keep"
  : >"$root/var/lib/kubelet/.kubelet-keep"
  deb "$dir/amd64" kubelet "$version-$REVISION" "iptables (>= 1.4.21),kubernetes-cni (>= 1.2.0),mount,util-linux" \
    "Node agent for Kubernetes clusters" "$root" "$here/packages/kubelet"
  root="$pkg/kubeadm"
  install -D -m 755 "$kubeadm" "$root/usr/bin/kubeadm"
  install -D -m 644 "$here/packages/10-kubeadm.conf" "$root/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
  deb "$dir/amd64" kubeadm "$version-$REVISION" "" "Command-line utility for administering a Kubernetes cluster" "$root"
  root="$pkg/kubectl"
  install -D -m 755 "${bin[kubectl]}" "$root/usr/bin/kubectl"
  deb "$dir/amd64" kubectl "$version-$REVISION" "" "Command-line utility for interacting with a Kubernetes cluster" "$root"
  root="$pkg/cri-tools"
  install -D -m 755 "$crictl_dir/crictl" "$root/usr/bin/crictl"
  deb "$dir/amd64" cri-tools "$CRI_TOOLS-$REVISION" "" "Command-line utility for interacting with a container runtime" "$root"
  root="$pkg/kubernetes-cni"
  mkdir -p "$root/opt/cni/bin"
  cp "$cni_dir"/* "$root/opt/cni/bin/"
  mkdir -p "$root/etc/cni/net.d" && : >"$root/etc/cni/net.d/.kubernetes-cni-keep"
  deb "$dir/amd64" kubernetes-cni "$CNI_PLUGINS-$REVISION" "" \
    "Binaries required to provision kubernetes container networking" "$root"
  sign_repo "$dir" "obs://build.opensuse.org/isv:kubernetes:core:stable:v$minor/deb" "isv:kubernetes:core:stable:v$minor"

  # The CRI-O stand-in: package cri-o of this minor, containerd inside (docs/limitations.md).
  dir="$out/repo/opensuse/isv:/cri-o:/stable:/v$minor/deb"
  root="$pkg/cri-o"
  install -D -m 755 "$here/packages/crio" "$root/usr/bin/crio"
  for b in containerd containerd-shim-runc-v2 ctr; do install -D -m 755 "$containerd_dir/$b" "$root/usr/libexec/crio/$b"; done
  install -D -m 755 "$labtool" "$root/usr/libexec/crio/labtool"
  install -D -m 644 "$here/packages/crio.service" "$root/usr/lib/systemd/system/crio.service"
  install -D -m 644 "$here/packages/crio.default" "$root/etc/default/crio"
  install -D -m 644 "$here/packages/10-crio.conf" "$root/etc/crio/crio.conf.d/10-crio.conf"
  printf 'runtime-endpoint: "unix:///var/run/crio/crio.sock"\n' >"$root/etc/crictl.yaml"
  deb "$dir/amd64" cri-o "$minor.0-0lab.containerd.${CONTAINERD#v}" "iptables" \
    "CRI-O stand-in: containerd $CONTAINERD on CRI-O's socket and configuration (the lab cannot have CRI-O)" \
    "$root" "$here/packages/crio"
  sign_repo "$dir" "obs://build.opensuse.org/isv:cri-o:stable:v$minor/deb" "isv:cri-o:stable:v$minor"
done
touch "$out/done"
# Earlier builds (other versions or sources) untouched for a week go: each is a few hundred MB.
find "$HA_K8S_CACHE/lab" -mindepth 2 -maxdepth 2 -name 'done' -mtime +7 -printf '%h\n' | xargs -r rm -rf
log "lab artifacts ready in $out ($((SECONDS - started)) s)"
echo "$out"
