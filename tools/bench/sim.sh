#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Benchmark of netgpu-sim, run in the test VM by "make bench": one TCP stream
# over a pair, measured side by side in one run:
#   hds-off      header/data split off, payload in host pages, recv() copies
#   hds-host     split on, payload in the data pool's host pages, recv() copies
#   hds-no-tso   hds-host with TSO off on ngs0: the sender's stack segments
#   devmem       split on, payload in a udmabuf through devmem TCP (the tree's
#                ncdevmem, no validation), no copy to user space
#   veth         the same stream over veth in the same namespaces: the stack's
#                cost without any device copy, with 64 KiB TSO frames
#   veth-1500    veth with TSO off and GRO on: the same frames per byte as a
#                NIC at MTU 1500, the reference for the sim's per-frame cost
#   hds-9000     hds-host with MTU 9000 on the pair
# and the VM's memcpy bandwidth in page-sized chunks (the sim's DMA engine
# copies pages). Throughput is BYTES over the sender's elapsed time; receiver
# CPU is the receiving process's user+system time plus the softirq time the
# whole VM spent (where NAPI runs), per GB. The "ceiling" of a path is the
# memcpy bandwidth divided by the copies every byte takes on it (sender's
# copy into the socket, the DMA engine's, recv()'s). The sim's rows also
# give its own part: "device" is the time its engines and the driver's
# share of NAPI took per GB (ethtool -S rxN_engine_ns and rxN_driver_ns,
# as for capacity below), the rate that makes per CPU second, and that
# rate over memcpy: the datapath is within 2x of the physical ceiling (the
# one copy of the DMA engine) when that ratio is at least 0.5.
# The TCP rows carry the stack's cost too (veth, with no device at all,
# gets no more), so the sim's own datapath is measured alone as well:
#   capacity     UDP flooded from ngs0 (UDP GSO: little sender CPU per byte)
#                to an address whose neighbour entry is a MAC nobody has:
#                ngs1 receives every frame like any other (ring, engine, DMA,
#                completion, skb, GRO) and IPv6 drops it on entry as not for
#                this host, so the stack adds next to nothing. ngs1's NAPI
#                threads, its NIC engines (sim/rxq.rs) and its RX queues'
#                (driver and stack), have CPU 1 to themselves: the whole
#                receive path, emulated hardware included, on one CPU. The
#                rate is the bytes ngs1 received over the CPU time vCPU 1
#                took on the host (tools/bench/lib.sh vcpu_ns), and it is
#                within 2x of the physical ceiling (one copy, the DMA
#                engine's: memcpy) when capacity/memcpy >= 0.5. "device
#                alone" is the same bytes over the time the engines and the
#                driver's share of NAPI took (ethtool -S rxN_engine_ns and
#                rxN_driver_ns): what the sim itself costs, without the IPv6
#                input and GRO that every NIC's frames pay.
#                The VM's housekeeping runs on CPU 0 (lib.sh housekeeping_on).
# Needs what sim_lib.sh needs, and NETGPU_NCDEVMEM.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/../testing/selftests/netgpu/sim_lib.sh" >/dev/null
BYTES=${NETGPU_BENCH_BYTES:-268435456}
NCDEVMEM=${NETGPU_NCDEVMEM:-}
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

housekeeping_on 0
insmod "$KO"
pair_up
$B ethtool -K ngs1 ntuple on
sleep 1

# device_ns: the time ngs1's engines and its driver's share of NAPI took so far
device_ns() { echo $(($(rx_total ngsb ngs1 engine_ns) + $(rx_total ngsb ngs1 driver_ns))); }
# run LABEL COPIES DST RECEIVER...: one transfer of BYTES to DST port 5301
run() {
	local label=$1 copies=$2 dst=$3 src=${3%::2}::1 d0 d1
	shift 3
	d0=$(device_ns)
	timed "$label" 5301 "$dst" "$src" "$@"
	d1=$(device_ns)
	# veth rows do not cross the sim
	case $label in veth*) d1=$d0 ;; esac
	awk -v l="$label" -v b="$BYTES" -v el="$el" -v ru="$ru" -v rs="$rs" \
		-v si="$si" -v hz="$hz" -v c="$copies" -v m="$memcpy" -v dev="$((d1 - d0))" 'BEGIN {
		mbs = b / el / 1e6; gb = b / 1e9; cpu = (ru + rs + si / hz) / gb
		ceil = m / c
		printf "%-10s %9.1f MB/s %7.2f Gbit/s  rx CPU %6.2f s/GB (proc %.2f + softirq %.2f)  ceiling %7.1f MB/s (%d copies)  ratio %.2f",
			l, mbs, mbs * 8 / 1000, cpu, (ru + rs) / gb, si / hz / gb, ceil, c, mbs / ceil
		if (dev > 0)
			printf ";  device %.2f s/GB, %.1f MB/s per CPU second, of memcpy %.2f",
				dev / 1e9 / gb, b / (dev / 1e9) / 1e6, b / (dev / 1e9) / 1e6 / m
		printf "\n"
	}'
}
hds_thresh0() {
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec ethtool) --do rings-set \
		--json '{"header": {"dev-name": "ngs1"}, "tcp-data-split": "enabled", "hds-thresh": 0}' >/dev/null
}

echo "netgpu-sim benchmark: one TCP stream of $BYTES bytes, $(nproc) vCPUs"
memcpy=$(netgpu_traffic memcpy 1073741824 4096 | sed -n 's/.*: \([0-9.]*\) MB\/s/\1/p')
echo "memcpy     $memcpy MB/s (4096-byte chunks, 64 MiB buffers)"
# veth between the same namespaces: the same stack without a device copy
ip link add vea netns ngsa type veth peer name veb netns ngsb
$A ip addr add 2001:db8:1::1/64 dev vea nodad
$B ip addr add 2001:db8:1::2/64 dev veb nodad
$A ip link set vea up
$B ip link set veb up
sleep 1
run veth 2 2001:db8:1::2 $B netgpu_traffic recv tcp 2001:db8:1::2 5301 "$BYTES" --no-verify
# veth passes 64 KiB TSO frames untouched; a NIC carries MTU-sized frames
# (netgpu-sim passes a TSO send whole only where the peer's coalescing would
# merge its frames back: Documentation/netgpu-sim.rst). The same per-frame
# work on veth: TSO off (the stack segments), GRO on (as a NIC's NAPI does).
$A ethtool -K vea tso off >/dev/null
$B ethtool -K veb gro on >/dev/null
run veth-1500 2 2001:db8:1::2 $B netgpu_traffic recv tcp 2001:db8:1::2 5301 "$BYTES" --no-verify
hds off
run hds-off 3 2001:db8::2 $B netgpu_traffic recv tcp 2001:db8::2 5301 "$BYTES" --no-verify
hds on
run hds-host 3 2001:db8::2 $B netgpu_traffic recv tcp 2001:db8::2 5301 "$BYTES" --no-verify
$A ethtool -K ngs0 tso off >/dev/null
run hds-no-tso 3 2001:db8::2 $B netgpu_traffic recv tcp 2001:db8::2 5301 "$BYTES" --no-verify
$A ethtool -K ngs0 tso on >/dev/null 2>&1
$A ip link set ngs0 mtu 9000
$B ip link set ngs1 mtu 9000
run hds-9000 3 2001:db8::2 $B netgpu_traffic recv tcp 2001:db8::2 5301 "$BYTES" --no-verify
$A ip link set ngs0 mtu 1500
$B ip link set ngs1 mtu 1500
hds_thresh0
# ncdevmem prints a line per received fragment: its own output is part of its cost.
run devmem 2 2001:db8::2 $B "$NCDEVMEM" -l -f ngs1 -s 2001:db8::2 -c 2001:db8::1 -p 5301
$B ethtool -S ngs1 | grep -E "rx[0-9]_(hds_bytes|unreadable_packets|ring_full|alloc_fail)" | grep -v ": 0$"

# capacity MTU: the sim's receive path alone (see the top), at MTU, in
# NETGPU_BENCH_ROUNDS rounds (5). The VM's speed under TCG drifts between
# boots and within one (memcpy has read 558 and 896 MB/s on the same
# kernel), so each round measures memcpy right before its flood and takes
# the ratio to that; the summary line is the median of the rounds' ratios.
capacity() {
	local mtu=$1 dgram=$(($1 - 48)) h0 h1 r0 r1 f0 f1 v0 v1 e0 e1 el m r
	$A ip link set ngs0 mtu "$mtu"
	$B ip link set ngs1 mtu "$mtu"
	sleep 1
	pin_napi 1 0 1
	for r in $(seq "${NETGPU_BENCH_ROUNDS:-5}"); do
		m=$(taskset -c 1 netgpu_traffic memcpy 268435456 4096 | sed -n 's/.*: \([0-9.]*\) MB\/s/\1/p')
		r0=$($B cat /sys/class/net/ngs1/statistics/rx_bytes)
		f0=$(rx_total ngsb ngs1 ring_full_drops)
		v0=$(rx_total ngsb ngs1 driver_ns)
		e0=$(rx_total ngsb ngs1 engine_ns)
		h0=$(vcpu_ns 1)
		/usr/bin/time -f "%e" -o "$t/tx" taskset -c 0 $A netgpu_traffic send udp \
			2001:db8::99 9 "$((2 * BYTES))" "$dgram" --flood >/dev/null
		h1=$(vcpu_ns 1)
		r1=$($B cat /sys/class/net/ngs1/statistics/rx_bytes)
		f1=$(rx_total ngsb ngs1 ring_full_drops)
		v1=$(rx_total ngsb ngs1 driver_ns)
		e1=$(rx_total ngsb ngs1 engine_ns)
		read -r el <"$t/tx"
		if [ -z "$h0" ] || [ -z "$h1" ]; then
			echo "capacity-$mtu: no host answers vCPU clock requests, not measured"
			return
		fi
		awk -v l="capacity-$mtu" -v b="$((r1 - r0))" -v ns="$((h1 - h0))" -v el="$el" \
			-v full="$((f1 - f0))" -v m="$m" -v drv="$((v1 - v0))" -v eng="$((e1 - e0))" \
			-v out="$t/ratios" 'BEGIN {
			cap = b / (ns / 1e9) / 1e6
			dev = drv + eng > 0 ? b / ((drv + eng) / 1e9) / 1e6 : 0
			printf "%-13s %7.1f MB/s per CPU second of vCPU 1 (received %.0f MB at %.1f MB/s, %d frames dropped on a full ring)  memcpy %.1f MB/s  ratio %.2f;  device alone %.1f MB/s per CPU second, ratio %.2f\n",
				l, cap, b / 1e6, b / el / 1e6, full, m, cap / m, dev, dev / m
			printf "%.4f %.4f\n", cap / m, dev / m >>out
		}'
	done
	awk -v mtu="$mtu" '{ r[NR] = $1; d[NR] = $2 }
		function median(a, n,   i, j, x) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		END {
			for (i = 1; i <= NR; i++) l = l sprintf(" %.2f", r[i])
			printf "capacity-%s  median of %d rounds: ratio %.2f, device alone %.2f  (ratios:%s)\n",
				mtu, NR, median(r, NR), median(d, NR), l
		}' "$t/ratios"
	rm -f "$t/ratios"
}
hds on
hds_thresh0
$A sh -c 'echo 1 >/sys/class/net/ngs0/threaded'
$B sh -c 'echo 1 >/sys/class/net/ngs1/threaded'
taskset -pc 0 $$ >/dev/null
$A ip -6 neigh replace 2001:db8::99 lladdr 02:00:00:00:00:99 dev ngs0 nud permanent
capacity 9000
capacity 1500
rm -rf "$t"
