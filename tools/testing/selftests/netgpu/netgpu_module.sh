#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kselftest: load and unload netgpu.ko, the /dev/netgpu node, the CLI, and
# unload refused while a context is open. Needs root and $NETGPU_KO (path of
# netgpu.ko); expects the module not to be loaded when it starts, and leaves
# it loaded when it ends.

KO=${NETGPU_KO:-}
CLI=${NETGPU_CLI:-netgpu}
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "# $2"; echo "not ok $n $1"; }
skip_all() { echo "TAP version 13"; echo "1..0 # SKIP $1"; exit 4; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
[ -f "$KO" ] || skip_all "NETGPU_KO does not name netgpu.ko"
loaded() { grep -q '^netgpu ' /proc/modules; }
loaded && skip_all "netgpu is already loaded"

echo "TAP version 13"
echo "1..9"

if out=$(insmod "$KO" 2>&1) && loaded; then
	ok insmod
else
	nok insmod "insmod: $out"
fi

if [ -c /dev/netgpu ] && [ "$(stat -c '%a %U' /dev/netgpu)" = "600 root" ] &&
	[ "$(stat -c '%t' /dev/netgpu)" = a ]; then
	ok dev_node_misc_0600_root
else
	nok dev_node_misc_0600_root "$(ls -l /dev/netgpu 2>&1)"
fi

if out=$("$CLI" info 2>&1) && grep -q "^abi version: 1$" <<<"$out"; then
	ok cli_info
else
	nok cli_info "netgpu info: $out"
fi

out=$(insmod "$KO" 2>&1)
if [ $? -ne 0 ] && grep -q "File exists" <<<"$out"; then
	ok insmod_twice_eexist
else
	nok insmod_twice_eexist "second insmod: $out"
fi

exec 3<>/dev/netgpu
if out=$(rmmod netgpu 2>&1); then
	nok rmmod_busy_with_open_context "rmmod succeeded with /dev/netgpu open"
elif loaded && grep -qi "in use" <<<"$out"; then
	ok rmmod_busy_with_open_context
else
	nok rmmod_busy_with_open_context "rmmod: $out"
fi
exec 3<&-

if out=$(rmmod netgpu 2>&1) && ! loaded; then
	ok rmmod
else
	nok rmmod "rmmod: $out"
fi

if [ ! -e /dev/netgpu ]; then
	ok dev_node_removed
else
	nok dev_node_removed "/dev/netgpu still exists after rmmod"
fi

if out=$("$CLI" info 2>&1); then
	nok cli_info_without_module "netgpu info succeeded without the module: $out"
elif grep -q "No such file or directory" <<<"$out"; then
	ok cli_info_without_module
else
	nok cli_info_without_module "netgpu info: $out"
fi

if out=$(insmod "$KO" 2>&1) && loaded && [ -c /dev/netgpu ]; then
	ok reload
else
	nok reload "insmod: $out"
fi

echo "# Totals: pass:$((n - fails)) fail:$fails xfail:0 xpass:0 skip:0 error:0"
[ "$fails" -eq 0 ]
