#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: netgpu receive into PCI BAR memory, peer to peer. The VM runner
# (tools/vm/run.sh) puts two functions behind one PCIe switch: an ivshmem
# function whose BAR 2 is memory, exported as a DMA-buf by vfio-pci (device
# memory that only maps peer to peer, like a GPU's BAR), and a pci-testdev
# function that netgpu-sim sits on (ip link ... type netgpu-sim dma-dev).
# netgpu binds queue 3 of ngs1 to the BAR DMA-buf, the mapping is peer to
# peer (bus addresses, through the switch), and the sim's DMA engine writes
# payloads into the BAR; netgpu_recv checks every byte through the vfio
# mapping of the BAR. Then vfio-pci revokes the DMA-buf mid-stream. A third
# function behind the switch, an NVMe controller, publishes its controller
# memory buffer as PCI P2PDMA memory (p2pmem); netgpu pins it from the
# provider's sysfs mapping (NETGPU_IOC_IMPORT_P2PMEM) and receives into it
# the same way. Needs netgpu.ko loaded, vfio-pci, and what sim_lib.sh lists.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/sim_lib.sh"
[ -c /dev/netgpu ] || skip_all "no /dev/netgpu: netgpu.ko not loaded"
command -v netgpu_recv >/dev/null || skip_all "netgpu_recv is not on PATH"
[ -d /sys/bus/pci/drivers/vfio-pci ] || skip_all "no vfio-pci driver"

# pci_function VENDOR DEVICE: the first PCI function with these ids
pci_function() {
	local d
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" = "0x$1" ] && [ "$(cat "$d/device")" = "0x$2" ]; then
			basename "$d"
			return 0
		fi
	done
	return 1
}
bar=$(pci_function 1af4 1110) || skip_all "no ivshmem PCI function (tools/vm/run.sh adds one)"
fn=$(pci_function 1b36 0005) || skip_all "no pci-testdev PCI function (tools/vm/run.sh adds one)"
nvme=$(pci_function 1b36 0010) || skip_all "no NVMe PCI function (tools/vm/run.sh adds one)"
[ "$(cat /sys/bus/pci/devices/"$nvme"/p2pmem/published 2>/dev/null)" = 1 ] ||
	skip_all "$nvme publishes no p2pmem (CONFIG_PCI_P2PDMA, NVMe CMB)"
log=$(mktemp -d)

echo "TAP version 13"
echo "1..14"

insmod "$KO"
echo netgpu_sim >/sys/bus/pci/devices/"$fn"/driver_override
echo "$fn" >/sys/bus/pci/drivers_probe
drv=$(basename "$(readlink /sys/bus/pci/devices/"$fn"/driver)")
if [ "$drv" = netgpu_sim ]; then
	ok sim_bound_to_pci_function
else
	nok sim_bound_to_pci_function "$fn is bound to '$drv', not netgpu_sim"
fi

# A pair names its function; one not bound to netgpu_sim is refused, with
# the reason in the extended ack.
out=$(IP_LIB_DIR=$IPLIB ip link add ngx type netgpu-sim dma-dev "$bar" peer name ngy 2>&1)
if [ $? -ne 0 ] && [[ $out == *"not a PCI function bound to netgpu_sim"* ]] &&
	! ip link show ngx >/dev/null 2>&1; then
	ok dma_dev_not_ours_refused
else
	nok dma_dev_not_ours_refused "ip link add with dma-dev $bar: $out"
	ip link del ngx 2>/dev/null
fi
# The exact errnos behind such refusals (ip prints only the message): EBUSY
# for a function of another driver, ENODEV for none, EINVAL for a name longer
# than the attribute's policy allows.
subtests "" netgpu_ioctl --sim ngs1 newlink_dma_dev_errnos

if pair_up numrxqueues 4 numtxqueues 4 --- dma-dev "$fn" && $B ethtool -K ngs1 ntuple on &&
	[ "$(basename "$($B readlink -f /sys/class/net/ngs1/device)")" = "$fn" ]; then
	ok pair_on_pci_function
else
	nok pair_on_pci_function "$($B ip -d link show ngs1 2>&1); device $($B readlink -f /sys/class/net/ngs1/device)"
fi
hds on
sleep 1

# Payload into the BAR, verified through the vfio mapping: 8 MiB through a
# 4 MiB region, so buffers come back through the refill ring.
# zero_copy_into NAME MEM PORT: test NAME, netgpu_recv --mem MEM on PORT
zero_copy_into() {
	local rpid rc
	$B netgpu_recv ngs1 3 2001:db8::2 "$3" --bytes $((8 << 20)) --size $((4 << 20)) \
		--mem "$2" --expect zc >"$log/recv" 2>&1 &
	rpid=$!
	sleep 1
	$A netgpu_send 2001:db8::2 "$3" $((8 << 20)) >"$log/send" 2>&1
	wait $rpid
	rc=$?
	if [ $rc -eq 0 ] && grep -q "verified" "$log/recv"; then
		ok "$1"
	else
		nok "$1" "netgpu_recv exit $rc: $(cat "$log/recv" "$log/send")"
	fi
}
zero_copy_into zero_copy_into_pci_bar vfio:"$bar" 5380

# The same into the NVMe CMB, as P2PDMA memory pinned from its p2pmem
# mapping and checked through it; its pages are free again afterwards.
avail=$(cat /sys/bus/pci/devices/"$nvme"/p2pmem/available)
zero_copy_into zero_copy_into_p2pmem p2pmem:"$nvme" 5383
now=
for _ in $(seq 50); do
	now=$(cat /sys/bus/pci/devices/"$nvme"/p2pmem/available)
	[ "$now" = "$avail" ] && break
	sleep 0.1
done
if [ "$now" = "$avail" ]; then
	ok p2pmem_unpinned_after_close
else
	nok p2pmem_unpinned_after_close "p2pmem available $now after the receiver exited, $avail before"
fi

# devmem TCP cannot import such memory: vfio-pci refuses its attachment.
subtests "" $B netgpu_ioctl --sim ngs1 devmem_refuses_bar

# Revocation: every flow to queue 3, netgpu_ioctl receives 1 MiB into the
# BAR, then turns the BAR's memory decoding off (see its test).
$B ethtool -X ngs1 weight 0 0 0 1
subtests "" $B netgpu_ioctl --sim ngs1 p2p_revoked_mid_stream

# Hot unplug of P2PDMA memory: the NVMe driver unbinds mid-stream and must
# not wait for netgpu (see its test).
subtests "" $B netgpu_ioctl --sim ngs1 p2pmem_provider_unbound_mid_stream

# The queue serves host memory again.
check queue_works_after_revocation xfer tcp 2001:db8::2 5381 4000000

if refs_released; then
	ok refs_released_after_revocation
else
	nok refs_released_after_revocation "netgpu refcnt $(cat /sys/module/netgpu/refcnt) 30 s after the contexts closed"
fi

unload rmmod_sim_with_pci_pair
if [ ! -e /sys/bus/pci/devices/"$fn"/driver ]; then
	ok pci_function_released
else
	nok pci_function_released "$fn still bound to $(readlink /sys/bus/pci/devices/"$fn"/driver)"
fi
echo >/sys/bus/pci/devices/"$fn"/driver_override
exit $((fails > 0))
