#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# "make demo": build what is needed, boot the test VM, load netgpu and
# netgpu-sim, and receive a TCP stream into a udmabuf through netgpu with
# the sample receiver (samples/netgpu_recv.rs), which checks every byte.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/out/demo
rm -rf "$out"
mkdir -p "$out"
kdir=$("$root/tools/vm/prepare.sh")
"$root/tools/vm/run.sh" "$kdir" "$out" demo >/dev/null 2>&1 || true
if [ -f "$out/done" ]; then
	sed -n '/^+ uname/,/^demo: ok/p' "$out/console.log" | tr -d '\r'
else
	cat "$out/console.log" >&2
	echo "demo: the VM did not finish" >&2
	exit 1
fi
