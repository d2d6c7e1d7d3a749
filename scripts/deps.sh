#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only when missing.
# Every test that needs a component fails naming it if it is absent, so this
# script is the one place that makes them present.
set -euo pipefail

need=()
# command -> Debian package
declare -A pkgs=(
  [setsid]=util-linux   # the sample service's restart hook detaches with it
  [unshare]=util-linux  # the full-disk tests mount a small tmpfs in a mount namespace of their own (internal/tmpfsns)
  [nsenter]=util-linux
  [mount]=mount
  [nohup]=coreutils
  [git]=git             # release builds record the source revision
  [tar]=tar
  [tmux]=tmux           # the terminal tests run drover under a pseudo-terminal
  [/usr/sbin/sshd]=openssh-server   # transport/ssh end-to-end tests start real sshd instances
  [ssh-keygen]=openssh-client
  [/usr/sbin/haproxy]=haproxy     # rotation end-to-end tests put a real HAProxy in front of the fleet
  [prometheus]=prometheus         # canary analysis end-to-end tests scrape the fleet with a real Prometheus
  [etcd]=etcd-server              # store/etcd and the server replica tests run a real etcd (3.4; the 3.7 client speaks its v3 API)
  [/usr/bin/chromium]=chromium    # the dashboard's browser test drives headless Chromium (chromedp)
  [cap]=capistrano                # the adoption tests deploy a fleet with real Capistrano first
  [zstd]=zstd                     # transport/ssh sends drover to hosts over a network zstd-compressed; its tests use the host's zstd
  [perl]=perl-base                # drover's upload to a Linux host widens its stdin pipe with perl; the test checks it
  [ansible-playbook]=ansible      # ... and with a real Ansible playbook over the test's sshd; config reads Ansible inventories as `ansible-inventory --list` does (parity test)
)
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkgs[$cmd]}")
done
# Cobra's bash completion script needs bash-completion's helpers; the
# completion tests load it the way a user's shell does.
[ -e /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)

if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

command -v go >/dev/null 2>&1 || { echo "deps: Go is missing: install Go 1.26 (https://go.dev/dl) and retry" >&2; exit 1; }
