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
case ":$PATH:" in
*":$HOME/.local/bin:"*) ;;
*) PATH=$HOME/.local/bin:$PATH ;;
esac
export PATH
