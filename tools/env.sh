# SPDX-License-Identifier: GPL-2.0
# Sourced by the Makefile's recipes and the scripts: where the toolchain
# pieces installed by tools/setup-host.sh live.
NETGPU_CACHE=${NETGPU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netgpu}
export NETGPU_CACHE
export LIBCLANG_PATH=${LIBCLANG_PATH:-$NETGPU_CACHE/py/libclang/clang/native}
case ":$PATH:" in
*":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
*) PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH ;;
esac
# Where pip puts console scripts (virtme-ng's vng) for this python3.
py_scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)
for d in "$HOME/.local/bin" $py_scripts; do
	case ":$PATH:" in
	*":$d:"*) ;;
	*) PATH=$PATH:$d ;;
	esac
done
unset py_scripts d
export PATH
