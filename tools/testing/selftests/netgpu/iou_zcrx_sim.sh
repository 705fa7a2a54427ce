#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: upstream io_uring zero-copy receive over netgpu-sim. Runs the
# kernel tree's own iou-zcrx (built from the tree under test with liburing
# from Debian sid by tools/kernel/tree-tools.sh, $NETGPU_IOU_ZCRX) the way
# the tree's iou-zcrx.py does on hardware: header/data split on with
# threshold 0, RSS away from the target queue, an ntuple rule for the flow,
# then server and client; the server checks every payload byte. Covers the
# streaming and the oneshot receive modes. See sim_lib.sh for the rest of
# what it needs.

# shellcheck source=tools/testing/selftests/netgpu/sim_lib.sh
. "$(dirname "$0")/sim_lib.sh"
ZCRX=${NETGPU_IOU_ZCRX:-}
[ -x "$ZCRX" ] || skip_all "NETGPU_IOU_ZCRX does not name iou-zcrx"
log=$(mktemp -d)

echo "TAP version 13"
echo "1..6"

provider_pair
# shellcheck disable=SC2046
$B $YNL $(ynl_spec ethtool) --do rings-set \
	--json '{"header": {"dev-name": "ngs1"}, "tcp-data-split": "enabled", "hds-thresh": 0, "rx": 64}' >/dev/null
$B ethtool -X ngs1 equal 3
$B ethtool -N ngs1 flow-type tcp6 dst-port 9999 action 3 >/dev/null

# zcrx NAME SERVER_ARGS CLIENT_ARGS: one upstream run, server on queue 3.
# The server gives up 5 s after it starts listening, so nothing slow (like
# ynl under TCG) may run between server and client.
zcrx() {
	local name=$1 sargs=$2 cargs=$3 rc
	# shellcheck disable=SC2086
	$B "$ZCRX" -s -p 9999 -i ngs1 -q 3 $sargs >"$log/srv-$name" 2>&1 &
	local srv=$!
	sleep 1.5
	# shellcheck disable=SC2086
	$A "$ZCRX" -c -h 2001:db8::2 -p 9999 $cargs >"$log/cli-$name" 2>&1
	wait $srv
	rc=$?
	[ $rc -eq 0 ] || echo "server exit $rc: $(tail -3 "$log/srv-$name"); client: $(tail -3 "$log/cli-$name")"
	return $rc
}

unread0=$(stat ngsb ngs1 rx3_unreadable_packets)
check iou_zcrx_stream_validated zcrx stream "" "-l 12840"
unread1=$(stat ngsb ngs1 rx3_unreadable_packets)
if [ $((unread1 - unread0)) -gt 100 ]; then
	ok payload_landed_in_zcrx_area_on_queue_3
else
	nok payload_landed_in_zcrx_area_on_queue_3 "rx3_unreadable_packets $unread0 -> $unread1"
fi
check iou_zcrx_oneshot_validated zcrx oneshot "-o 4" "-l 4096 -z 16384"

# A server that gets no client (it waits for one without timing out): its
# binding shows in queue-get; killing it unbinds.
$B "$ZCRX" -s -p 9999 -i ngs1 -q 3 >/dev/null 2>&1 &
srv=$!
sleep 1
queues=$(queues_ngs1)
kill $srv
wait $srv 2>/dev/null
if grep -q "'id':3,'ifindex':[0-9]*,'io-uring'" <<<"$queues"; then
	ok queue_get_shows_io_uring_on_queue_3
else
	nok queue_get_shows_io_uring_on_queue_3 "$queues"
fi

unload rmmod_after_zcrx
rm -rf "$log"

[ "$fails" -eq 0 ] || exit 1
exit 0
