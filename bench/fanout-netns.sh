#!/usr/bin/env bash
# Benchmark: relay distribution against a direct push where bandwidth is
# real. On loopback every "host" shares one machine's memory bandwidth, so
# a relay can only save repeated work (bench/fanout.sh: ~1.25x). Here each
# host, and the controller, sits in a network namespace of its own behind
# a veth link shaped with tc (token bucket, both directions), all links on
# one bridge in a switch namespace: a direct push sends every copy through
# the controller's one link, a relay spreads them over the hosts' links.
#
# Then bench/fanout runs inside the controller's namespace: 50 sshd hosts
# (one per namespace), a release with a 50 MB incompressible payload,
# deployed once pushed from the controller to every host and once relayed
# host to host (distribution.mode: relay), stage phases and ratio printed.
#
# Needs root, iproute2 (ip, tc; installed here with apt-get when missing)
# and /usr/sbin/sshd (scripts/deps.sh). Addresses exist only inside the
# namespaces it creates (10.77.0.0/24 by default); the host's own network
# is not touched. Every namespace is deleted on exit, failure or not.
#
# Usage: bench/fanout-netns.sh [-hosts N] [-rate RATE] [-ctl-rate RATE] [fanout flags...]
#   -rate      each host's link, tc syntax (default 200mbit)
#   -ctl-rate  the controller's link (default: -rate)
#   other flags go to bench/fanout (-mb, -seeds, -fanout, -rounds,
#   -stage-parallelism, -keep).
set -euo pipefail
cd "$(dirname "$0")/.."

hosts=50 rate=200mbit ctlrate="" subnet=10.77.0 pass=()
while [ $# -gt 0 ]; do
	case "$1" in
	-hosts) hosts=$2; shift 2 ;;
	-rate) rate=$2; shift 2 ;;
	-ctl-rate) ctlrate=$2; shift 2 ;;
	*) pass+=("$1"); shift ;;
	esac
done
ctlrate=${ctlrate:-$rate}
if [ "$(id -u)" != 0 ]; then
	echo "fanout-netns: needs root (it creates network namespaces); try: sudo $0" >&2
	exit 2
fi
if ! [[ "$hosts" =~ ^[0-9]+$ ]] || [ "$hosts" -lt 1 ] || [ "$hosts" -gt 250 ]; then
	echo "fanout-netns: -hosts must be 1..250 (one /24), got '$hosts'" >&2
	exit 2
fi
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
	apt-get install -y iproute2 >/dev/null
fi
./scripts/deps.sh >/dev/null

# Names carry a prefix of this run's own so a second run, or anything
# else on the machine, is never touched by the cleanup.
p="drf$$x"
sw="${p}sw" ctl="${p}c"
tmp=$(mktemp -d)
cleanup() {
	for ns in $(ip netns list | awk '{print $1}' | grep "^${p}" || true); do
		# sshd, drover host serve and the sample service of a host
		# live in its namespace: stop them before it goes.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

shape() { # ns dev rate: egress of dev in ns limited to rate
	ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$3" burst 256kb latency 100ms
}
ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
link() { # ns ip rate: a namespace on the switch behind a link of rate
	local ns=$1 addr=$2 r=$3
	local port="v${ns#"$p"}"
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add eth0 type veth peer name "$port" netns "$sw"
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$sw" link set "$port" master br0
	ip -n "$sw" link set "$port" up
	shape "$ns" eth0 "$r"   # what the namespace sends
	shape "$sw" "$port" "$r" # what it receives
}
link "$ctl" "$subnet.1" "$ctlrate"
for i in $(seq 1 "$hosts"); do
	link "${p}h$i" "$subnet.$((i + 1))" "$rate"
done
echo "fanout-netns: $hosts hosts in namespaces ${p}h1..${p}h$hosts, links $rate each, controller's $ctlrate (tc tbf, both directions); load $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "${DROVER:-}" ]; then
	cp "$DROVER" "$tmp/drover"
else
	go build -o "$tmp/drover" ./cmd/drover
fi
go build -o "$tmp/fanout" ./bench/fanout
# The benchmark, and the drover it runs, are the controller: inside its
# namespace, so every byte to a host crosses the controller's link.
ip netns exec "$ctl" "$tmp/fanout" -drover "$tmp/drover" -hosts "$hosts" -mb 50 \
	-netns "${p}h" -subnet "$subnet" "${pass[@]}"
