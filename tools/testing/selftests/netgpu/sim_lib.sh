#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared by the netgpu-sim kselftests (sourced): TAP output, the environment
# they need, counters, and a pair of netgpu-sim devices between two network
# namespaces. Needs root and:
#   NETGPU_SIM_KO  path of netgpu_sim.ko
#   NETGPU_IPLIB   folder holding link_netgpu-sim.so (tools/iproute2/install.sh)
#   NETGPU_KSRC    kernel source tree (for tools/net/ynl)
#   netgpu_traffic on PATH
# Addresses are documentation prefixes only.

KO=${NETGPU_SIM_KO:-}
IPLIB=${NETGPU_IPLIB:-}
KSRC=${NETGPU_KSRC:-}
A="ip netns exec ngsa"
B="ip netns exec ngsb"
YNL="python3 $KSRC/tools/net/ynl/pyynl/cli.py --no-schema"
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "$2" | sed 's/^/# /'; echo "not ok $n $1"; }
skip_all() { echo "TAP version 13"; echo "1..0 # SKIP $1"; exit 4; }
check() { # check NAME CMD...: ok if CMD succeeds, else nok with its output
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else nok "$name" "$out"; fi
}

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
[ -f "$KO" ] || skip_all "NETGPU_SIM_KO does not name netgpu_sim.ko"
[ -f "$IPLIB/link_netgpu-sim.so" ] || skip_all "NETGPU_IPLIB has no link_netgpu-sim.so"
[ -f "$KSRC/tools/net/ynl/pyynl/cli.py" ] || skip_all "NETGPU_KSRC has no tools/net/ynl"
command -v netgpu_traffic >/dev/null || skip_all "netgpu_traffic is not on PATH"
grep -q '^netgpu_sim ' /proc/modules && skip_all "netgpu_sim is already loaded"

# ynl_spec FAMILY: the --spec argument for a netlink family
ynl_spec() { echo "--spec $KSRC/Documentation/netlink/specs/$1.yaml"; }
# stat NS DEV NAME: one ethtool -S counter
stat() { ip netns exec "$1" ethtool -S "$2" | awk -v k="$3:" '$1 == k { print $2 }'; }
# queue_total NS DEV rx|tx SUFFIX: sum of rxN_SUFFIX or txN_SUFFIX over queues
queue_total() { ip netns exec "$1" ethtool -S "$2" | awk -v s="^$3[0-9]+_$4:\$" '$1 ~ s { t += $2 } END { printf "%.0f\n", t }'; }
rx_total() { queue_total "$1" "$2" rx "$3"; }
tx_total() { queue_total "$1" "$2" tx "$3"; }
hds() { # hds on|off: set tcp-data-split on ngs1 through ethtool netlink
	local v=enabled
	[ "$1" = off ] && v=disabled
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec ethtool) --do rings-set \
		--json "{\"header\": {\"dev-name\": \"ngs1\"}, \"tcp-data-split\": \"$v\"}" >/dev/null
}
# pair_addrs: addresses on ngs0 (in ngsa) and ngs1 (in ngsb), links up
pair_addrs() {
	$A ip link set lo up
	$B ip link set lo up
	$A ip addr add 192.0.2.1/24 dev ngs0
	$B ip addr add 192.0.2.2/24 dev ngs1
	$A ip addr add 2001:db8::1/64 dev ngs0 nodad
	$B ip addr add 2001:db8::2/64 dev ngs1 nodad
	$A ip link set ngs0 up
	$B ip link set ngs1 up
}
# pair_up [ARGS] [--- TYPE_ARGS]: a pair ngs0 (netns ngsa, 192.0.2.1,
# 2001:db8::1) and ngs1 (netns ngsb, 192.0.2.2, 2001:db8::2), both up; ARGS
# go to "ip link add", TYPE_ARGS after "type netgpu-sim" (dma-dev)
pair_up() {
	local args=() targs=()
	while [ $# -gt 0 ] && [ "$1" != --- ]; do
		args+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	targs=("$@")
	ip netns add ngsa 2>/dev/null
	ip netns add ngsb 2>/dev/null
	IP_LIB_DIR=$IPLIB ip link add ngs0 netns ngsa "${args[@]}" type netgpu-sim \
		"${targs[@]}" peer name ngs1 netns ngsb || return 1
	pair_addrs
}
# xfer PROTO DST_ADDR PORT BYTES [DGRAM]: send from ngsa to ngsb, verify on ngsb
xfer() {
	local proto=$1 dst=$2 port=$3 bytes=$4 dgram=${5:-1400} rx rc
	rx=$(mktemp)
	$B netgpu_traffic recv "$proto" "$dst" "$port" "$bytes" >"$rx" 2>&1 &
	local pid=$!
	sleep 0.5
	$A netgpu_traffic send "$proto" "$dst" "$port" "$bytes" "$dgram" >/dev/null 2>&1
	wait $pid
	rc=$?
	cat "$rx"
	rm -f "$rx"
	return $rc
}
# subtests PREFIX CMD...: run a KTAP program, report each of its cases here
subtests() {
	local prefix=$1 out line
	shift
	out=$("$@" 2>&1)
	while read -r line; do
		case $line in
		"ok "*) ok "$prefix${line#ok [0-9]* }" ;;
		"not ok "*) nok "$prefix${line#not ok [0-9]* }" "$out" ;;
		esac
	done <<<"$out"
}
# provider_pair: load the module and make a pair with 4 queues and ntuple on
# for a memory provider test, as test "pair_with_4_queues"
provider_pair() {
	insmod "$KO"
	if pair_up numrxqueues 4 numtxqueues 4 && $B ethtool -K ngs1 ntuple on; then
		ok pair_with_4_queues
	else
		nok pair_with_4_queues "$($B ip link 2>&1)"
	fi
	sleep 1
}
# queues_ngs1: the netdev netlink queue list of ngs1, on one line
queues_ngs1() {
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec netdev) --dump queue-get \
		--json "{\"ifindex\": $($B cat /sys/class/net/ngs1/ifindex)}" 2>&1 | tr -d ' \n'
}
# unload NAME: rmmod netgpu_sim as test NAME (all buffers given back by
# now), then drop the namespaces
unload() {
	local out
	sleep 1
	if out=$(rmmod netgpu_sim 2>&1); then
		ok "$1"
	else
		nok "$1" "$out"
	fi
	ip netns del ngsa 2>/dev/null
	ip netns del ngsb 2>/dev/null
	ip netns del ngsk 2>/dev/null
}
# kick_cpus: a few UDP datagrams over loopback from every CPU, in a
# namespace of their own (198.51.100.1), so that each CPU runs its NET_RX
# softirq. That frees the skbs other CPUs deferred to it: skbs a receive
# took from a socket on another CPU than the one that built them wait in
# that CPU's list (skb_attempt_defer_free()) for its next softirq, holding
# their page pool buffers; on an idle VM whose device is gone, for good.
kick_cpus() {
	local c
	if ip netns add ngsk 2>/dev/null; then
		ip -n ngsk link set lo up
		ip -n ngsk addr add 198.51.100.1/32 dev lo
	fi
	for c in $(seq 0 $(($(nproc) - 1))); do
		ip netns exec ngsk taskset -c "$c" python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"x", ("198.51.100.1", 9))'
	done
}
# refs_released: whether netgpu's module references drop to zero within
# 30 s, CPUs kicked every second
refs_released() {
	local i
	for i in $(seq 30); do
		kick_cpus
		[ "$(cat /sys/module/netgpu/refcnt)" -eq 0 ] && return 0
		sleep 1
	done
	return 1
}
cleanup() {
	ip netns del ngsk 2>/dev/null
	ip netns del ngsa 2>/dev/null
	ip netns del ngsb 2>/dev/null
	ip link del ngs0 2>/dev/null
	grep -q '^netgpu_sim ' /proc/modules && rmmod netgpu_sim
}
trap cleanup EXIT
