#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel tree's own test programs that netgpu's tests run against
# netgpu-sim, from tools/testing/selftests/drivers/net/hw: ncdevmem (devmem
# TCP) and iou-zcrx (io_uring zero-copy receive). They are the kernel's
# programs, built from KDIR at test time, not copies. iou-zcrx needs liburing
# >= 2.10 (Debian 12 has 2.3): Debian sid's liburing-dev is fetched through a
# private apt configuration and linked statically.
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
if [ -x "$dest/ncdevmem" ] && [ -x "$dest/iou-zcrx" ]; then
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
log "fetching liburing from Debian sid"
apt=$NETGPU_CACHE/apt-sid
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
	>"$apt/sources.list"
aopt=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=-
	-o Dir::State::Lists="$apt/lists" -o Dir::State::status=/dev/null
	-o Dir::Cache="$apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get -qq "${aopt[@]}" update >&2
(cd "$work/debs" && apt-get -qq "${aopt[@]}" download liburing-dev liburing2 >&2)
for d in "$work"/debs/*.deb; do dpkg -x "$d" "$work/prefix"; done
log "building iou-zcrx"
# The Makefile's liburing probe fails under dash (echo -e) and --as-needed,
# so give the library explicitly; liburing's headers want new uapi headers.
make -C "$work/src/tools/testing/selftests/drivers/net/hw" OUTPUT="$work/out" \
	CC="gcc -isystem $work/src/usr/include -I$work/prefix/usr/include" \
	LDLIBS="$work/prefix/usr/lib/x86_64-linux-gnu/liburing.a" \
	"$work/out/iou-zcrx" >>"$work/build.log" 2>&1 || {
	tail -20 "$work/build.log" >&2
	exit 1
}
mkdir -p "$dest"
install -m 0755 "$work/out/ncdevmem" "$work/out/iou-zcrx" "$dest/"
rm -rf "$work"
echo "$dest"
