#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM, as root. Modes:
#   check OUT KDIR
#               load netgpu and netgpu_sim (KUnit suites run at load), run the
#               kselftests, unload, check kmemleak and the kernel log;
#               write one line per test case to OUT/results:
#               "PASS name", "FAIL name", "SKIP name: reason".
#   bench OUT KDIR
#               run tools/bench/sim.sh and tools/bench/netgpu.sh, report in
#               OUT/bench.txt; the host answers their vCPU clock requests
#               in OUT (tools/vm/run.sh).
#   demo OUT KDIR
#               load netgpu, show the device and the info ioctl, unload.
# KDIR is the kernel tree (its tools/net/ynl is used by the tests).
# The host reads OUT/ (a --rwdir share): vng's exit code does not carry the
# guest's.
set -u
mode=$1
out=$2
kdir=${3:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
ko=$root/netgpu.ko
sim_ko=$root/sim/netgpu_sim.ko
bin=$root/tools/target/release
sel=$root/tools/testing/selftests/netgpu
results=$out/results
: >"$results"

record() { echo "$*" >>"$results"; }

mount -t debugfs none /sys/kernel/debug 2>/dev/null
export PATH=$bin:$PATH

sim_env() { # the environment the netgpu-sim tests and benchmarks need
	export NETGPU_SIM_KO=$sim_ko NETGPU_IPLIB=$root/out/iplib NETGPU_KSRC=$kdir \
		NETGPU_NCDEVMEM=$root/out/tree-tools/ncdevmem \
		NETGPU_IOU_ZCRX=$root/out/tree-tools/iou-zcrx
}

if [ "$mode" = bench ]; then
	sim_env
	export NETGPU_VCPU_CLOCK=$out
	echo "kernel: $(basename "$kdir") ($(uname -r))" >"$out/bench.txt"
	"$root/tools/bench/sim.sh" >>"$out/bench.txt" 2>"$out/bench.err"
	insmod "$ko"
	echo >>"$out/bench.txt"
	"$root/tools/bench/netgpu.sh" >>"$out/bench.txt" 2>>"$out/bench.err"
	touch "$out/done"
	exit 0
fi

if [ "$mode" = demo ]; then
	sim_env
	bytes=67108864
	set -x
	uname -r
	insmod "$ko" || exit 1
	netgpu info
	insmod "$sim_ko" || exit 1
	# A netgpu-sim pair between two namespaces: header/data split is on
	# with threshold 0 from the start; ntuple on; RSS over queues 0-2.
	ip netns add ngsa
	ip netns add ngsb
	IP_LIB_DIR=$NETGPU_IPLIB ip link add ngs0 netns ngsa numrxqueues 4 numtxqueues 4 \
		type netgpu-sim peer name ngs1 netns ngsb
	ip -n ngsa addr add 2001:db8::1/64 dev ngs0 nodad
	ip -n ngsb addr add 2001:db8::2/64 dev ngs1 nodad
	ip -n ngsa link set ngs0 up
	ip -n ngsb link set ngs1 up
	ip netns exec ngsb ethtool -K ngs1 ntuple on
	ip netns exec ngsb ethtool -X ngs1 equal 3
	sleep 1
	# The sample receiver binds queue 3 to a udmabuf through /dev/netgpu,
	# steers the flow there and checks every byte through the memfd.
	ip netns exec ngsb netgpu_recv ngs1 3 2001:db8::2 5201 --bytes $bytes \
		--expect zc >"$out/recv.log" 2>&1 &
	rcv=$!
	sleep 1
	ip netns exec ngsa netgpu_send 2001:db8::2 5201 $bytes
	wait $rcv
	rc=$?
	cat "$out/recv.log"
	ip netns exec ngsb ethtool -S ngs1 | grep -E "rx3_(packets|hds_bytes|unreadable_packets)"
	ip netns del ngsa
	ip netns del ngsb
	rmmod netgpu_sim
	rmmod netgpu
	set +x
	if [ "$rc" -ne 0 ]; then
		echo "demo: netgpu receive FAILED (exit $rc)"
		exit 1
	fi
	echo "demo: $(sed -n 's/^received \([0-9]*\) bytes.*/\1/p' "$out/recv.log") bytes of TCP payload landed in a udmabuf through netgpu on queue 3 of netgpu-sim, every byte verified"
	echo "demo: ok"
	touch "$out/done"
	exit 0
fi

# Leaks before this point are not ours.
echo clear >/sys/kernel/debug/kmemleak 2>/dev/null
dmesg --notime >"$out/dmesg.boot"
boot_lines=$(wc -l <"$out/dmesg.boot")

# --- KUnit: the modules' suites run when they load ---
if ! insmod "$ko" 2>"$out/insmod.err" || ! insmod "$sim_ko" 2>>"$out/insmod.err"; then
	record "FAIL kunit/insmod: $(cat "$out/insmod.err")"
else
	dmesg --notime | tail -n +"$((boot_lines + 1))" >"$out/dmesg.kunit"
	# Test cases are the indented result lines inside a netgpu suite.
	awk '
		/^ *# Subtest: / { suite = $3; next }
		suite ~ /^netgpu/ && /^    (not )?ok [0-9]+ / {
			skip = ($0 ~ /# SKIP/)
			sub(/ # SKIP.*/, "")
			st = ($1 == "ok") ? (skip ? "SKIP" : "PASS") : "FAIL"
			name = ($1 == "ok") ? $3 : $4
			print st, "kunit/" suite "." name
			n++
		}
		/^not ok [0-9]+ netgpu/ { print "FAIL kunit/" $4 ": suite failed"; n++ }
		END { if (n == 0) print "FAIL kunit/no-results: no netgpu KUnit results in dmesg" }
	' "$out/dmesg.kunit" >>"$results"
	rmmod netgpu_sim || record "FAIL kunit/rmmod-netgpu_sim"
	rmmod netgpu || record "FAIL kunit/rmmod"
fi

# --- kselftests ---
sim_env
timeout=$(sed -n 's/^timeout=//p' "$sel/settings")
progs=$(sed -n 's/^TEST_PROGS := //p; s/^TEST_GEN_PROGS := //p' "$sel/Makefile")
# A development run may select programs (check.sh TESTS=...).
[ -s "$out/only" ] && progs=$(cat "$out/only")
for p in $progs; do
	exe=$sel/$p
	[ -x "$exe" ] || exe=$bin/$p
	NETGPU_KO=$ko NETGPU_CLI=$bin/netgpu timeout "$timeout" "$exe" >"$out/$p.tap" 2>&1
	rc=$?
	sed "s/^/    /" "$out/$p.tap"
	awk -v p="$p" '
		/^ok [0-9]+ .*# SKIP/ { sub(/^ok [0-9]+ /, ""); r = $0; sub(/ # SKIP.*/, "", $0);
			sub(/.*# SKIP */, "", r); print "SKIP " p "/" $0 ": " r; n++; next }
		/^ok [0-9]+ / { print "PASS " p "/" $3; n++; next }
		/^not ok [0-9]+ / { print "FAIL " p "/" $4; n++; bad++; next }
		/^1\.\.0 # SKIP/ { sub(/^1\.\.0 # SKIP */, ""); print "SKIP " p ": " $0; n++ }
		END { exit (n == 0) }
	' "$out/$p.tap" >>"$results" || record "FAIL $p: no TAP results (exit $rc)"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 4 ] && ! grep -q "^not ok" "$out/$p.tap"; then
		record "FAIL $p: exit status $rc"
	fi
done

# --- teardown and kernel health ---
grep -q '^netgpu_sim ' /proc/modules && { rmmod netgpu_sim || record "FAIL final-rmmod-netgpu_sim"; }
grep -q '^netgpu ' /proc/modules && { rmmod netgpu || record "FAIL final-rmmod"; }
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports objects unreferenced for a few seconds: scan twice.
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak"
	if [ -s "$out/kmemleak" ]; then
		record "FAIL health/kmemleak: $(grep -c unreferenced "$out/kmemleak") leaks, see kmemleak"
	else
		record "PASS health/kmemleak"
	fi
else
	record "FAIL health/kmemleak: /sys/kernel/debug/kmemleak not available"
fi
dmesg --notime >"$out/dmesg"
splats='WARNING:|BUG:|Oops|kernel BUG|general protection|possible recursive locking|possible circular locking|inconsistent lock state|suspicious RCU usage|refcount_t:|UBSAN|list_add corruption|list_del corruption|KFENCE|unreferenced object|Call Trace'
if tail -n +"$((boot_lines + 1))" "$out/dmesg" | grep -E "$splats" >"$out/splats"; then
	record "FAIL health/dmesg: $(head -n1 "$out/splats")"
else
	record "PASS health/dmesg"
fi
touch "$out/done"
