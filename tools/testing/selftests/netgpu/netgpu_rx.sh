#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: netgpu's zero-copy receive over netgpu-sim. The sample
# receiver (netgpu_recv) binds RX queue 3 of ngs1 to a DMA-buf through
# /dev/netgpu, steers the test flow there and checks every byte of the
# stream netgpu_send sends from the peer namespace, through the CPU mapping
# of the buffer. RSS keeps other flows on queues 0-2. Needs netgpu.ko loaded
# and, like the other sim tests, what sim_lib.sh lists, plus netgpu_recv and
# netgpu_send on PATH.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/sim_lib.sh"
[ -c /dev/netgpu ] || skip_all "no /dev/netgpu: netgpu.ko not loaded"
[ -c /dev/udmabuf ] || skip_all "no /dev/udmabuf"
command -v netgpu_recv >/dev/null || skip_all "netgpu_recv is not on PATH"
log=$(mktemp -d)
port=5300

echo "TAP version 13"
echo "1..35"

# wait_bound PID: wait until the netgpu context of process PID has bound a
# queue (at most 30 s)
wait_bound() {
	local i
	for i in $(seq 300); do
		grep -qs '^netgpu-binding:' /proc/"$1"/fdinfo/* && return 0
		sleep 0.1
	done
	return 1
}
# thresh N: set hds-thresh on ngs1 through ethtool netlink
thresh() {
	# shellcheck disable=SC2046
	$B $YNL $(ynl_spec ethtool) --do rings-set \
		--json "{\"header\": {\"dev-name\": \"ngs1\"}, \"hds-thresh\": $1}" >/dev/null
}

provider_pair
hds on
$B ethtool -X ngs1 equal 3

# BIND_QUEUE and UNBIND_QUEUE on a device with the queue API: the errnos
# and dmesg lines of every refusal (netgpu_ioctl checks them).
subtests ioctl_ $B netgpu_ioctl --sim ngs1
hds off
subtests ioctl_ $B netgpu_ioctl --sim ngs1 bind_hds_off_einval
hds on
thresh 64
subtests ioctl_ $B netgpu_ioctl --sim ngs1 bind_hds_thresh_einval
thresh 0
# netgpu_ioctl attached generic XDP, which turned rx-gro-hw off for good
# (dev_disable_gro_hw() clears it from the wanted features): turn it back
# on, so the streams below are coalesced and packed like on a NIC nobody
# ran XDP on.
$B ethtool -K ngs1 rx-gro-hw on

# start_stream NAME QUEUE BYTES RECV_ARGS...: netgpu_recv on QUEUE of ngs1
# and, once it listens, netgpu_send of BYTES from ngsa, both in the
# background (output in $log/NAME and $log/NAME.send); sets rpid and spid
start_stream() {
	local name=$1 queue=$2 bytes=$3
	shift 3
	port=$((port + 1))
	$B netgpu_recv ngs1 "$queue" 2001:db8::2 "$port" --bytes "$bytes" "$@" \
		>"$log/$name" 2>&1 &
	rpid=$!
	sleep 1
	$A netgpu_send 2001:db8::2 "$port" "$bytes" >"$log/$name.send" 2>&1 &
	spid=$!
}

# stream NAME BYTES RECV_ARGS...: netgpu_recv on queue 3 of ngs1 receives
# BYTES from netgpu_send in ngsa; both must succeed
stream() {
	local name=$1 bytes=$2 rpid rc out
	shift 2
	port=$((port + 1))
	$B netgpu_recv ngs1 3 2001:db8::2 "$port" --bytes "$bytes" "$@" \
		>"$log/$name.recv" 2>&1 &
	rpid=$!
	sleep 1
	if ! out=$($A netgpu_send 2001:db8::2 "$port" "$bytes" 2>&1); then
		kill "$rpid" 2>/dev/null
		wait "$rpid"
		nok "$name" "sender: $out; receiver: $(cat "$log/$name.recv")"
		return
	fi
	wait "$rpid"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$name"
		sed 's/^/# /' "$log/$name.recv"
	else
		nok "$name" "receiver exit $rc: $(cat "$log/$name.recv")"
	fi
}

stream zero_copy_1_byte 1 --expect zc
stream zero_copy_4KiB 4096 --expect zc
stream zero_copy_1MiB 1048576 --expect zc
stream zero_copy_64MiB 67108864 --expect zc
# netgpu-sim packs the payloads of a coalesced run back to back into its
# buffers (mlx5 SHAMPO style), so a completion covers several segments: on
# average more than 1500 bytes, which no single frame carries at MTU 1500.
# IRQ deferral (NAPI polls every 2 ms) makes sure frames wait in the ring to
# be coalesced, as they do under load.
$B sh -c 'echo 1000 >/sys/class/net/ngs1/napi_defer_hard_irqs; echo 2000000 >/sys/class/net/ngs1/gro_flush_timeout'
stream zero_copy_16MiB_packed 16777216 --expect zc
$B sh -c 'echo 0 >/sys/class/net/ngs1/napi_defer_hard_irqs; echo 0 >/sys/class/net/ngs1/gro_flush_timeout'
zc=$(sed -n 's/.* zc \([0-9]*\), copy .*/\1/p' "$log/zero_copy_16MiB_packed.recv")
comps=$(sed -n 's/.*completions \([0-9]*\),.*/\1/p' "$log/zero_copy_16MiB_packed.recv")
if [ -n "$zc" ] && [ -n "$comps" ] && [ "$comps" -gt 0 ] && [ $((zc / comps)) -gt 1500 ]; then
	echo "# $((zc / comps)) bytes per completion"
	ok completions_cover_packed_payloads
else
	nok completions_cover_packed_payloads "zc $zc completions $comps: $(cat "$log/zero_copy_16MiB_packed.recv")"
fi
# A stream far larger than the region: every buffer is reused many times
# through the refill ring.
stream zero_copy_1GiB 1073741824 --expect zc
stream zero_copy_vgem_1MiB 1048576 --mem vgem --expect zc
# Without the steering rule the flow hashes to queues 0-2, which have no
# binding: every byte comes through the copy fallback, still verified.
stream copy_fallback_unbound_queue_1MiB 1048576 --no-steer --expect copy
# The benchmark's copy baseline (no netgpu): read() then a copy into the
# buffer, four times round a 256 KiB udmabuf, every byte checked there.
stream copy_baseline_sample_1MiB 1048576 --copy-baseline --size 262144

# Eight connections to one port, all steered to queue 3: eight streams
# through one context, each verified on its own.
port=$((port + 1))
$B netgpu_recv ngs1 3 2001:db8::2 "$port" --bytes 2097152 --conns 8 --expect zc \
	>"$log/eight.recv" 2>&1 &
rpid=$!
sleep 1
spids=
for i in 1 2 3 4 5 6 7 8; do
	$A netgpu_send 2001:db8::2 "$port" 2097152 >"$log/eight.send$i" 2>&1 &
	spids="$spids $!"
done
sfail=0
for p in $spids; do wait "$p" || sfail=1; done
if wait "$rpid" && [ "$sfail" -eq 0 ]; then
	ok eight_sockets_one_queue
	sed 's/^/# /' "$log/eight.recv"
else
	nok eight_sockets_one_queue "$(cat "$log/eight.recv" "$log"/eight.send*)"
fi

# Two contexts, each with its own region, on queues 2 and 3 (RSS keeps
# other flows on 0-1 meanwhile).
$B ethtool -X ngs1 equal 2
$B netgpu_recv ngs1 3 2001:db8::2 5401 --bytes 8388608 --expect zc >"$log/two3" 2>&1 &
r3=$!
$B netgpu_recv ngs1 2 2001:db8::2 5402 --bytes 8388608 --expect zc >"$log/two2" 2>&1 &
r2=$!
sleep 1
$A netgpu_send 2001:db8::2 5401 8388608 >"$log/two3.send" 2>&1 &
s3=$!
$A netgpu_send 2001:db8::2 5402 8388608 >"$log/two2.send" 2>&1 &
s2=$!
rc=0
for p in $s3 $s2 $r3 $r2; do wait "$p" || rc=1; done
if [ "$rc" -eq 0 ]; then
	ok two_contexts_two_queues
	sed 's/^/# /' "$log/two3" "$log/two2"
else
	nok two_contexts_two_queues "$(cat "$log"/two*)"
fi
# Binding and unbinding restarted queues 2 and 3. Their engines' NAPI
# instances have no NAPI config, so each start gives them a new ID; the
# sim adds them again then, so the device's NAPI list stays sorted by ID
# as netdev netlink's napi-get dump needs (an instance out of order is
# skipped, with a WARN): all nine are listed, one of them the TX queues'.
# shellcheck disable=SC2046
napis=$($B $YNL $(ynl_spec netdev) --dump napi-get --output-json \
	--json "{\"ifindex\": $($B cat /sys/class/net/ngs1/ifindex)}" 2>&1 |
	python3 -c 'import json, sys; print(len({n["id"] for n in json.load(sys.stdin)}))' 2>&1)
if [ "$napis" = 9 ]; then
	ok napi_get_lists_every_instance_after_queue_restarts
else
	nok napi_get_lists_every_instance_after_queue_restarts "$napis"
fi
$B ethtool -X ngs1 equal 3

# A bound queue pins netgpu.ko through its page pool (the provider ops'
# owner); unbinding lets go. The channel count cannot drop the bound queue.
$B netgpu_recv ngs1 3 2001:db8::2 5501 --bytes 1 >"$log/pin" 2>&1 &
rpid=$!
wait_bound "$rpid"
held=$(cat /sys/module/netgpu/refcnt)
if out=$($B ethtool -L ngs1 combined 3 2>&1); then
	nok channels_keep_bound_queue "ethtool -L combined 3 succeeded with queue 3 bound"
else
	ok channels_keep_bound_queue
fi
$A netgpu_send 2001:db8::2 5501 1 >/dev/null 2>&1
wait "$rpid"
# The pool goes once its last buffer is back: an skb freed late on another
# CPU (kick_cpus) or the pool's once-a-second deferred release. Bounded.
for i in $(seq 10); do
	free=$(cat /sys/module/netgpu/refcnt)
	[ "$free" -eq 0 ] && break
	kick_cpus
	sleep 1
done
if [ "$held" -ge 2 ] && [ "$free" -eq 0 ]; then
	ok module_pinned_while_bound
else
	nok module_pinned_while_bound "netgpu refcnt $held while bound, $free after"
fi

# A ring size change restarts every queue; the bound one keeps its provider
# and the stream goes on.
start_stream ring 3 33554432 --expect zc
sleep 2
$B ethtool -G ngs1 rx 512
wait "$spid"
src=$?
if wait "$rpid" && [ "$src" -eq 0 ]; then
	ok ring_resize_mid_stream
else
	nok ring_resize_mid_stream "$(cat "$log/ring" "$log/ring.send")"
fi
$B ethtool -G ngs1 rx 1024

# The receiving process dies mid-stream: its context closes, the queue is
# unbound, the buffers in the socket come back, and a new stream works.
start_stream kill 3 268435456
sleep 3
kill -9 "$rpid"
wait "$rpid" 2>/dev/null
wait "$spid" 2>/dev/null
sleep 1
stream process_exit_mid_stream_then_new_stream 1048576 --expect zc

# Every buffer came back: each receiver closed its context, which unbound
# queue 3; the page pools that served from the region are gone, none is
# left waiting for buffers in flight (a pool that is, shows a detach-time).
# Buffers of killed connections come back as their sockets are destroyed
# and their CPUs free the skbs deferred to them (kick_cpus).
for i in $(seq 30); do
	kick_cpus
	# shellcheck disable=SC2046
	out=$($B $YNL $(ynl_spec netdev) --dump page-pool-get 2>&1) || break
	grep -q "detach-time" <<<"$out" || break
	sleep 1
done
if [ -n "$out" ] && ! grep -q "detach-time\|Traceback" <<<"$out"; then
	ok page_pools_released
else
	nok page_pools_released "$out"
fi

# ethtool -L under a bound queue while it receives: the core refuses to
# drop the bound queue; dropping the queues above it (down to 2 channels,
# which patch 0009 lets through) and adding them back goes on beside the
# stream, which completes byte-exact and in zero-copy.
# The rules of killed receivers are still there; they name queue 3.
for i in $($B ethtool -n ngs1 | awk '/^Filter:/ { print $2 }'); do
	$B ethtool -N ngs1 delete "$i"
done
$B ethtool -X ngs1 default
start_stream chan 1 67108864 --expect zc
sleep 2
msg=
if out=$($B ethtool -L ngs1 combined 1 2>&1); then
	msg+="combined 1 under bound queue 1 succeeded; "
elif ! grep -q "too low for existing" <<<"$out"; then
	msg+="combined 1 refused for another reason: $out; "
fi
out=$($B ethtool -L ngs1 combined 2 2>&1) || msg+="combined 2: $out; "
out=$($B ethtool -L ngs1 combined 4 2>&1) || msg+="combined 4: $out; "
wait "$spid" || msg+="sender: $(cat "$log/chan.send"); "
wait "$rpid" || msg+="receiver failed; "
if [ -z "$msg" ]; then
	ok ethtool_channels_mid_stream
else
	nok ethtool_channels_mid_stream "$msg$(cat "$log/chan")"
fi
$B ethtool -X ngs1 equal 3

# The device goes away under a bound, receiving queue: the provider's
# uninstall unmaps the region and drops the device, so the deletion
# completes while the receiver still holds buffers; the TCP connection
# itself just stalls, as it would with recv(). The application then exits
# and everything is released: the module's references return to zero (and
# kmemleak and the kernel log are checked after the run).
start_stream del 3 268435456
sleep 3
if timeout 60 $A ip link del ngs0; then
	kill "$spid" "$rpid" 2>/dev/null
	wait "$spid" "$rpid" 2>/dev/null
	# Page pools wait for the buffers in flight, holding the module: the
	# skbs of the killed connection the receive deferred to other CPUs
	# (kick_cpus frees them), then one retry a second.
	refs_released
	refs=$(cat /sys/module/netgpu/refcnt)
	if [ "$refs" -eq 0 ] && ! $B ip link show ngs1 >/dev/null 2>&1; then
		ok link_del_mid_stream
	else
		nok link_del_mid_stream "netgpu refcnt $refs 30 s after the receiver exited; $($B ip link 2>&1); $($B $YNL $(ynl_spec netdev) --dump page-pool-get 2>&1)"
	fi
else
	nok link_del_mid_stream "ip link del did not complete in 60 s"
	kill "$spid" "$rpid" 2>/dev/null
fi

# Network namespace teardown under a binding: netgpu_ioctl, run from here
# (outside ngsb), binds a queue of a new pair from a thread in ngsb and
# deletes ngsb; the namespace's cleanup deletes the device under the
# binding, the context unbinds and closes, the DMA-buf's last reference
# goes, and the module's references return to zero.
if pair_up numrxqueues 4 numtxqueues 4 && hds on; then
	subtests "" netgpu_ioctl --sim ngs1 netns_deleted_while_bound
	if refs_released; then
		ok netns_del_refs_released
	else
		nok netns_del_refs_released "netgpu refcnt $(cat /sys/module/netgpu/refcnt) 30 s after the context closed"
	fi
else
	nok netns_deleted_while_bound "no new pair: $(ip -all netns exec ip link 2>&1)"
	nok netns_del_refs_released "not run"
fi

unload rmmod_sim_after_streams
exit $((fails > 0))
