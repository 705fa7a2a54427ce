#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmark of netgpu's receive path, run in the test VM by "make bench":
# the same single TCP stream over the same netgpu-sim pair (header/data
# split on, threshold 0, the flow steered to queue 3, RSS on 0-2), received
#   copy     without netgpu: recv() into host memory, then a CPU copy into
#            the mmap'd udmabuf (what an application does today)
#   devmem   devmem TCP into a udmabuf (the kernel tree's ncdevmem, which
#            prints a line per fragment and returns tokens by setsockopt)
#   netgpu   netgpu into a udmabuf (samples/netgpu_recv.rs): completions
#            through the ring, buffers back through the refill ring
# at MTU 1500, then copy and netgpu again at MTU 9000 (-9000 rows).
# None verifies the payload (the tests do).
#
# The two vCPUs play two hosts: the receiver, and the NAPI threads of ngs1
# (threaded NAPI) that run the receiving side's driver and stack, are pinned
# to CPU 1; the sender and ngs0's NAPI threads to CPU 0. Receiver CPU is
# what CPU 1 spent busy during the transfer, per GB; of it, the receiving
# process's user+system time and ngs1's NAPI threads are shown (the rest,
# within tick-sampling error, is other work on CPU 1: timers, RCU,
# workqueues). The NAPI share includes the sim's "DMA engine", which
# copies every payload byte in all three modes (hardware does that for
# free). Throughput is BYTES over the sender's elapsed time. Prints the
# ratios netgpu/devmem and netgpu/copy. Needs what sim_lib.sh needs,
# NETGPU_NCDEVMEM, netgpu.ko loaded, netgpu_recv on PATH and two vCPUs.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/../testing/selftests/netgpu/sim_lib.sh" >/dev/null
BYTES=${NETGPU_BENCH_BYTES:-268435456}
NCDEVMEM=${NETGPU_NCDEVMEM:-}
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"
RX_CPU=1
TX_CPU=0

if [ "$(nproc)" -lt 2 ]; then
	echo "netgpu benchmark: needs two vCPUs, has $(nproc)"
	exit 1
fi
insmod "$KO"
pair_up
$B ethtool -K ngs1 ntuple on
$A sh -c 'echo 1 >/sys/class/net/ngs0/threaded'
$B sh -c 'echo 1 >/sys/class/net/ngs1/threaded'
sleep 1

# pin_napi: each end's NAPI threads on its host's CPU (run before each
# transfer: a queue reconfiguration may start new threads)
pin_napi() {
	local p
	for p in $(pgrep '^napi/ngs1-'); do taskset -pc "$RX_CPU" "$p" >/dev/null; done
	for p in $(pgrep '^napi/ngs0-'); do taskset -pc "$TX_CPU" "$p" >/dev/null; done
}
# napi_ticks: user+system ticks of ngs1's NAPI threads so far
napi_ticks() {
	local p
	for p in $(pgrep '^napi/ngs1-'); do
		awk '{ print $14 + $15 }' "/proc/$p/stat"
	done | awk '{ t += $1 } END { print t + 0 }'
}

# split_on: header/data split on with threshold 0 and RSS on queues 0-2,
# as netgpu needs (ncdevmem changes the device settings as it goes)
split_on() {
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec ethtool) --do rings-set \
		--json '{"header": {"dev-name": "ngs1"}, "tcp-data-split": "enabled", "hds-thresh": 0}' >/dev/null
	$B ethtool -X ngs1 equal 3
}

# run LABEL PORT RECEIVER...: one transfer of BYTES to 2001:db8::2 PORT,
# each from the same device settings
run() {
	local label=$1 port=$2 n0
	shift 2
	split_on
	pin_napi
	n0=$(napi_ticks)
	timed "$label" "$port" 2001:db8::2 2001:db8::1 "$@"
	if [ "$rc" -ne 0 ]; then
		echo "$label: receiver failed (exit $rc): $(tail -3 "$t/$label.out")"
		return
	fi
	awk -v l="$label" -v b="$BYTES" -v el="$el" -v ru="$ru" -v rs="$rs" \
		-v rb="$rb" -v napi="$(($(napi_ticks) - n0))" -v hz="$hz" 'BEGIN {
		mbs = b / el / 1e6; gb = b / 1e9; cpu = rb / hz / gb
		printf "%-12s %7.3f Gbit/s  rx CPU %7.2f s/GB (process %.2f, NAPI %.2f)\n",
			l, mbs * 8 / 1000, cpu, (ru + rs) / gb, napi / hz / gb
		printf "%s %f %f\n", l, mbs, cpu >> "'"$t/rows"'"
	}'
}

echo "netgpu benchmark: one TCP stream of $BYTES bytes over netgpu-sim, receiver on CPU $RX_CPU, sender on CPU $TX_CPU"
run copy 5311 $B netgpu_recv ngs1 3 2001:db8::2 5311 --copy-baseline --no-verify
# ncdevmem binds the last queue (3) and adds its own 5-tuple rule.
run devmem 5312 $B "$NCDEVMEM" -l -f ngs1 -s 2001:db8::2 -c 2001:db8::1 -p 5312
run netgpu 5313 $B netgpu_recv ngs1 3 2001:db8::2 5313 --no-verify --expect zc
sed -n 's/^received/netgpu:       received/p' "$t/netgpu.out"
$A ip link set ngs0 mtu 9000
$B ip link set ngs1 mtu 9000
run copy-9000 5314 $B netgpu_recv ngs1 3 2001:db8::2 5314 --copy-baseline --no-verify
run netgpu-9000 5315 $B netgpu_recv ngs1 3 2001:db8::2 5315 --no-verify --expect zc
sed -n 's/^received/netgpu-9000:  received/p' "$t/netgpu-9000.out"
# ratio A B: netgpu row A against row B
ratio() {
	awk -v a="$1" -v b="$2" '{ mbs[$1] = $2; cpu[$1] = $3 }
		END {
			if (!(a in mbs) || !(b in mbs)) exit
			printf "%s/%-9s throughput %.2fx, rx CPU per GB %.2fx\n",
				a, b, mbs[a] / mbs[b], cpu[a] / cpu[b]
		}' "$t/rows"
}
ratio netgpu copy
ratio netgpu devmem
ratio netgpu-9000 copy-9000
rm -rf "$t"
