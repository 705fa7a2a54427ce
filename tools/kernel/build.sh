#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare the netgpu test kernel: fetch Debian's linux-source-7.3 (any 7.3.x,
# trixie-backports first, then sid) through a private apt configuration,
# unpack it, apply patches/series, write .config from allnoconfig plus
# tools/kernel/netgpu.config, and build it.  The built tree is cached under
# $NETGPU_CACHE/kernel/<key>, where <key> hashes the exact kernel version,
# the patches, the config fragment and this script; an unchanged second run
# does nothing.  Prints the tree's path on stdout (everything else on stderr).
#
# Usage: build.sh [--print]   --print: print the path only if already built
#
# NETGPU_KERNEL=bench selects the benchmark kernel instead: the same fragment
# with tools/kernel/bench.config on top, which turns the debug options off.
# It is cached beside the test kernel, as <version>-bench-<key>.
#
# KDIR=/path/to/linux overrides all of this: that tree (built, with
# CONFIG_RUST and patches/ applied) is checked and printed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/env.sh
. "$ROOT/tools/env.sh"
CACHE=$NETGPU_CACHE
SERIES=7.3
PKG=linux-source-$SERIES
JOBS=${JOBS:-$(nproc)}
FLAVOR=${NETGPU_KERNEL:-test}
FRAGMENTS=("$ROOT/tools/kernel/netgpu.config")
case "$FLAVOR" in
test) ;;
bench) FRAGMENTS+=("$ROOT/tools/kernel/bench.config") ;;
*) echo "kernel: error: NETGPU_KERNEL=$FLAVOR: use test or bench" >&2; exit 1 ;;
esac

log() { echo "kernel: $*" >&2; }
die() { echo "kernel: error: $*" >&2; exit 1; }

APT_DIR=$CACHE/apt
apt_opts() {
	echo -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
	     -o Dir::Etc::SourceParts=- \
	     -o Dir::State::Lists="$APT_DIR/lists" \
	     -o Dir::State::status=/dev/null \
	     -o Dir::Cache="$APT_DIR/cache" \
	     -o Debug::NoLocking=1 \
	     -o APT::Sandbox::User=root
}

# Refresh the private package lists at most once a day.
refresh_lists() {
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
	local kr=/usr/share/keyrings/debian-archive-keyring.gpg
	cat >"$APT_DIR/sources.list" <<-SRC
	deb [signed-by=$kr] http://deb.debian.org/debian trixie-backports main
	deb [signed-by=$kr] http://deb.debian.org/debian sid main
	SRC
	local stamp=$APT_DIR/lists/.updated
	if [ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ] && [ -z "${NETGPU_REFRESH:-}" ]; then
		return 0
	fi
	log "refreshing private package lists (trixie-backports, sid)"
	# shellcheck disable=SC2046
	if apt-get -qq $(apt_opts) update >&2; then
		touch "$stamp"
	else
		log "apt-get update failed; using the lists already cached, if any"
	fi
}

resolve_version() {
	# shellcheck disable=SC2046
	apt-cache $(apt_opts) policy "$PKG" 2>/dev/null |
		awk '/Candidate:/ { if ($2 != "(none)") print $2 }'
}

built_tree_for() {
	local ver=$1 h name=$1
	[ "$FLAVOR" = test ] || name=$ver-$FLAVOR
	h=$( {
		echo "$PKG $ver"
		cat "$0" "${FRAGMENTS[@]}" "$ROOT/patches/series"
		while read -r p; do
			case "$p" in ''|'#'*) continue ;; esac
			cat "$ROOT/patches/$p"
		done <"$ROOT/patches/series"
	} | sha256sum | cut -c1-16)
	echo "$CACHE/kernel/$name-$h"
}

# The fragments' settings, a later fragment's overriding an earlier's.
settings() {
	awk '/^CONFIG_[A-Za-z0-9_]+=/ {
		sym = substr($0, 1, index($0, "=") - 1)
		if (!(sym in line)) order[n++] = sym
		line[sym] = $0
	} END { for (i = 0; i < n; i++) print line[order[i]] }' "${FRAGMENTS[@]}"
}

configure() {
	cd "$TREE"
	"${MAKE[@]}" allnoconfig >&2
	scripts/kconfig/merge_config.sh -m -O . .config "${FRAGMENTS[@]}" >/dev/null
	"${MAKE[@]}" olddefconfig >&2
	local missing=0 line sym
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=n) sym=${line%%=*}
			grep -q "^$sym=" .config && { log "config: $sym is still set"; missing=1; } ;;
		CONFIG_*=*) grep -qxF "$line" .config || { log "config: $line did not stick"; missing=1; } ;;
		esac
	done < <(settings)
	[ "$missing" -eq 0 ] || die "config fragment did not apply (see above)"
	"${MAKE[@]}" rustavailable >&2 || die "Rust toolchain not usable for $PKG $VER (run tools/setup-host.sh)"
}

MAKE=(make -s "-j$JOBS")
if [ -n "${KDIR:-}" ]; then
	[ -d "$KDIR" ] || die "KDIR=$KDIR is not a directory"
	KDIR=$(cd "$KDIR" && pwd)
	grep -qx CONFIG_RUST=y "$KDIR/.config" 2>/dev/null ||
		die "KDIR=$KDIR: not a configured tree with CONFIG_RUST=y"
	[ -f "$KDIR/Module.symvers" ] || die "KDIR=$KDIR: not built (no Module.symvers)"
	grep -q "netif_mp_open_rxq" "$KDIR/Module.symvers" ||
		log "warning: KDIR=$KDIR lacks patches/ (netif_mp_open_rxq is not exported)"
	echo "$KDIR"
	exit 0
fi

refresh_lists
VER=$(resolve_version)
[ -n "$VER" ] || die "no $PKG package found in Debian trixie-backports or sid (tried http://deb.debian.org/debian trixie-backports and sid main, lists in $APT_DIR/lists)"
TREE=$(built_tree_for "$VER")

if [ -f "$TREE/.netgpu-built" ]; then
	echo "$TREE"
	exit 0
fi
[ "${1:-}" = --print ] && die "kernel $VER not built yet: run 'make kernel'"

# --- fetch ---
DEB_DIR=$CACHE/debs
mkdir -p "$DEB_DIR"
DEB=$DEB_DIR/${PKG}_${VER}_all.deb
if ! [ -f "$DEB" ]; then
	log "downloading $PKG $VER"
	# shellcheck disable=SC2046
	(cd "$DEB_DIR" && apt-get -qq $(apt_opts) download "$PKG=$VER" >&2) ||
		die "apt-get download $PKG=$VER failed"
	[ -f "$DEB" ] || die "apt-get download did not leave $DEB"
fi

# --- unpack, patch, configure (resumable: a tree left by an interrupted
# build is reused once it was fully prepared) ---
if ! [ -f "$TREE/.netgpu-prepared" ]; then
	rm -rf "$TREE"
	mkdir -p "$TREE"
	log "unpacking $(basename "$DEB")"
	dpkg-deb --fsys-tarfile "$DEB" |
		tar -xO "./usr/src/$PKG.tar.xz" |
		tar -xJ -C "$TREE" --strip-components=1
	while read -r p; do
		case "$p" in ''|'#'*) continue ;; esac
		log "applying $p"
		(cd "$TREE" && patch -p1 -s --forward <"$ROOT/patches/$p") ||
			die "patch $p does not apply to $PKG $VER"
	done <"$ROOT/patches/series"
	configure
	touch "$TREE/.netgpu-prepared"
fi
cd "$TREE"

# --- build ---
log "building $PKG $VER ($FLAVOR kernel) with $JOBS jobs (cold build: ~14 minutes on 2 cores)"
start=$(date +%s)
"${MAKE[@]}" >&2
log "built in $(( $(date +%s) - start ))s"
touch "$TREE/.netgpu-built"
echo "$TREE"
