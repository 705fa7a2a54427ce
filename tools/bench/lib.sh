#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared by the benchmarks (sourced after sim_lib.sh): one timed transfer.
# Needs BYTES, and $A (the sender's namespace) from sim_lib.sh.

hz=$(getconf CLK_TCK)
softirq() { awk '/^cpu / { print $8 }' /proc/stat; }
# cpu_busy N: the ticks CPU N spent busy so far (user, nice, system, irq,
# softirq, steal)
cpu_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
t=$(mktemp -d)

# timed LABEL PORT DST SRC RECEIVER...: start RECEIVER (output in
# $t/LABEL.out), send BYTES of the test stream from SRC to DST PORT, wait for
# the receiver. Sets rc (the receiver's exit status), el (the sender's
# elapsed seconds), ru/rs (the receiver's user/system seconds) and si (the
# softirq ticks the whole VM spent meanwhile, where NAPI runs). With RX_CPU
# and TX_CPU set, the receiver runs on CPU RX_CPU and the sender on TX_CPU,
# and rb is set to the ticks CPU RX_CPU spent busy meanwhile.
timed() {
	local label=$1 port=$2 dst=$3 src=$4 s0 s1 b0=0 rx pin_rx=() pin_tx=()
	shift 4
	if [ -n "${RX_CPU:-}" ]; then
		pin_rx=(taskset -c "$RX_CPU")
		pin_tx=(taskset -c "$TX_CPU")
		b0=$(cpu_busy "$RX_CPU")
	fi
	s0=$(softirq)
	/usr/bin/time -f "%e %U %S" -o "$t/rx" "${pin_rx[@]}" "$@" >"$t/$label.out" 2>&1 &
	rx=$!
	sleep 1.5
	/usr/bin/time -f "%e %U %S" -o "$t/tx" "${pin_tx[@]}" $A netgpu_traffic send tcp \
		"$dst" "$port" "$BYTES" --from "[$src]:$port" >/dev/null 2>&1
	wait $rx
	rc=$?
	s1=$(softirq)
	si=$((s1 - s0))
	if [ -n "${RX_CPU:-}" ]; then
		rb=$(($(cpu_busy "$RX_CPU") - b0))
	fi
	read -r el _ _ <"$t/tx"
	read -r _ ru rs <"$t/rx"
}
