#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# "make bench": build what is needed, boot the benchmark kernel (the test
# kernel without debug options, tools/kernel/bench.config) in the VM and run
# the benchmarks there (tools/bench/sim.sh); print their report.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/out/bench
rm -rf "$out"
mkdir -p "$out"
kdir=$(NETGPU_KERNEL=bench "$root/tools/vm/prepare.sh")
"$root/tools/vm/run.sh" "$kdir" "$out" bench >/dev/null 2>&1 || true
if [ -f "$out/done" ] && [ -s "$out/bench.txt" ]; then
	cat "$out/bench.txt"
else
	cat "$out/console.log" >&2
	echo "bench: the VM did not finish" >&2
	exit 1
fi
