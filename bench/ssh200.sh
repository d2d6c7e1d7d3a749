#!/usr/bin/env bash
# Benchmark: one full deploy (first deploy: drover uploads itself) and one
# rolling upgrade to 200 real sshd hosts on loopback (internal/sshfleet),
# reporting the controller's peak RSS, its peak open file descriptors and
# the time per host. See bench/README.md.
#
# Usage: bench/ssh200.sh [-hosts 200] [-batch 20] [-runs 1] [-payload-mb 0]
# Needs sshd (scripts/deps.sh); 200 sshd and 200 sample services need about
# 4 GB of memory and 8 GB of disk (every host holds a copy of drover).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/drover" ./cmd/drover
# Every sshd, session and service holds descriptors of this shell's limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PATH="$tmp:$PATH" go run ./bench/sshdeploy -drover "$tmp/drover" -only-drover -hosts 200 -batch 20 -shell-rc=false "$@"
