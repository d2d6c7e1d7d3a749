#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only when missing.
# Every test that needs a component fails naming it if it is absent, so this
# script is the one place that makes them present.
set -euo pipefail

need=()
# command -> Debian package
declare -A pkgs=(
  [setsid]=util-linux   # the sample service's restart hook detaches with it
  [nohup]=coreutils
  [git]=git             # release builds record the source revision
  [tar]=tar
)
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkgs[$cmd]}")
done

if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

command -v go >/dev/null 2>&1 || { echo "deps: Go is missing: install Go 1.26 (https://go.dev/dl) and retry" >&2; exit 1; }
