#!/usr/bin/env bash
# Benchmark: the same rolling upgrade of the sample service over a fleet of
# OpenSSH hosts on loopback, done by drover and by Ansible (Debian's
# package), timed in one run; prints both times and the ratio. See
# bench/README.md for what is compared and the fairness notes.
#
# Usage: bench/compare.sh [-hosts 20] [-batch 5] [-runs 1] [-pipelining] [-keep]
#        [-payload-mb N] (an N MB incompressible file in every release; the
#        floor, what the hosts alone need, is printed alongside)
# Needs sshd (scripts/deps.sh) and ansible-playbook: installed with apt-get
# when missing (Debian's `ansible`, 2.14 on bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh >/dev/null
if ! command -v ansible-playbook >/dev/null 2>&1; then
	echo "compare.sh: installing Debian's ansible package" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get install -y ansible >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/drover" ./cmd/drover
echo "ansible: $(ansible-playbook --version 2>/dev/null | sed -n 1p)"
# The sample service's scripts run `drover sample-service` (DROVER_BIN
# over ssh; PATH for the local fleet).
PATH="$tmp:$PATH" go run ./bench/sshdeploy -drover "$tmp/drover" -ansible bench/ansible "$@"
