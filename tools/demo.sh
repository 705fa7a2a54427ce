#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# "make demo": build what is needed, boot the test VM, load netgpu, show
# /dev/netgpu and the info ioctl, unload.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/out/demo
rm -rf "$out"
mkdir -p "$out"
kdir=$("$root/tools/kernel/build.sh")
make -s -C "$kdir" M="$root" modules
cargo build --quiet --release --manifest-path "$root/tools/Cargo.toml"
"$root/tools/vm/run.sh" "$kdir" "$out" demo >/dev/null 2>&1 || true
if [ -f "$out/done" ]; then
	sed -n '/^+ uname/,/^demo: ok/p' "$out/console.log" | tr -d '\r'
	echo "demo: netgpu loaded, answered GET_INFO and unloaded in the VM"
else
	cat "$out/console.log" >&2
	echo "demo: the VM did not finish" >&2
	exit 1
fi
