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
#   netgpu-lowat
#            netgpu with SO_RCVLOWAT 256 KiB on the connection: TCP wakes
#            the receiver once that much is queued, not for every skb (the
#            copy baseline gains nothing from it: it is busy copying when
#            data comes, and measured with it no cheaper)
# at MTU 1500, then all but devmem again at MTU 9000 (-9000 rows).
# None verifies the payload (the tests do). Under TCG one transfer's CPU per
# GB varies by a third from one run to the next, so copy and the netgpu rows
# run NETGPU_BENCH_ROUNDS times (5), alternating, and the ratios are of the
# medians; devmem TCP, ten times slower, runs once.
#
# The two vCPUs play two hosts: the receiver, and the NAPI threads of ngs1's
# RX queues (threaded NAPI) that run the receiving side's driver and stack,
# are pinned to CPU 1; the sender and ngs0's NAPI threads to CPU 0. The
# sim's NIC engines (sim/rxq.rs: the emulated hardware that writes frames
# into the posted buffers, DMA included, and coalesces them) run in NAPI
# threads of their own, which play the NICs and go to CPU 0 as well: a
# hardware NIC costs the receiving host nothing. So does the VM's
# housekeeping (unbound workqueues, RCU's grace-period thread, the VM's
# device interrupts: lib.sh housekeeping_on), which otherwise runs on
# whichever CPU is idle or its interrupt vector landed on at boot, and was
# charged to the receive path that left CPU 1 idle. Receiver CPU, per GB, is
# what CPU 1 spent while the stream was received (see run), as the host
# counts it: the CPU time of vCPU 1's thread (vcpu_ns in lib.sh). That
# holds all the receiving host did (process, NAPI, interrupts, wake-ups)
# and nothing of the host's other threads. Two guest-side views are shown
# next to it: the run time of the receiving process plus ngs1's RX NAPI
# threads (sum_exec_runtime, /proc/PID/schedstat), and CPU 1's time not
# idle by /proc/stat. The run times agree with the host within a tenth; the
# guest's idle time does not (for netgpu, whose CPU 1 is idle most of the
# time, it counted half of the busy time as idle, and in some rows more
# idle time than had passed: then busy says n/a). Without a host to ask,
# the larger guest view is used. The interrupts CPU 1 took per MB (all
# kinds, /proc/interrupts) show a wake-up or device storm that a row's
# cost would otherwise hide. "driver" is the part of NAPI spent in the
# sim's poll outside the stack's calls (rxN_driver_ns): building skbs from
# completions and posting buffers. Each row also shows what ngs1's engine
# threads ran on CPU 0 per GB ("NIC"), and of that the DMA writes
# (rxN_dma_ns). Throughput is BYTES over the sender's elapsed time. CPU 0,
# which runs the sender, its stack and the NICs, bounds every receiver's
# throughput, so a second line per row shows what CPU 0 cost the host per
# GB while the sender ran, how busy it was, the sender process's own part,
# and the segments the receiving side sent per MB (ACKs and window
# updates: each makes the sender's stack run). Prints the ratios
# netgpu/devmem and netgpu/copy.
# Needs what sim_lib.sh needs, NETGPU_NCDEVMEM, netgpu.ko loaded,
# netgpu_recv on PATH and two vCPUs.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/../testing/selftests/netgpu/sim_lib.sh" >/dev/null
BYTES=${NETGPU_BENCH_BYTES:-268435456}
ROUNDS=${NETGPU_BENCH_ROUNDS:-5}
NCDEVMEM=${NETGPU_NCDEVMEM:-}
# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"
RX_CPU=1
TX_CPU=0

if [ "$(nproc)" -lt 2 ]; then
	echo "netgpu benchmark: needs two vCPUs, has $(nproc)"
	exit 1
fi
# This script's own polling runs on the sender's host, and so does the VM's
# housekeeping.
taskset -pc "$TX_CPU" $$ >/dev/null
housekeeping_on "$TX_CPU"
insmod "$KO"
pair_up
$B ethtool -K ngs1 ntuple on
$A sh -c 'echo 1 >/sys/class/net/ngs0/threaded'
$B sh -c 'echo 1 >/sys/class/net/ngs1/threaded'
sleep 1

# proc_ns PID: nanoseconds process PID ran so far, or nothing if it is gone
proc_ns() { awk '{ print $1 }' "/proc/$1/schedstat" 2>/dev/null; }
# dma_ns: nanoseconds ngs1's emulated DMA engine spent so far
dma_ns() { rx_total ngsb ngs1 dma_ns; }
# drv_ns: nanoseconds ngs1's NAPI polls spent outside the stack's calls so far
# (the driver: skbs from completions, posting buffers)
drv_ns() { rx_total ngsb ngs1 driver_ns; }
# acks: TCP segments ngs1's namespace sent so far (the receiver's ACKs and
# window updates)
acks() { $B nstat -asz TcpOutSegs | awk '$1 == "TcpOutSegs" { print $2 }'; }
# frames: "WIRE_FRAMES SKBS" ngs1 received so far (a coalesced run is one skb)
frames() {
	$B ethtool -S ngs1 | awk '
		$1 ~ /^rx[0-9]+_packets:$/ { f += $2 }
		$1 ~ /^rx[0-9]+_hw_gro_wire_packets:$/ { w += $2 }
		$1 ~ /^rx[0-9]+_hw_gro_packets:$/ { p += $2 }
		END { printf "%.0f %.0f\n", f, f - w + p }'
}

# split_on: header/data split on with threshold 0 and RSS on queues 0-2,
# as netgpu needs (ncdevmem changes the device settings as it goes)
split_on() {
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec ethtool) --do rings-set \
		--json '{"header": {"dev-name": "ngs1"}, "tcp-data-split": "enabled", "hds-thresh": 0}' >/dev/null
	$B ethtool -X ngs1 equal 3
}

# ended FILE PID: the receiver said the streams ended (netgpu_recv), or
# process PID (its /usr/bin/time) is gone
ended() {
	grep -q "^netgpu_recv: all streams ended" "$1" ||
		! [ -e "/proc/$2" ] ||
		[ "$(awk '{ print $3 }' "/proc/$2/stat" 2>/dev/null)" = Z ]
}

# run LABEL PORT RECEIVER...: one transfer of BYTES to 2001:db8::2 PORT,
# each from the same device settings. The receiver starts on CPU RX_CPU;
# once it listens, the counters are read and the sender starts on CPU
# TX_CPU; once the receiver has the whole stream (netgpu_recv says so and,
# with --hold, waits; ncdevmem exits), they are read again. That window is
# the steady-state receive: setting up and tearing down the buffer is not
# a per-byte cost (creating a 32 MiB udmabuf takes a sizeable share of a
# 256 MiB receive here) and is left out for every receiver alike.
run() {
	local label=$1 port=$2 tpid rx b0 n0 e0 q0 d0 v0 p0 h0 f0 k0 b1 n1 e1 q1 d1 v1 p1 h1 f1 k1 el host=-1
	local c0 c1 w0 w1 a0 a1 i0 i1 su ss tx=-1 restarted=0
	shift 2
	split_on
	# netgpu_recv --hold waits for this pipe to close before its teardown
	rm -f "$t/hold"
	mkfifo "$t/hold"
	/usr/bin/time -f "%U %S" -o "$t/rx" taskset -c "$RX_CPU" "$@" \
		<"$t/hold" >"$t/$label.out" 2>&1 &
	tpid=$!
	exec 7>"$t/hold"
	for _ in $(seq 600); do
		$B ss -Hltn "sport = :$port" | grep -q . && break
		sleep 0.1
	done
	# taskset and ip netns exec exec the receiver: one process
	rx=$(pgrep -P "$tpid")
	# Binding a queue restarts it, with a new NAPI thread: pin them now.
	pin_napi "$RX_CPU" "$TX_CPU"
	i0=$(cpu_irqs "$RX_CPU")
	b0=$(cpu_busy "$RX_CPU") d0=$(dma_ns) v0=$(drv_ns) p0=$(proc_ns "$rx") h0=$(vcpu_ns "$RX_CPU")
	read -r n0 e0 q0 <<<"$(napi_ns)"
	read -r f0 k0 <<<"$(frames)"
	a0=$(acks) w0=$(date +%s%N) c0=$(vcpu_ns "$TX_CPU")
	/usr/bin/time -f "%e %U %S" -o "$t/tx" taskset -c "$TX_CPU" $A netgpu_traffic send tcp \
		2001:db8::2 "$port" "$BYTES" --from "[2001:db8::1]:$port" >/dev/null 2>&1
	c1=$(vcpu_ns "$TX_CPU") w1=$(date +%s%N) a1=$(acks)
	for _ in $(seq 2400); do
		ended "$t/$label.out" "$tpid" && break
		sleep 0.05
	done
	ended "$t/$label.out" "$tpid" || kill "$rx" 2>/dev/null
	h1=$(vcpu_ns "$RX_CPU")
	i1=$(cpu_irqs "$RX_CPU")
	b1=$(cpu_busy "$RX_CPU") d1=$(dma_ns) v1=$(drv_ns) p1=$(proc_ns "$rx")
	read -r n1 e1 q1 <<<"$(napi_ns)"
	# The queue restarted (new NAPI threads): their run times are unknown.
	[ "$q0" = "$q1" ] || restarted=1
	read -r f1 k1 <<<"$(frames)"
	exec 7>&-
	wait "$tpid"
	rc=$?
	# A receiver that exits at the end: its lifetime's CPU time
	[ -n "$p1" ] || p1=$(tail -n 1 "$t/rx" | awk '{ printf "%.0f\n", ($1 + $2) * 1e9 }')
	read -r el su ss <"$t/tx"
	if [ "$rc" -ne 0 ]; then
		echo "$label: receiver failed (exit $rc): $(tail -3 "$t/$label.out")"
		return
	fi
	[ -n "$h0" ] && [ -n "$h1" ] && host=$((h1 - h0))
	[ -n "$c0" ] && [ -n "$c1" ] && tx=$((c1 - c0))
	awk -v l="$label" -v b="$BYTES" -v el="$el" -v rp="$((p1 - p0))" \
		-v rb="$((b1 - b0))" -v napi="$((n1 - n0))" -v hz="$hz" \
		-v dma="$((d1 - d0))" -v drv="$((v1 - v0))" -v host="$host" -v eng="$((e1 - e0))" \
		-v fr="$((f1 - f0))" -v sk="$((k1 - k0))" -v tx="$tx" -v su="$su" -v ss="$ss" \
		-v acks="$((a1 - a0))" -v wall="$((w1 - w0))" -v irqs="$((i1 - i0))" -v restarted="$restarted" 'BEGIN {
		mbs = b / el / 1e6; gb = b / 1e9; d = dma / 1e9 / gb
		busy = rb / hz; threads = (rp + (restarted ? 0 : napi)) / 1e9
		ns = restarted ? "n/a (queue restarted)" : sprintf("%.2f", napi / 1e9 / gb)
		# TCG guests count idle time that ran ahead of the clock (see above)
		bs = busy >= 0 ? sprintf("%.2f", busy / gb) : "n/a (idle ran ahead)"
		es = restarted ? "n/a" : sprintf("%.2f", eng / 1e9 / gb)
		if (host >= 0) {
			cpu = host / 1e9 / gb; by = "host"
		} else {
			cpu = (busy > threads ? busy : threads) / gb; by = "guest"
		}
		printf "%-12s %7.3f Gbit/s  rx CPU %6.2f s/GB (%s)  [process %.2f + NAPI %s, of it driver %.2f; CPU %d busy %s, %.0f interrupts per MB; %.1f frames per skb; NIC %s s/GB on CPU %d, of it DMA %.2f]\n",
			l, mbs * 8 / 1000, cpu, by, rp / 1e9 / gb, ns, drv / 1e9 / gb, '"$RX_CPU"', bs, irqs / (b / 1e6), (sk > 0 ? fr / sk : 0), es, '"$TX_CPU"', d
		printf "%s %f %f\n", l, mbs, cpu >> "'"$t/rows"'"
		printf "%-12s   sending CPU %d: %s, of it the sender %.2f s/GB; the receiver sent %.1f segments per MB\n",
			"", '"$TX_CPU"', (tx >= 0 ? sprintf("%.2f s/GB (host), %.0f%% busy", tx / 1e9 / gb, 100 * tx / wall) : "(no host count)"),
			(su + ss) / gb, acks / (b / 1e6)
	}'
}

echo "netgpu benchmark: one TCP stream of $BYTES bytes over netgpu-sim, receiver on CPU $RX_CPU, sender on CPU $TX_CPU"
# What an idle CPU 1 costs the host (timer ticks, emulation): part of every
# row, in proportion to how long the stream takes.
h0=$(vcpu_ns "$RX_CPU")
sleep 5
h1=$(vcpu_ns "$RX_CPU")
if [ -n "$h0" ] && [ -n "$h1" ]; then
	echo "receiver CPU as the host counts it; idle, CPU $RX_CPU costs it $(((h1 - h0) / 5000000)) ms per second"
else
	echo "receiver CPU from the guest's accounting (no host answers vCPU clock requests)"
fi
# rounds MTU PORT: the copy and netgpu rows at MTU (netgpu with and without
# SO_RCVLOWAT), alternating, ROUNDS times, on ports from PORT up (each port
# once: the sender binds its port too)
rounds() {
	local r p sfx=
	[ "$1" = 1500 ] || sfx=-$1
	$A ip link set ngs0 mtu "$1"
	$B ip link set ngs1 mtu "$1"
	for r in $(seq "$ROUNDS"); do
		p=$(($2 + 3 * r))
		run "copy$sfx" "$p" $B netgpu_recv ngs1 3 2001:db8::2 "$p" --copy-baseline --no-verify --hold
		p=$((p + 1))
		run "netgpu$sfx" "$p" $B netgpu_recv ngs1 3 2001:db8::2 "$p" --no-verify --expect zc --hold
		p=$((p + 1))
		run "netgpu-lowat$sfx" "$p" $B netgpu_recv ngs1 3 2001:db8::2 "$p" --no-verify --expect zc --hold \
			--rcvlowat 262144
	done
	sed -n "s/^received/netgpu$sfx: received/p" "$t/netgpu$sfx.out"
}
rounds 1500 5300
# ncdevmem binds the last queue (3) and adds its own 5-tuple rule.
run devmem 5299 $B "$NCDEVMEM" -l -f ngs1 -s 2001:db8::2 -c 2001:db8::1 -p 5299
rounds 9000 5400
# ratio A B: netgpu row A against row B, by the medians of their rounds
ratio() {
	awk -v a="$1" -v b="$2" '
		function median(l, k,   n, i, j, v, x) {
			n = cnt[l]
			for (i = 1; i <= n; i++) v[i] = val[l, k, i]
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
			return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		{ n = ++cnt[$1]; val[$1, "mbs", n] = $2; val[$1, "cpu", n] = $3 }
		END {
			if (!(a in cnt) || !(b in cnt)) exit
			printf "%s/%-9s throughput %.2fx, rx CPU per GB %.2fx  [medians of %d and %d runs: %.2f and %.2f s/GB]\n",
				a, b, median(a, "mbs") / median(b, "mbs"), median(a, "cpu") / median(b, "cpu"),
				cnt[a], cnt[b], median(a, "cpu"), median(b, "cpu")
		}' "$t/rows"
}
ratio netgpu copy
ratio netgpu-lowat copy
ratio netgpu devmem
ratio netgpu-lowat devmem
ratio netgpu-9000 copy-9000
ratio netgpu-lowat-9000 copy-9000
rm -rf "$t"
