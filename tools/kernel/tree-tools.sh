#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel tree's own test programs that netgpu's tests run against
# netgpu-sim: ncdevmem (devmem TCP, tools/testing/selftests/drivers/net/hw).
# They are the kernel's programs, built from KDIR at test time, not copies.
# The YNL build writes generated files into tools/net/ynl, so it runs in a
# private copy of the parts of the tree it needs. Output is cached in
# $NETGPU_CACHE/tree-tools/<key>; prints that folder on stdout.
#
# Usage: tree-tools.sh KDIR
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/env.sh
. "$ROOT/tools/env.sh"
kdir=$(cd "$1" && pwd)
log() { echo "tree-tools: $*" >&2; }

key=$( { echo "$kdir"; cat "$0"; cat "$kdir/include/config/kernel.release" 2>/dev/null || true; } | sha256sum | cut -c1-16)
dest=$NETGPU_CACHE/tree-tools/$key
if [ -x "$dest/ncdevmem" ]; then
	echo "$dest"
	exit 0
fi

work=$NETGPU_CACHE/tree-tools/work-$key
rm -rf "$work"
mkdir -p "$work/src/include" "$work/src/Documentation" "$work/src/usr" "$work/out"
log "installing uapi headers"
make -s -C "$kdir" headers_install INSTALL_HDR_PATH="$work/hdr" >&2
log "copying the tree's tools/ (the YNL build writes into it)"
cp -a "$kdir/tools" "$work/src/"
cp -a "$kdir/include/uapi" "$work/src/include/"
cp -a "$kdir/Documentation/netlink" "$work/src/Documentation/"
# ynl_gen_c.py finds the tree root by MAINTAINERS (and loops without it).
cp -a "$kdir/MAINTAINERS" "$work/src/"
cp -a "$work/hdr/include" "$work/src/usr/include"
log "building ncdevmem"
make -C "$work/src/tools/testing/selftests/drivers/net/hw" OUTPUT="$work/out" \
	"$work/out/ncdevmem" >"$work/build.log" 2>&1 || {
	tail -20 "$work/build.log" >&2
	exit 1
}
mkdir -p "$dest"
install -m 0755 "$work/out/ncdevmem" "$dest/"
rm -rf "$work"
echo "$dest"
