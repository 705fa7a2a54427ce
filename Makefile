# SPDX-License-Identifier: GPL-2.0
#
# netgpu: user entry points.  The module itself is built by Kbuild (see
# Kbuild); this Makefile prepares the kernel tree, the tools and the VM.
#
#   make demo     boot the test VM, load netgpu, show it working
#   make bench    benchmarks in the test VM (netgpu-sim datapath vs memcpy)
#   make check    build everything, run all tests (lints, host, VM)
#   make          build netgpu.ko (and the test kernel if KDIR is unset)
#   make KDIR=/path/to/linux   build against your own configured tree
#   make kdir     print the kernel tree in use
#   make lint     clippy, rustfmt, checkpatch
#   make tools    build the user space tools (cargo workspace in tools/)

SHELL := /bin/bash
ROOT := $(CURDIR)
ENV := source $(ROOT)/tools/env.sh
# The kernel tree: KDIR if given, else the cached test kernel (built if
# needed); tools/kernel/build.sh decides and prints it.
export KDIR
KDIR_CMD := $(ROOT)/tools/kernel/build.sh
KMAKE = $(MAKE) -C "$$kdir" M=$(ROOT)

.PHONY: all modules setup kernel kdir tools lint check demo bench clean

all: modules

setup:
	@$(ROOT)/tools/setup-host.sh

kernel: setup
	@$(ENV); $(KDIR_CMD) >/dev/null

kdir:
	@$(ENV); $(KDIR_CMD)

modules: kernel
	@$(ENV); kdir=$$($(KDIR_CMD)) && $(KMAKE) modules

tools: setup
	@$(ENV); cargo build --quiet --release --manifest-path $(ROOT)/tools/Cargo.toml

lint: kernel
	@$(ENV); $(ROOT)/tools/lint.sh "$$($(KDIR_CMD))"

check: setup
	@$(ENV); $(ROOT)/tools/check.sh

demo: setup
	@$(ENV); $(ROOT)/tools/demo.sh

bench: setup
	@$(ENV); $(ROOT)/tools/bench/run.sh

clean:
	@$(ENV); kdir=$$($(KDIR_CMD) --print 2>/dev/null) && [ -n "$$kdir" ] && \
		$(KMAKE) clean || true
	rm -rf $(ROOT)/tools/target $(ROOT)/out
