# SPDX-License-Identifier: GPL-2.0
#
# Rust IPVS: top-level targets. (The kernel build of the modules reads
# Kbuild, not this file.)
#
#   make / make all   tools/setup + kernel (tools/build-kernel) + modules
#   make modules      build ipvs/ip_vs.ko and schedulers/ip_vs_*.ko
#   make check        all + host tests + the selftests in one VM boot;
#                     ends with "N passed, N failed"
#   make demo         all + tools/demo in the VM
#   make install      install the modules on a machine running the patched
#                     kernel (into /lib/modules/$(uname -r)/updates/)
#   make bench        bench kernel + our modules for it (in a copy of the
#                     tree), one VM boot: plain forwarding vs C IPVS vs ours;
#                     writes Documentation/bench-results.{rst,png,tsv}
#                     (not part of check; BENCH_ARGS="--reps 5 ..." for
#                     tools/bench)
#   make fuzz         all + one VM boot: the crash corpus (tools/fuzz-corpus),
#                     then tools/ipvs-fuzz-ctl (root and unprivileged) and
#                     tools/ipvs-fuzz-pkt side by side for FUZZ_TIME seconds
#                     each (default 600); reports executions and crashes
#                     (FUZZ_SEED, FUZZ_AVOID, FUZZ_OUT, FUZZ_ARGS for tools/fuzz)
#   make clean        clean the module build (never the kernel cache)
#
# Variables: KDIR (a kernel build directory, instead of tools/build-kernel),
# VARIANT (debug|bench|kasan, default debug; kasan: KASAN + UBSAN kernel,
# rebuild the modules when switching), IMPL (rust|c: the IPVS the VM tests
# run against, default rust).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

VARIANT ?= debug
IMPL ?= rust

# The kernel build directory: given, or built/cached by tools/build-kernel
# (which prints it; a cache hit takes about a second).
KDIR_CMD = $(if $(KDIR),echo "$(KDIR)",$(CURDIR)/tools/build-kernel $(VARIANT))

.PHONY: all setup kernel modules check demo install bench fuzz clean help

all: setup kernel modules

setup:
	@$(CURDIR)/tools/setup

kernel: setup
	@kdir=$$($(KDIR_CMD)) && echo "kernel: $$kdir"

modules: kernel
	@kdir=$$($(KDIR_CMD)) && \
	$(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 modules

check: all
	@kdir=$$($(KDIR_CMD)) && $(CURDIR)/tools/lib/check "$$kdir" $(IMPL)

demo: all
	@kdir=$$($(KDIR_CMD)) && \
	$(CURDIR)/tools/vm-run --impl $(IMPL) --kdir "$$kdir" -- tools/demo

FUZZ_TIME ?= 600
fuzz: all
	@kdir=$$($(KDIR_CMD)) && \
	$(CURDIR)/tools/fuzz --impl $(IMPL) --kdir "$$kdir" --time $(FUZZ_TIME) \
		$(if $(FUZZ_SEED),--seed $(FUZZ_SEED)) $(if $(FUZZ_AVOID),--avoid $(FUZZ_AVOID)) \
		$(if $(FUZZ_OUT),--out $(FUZZ_OUT)) $(FUZZ_ARGS)

# On a machine that runs the patched kernel: build against its build tree
# and install into updates/, which depmod prefers over the in-tree C IPVS.
INSTALL_KDIR ?= /lib/modules/$(shell uname -r)/build
install:
	@test -d "$(INSTALL_KDIR)" || { echo "install: no kernel build tree $(INSTALL_KDIR) (set INSTALL_KDIR)"; exit 1; }
	$(MAKE) -C "$(INSTALL_KDIR)" M=$(CURDIR) LLVM=1 modules
	@rel=$$(uname -r); \
	for ko in ipvs/ip_vs.ko schedulers/ip_vs_*.ko pe/ip_vs_pe_*.ko apps/ip_vs_*.ko; do \
		test -f "$$ko" || continue; \
		vm=$$(modinfo -F vermagic "$$ko" | cut -d' ' -f1); \
		if [ "$$vm" != "$$rel" ]; then echo "install: $$ko is for $$vm, not $$rel"; exit 1; fi; \
	done; \
	install -d "/lib/modules/$$rel/updates" && \
	install -m 0644 ipvs/ip_vs.ko schedulers/ip_vs_*.ko pe/ip_vs_pe_*.ko apps/ip_vs_*.ko "/lib/modules/$$rel/updates/" && \
	depmod -a "$$rel" && \
	echo "installed into /lib/modules/$$rel/updates; load with: modprobe ip_vs"

# Not part of check: it takes the better part of an hour under TCG.
bench: setup
	@$(CURDIR)/tools/bench $(BENCH_ARGS)

clean:
	@kdir="$(KDIR)"; \
	if [ -z "$$kdir" ]; then \
		kdir=$$(ls -d $${RUST_IPVS_CACHE:-$(HOME)/.cache/rust-ipvs}/linux-*-$(VARIANT) 2>/dev/null | tail -1); \
	fi; \
	if [ -n "$$kdir" ] && [ -f "$$kdir/Makefile" ]; then \
		$(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 clean; \
	else \
		echo "clean: no kernel build directory, nothing to clean"; \
	fi

help:
	@sed -n '3,/^[^#]/{/^#/s/^# \{0,1\}//p}' $(CURDIR)/Makefile
