#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything a fresh Debian 12 machine lacks to build the netgpu test
# kernel, the module and the tools, and to boot the test VM.  Idempotent and
# quiet when everything is already in place.
set -euo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"

log() { echo "setup: $*" >&2; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

DEB_PKGS=(
	build-essential bc bison flex cpio kmod rsync xz-utils zstd
	libelf-dev libssl-dev python3-pip python3-yaml python3-jsonschema
	qemu-system-x86 busybox-static iproute2 ethtool udev
)

missing=()
for p in "${DEB_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null; then
	log "rustup not found: netgpu needs the machine's Rust toolchain (rustup)" >&2
	exit 1
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "adding rust-src"
	rustup component add rust-src >/dev/null
fi

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! [ -x "$CARGO_BIN/bindgen" ]; then
	log "installing bindgen-cli (a few minutes)"
	cargo install --locked --quiet bindgen-cli
fi

# libclang >= 17 for bindgen (Debian 12 ships 14): the PyPI wheel carries it.
PY_PREFIX="$NETGPU_CACHE/py"
if ! [ -f "$PY_PREFIX/.done-libclang-18.1.1" ]; then
	log "installing libclang 18.1.1 wheel into $PY_PREFIX"
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--target "$PY_PREFIX/libclang" libclang==18.1.1
	touch "$PY_PREFIX/.done-libclang-18.1.1"
fi

if ! command -v vng >/dev/null; then
	log "installing virtme-ng"
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore virtme-ng
fi
exit 0
