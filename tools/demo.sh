#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# "make demo": build what is needed, boot the test VM, load netgpu, show
# /dev/netgpu and the info ioctl, unload; then move TCP payload into a
# udmabuf on netgpu-sim with devmem TCP (the kernel's ncdevmem validates
# every byte), until netgpu's own receive path takes that part.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/out/demo
rm -rf "$out"
mkdir -p "$out"
kdir=$("$root/tools/vm/prepare.sh")
"$root/tools/vm/run.sh" "$kdir" "$out" demo >/dev/null 2>&1 || true
if [ -f "$out/done" ]; then
	sed -n '/^+ uname/,/^demo: ok/p' "$out/console.log" | tr -d '\r'
	echo "demo: netgpu answered GET_INFO; netgpu-sim delivered TCP payload into a udmabuf, validated"
else
	cat "$out/console.log" >&2
	echo "demo: the VM did not finish" >&2
	exit 1
fi
