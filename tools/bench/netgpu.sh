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
# None verifies the payload (the tests do). Throughput is BYTES over the
# sender's elapsed time; receiver CPU is the receiving process's user+system
# time plus the softirq time the whole VM spent, per GB. Prints the ratios
# netgpu/devmem and netgpu/copy. Needs what sim_lib.sh needs,
# NETGPU_NCDEVMEM, netgpu.ko loaded, and netgpu_recv on PATH.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/../testing/selftests/netgpu/sim_lib.sh" >/dev/null
BYTES=${NETGPU_BENCH_BYTES:-268435456}
NCDEVMEM=${NETGPU_NCDEVMEM:-}
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

insmod "$KO"
pair_up
$B ethtool -K ngs1 ntuple on
sleep 1

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
	local label=$1 port=$2
	shift 2
	split_on
	timed "$label" "$port" 2001:db8::2 2001:db8::1 "$@"
	if [ "$rc" -ne 0 ]; then
		echo "$label: receiver failed (exit $rc): $(tail -3 "$t/$label.out")"
		return
	fi
	awk -v l="$label" -v b="$BYTES" -v el="$el" -v ru="$ru" -v rs="$rs" \
		-v si="$si" -v hz="$hz" 'BEGIN {
		mbs = b / el / 1e6; gb = b / 1e9; cpu = (ru + rs + si / hz) / gb
		printf "%-8s %7.3f Gbit/s  rx CPU %7.2f s/GB (proc %.2f + softirq %.2f)\n",
			l, mbs * 8 / 1000, cpu, (ru + rs) / gb, si / hz / gb
		printf "%s %f %f\n", l, mbs, cpu >> "'"$t/rows"'"
	}'
}

echo "netgpu benchmark: one TCP stream of $BYTES bytes over netgpu-sim, $(nproc) vCPUs"
run copy 5311 $B netgpu_recv ngs1 3 2001:db8::2 5311 --copy-baseline --no-verify
# ncdevmem binds the last queue (3) and adds its own 5-tuple rule.
run devmem 5312 $B "$NCDEVMEM" -l -f ngs1 -s 2001:db8::2 -c 2001:db8::1 -p 5312
run netgpu 5313 $B netgpu_recv ngs1 3 2001:db8::2 5313 --no-verify --expect zc
sed -n 's/^received/netgpu:  received/p' "$t/netgpu.out"
awk '{ mbs[$1] = $2; cpu[$1] = $3 }
	END {
		if (!("netgpu" in mbs)) exit
		for (o in mbs) if (o != "netgpu")
			printf "netgpu/%-6s throughput %.2fx, rx CPU per GB %.2fx\n",
				o, mbs["netgpu"] / mbs[o], cpu["netgpu"] / cpu[o]
	}' "$t/rows" | sort
rm -rf "$t"
