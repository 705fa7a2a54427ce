#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build everything a VM run needs: the test kernel (cached), the modules, the
# tools, the kernel tree's test programs and the iproute2 plugin (both under
# out/). Prints the kernel tree's path on stdout.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
kdir=$("$root/tools/kernel/build.sh")
make -s -C "$kdir" M="$root" modules >&2
cargo build --quiet --release --manifest-path "$root/tools/Cargo.toml" >&2
mkdir -p "$root/out"
ln -sfn "$("$root/tools/kernel/tree-tools.sh" "$kdir")" "$root/out/tree-tools"
"$root/tools/iproute2/install.sh" "$root/out/iplib" >&2
echo "$kdir"
