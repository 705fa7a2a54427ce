#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared by the benchmarks (sourced after sim_lib.sh): one timed transfer.
# Needs BYTES, and $A (the sender's namespace) from sim_lib.sh.

hz=$(getconf CLK_TCK)
softirq() { awk '/^cpu / { print $8 }' /proc/stat; }
# cpu_busy N: the ticks CPU N spent busy so far: the time since boot less
# its idle and iowait time. The kernel measures idle time exactly (NO_HZ),
# where the busy fields of /proc/stat are sampled at ticks, which a TCG
# guest misses under load.
cpu_busy() {
	awk -v c="cpu$1" -v hz="$hz" 'FILENAME == "/proc/uptime" { up = $1 * hz }
		FILENAME == "/proc/stat" && $1 == c { printf "%.0f\n", up - $5 - $6 }' /proc/uptime /proc/stat
}
# vcpu_ns N: the CPU time, in nanoseconds, the host has given vCPU N's
# thread so far, or nothing when no host answers. Everything the guest ran
# on CPU N is in it (tasks, interrupts, idle wake-ups) and nothing else;
# the host's count does not depend on the guest's accounting. The host
# (tools/vm/run.sh, bench mode) answers a request file in NETGPU_VCPU_CLOCK.
vcpu_req=0
vcpu_ns() {
	local f
	[ -n "${NETGPU_VCPU_CLOCK:-}" ] || return 0
	vcpu_req=$((vcpu_req + 1))
	f=$NETGPU_VCPU_CLOCK/vcpu-$$-$vcpu_req
	touch "$f.req"
	for _ in $(seq 400); do
		[ -f "$f.ack" ] && break
		sleep 0.01
	done
	awk -v c="CPU $1/" 'index($0, c) == 1 { print $NF }' "$f.ack" 2>/dev/null
	rm -f "$f.ack"
}
# ngs1_napis: "PID KIND" for each of ngs1's NAPI threads (threaded NAPI),
# KIND "rx" for an RX queue's instance (the driver's poll), "tx" for the TX
# queues' (the driver's TX completion, sim/txc.rs) and "engine" for the
# instances that serve no queue (the sim's NIC engines, sim/rxq.rs), by
# netdev netlink: a thread's name keeps the ID its instance had when it was
# created, which an engine's changes at each queue restart
ngs1_napis() {
	local ifindex
	ifindex=$($B cat /sys/class/net/ngs1/ifindex)
	# shellcheck disable=SC2046
	{
		$B $YNL $(ynl_spec netdev) --dump queue-get --json "{\"ifindex\": $ifindex}" --output-json
		echo
		$B $YNL $(ynl_spec netdev) --dump napi-get --json "{\"ifindex\": $ifindex}" --output-json
	} 2>/dev/null | python3 -c '
import json, sys
replies = [json.loads(line) for line in sys.stdin if line.strip()]
if len(replies) == 2:
    kind = {q["napi-id"]: q["type"] for q in replies[0] if "napi-id" in q}
    for n in replies[1]:
        if "pid" in n:
            print(n["pid"], kind.get(n["id"], "engine"))
'
}
# pin_napi RX TX [ENGINE]: ngs1's RX and TX queue NAPI threads (the
# receiving host's driver and stack) on CPU RX; ngs1's engine threads (its NIC, which
# costs a host nothing) on CPU ENGINE, by default TX; all of ngs0's (the
# sending host's) on CPU TX. Run before each measurement: a queue restart
# (binding a queue, an MTU change) starts new threads.
pin_napi() {
	local p kind
	while read -r p kind; do
		[ -n "$p" ] || continue
		if [ "$kind" != engine ]; then
			taskset -pc "$1" "$p" >/dev/null
		else
			taskset -pc "${3:-$2}" "$p" >/dev/null
		fi
	done <<<"$(ngs1_napis)"
	for p in $(pgrep '^napi/ngs0-'); do taskset -pc "$2" "$p" >/dev/null; done
}
# housekeeping_on CPU: the VM's housekeeping, unbound workqueues and every
# kernel thread allowed on all CPUs (RCU's grace-period thread, kcompactd,
# ...), runs on CPU from now on. It serves the whole VM, the benchmark's
# own process churn first (each exiting process queues RCU callbacks), and
# the scheduler wakes it on whichever CPU is idle: that is the receiver's
# CPU whenever a receive path leaves it idle, and its time was charged to
# that path. Measured under TCG, with it on CPU 1 an idle CPU 1 cost the
# host 17 to 41 ms per second and the RCU thread alone ran 4 to 6 s per GB
# received; with it on CPU 0, 2 ms per second. Per-CPU threads (ksoftirqd,
# per-CPU workers) stay where they are: they do that CPU's own work.
# The VM's device interrupts go to CPU too. The benchmarks' own commands
# during a measurement (each exec reads the 9p root file system) took
# about 90 virtio interrupts per MB of a 128 MiB stream, on whichever CPU
# the vector landed on at boot: on CPU 1, in one boot, they cost the copy
# baseline 30 s/GB against 21 and netgpu 26 against 11 with them on CPU 0.
# Interrupts the kernel manages (an NVMe queue per CPU) keep their CPU.
housekeeping_on() {
	# taskset lists all CPUs as "0-N", or "0,1" when there are two
	local p i all="0-$(($(nproc) - 1))"
	printf '%x\n' $((1 << $1)) >/sys/devices/virtual/workqueue/cpumask || return 1
	for p in $(ps -eo pid=,ppid= | awk '$1 == 2 || $2 == 2 { print $1 }'); do
		case "$(taskset -pc "$p" 2>/dev/null)" in
		*": $all" | *": 0,1") taskset -pc "$1" "$p" >/dev/null 2>&1 ;;
		esac
	done
	for i in /proc/irq/*/smp_affinity_list; do
		echo "$1" 2>/dev/null >"$i"
	done
	return 0
}
# cpu_irqs N: the interrupts CPU N took so far, of every kind
cpu_irqs() {
	awk -v c=$(($1 + 2)) 'NR > 1 && $c ~ /^[0-9]+$/ { s += $c } END { printf "%.0f\n", s }' /proc/interrupts
}
# napi_ns: "RX ENGINE PIDS", the nanoseconds ngs1's queue (RX and TX) and
# engine NAPI threads ran so far, from one listing of the threads, and
# their PIDs: a queue restart in between (ncdevmem's teardown) replaces
# the threads, and their difference then means nothing
napi_ns() {
	local p kind
	while read -r p kind; do
		[ -n "$p" ] && echo "$kind $(awk '{ print $1 }' "/proc/$p/schedstat" 2>/dev/null) $p"
	done <<<"$(ngs1_napis)" | sort -k3n | awk '{ t[$1] += $2; pids = pids "," $3 }
		END { printf "%.0f %.0f %s\n", t["rx"] + t["tx"], t["engine"], (pids == "" ? "-" : pids) }'
}
t=$(mktemp -d)

# timed LABEL PORT DST SRC RECEIVER...: start RECEIVER (output in
# $t/LABEL.out), send BYTES of the test stream from SRC to DST PORT, wait for
# the receiver. Sets rc (the receiver's exit status), el (the sender's
# elapsed seconds), ru/rs (the receiver's user/system seconds) and si (the
# softirq ticks the whole VM spent meanwhile, where NAPI runs).
timed() {
	local label=$1 port=$2 dst=$3 src=$4 s0 s1 rx
	shift 4
	s0=$(softirq)
	/usr/bin/time -f "%e %U %S" -o "$t/rx" "$@" >"$t/$label.out" 2>&1 &
	rx=$!
	sleep 1.5
	/usr/bin/time -f "%e %U %S" -o "$t/tx" $A netgpu_traffic send tcp \
		"$dst" "$port" "$BYTES" --from "[$src]:$port" >/dev/null 2>&1
	wait $rx
	rc=$?
	s1=$(softirq)
	si=$((s1 - s0))
	read -r el _ _ <"$t/tx"
	read -r _ ru rs <"$t/rx"
}
