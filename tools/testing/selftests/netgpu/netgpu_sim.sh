#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: netgpu-sim, the software NIC with header/data split. Creates a
# pair with iproute2 (through the netgpu-sim plugin), puts the ends in two
# network namespaces and checks, with verified payloads, TCP and UDP over IPv4
# and IPv6 with header/data split on and off, jumbo frames, channel changes,
# ntuple steering, queue-get, and teardown under traffic. See sim_lib.sh for
# what it needs.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/sim_lib.sh"

busy() { # busy PORT: a long TCP stream ngsa -> ngsb in the background, for 2 s
	$B netgpu_traffic recv tcp 192.0.2.2 "$1" 100000000 >/dev/null 2>&1 &
	rxpid=$!
	sleep 0.5
	$A netgpu_traffic send tcp 192.0.2.2 "$1" 100000000 >/dev/null 2>&1 &
	txpid=$!
	sleep 2
}
# unbusy: end the busy stream
unbusy() { kill $rxpid $txpid 2>/dev/null; wait $rxpid $txpid 2>/dev/null; }

echo "TAP version 13"
echo "1..41"

# --- 1. creation the Linux way ---
if out=$(insmod "$KO" 2>&1 &&
	IP_LIB_DIR=$IPLIB ip link add ngs0 numrxqueues 4 numtxqueues 4 \
		type netgpu-sim peer name ngs1 2>&1) &&
	ip -d link show ngs1 | grep -q "numrxqueues 4" &&
	ip -d link show ngs0 | grep -q "parentbus faux"; then
	ok create_pair_with_iproute2
else
	nok create_pair_with_iproute2 "$out"
fi

parent=$(basename "$(readlink -f /sys/class/net/ngs0/device)")
if [ -n "$parent" ] && [ "$(readlink -f /sys/class/net/ngs1/device)" = "$(readlink -f /sys/class/net/ngs0/device)" ]; then
	ok pair_shares_a_parent_device
else
	nok pair_shares_a_parent_device "ngs0 parent: $parent"
fi

ip netns add ngsa
ip netns add ngsb
ip link set ngs0 netns ngsa
ip link set ngs1 netns ngsb
pair_addrs
sleep 1
if $A ip link show ngs0 | grep -q "state UP" && $B ip link show ngs1 | grep -q "state UP"; then
	ok both_ends_up_in_their_netns
else
	nok both_ends_up_in_their_netns "$($A ip link show ngs0; $B ip link show ngs1)"
fi

# --- 2. datapath with header/data split on (the default) ---
split0=$(rx_total ngsb ngs1 hds_bytes)
check tcp4_hds_on_verified xfer tcp 192.0.2.2 5201 8000000
split1=$(rx_total ngsb ngs1 hds_bytes)
if [ $((split1 - split0)) -ge 8000000 ]; then
	ok tcp4_payload_went_to_data_pool
else
	nok tcp4_payload_went_to_data_pool "hds_bytes grew by $((split1 - split0)), expected >= 8000000"
fi
check tcp6_hds_on_verified xfer tcp 2001:db8::2 5202 4000000
check udp4_hds_on_verified xfer udp 192.0.2.2 5203 1400000 1400
check udp6_jumbo_dgram_verified xfer udp 2001:db8::2 5204 800000 8000

# --- 3. header/data split off: classic single-buffer receive ---
if out=$(hds off 2>&1) && $B ethtool -g ngs1 | grep -q "TCP data split:.*off"; then
	ok hds_off_via_ethtool_netlink
else
	nok hds_off_via_ethtool_netlink "$out"
fi
split0=$(rx_total ngsb ngs1 hds_bytes)
check tcp4_hds_off_verified xfer tcp 192.0.2.2 5205 4000000
check udp6_hds_off_verified xfer udp 2001:db8::2 5206 700000 1400
split1=$(rx_total ngsb ngs1 hds_bytes)
if [ "$split0" = "$split1" ]; then
	ok hds_off_splits_nothing
else
	nok hds_off_splits_nothing "hds_bytes went from $split0 to $split1"
fi
hds on

# --- 4. jumbo frames ---
$A ip link set ngs0 mtu 9000
$B ip link set ngs1 mtu 9000
check tcp4_mtu9000_verified xfer tcp 192.0.2.2 5207 8000000
$A ip link set ngs0 mtu 1500
$B ip link set ngs1 mtu 1500

# --- 5. receive coalescing (rx-gro-hw): in-order segments of a flow in one skb ---
# coalesced S PORT DST: stream 4 MB to DST PORT, verified; then check that
# the hw_gro counters grew (S = yes) or stayed (S = no), and that a
# coalesced packet holds at least two wire frames on average.
coalesced() {
	local want=$1 port=$2 dst=$3 p0 w0 p1 w1 out
	p0=$(rx_total ngsb ngs1 hw_gro_packets) w0=$(rx_total ngsb ngs1 hw_gro_wire_packets)
	out=$(xfer tcp "$dst" "$port" 4000000) || { echo "stream: $out"; return 1; }
	p1=$(rx_total ngsb ngs1 hw_gro_packets) w1=$(rx_total ngsb ngs1 hw_gro_wire_packets)
	echo "hw_gro_packets $p0 -> $p1, hw_gro_wire_packets $w0 -> $w1"
	if [ "$want" = yes ]; then
		[ $((p1 - p0)) -gt 0 ] && [ $((w1 - w0)) -ge $((2 * (p1 - p0))) ]
	else
		[ "$p1" = "$p0" ] && [ "$w1" = "$w0" ]
	fi
}
if $B ethtool -k ngs1 | grep -q "^rx-gro-hw: on$"; then
	ok rx_gro_hw_on_by_default
else
	nok rx_gro_hw_on_by_default "$($B ethtool -k ngs1 | grep gro)"
fi
check tcp4_coalesced_and_verified coalesced yes 5230 192.0.2.2
check tcp6_coalesced_and_verified coalesced yes 5231 2001:db8::2
$B ethtool -K ngs1 rx-gro-hw off
check rx_gro_hw_off_coalesces_nothing coalesced no 5232 192.0.2.2
$B ethtool -K ngs1 rx-gro-hw on

# --- 5a. segmentation offload (tso): a TSO send crosses the wire whole ---
# tso_sent S PORT DST: stream 4 MB to DST PORT, verified; then check that
# ngs0 sent TSO sends whole (S = yes: tx hw_gso counters grew, with at least
# two frames per send) or none (S = no), and that ngs1 received, or dropped
# on a full ring, the frames ngs0 counted as sent (give or take two: IPv6
# neighbour discovery and MLD send now and then, and a frame may be on the
# wire between the readings of the two ends).
tso_sent() {
	local want=$1 port=$2 dst=$3 g0 w0 t0 r0 g1 w1 t1 r1 out d
	g0=$(tx_total ngsa ngs0 hw_gso_packets) w0=$(tx_total ngsa ngs0 hw_gso_wire_packets)
	t0=$(tx_total ngsa ngs0 packets)
	r0=$(($(rx_total ngsb ngs1 packets) + $(rx_total ngsb ngs1 ring_full_drops)))
	out=$(xfer tcp "$dst" "$port" 4000000) || { echo "stream: $out"; return 1; }
	# The connection's last frames (FIN, ACKs) may still be on the wire.
	sleep 1
	g1=$(tx_total ngsa ngs0 hw_gso_packets) w1=$(tx_total ngsa ngs0 hw_gso_wire_packets)
	t1=$(tx_total ngsa ngs0 packets)
	r1=$(($(rx_total ngsb ngs1 packets) + $(rx_total ngsb ngs1 ring_full_drops)))
	echo "hw_gso_packets $g0 -> $g1, hw_gso_wire_packets $w0 -> $w1; frames sent $t0 -> $t1, received $r0 -> $r1"
	d=$(((t1 - t0) - (r1 - r0)))
	[ "${d#-}" -le 2 ] || return 1
	if [ "$want" = yes ]; then
		[ $((g1 - g0)) -gt 0 ] && [ $((w1 - w0)) -ge $((2 * (g1 - g0))) ]
	else
		[ "$g1" = "$g0" ] && [ "$w1" = "$w0" ]
	fi
}
if $A ethtool -k ngs0 | grep -q "^tcp-segmentation-offload: on$"; then
	ok tso_on_by_default
else
	nok tso_on_by_default "$($A ethtool -k ngs0 | grep segmentation)"
fi
check tcp4_tso_sent_whole_and_verified tso_sent yes 5233 192.0.2.2
check tcp6_tso_sent_whole_and_verified tso_sent yes 5234 2001:db8::2
# shellcheck disable=SC2046
qs=$($A $YNL $(ynl_spec netdev) --dump qstats-get 2>&1)
if grep -q "'tx-hw-gso-packets': [1-9]" <<<"$qs" && grep -q "'tx-hw-gso-wire-packets': [1-9]" <<<"$qs"; then
	ok tso_in_qstats
else
	nok tso_in_qstats "$qs"
fi
# Sends the peer would not receive whole are cut in software: with TSO off,
# when the peer does not coalesce, and when its frames would split unlike.
$A ethtool -K ngs0 tso off
check tso_off_sends_frames tso_sent no 5235 192.0.2.2
# (ethtool asks for the ECN variants too, which the device lacks, and says so)
$A ethtool -K ngs0 tso on >/dev/null 2>&1
$B ethtool -K ngs1 rx-gro-hw off
check tso_to_peer_without_rx_gro_hw_sends_frames tso_sent no 5236 2001:db8::2
$B ethtool -K ngs1 rx-gro-hw on
# shellcheck disable=SC2046
$B $YNL $(ynl_spec ethtool) --do rings-set \
	--json '{"header": {"dev-name": "ngs1"}, "hds-thresh": 256}' >/dev/null
check tso_to_peer_with_hds_thresh_sends_frames tso_sent no 5237 192.0.2.2
# shellcheck disable=SC2046
$B $YNL $(ynl_spec ethtool) --do rings-set \
	--json '{"header": {"dev-name": "ngs1"}, "hds-thresh": 0}' >/dev/null

# --- 5b. interrupt deferral: the queue honours napi_complete_done() ---
# trickle PORT: ten datagrams to 2001:db8::2 PORT, 50 ms apart, verified;
# prints the interrupts (NAPI schedules from the wire) ngs1 raised
# meanwhile. Each datagram finds NAPI idle, so each raises one, unless IRQ
# deferral keeps the interrupt masked: then NAPI's deferral timer polls,
# and as long as a poll or one of the next two finds a frame, the interrupt
# stays masked.
trickle() {
	local port=$1 i0 i1 rx pid
	rx=$(mktemp)
	$B netgpu_traffic recv udp 2001:db8::2 "$port" 1000 >"$rx" 2>&1 &
	pid=$!
	sleep 0.5
	i0=$(rx_total ngsb ngs1 irqs)
	$A netgpu_traffic send udp 2001:db8::2 "$port" 1000 100 --gap 50 >/dev/null 2>&1
	wait $pid || { cat "$rx" >&2; rm -f "$rx"; return 1; }
	i1=$(rx_total ngsb ngs1 irqs)
	rm -f "$rx"
	echo $((i1 - i0))
}
# deferral: ten interrupts for ten datagrams without deferral; with it (two
# empty polls, a 100 ms timer), the first datagram's, and at most two more
# (a neighbour probe on another queue, a gap the timer did not bridge)
deferral() {
	local off on rc=0
	off=$(trickle 5233) || { echo "datagrams without deferral lost"; rc=1; }
	$B sh -c 'echo 2 >/sys/class/net/ngs1/napi_defer_hard_irqs; echo 100000000 >/sys/class/net/ngs1/gro_flush_timeout'
	on=$(trickle 5234) || { echo "datagrams with deferral lost"; rc=1; }
	$B sh -c 'echo 0 >/sys/class/net/ngs1/napi_defer_hard_irqs; echo 0 >/sys/class/net/ngs1/gro_flush_timeout'
	echo "interrupts for ten datagrams: $off without deferral, $on with"
	[ "$rc" = 0 ] && [ "$off" -ge 10 ] && [ "$on" -ge 1 ] && [ "$on" -le 3 ]
}
check irq_deferral_masks_the_queue deferral
# The interrupt is unmasked again: a stream right after is delivered.
check stream_after_irq_deferral xfer tcp 2001:db8::2 5235 4000000

# --- 6. channels and ntuple steering ---
if $B ethtool -L ngs1 combined 2 && $B ethtool -l ngs1 | tail -1 | grep -q "Combined:.*2"; then
	ok ethtool_L_combined_2
else
	nok ethtool_L_combined_2 "$($B ethtool -l ngs1 2>&1)"
fi
q3=$(stat ngsb ngs1 rx3_packets)
check tcp4_over_2_channels_verified xfer tcp 192.0.2.2 5208 2000000
if [ "$(stat ngsb ngs1 rx3_packets)" = "$q3" ]; then
	ok inactive_queue_gets_nothing
else
	nok inactive_queue_gets_nothing "rx3_packets moved: $q3 -> $(stat ngsb ngs1 rx3_packets)"
fi
$B ethtool -L ngs1 combined 4
$B ethtool -K ngs1 ntuple on
if out=$($B ethtool -N ngs1 flow-type tcp4 dst-ip 192.0.2.2 dst-port 5209 action 3 2>&1) &&
	$B ethtool -n ngs1 | grep -q "Action: Direct to queue 3"; then
	ok ntuple_rule_inserted_and_listed
else
	nok ntuple_rule_inserted_and_listed "$out $($B ethtool -n ngs1 2>&1)"
fi
r0=$(stat ngsb ngs1 rx3_ntuple_packets)
xfer tcp 192.0.2.2 5209 2000000 >/dev/null
xfer tcp 192.0.2.2 5210 2000000 >/dev/null
r1=$(stat ngsb ngs1 rx3_ntuple_packets)
total=$(rx_total ngsb ngs1 ntuple_packets)
if [ $((r1 - r0)) -gt 1000 ] && [ "$total" = "$r1" ]; then
	ok ntuple_steers_only_the_matching_flow
else
	nok ntuple_steers_only_the_matching_flow "rx3 ntuple packets $r0 -> $r1, all queues $total"
fi

# --- ring sizes, RSS weights and key, rule deletion, qstats ---
if $B ethtool -G ngs1 rx 256 tx 512 && $B ethtool -g ngs1 | tail -n +7 | grep -q "^RX:.*256" &&
	xfer tcp 192.0.2.2 5213 1000000 >/dev/null; then
	ok ring_size_256_and_traffic
else
	nok ring_size_256_and_traffic "$($B ethtool -g ngs1 2>&1)"
fi
$B ethtool -N ngs1 delete 0 2>/dev/null
loc=$($B ethtool -n ngs1 | sed -n 's/^Filter: //p')
if [ -z "$loc" ] && $B ethtool -X ngs1 weight 0 1 0 0 && q1=$(stat ngsb ngs1 rx1_packets) &&
	xfer tcp 192.0.2.2 5214 1000000 >/dev/null &&
	[ $(($(stat ngsb ngs1 rx1_packets) - q1)) -gt 500 ]; then
	ok rule_deleted_and_rss_weight_to_queue_1
else
	nok rule_deleted_and_rss_weight_to_queue_1 "rules: $loc; $($B ethtool -x ngs1 2>&1 | head -4)"
fi
key=$($B ethtool -x ngs1 | sed -n '/RSS hash key/{n;p}')
if $B ethtool -X ngs1 default hkey 01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f:20:21:22:23:24:25:26:27:28 &&
	$B ethtool -x ngs1 | grep -q "^01:02:03" && [ "$key" != "$($B ethtool -x ngs1 | sed -n '/RSS hash key/{n;p}')" ]; then
	ok rss_key_set_and_read_back
else
	nok rss_key_set_and_read_back "$($B ethtool -x ngs1 2>&1 | tail -4)"
fi
# shellcheck disable=SC2046
qs=$($B $YNL $(ynl_spec netdev) --dump qstats-get --json '{"scope": "queue"}' 2>&1)
if [ "$(grep -c "'queue-type': 'rx'" <<<"$qs")" = 4 ] && grep -q "'rx-packets'" <<<"$qs"; then
	ok qstats_per_rx_queue
else
	nok qstats_per_rx_queue "$qs"
fi
# The device's drops in qstats (no scope: device totals) are the queues'
# full-ring drops plus the frames that found their queue reconfigured; the
# emulated DMA and the driver's own share of NAPI are timed.
d0=$(rx_total ngsb ngs1 dma_ns) v0=$(rx_total ngsb ngs1 driver_ns) e0=$(rx_total ngsb ngs1 engine_ns)
xfer tcp 192.0.2.2 5216 1000000 >/dev/null
d1=$(rx_total ngsb ngs1 dma_ns) v1=$(rx_total ngsb ngs1 driver_ns) e1=$(rx_total ngsb ngs1 engine_ns)
drops=$(($(rx_total ngsb ngs1 ring_full_drops) + $(stat ngsb ngs1 rx_reconfig_drops)))
# shellcheck disable=SC2046
qs=$($B $YNL $(ynl_spec netdev) --dump qstats-get 2>&1)
hw=$(sed -n "s/.*'rx-hw-drops': \([0-9]*\).*/\1/p" <<<"$qs")
if [ "$d1" -gt "$d0" ] && [ "$v1" -gt "$v0" ] && [ "$e1" -gt "$e0" ] && [ "$hw" = "$drops" ]; then
	ok drop_counters_add_up_and_dma_is_timed
else
	nok drop_counters_add_up_and_dma_is_timed "dma_ns $d0 -> $d1; driver_ns $v0 -> $v1; engine_ns $e0 -> $e1; drops $drops; qstats $qs"
fi

# --- 7. queue restarts under traffic (the queue API memory providers use) ---
# shellcheck disable=SC2046
napi_before=$($B $YNL $(ynl_spec netdev) --dump queue-get \
	--json "{\"ifindex\": $($B cat /sys/class/net/ngs1/ifindex)}" 2>&1)
if grep -q "'napi-id'" <<<"$napi_before" && [ "$(grep -c "'type': 'rx'" <<<"$napi_before")" = 4 ]; then
	ok queue_get_reports_4_rx_queues_with_napi
else
	nok queue_get_reports_4_rx_queues_with_napi "$napi_before"
fi
# Each queue's NIC engine is a NAPI instance of its own, next to the queue's,
# and the TX queues share one, the port's TX completion: nine instances, four
# of them the RX queues', one the TX queues'.
# shellcheck disable=SC2046
counts=$({
	$B $YNL $(ynl_spec netdev) --dump queue-get --output-json \
		--json "{\"ifindex\": $($B cat /sys/class/net/ngs1/ifindex)}"
	echo
	$B $YNL $(ynl_spec netdev) --dump napi-get --output-json \
		--json "{\"ifindex\": $($B cat /sys/class/net/ngs1/ifindex)}"
} 2>/dev/null | python3 -c '
import json, sys
q, n = [json.loads(l) for l in sys.stdin if l.strip()]
ids = {x["id"] for x in n}
rx = {x["napi-id"] for x in q if x["type"] == "rx" and "napi-id" in x}
tx = {x["napi-id"] for x in q if x["type"] == "tx" and "napi-id" in x}
print(len(ids), len(rx & ids), len(tx & ids), len(ids - rx - tx))
' 2>&1)
if [ "$counts" = "9 4 1 4" ]; then
	ok engines_are_napi_instances_of_their_own
else
	nok engines_are_napi_instances_of_their_own "instances, RX queues', TX queues', others: $counts"
fi

# --- 8. teardown under traffic ---
busy 5211
if $A ip link del ngs0 && ! $B ip link show ngs1 >/dev/null 2>&1; then
	ok link_del_under_traffic_removes_both_ends
else
	nok link_del_under_traffic_removes_both_ends "$($B ip link show 2>&1)"
fi
unbusy

# netns deletion under traffic deletes both ends.
pair_up
busy 5215
ip netns del ngsb
# Namespaces are dismantled by a worker: give it time.
for _ in $(seq 30); do
	$A ip link show ngs0 >/dev/null 2>&1 || break
	sleep 1
done
if ! $A ip link show ngs0 >/dev/null 2>&1; then
	ok netns_del_under_traffic_removes_both_ends
else
	nok netns_del_under_traffic_removes_both_ends "$($A ip link show 2>&1)"
fi
unbusy

# rmmod with a pair up and busy deletes it.
pair_up
busy 5212
if out=$(rmmod netgpu_sim 2>&1) && ! $A ip link show ngs0 >/dev/null 2>&1; then
	ok rmmod_under_traffic_deletes_pairs
else
	nok rmmod_under_traffic_deletes_pairs "$out"
fi
unbusy
ip netns del ngsa
ip netns del ngsb

[ "$fails" -eq 0 ] || exit 1
exit 0
