#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the iproute2 plugin for netgpu-sim and install it as DIR/link_netgpu-sim.so.
# Use it with: IP_LIB_DIR=DIR ip link add ... type netgpu-sim peer name ...
# Usage: install.sh DIR
set -eu
dir=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --quiet --release --manifest-path "$root/tools/Cargo.toml" -p ip-link-netgpu-sim
mkdir -p "$dir"
install -m 0755 "$root/tools/target/release/liblink_netgpu_sim.so" "$dir/link_netgpu-sim.so"
