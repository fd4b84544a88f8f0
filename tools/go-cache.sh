#!/usr/bin/env bash
# Sourced by the tools that build real programs from their Go modules and cache them outside the
# repository (kubernetes.sh, etcd.sh, fake-gcs-server.sh, actionlint.sh, registries-check.sh):
#   HA_K8S_CACHE          where the builds are cached
#   need_go <what>        puts /usr/local/go/bin on PATH when go is not there (CI machines); stops
#                         with one line saying what needs Go when there is none
#   hold_lock <file>      waits for, then holds until the script exits, an exclusive lock: two runs
#                         build a tool once
#   enter_build_module <module>
#                         makes a temporary Go module of that name (go.mod only; removed when the
#                         script exits), sets work to it and enters it
# shellcheck shell=bash

HA_K8S_CACHE="${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}"

need_go() {
  command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
  command -v go >/dev/null && return 0
  printf '%s: Go is needed to build %s (https://go.dev/dl/; /usr/local/go/bin on CI machines)\n' \
    "$(basename "$0")" "$1" >&2
  exit 1
}

hold_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock 9
}

enter_build_module() {
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cd "$work" || exit 1
  printf 'module %s\n\ngo 1.26\n' "$1" >go.mod
}
