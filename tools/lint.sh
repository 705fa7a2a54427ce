#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lints of netgpu, one result line each ("PASS lint/x" or "FAIL lint/x"),
# details on stderr. Usage: lint.sh KDIR [RESULTS_FILE]
set -u
kdir=$1
results=${2:-/dev/stdout}
root=$(cd "$(dirname "$0")/.." && pwd)
# Sources of an O= build tree are behind its "source" link.
ksrc=$kdir
[ -e "$kdir/source" ] && ksrc=$(readlink -f "$kdir/source")
rc=0

lint() { # lint NAME CMD...
	local name=$1 log
	shift
	log=$(mktemp)
	if "$@" >"$log" 2>&1; then
		echo "PASS lint/$name" >>"$results"
	else
		echo "FAIL lint/$name" >>"$results"
		sed "s/^/lint\/$name: /" "$log" >&2
		rc=1
	fi
	rm -f "$log"
}

# Kernel crate: clippy through Kbuild, warnings are errors.
clippy_module() {
	local log
	log=$(make -C "$kdir" M="$root" CLIPPY=1 KCLIPPYFLAGS=-Dwarnings W=1 modules 2>&1 |
		tee /dev/stderr) || return 1
	! grep -E "^(warning|error)" <<<"$log"
}
# Force a rebuild so clippy sees every file.
touch "$root/netgpu.rs"
lint clippy-module clippy_module

lint rustfmt-module rustfmt --edition 2021 --check --config-path "$ksrc/.rustfmt.toml" "$root/netgpu.rs" "$root/sim/netgpu_sim.rs"
lint rustfmt-tools cargo fmt --manifest-path "$root/tools/Cargo.toml" --all --check
lint clippy-tools cargo clippy --quiet --manifest-path "$root/tools/Cargo.toml" \
	--all-targets -- -D warnings

checkpatch() {
	local p fail=0
	for p in "$root"/patches/*.patch; do
		"$ksrc/scripts/checkpatch.pl" --strict --no-tree -q "$p" || fail=1
	done
	return $fail
}
lint checkpatch-patches checkpatch
lint checkpatch-uapi "$ksrc/scripts/checkpatch.pl" --strict --no-tree -q -f \
	"$root/uapi/linux/netgpu.h"
exit $rc
