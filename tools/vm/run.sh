#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the test kernel in a virtme-ng guest and run tools/vm/guest.sh there.
# Usage: run.sh KDIR OUT MODE
# The guest has no network device; OUT is shared read-write. Behind one
# PCIe switch it has an ivshmem function, whose 16 MiB BAR 2 is memory the
# tests export as a DMA-buf through vfio-pci, a pci-testdev function a
# netgpu-sim pair sits on, and an NVMe controller whose 16 MiB controller
# memory buffer its driver publishes as PCI P2PDMA memory (p2pmem); all
# three reach each other peer to peer.
# KVM is used only where a probe boot showed it works on this machine;
# otherwise TCG. On the build machine this project grew on, /dev/kvm is
# kvm-pvm (no VMX or SVM among the CPU flags; dmesg: "kvm-pvm: loaded"),
# a KVM without hardware virtualization that runs only kernels built as
# PVM guests, which upstream 7.3 has no support for: a guest hangs at
# "Decompressing Linux", and the probe picks TCG.
set -u
kdir=$1
out=$2
mode=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/env.sh
. "$root/tools/env.sh"
image=$kdir/arch/x86/boot/bzImage
[ -f "$image" ] || { echo "vm: no kernel image at $image" >&2; exit 1; }

# Tests run with kmemleak on; benchmarks boot a kernel built without it.
params="panic_on_warn=0 kmemleak=on"
[ "$mode" = bench ] && params="panic_on_warn=0"

# Test runs keep the kernel's console in console.log, for oopses that end
# the guest before it can save dmesg.
verbose=
[ "$mode" = check ] && verbose=--verbose

# NETGPU_QEMU_OPTS adds QEMU options, e.g. "-cpu max,erms=off" to measure
# the benchmarks on a CPU model whose copies do not use "rep movsb" (which
# TCG runs one translated block per byte; see Documentation/netgpu.rst).
# Named threads ("CPU 1/TCG"): the benchmarks read a vCPU's CPU time here.
pci="-name debug-threads=on"
pci+=" -device pcie-root-port,id=ngrp,bus=pcie.0,chassis=10"
pci+=" -device x3130-upstream,id=ngup,bus=ngrp"
pci+=" -device xio3130-downstream,id=ngdn0,bus=ngup,chassis=11,slot=0"
pci+=" -device xio3130-downstream,id=ngdn1,bus=ngup,chassis=12,slot=1"
pci+=" -device xio3130-downstream,id=ngdn2,bus=ngup,chassis=13,slot=2"
pci+=" -object memory-backend-ram,id=ngbar,size=16M"
pci+=" -device ivshmem-plain,memdev=ngbar,bus=ngdn0"
pci+=" -device pci-testdev,bus=ngdn1"
pci+=" -device nvme,serial=netgpu0,cmb_size_mb=16,bus=ngdn2"

boot() { # boot ACCEL_ARGS TIMEOUT CMD
	local accel=$1 limit=$2 cmd=$3
	# shellcheck disable=SC2086
	timeout --foreground -k 10 "$limit" vng --run "$image" $accel \
		--cpus 2 --memory 2G --rwdir "$out" --cwd "$root" \
		--append "$params" $verbose --exec "$cmd" \
		--qemu-opts="$pci ${NETGPU_QEMU_OPTS:-}" \
		</dev/null
}

accel=--disable-kvm
probe=$NETGPU_CACHE/kvm-probe-$(sha256sum "$image" | cut -c1-16)
if [ -z "${NETGPU_NO_KVM:-}" ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	if ! [ -f "$probe" ]; then
		echo "vm: probing KVM (one boot, at most 60 s)" >&2
		rm -f "$out/kvm-ok"
		boot "" 60 "touch $out/kvm-ok" >/dev/null 2>&1
		if [ -f "$out/kvm-ok" ]; then echo kvm >"$probe"; else echo tcg >"$probe"; fi
		rm -f "$out/kvm-ok"
	fi
	[ "$(cat "$probe")" = kvm ] && accel=
fi
label=KVM
[ -n "$accel" ] && label=TCG
echo "vm: booting $(basename "$kdir") with $label" >&2
rm -f "$out/done" "$out"/vcpu-*

# vcpu_clock: answers the benchmarks' requests for the host CPU time of the
# guest's vCPUs (see tools/bench/lib.sh): for OUT/vcpu-N.req it writes
# OUT/vcpu-N.ack, a line "CPU k/ACCEL NS" a vCPU thread. The host's count is
# exact and has no part in the guest's own accounting.
vcpu_clock() {
	local req q t
	while sleep 0.02; do
		for req in "$out"/vcpu-*.req; do
			[ -e "$req" ] || continue
			# this guest's QEMU: the one sharing OUT
			q=$(pgrep -n -f "qemu-system.*$out")
			for t in /proc/"$q"/task/*; do
				case "$(cat "$t/comm" 2>/dev/null)" in
				"CPU "*) echo "$(cat "$t/comm") $(awk '{ print $1 }' "$t/schedstat")" ;;
				esac
			done >"${req%.req}.tmp"
			mv "${req%.req}.tmp" "${req%.req}.ack"
			rm -f "$req"
		done
	done
}
clock=
if [ "$mode" = bench ]; then
	vcpu_clock &
	clock=$!
fi
boot "$accel" 1800 "$root/tools/vm/guest.sh $mode $out $kdir" 2>&1 | tee "$out/console.log"
if [ -n "$clock" ]; then kill "$clock"; fi
[ -f "$out/done" ] || { echo "vm: the guest did not finish (see $out/console.log)" >&2; exit 1; }
