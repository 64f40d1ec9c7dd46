# SPDX-License-Identifier: GPL-2.0
"""Network namespace helpers for the Python test drivers in tools/lib.

One Python process can own sockets in several network namespaces: a socket
belongs to the namespace its creating thread was in, and stays there when
the thread moves on. So a driver can script both ends of a connection (the
client in one namespace, the real server in another) step by step, without
the cost and the races of one process per end.

  with netns("ipvst-client-..."):       # a name from /run/netns
      s = socket.socket(...)            # s lives in that namespace
  run_in("ipvst-director-...", ["ipvsadm", "-Ln"])  # a command there

Python 3.11 has no os.setns, so setns(2) is called through ctypes.
"""
import contextlib
import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def _ns_path(name):
    return name if name.startswith("/") else "/run/netns/" + name


@contextlib.contextmanager
def netns(name):
    """Run the body in network namespace NAME, then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(_ns_path(name), os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def run_in(name, argv, **kw):
    """subprocess.run(argv) in namespace NAME (the child inherits it);
    text output captured unless the caller says otherwise."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    with netns(name):
        return subprocess.run(argv, check=False, **kw)
