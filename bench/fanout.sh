#!/usr/bin/env bash
# Benchmark: relay distribution against a direct push — a release with a
# 100 MB incompressible payload deployed by drover to 50 sshd hosts on this
# machine, pushed from here to every host, then relayed host to host
# (distribution.mode: relay, 4 seeds, fanout 4). Prints one host's share of
# the work (SSH transfer, HTTP relay, sha256, unpack), both stage phases,
# both deploys and the ratio. Needs /usr/sbin/sshd (scripts/deps.sh) and
# about 25 GB free in $TMPDIR.
# Usage: bench/fanout.sh [-hosts N] [-mb N] [-seeds N] [-fanout N] [-rounds N] [-keep] [-components-only]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${DROVER:-}" ]; then
	cp "$DROVER" "$tmp/drover"
else
	go build -o "$tmp/drover" ./cmd/drover
fi
go run ./bench/fanout -drover "$tmp/drover" "$@"
