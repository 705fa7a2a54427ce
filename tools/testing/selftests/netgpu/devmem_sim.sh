#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: upstream devmem TCP over netgpu-sim. Runs the kernel tree's own
# ncdevmem (built from the tree under test by tools/kernel/tree-tools.sh,
# $NETGPU_NCDEVMEM) as the receiver on ngs1: it sets up header/data split,
# RSS and an ntuple rule itself, binds a udmabuf to the last RX queue through
# netdev netlink and validates every payload byte. A memory provider we did
# not write, on our NIC. Also checks the bound queue through queue-get, that
# the kernel refuses channel changes that would drop it, and that a bound
# queue on a smaller index survives changes that keep it. See sim_lib.sh for
# the rest of what it needs.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/sim_lib.sh"
NCDEVMEM=${NETGPU_NCDEVMEM:-}
[ -x "$NCDEVMEM" ] || skip_all "NETGPU_NCDEVMEM does not name ncdevmem"
[ -c /dev/udmabuf ] || skip_all "no /dev/udmabuf"
BYTES=${NETGPU_DEVMEM_BYTES:-104857600}
log=$(mktemp -d)

echo "TAP version 13"
echo "1..11"

provider_pair

# ncdevmem's own checks: binding fails without header split, succeeds with it,
# and channel changes under a binding are refused.
if out=$($B "$NCDEVMEM" -f ngs1 2>&1); then
	ok ncdevmem_probe_tests
else
	nok ncdevmem_probe_tests "$(tail -5 <<<"$out")"
fi
hds on

# server: ncdevmem configures the NIC, binds the last queue (3), validates
srv() { # srv PORT ARGS...: start ncdevmem in ngsb, log in $log/srv-PORT
	local port=$1
	shift
	$B "$NCDEVMEM" -l -f ngs1 -s 2001:db8::2 -p "$port" -v 7 "$@" \
		>"$log/srv-$port" 2>&1 &
	srvpid=$!
	sleep 2
}
# verdict PORT RC: ncdevmem exited RC; check its log for full validation
verdict() {
	local port=$1 rc=$2 got
	got=$(sed -n 's/.*total_received=\([0-9]*\).*/\1/p' "$log/srv-$port" | tail -1)
	if [ "$rc" -ne 0 ]; then
		echo "ncdevmem exit $rc: $(tail -3 "$log/srv-$port")"
		return 1
	fi
	if grep -q "Failed validation" "$log/srv-$port"; then
		echo "$(grep -c "Failed validation" "$log/srv-$port") validation failures"
		return 1
	fi
	if [ "$got" != "$BYTES" ]; then
		echo "received ${got:-nothing} of $BYTES bytes"
		return 1
	fi
}

# A verified stream on the other queues runs across the binding, which
# restarts queue 3 through the queue API, and across ncdevmem's RSS change.
$B netgpu_traffic recv tcp 192.0.2.2 5300 40000000 >"$log/bg-rx" 2>&1 &
bgrx=$!
sleep 0.5
$A netgpu_traffic send tcp 192.0.2.2 5300 40000000 >"$log/bg-tx" 2>&1 &
bgtx=$!
unread0=$(stat ngsb ngs1 rx3_unreadable_packets)
srv 5201 -c 2001:db8::1
bound=$(queues_ngs1)
$A netgpu_traffic send tcp 2001:db8::2 5201 "$BYTES" --from '[2001:db8::1]:5201' --ncdevmem 7 \
	>"$log/cli-5201" 2>&1
wait $srvpid
rc=$?
if out=$(verdict 5201 $rc); then
	ok "ncdevmem_received_${BYTES}_bytes_validated"
else
	nok "ncdevmem_received_${BYTES}_bytes_validated" "$out; client: $(cat "$log/cli-5201")"
fi
wait $bgtx
wait $bgrx
bgrc=$?
if [ $bgrc -eq 0 ] && grep -q "verified" "$log/bg-rx"; then
	ok other_queues_stream_verified_across_the_restart
else
	nok other_queues_stream_verified_across_the_restart "$(cat "$log/bg-rx" "$log/bg-tx")"
fi
unread1=$(stat ngsb ngs1 rx3_unreadable_packets)
if [ $((unread1 - unread0)) -gt 1000 ]; then
	ok payload_landed_in_net_iovs_of_queue_3
else
	nok payload_landed_in_net_iovs_of_queue_3 "rx3_unreadable_packets $unread0 -> $unread1"
fi
# (ynl prints the binding before the id: "{'dmabuf': N, 'id': 3, ...")
if grep -q "{'dmabuf':[0-9]*,'id':3," <<<"$bound"; then
	ok queue_get_shows_dmabuf_on_queue_3
else
	nok queue_get_shows_dmabuf_on_queue_3 "$bound"
fi

# A binding on queue 1, RSS on queue 0 only, a rule for the flow: shrinking
# to 3 channels keeps queue 1 and must work under traffic; shrinking to 1
# must be refused. (7.3's ethtool core also refuses 2, which would keep
# queue 1: it compares the count with "index + 1" using <=.)
hds on
$B ethtool -X ngs1 equal 1
$B ethtool -N ngs1 flow-type tcp6 dst-ip 2001:db8::2 dst-port 5202 action 1 >/dev/null
srv 5202 -t 1 -q 1 -n
$A netgpu_traffic send tcp 2001:db8::2 5202 "$BYTES" --ncdevmem 7 >"$log/cli-5202" 2>&1 &
clipid=$!
sleep 1
if out=$($B ethtool -L ngs1 combined 3 2>&1); then
	ok channels_4_to_3_keep_the_bound_queue
else
	nok channels_4_to_3_keep_the_bound_queue "$out"
fi
if out=$($B ethtool -L ngs1 combined 1 2>&1); then
	nok channels_3_to_1_refused_while_bound "ethtool -L combined 1 succeeded: $out"
else
	ok channels_3_to_1_refused_while_bound
fi
wait $clipid
wait $srvpid
rc=$?
if out=$(verdict 5202 $rc); then
	ok bound_queue_1_stream_validated_across_channel_change
else
	nok bound_queue_1_stream_validated_across_channel_change "$out; client: $(cat "$log/cli-5202")"
fi

# Everything given back: the pools of the bound queues were destroyed and
# the udmabufs released once ncdevmem exited.
unload rmmod_after_devmem

# rmmod while ncdevmem holds a binding: the devices go, the provider is
# uninstalled, ncdevmem fails, nothing leaks (the VM checks kmemleak).
insmod "$KO"
pair_up numrxqueues 4 numtxqueues 4
$B ethtool -K ngs1 ntuple on
sleep 1
srv 5203 -c 2001:db8::1
bound=$(queues_ngs1)
if grep -q "{'dmabuf':[0-9]*,'id':3," <<<"$bound" && out=$(rmmod netgpu_sim 2>&1) &&
	! grep -q '^netgpu_sim ' /proc/modules; then
	ok rmmod_while_devmem_bound
else
	nok rmmod_while_devmem_bound "$out $bound"
fi
kill $srvpid 2>/dev/null
wait $srvpid 2>/dev/null
ip netns del ngsa
ip netns del ngsb
rm -rf "$log"

[ "$fails" -eq 0 ] || exit 1
exit 0
