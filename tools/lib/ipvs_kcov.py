#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""KCOV coverage of the calling thread, for fuzzers on the kasan kernel.

  from ipvs_kcov import Kcov, module_range
  with Kcov() as k:          # /sys/kernel/debug/kcov, KCOV_TRACE_PC
      ...system calls...
      pcs = k.pcs()          # the PCs (edges) this thread went through

The kasan kernel variant has KCOV without instrumenting the kernel itself;
Kbuild instruments our modules, so the PCs are those of ip_vs.ko and the
schedulers (module_range("ip_vs") gives the text range of one module from
/proc/kallsyms).

Run as a script, it reads the IPVS version, info and timeouts through
getsockopt under KCOV and prints "pcs=N module=M" (M: PCs inside ip_vs),
which selftests/kcov.sh checks.
"""
import ctypes
import fcntl
import mmap
import os
import socket
import struct
import sys

KCOV_PATH = "/sys/kernel/debug/kcov"
KCOV_INIT_TRACE = 0x80086301   # _IOR('c', 1, unsigned long)
KCOV_ENABLE = 0x6364           # _IO('c', 100)
KCOV_DISABLE = 0x6365          # _IO('c', 101)
KCOV_TRACE_PC = 0
WORD = 8


class Kcov:
    """One KCOV buffer of `words` entries, enabled for this thread."""

    def __init__(self, words=1 << 18):
        self.words = words
        self.fd = os.open(KCOV_PATH, os.O_RDWR)
        fcntl.ioctl(self.fd, KCOV_INIT_TRACE, words)
        # Python's mmap refuses a length beyond the file's size, which is
        # 0 for debugfs files: map with libc.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_long)
        libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        addr = libc.mmap(None, words * WORD, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_SHARED, self.fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.libc = libc
        self.addr = addr
        self.buf = (ctypes.c_uint64 * words).from_address(addr)

    def __enter__(self):
        fcntl.ioctl(self.fd, KCOV_ENABLE, KCOV_TRACE_PC)
        self.reset()
        return self

    def __exit__(self, *exc):
        fcntl.ioctl(self.fd, KCOV_DISABLE, 0)
        self.buf = None
        self.libc.munmap(self.addr, self.words * WORD)
        os.close(self.fd)

    def reset(self):
        """Forget what was collected so far."""
        self.buf[0] = 0

    def pcs(self):
        """The PCs collected since the last reset, in order."""
        n = min(self.buf[0], self.words - 1)
        return list(self.buf[1:n + 1])


def module_range(name):
    """(lowest, highest) text address of module `name` in /proc/kallsyms."""
    lo, hi = None, None
    tag = "[%s]" % name
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[3] == tag and parts[1] in "tT":
                a = int(parts[0], 16)
                lo = a if lo is None else min(lo, a)
                hi = a if hi is None else max(hi, a)
    return lo, hi


def main():
    base = 64 + 1024 + 64   # IP_VS_BASE_CTL
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with Kcov() as k:
        # GET_VERSION, GET_INFO, GET_TIMEOUT (errors are coverage too).
        for opt, size in ((base, 64), (base + 1, 12), (base + 6, 12)):
            try:
                s.getsockopt(socket.IPPROTO_IP, opt, size)
            except OSError:
                pass
        pcs = k.pcs()
    lo, hi = module_range("ip_vs")
    inside = 0
    if lo is not None:
        inside = sum(1 for p in pcs if lo <= p <= hi + 4096)
    print("pcs=%d module=%d distinct=%d" % (len(pcs), inside, len(set(pcs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
