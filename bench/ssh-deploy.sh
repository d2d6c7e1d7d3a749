#!/usr/bin/env bash
# Benchmark: drover deploying over real OpenSSH to 20 sshd hosts on this
# machine in batches of 5. Prints wall times and the per-host overhead of
# SSH over transport local. Needs /usr/sbin/sshd (scripts/deps.sh installs
# it). Usage: bench/ssh-deploy.sh [-hosts N] [-batch N] [-runs N] [-keep]
# DROVER=PATH measures that drover binary instead of building this tree's
# (an older build, to compare before and after).
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
# The local fleet's release scripts run `drover sample-service` from PATH.
PATH="$tmp:$PATH" go run ./bench/sshdeploy -drover "$tmp/drover" "$@"
