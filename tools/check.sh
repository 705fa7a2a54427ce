#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# "make check": build the test kernel (cached), netgpu.ko and the tools,
# run the lints and host tests, then boot the VM and run the kselftests and
# the module's KUnit suites there. Prints every test case, then one line
# "N passed, N failed, N skipped"; skips are never counted as passes. Exits
# non-zero on any failure.
#
# TESTS="prog ..." (e.g. make check TESTS=netgpu_ioctl) runs only those
# kselftest programs in the VM, for development; the summary then says so.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/out/check
rm -rf "$out"
mkdir -p "$out"
results=$out/results.all
: >"$results"
t0=$(date +%s)

stage() { echo "check: $* ($(( $(date +%s) - t0 ))s)" >&2; }
fatal() { # a build step failed: report it as a failure and stop
	echo "FAIL $1" >>"$results"
	summary
	exit 1
}
summary() {
	echo
	echo "Test results:"
	sed 's/^/  /' "$results"
	local p f s
	p=$(grep -c '^PASS ' "$results")
	f=$(grep -c '^FAIL ' "$results")
	s=$(grep -c '^SKIP ' "$results")
	echo "check: finished in $(( $(date +%s) - t0 ))s"
	echo "$p passed, $f failed, $s skipped"
}

stage "kernel"
kdir=$("$root/tools/kernel/build.sh") || fatal "build/kernel"
stage "kernel tree: $kdir"

stage "lints"
"$root/tools/lint.sh" "$kdir" "$results"

stage "netgpu.ko, netgpu_sim.ko"
make -C "$kdir" M="$root" modules >&2 || fatal "build/modules"

stage "tools"
cargo build --quiet --release --manifest-path "$root/tools/Cargo.toml" >&2 ||
	fatal "build/tools"

stage "the kernel tree's test programs (ncdevmem, iou-zcrx)"
tt=$("$root/tools/kernel/tree-tools.sh" "$kdir") || fatal "build/tree-tools"
ln -sfn "$tt" "$root/out/tree-tools"

stage "iproute2 plugin"
"$root/tools/iproute2/install.sh" "$root/out/iplib" >&2 || fatal "build/iproute2-plugin"

stage "host tests"
cargo test --release --manifest-path "$root/tools/Cargo.toml" --workspace \
	>"$out/cargo-test.log" 2>&1
sed -n 's/^test \(.*\) \.\.\. ok$/PASS host\/\1/p; s/^test \(.*\) \.\.\. FAILED$/FAIL host\/\1/p; s/^test \(.*\) \.\.\. ignored$/SKIP host\/\1: ignored/p' \
	"$out/cargo-test.log" >>"$results"
grep -q "^test result: " "$out/cargo-test.log" || {
	cat "$out/cargo-test.log" >&2
	fatal "host/cargo-test: did not run"
}

stage "VM tests"
mkdir -p "$out/vm"
if [ -n "${TESTS:-}" ]; then
	echo "$TESTS" >"$out/vm/only"
	echo "SKIP selection: only the kselftests $TESTS ran" >>"$results"
fi
if "$root/tools/vm/run.sh" "$kdir" "$out/vm" check >&2; then
	cat "$out/vm/results" >>"$results"
else
	[ -f "$out/vm/results" ] && cat "$out/vm/results" >>"$results"
	echo "FAIL vm/boot: the guest did not finish" >>"$results"
fi
if grep -q '^FAIL health/dmesg' "$results"; then
	echo "check: kernel log problems:" >&2
	cat "$out/vm/splats" >&2
fi

summary
! grep -q '^FAIL ' "$results"
