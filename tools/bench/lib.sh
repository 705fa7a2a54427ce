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
# pin_napi RX TX: ngs1's NAPI threads (the receiving host's) on CPU RX,
# ngs0's on CPU TX. Run before each measurement: a queue restart (binding
# a queue, an MTU change) starts new threads.
pin_napi() {
	local p
	for p in $(pgrep '^napi/ngs1-'); do taskset -pc "$1" "$p" >/dev/null; done
	for p in $(pgrep '^napi/ngs0-'); do taskset -pc "$2" "$p" >/dev/null; done
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
