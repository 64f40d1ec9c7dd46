# SPDX-License-Identifier: GPL-2.0
"""Shared parts of the IPVS fuzzers (tools/ipvs-fuzz-ctl, tools/ipvs-fuzz-pkt).

Both fuzzers turn a seed into a sequence of operations, each one a JSON
object. Before an operation runs, it is written to the log as one line,
flushed and fsync'd: after a guest crash the last line on the host is the
operation that was running. After it ran, a result line {"r": N, "e": ...}
follows (the errno name, "OK", or a short outcome). A log replays
(--replay LOG) by running its operations again in order; the first line is
a header that names the fuzzer and how it ran (user, seed, options).

The log lines are the whole reproducer: every operation carries its exact
bytes, so a replay needs neither the seed nor the generator of the version
that wrote it.
"""
import ctypes
import errno
import json
import os
import random
import signal
import sys
import time

LOG_VERSION = 1

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

U32_EXTREMES = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFE, 0x80000001,
                0x10000, 0xFFFF, 0x100, 1000, 86400, 0x00FFFFFF]
U16_EXTREMES = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0xFFFE, 0xFF, 0x100]


def errname(e):
    """The symbolic name of errno value E ("EINVAL"), or "E<n>"."""
    return errno.errorcode.get(e, "E%d" % e)


def u32_extreme(rng):
    """An extreme or random 32-bit value."""
    if rng.random() < 0.8:
        return rng.choice(U32_EXTREMES)
    return rng.getrandbits(32)


class OpLog:
    """The operation log: one JSON line per operation, written and synced
    before the operation runs; result lines after it."""

    def __init__(self, path=None, fd=None, sync=True):
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.fd = fd
        self.sync = sync
        self.pending = b""

    def _write(self, obj, sync):
        # One write per operation: on the shared 9p directory of the VM,
        # every write is a round trip to the host (~15 ms under TCG).
        data = self.pending + (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.pending = b""
        while data:
            n = os.write(self.fd, data)
            data = data[n:]
        if sync and self.sync:
            try:
                os.fsync(self.fd)
            except OSError:
                pass

    def header(self, obj):
        """The first line: which fuzzer, how it ran."""
        self._write(obj, True)

    def op(self, obj):
        """Record OBJ (with its "n") before it runs (with the previous result)."""
        self._write(obj, True)

    def ops(self, objs):
        """Record several operations in one write, before the first runs."""
        data = b"".join((json.dumps(o, separators=(",", ":")) + "\n").encode() for o in objs[:-1])
        self.pending += data
        self._write(objs[-1], True)

    def result(self, n, res):
        """Record the outcome of operation N; written with the next line."""
        self.pending += (json.dumps({"r": n, "e": res}, separators=(",", ":")) + "\n").encode()

    def note(self, text):
        """A comment line ({"#": text}), ignored by replay."""
        self._write({"#": text}, True)

    def close(self):
        """Write what is pending, sync and close."""
        if self.pending:
            os.write(self.fd, self.pending)
            self.pending = b""
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        os.close(self.fd)


def read_log(path):
    """(header, ops, results) of the log at PATH: ops in order, results as
    {n: outcome}. Lines that do not parse (a torn last line) are skipped."""
    header = None
    ops = []
    results = {}
    with open(path, "rb") as f:
        for raw in f:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if header is None and ("fuzz" in obj):
                header = obj
            elif "r" in obj:
                results[obj["r"]] = obj.get("e")
            elif "op" in obj:
                ops.append(obj)
    return header or {}, ops, results


def seed_from(arg):
    """The seed given (decimal or 0x...) or a fresh one."""
    if arg is None:
        return random.SystemRandom().getrandbits(32)
    return int(arg, 0)


def drop_to_userns(uid=65534, gid=65534):
    """Become UID/GID without any capability, then enter a new user and
    network namespace in which this (unprivileged) user is root: what
    `setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urn` does."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # Changing credentials made us non-dumpable, which gives /proc/self to
    # root; unshare -U (as a fresh unprivileged process) would be dumpable.
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "unshare(CLONE_NEWUSER|CLONE_NEWNET): " + os.strerror(e))
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write("0 %d 1" % uid)
    with open("/proc/self/gid_map", "w") as f:
        f.write("0 %d 1" % gid)


def new_netns():
    """Enter a new network namespace (as root)."""
    if libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "unshare(CLONE_NEWNET): " + os.strerror(e))


def lo_up():
    """Bring lo up in the current network namespace (SIOCSIFFLAGS)."""
    import fcntl
    import socket
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
        ifr = struct.pack("16sh14x", b"lo", flags | 1)  # IFF_UP
        fcntl.ioctl(s, 0x8914, ifr)  # SIOCSIFFLAGS
    finally:
        s.close()


def run_worker(fn, user, ns):
    """Run FN() in a child process as USER ("root" or "nobody") in a new
    network namespace (NS "new") or this one ("current"); return its exit
    status as a string ("exit 0", "signal 9 (SIGKILL)")."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if user == "nobody":
                drop_to_userns()
            elif ns == "new":
                new_netns()
            lo_up()
            code = fn()
        except BaseException as e:  # report, never unwind into the parent's code
            import traceback
            traceback.print_exc()
            print("worker: %s" % e, file=sys.stderr)
            code = 3
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    # Parent: pass SIGINT/SIGTERM on to the worker.
    def fwd(sig, _frame):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    old_int = signal.signal(signal.SIGINT, fwd)
    old_term = signal.signal(signal.SIGTERM, fwd)
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    if os.WIFSIGNALED(status):
        s = os.WTERMSIG(status)
        return "signal %d (%s)" % (s, signal.Signals(s).name)
    return "exit %d" % os.WEXITSTATUS(status)


class Budget:
    """Stop after N operations or T seconds, whichever comes first."""

    def __init__(self, iterations=None, duration=None):
        self.iterations = iterations
        self.deadline = time.monotonic() + duration if duration else None

    def more(self, done):
        """Whether operation number DONE (from 0) may run."""
        if self.iterations is not None and done >= self.iterations:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        return True


def feed(log, next_op, replay_ops, budget, batch):
    """Yield the operations to run, numbered ("n"), each logged before it
    runs: generated by NEXT_OP(), or those of REPLAY_OPS. BATCH operations
    share one log write (the 9p round trip to the host is the largest cost
    of an operation under TCG); after a crash the operation that was
    running is one of the last batch, which a replay runs whole."""
    n = 0
    while True:
        chunk = []
        while len(chunk) < batch and budget.more(n + len(chunk)):
            if replay_ops is not None:
                if n + len(chunk) >= len(replay_ops):
                    break
                op = dict(replay_ops[n + len(chunk)])
            else:
                op = next_op()
            op["n"] = n + len(chunk)
            chunk.append(op)
        if not chunk:
            return
        log.ops(chunk)
        for op in chunk:
            yield op
        n += len(chunk)


def add_common_args(p):
    """Options shared by both fuzzers."""
    p.add_argument("--seed", help="seed (decimal or 0x..); default: random, printed")
    p.add_argument("--iterations", type=int, help="number of operations")
    p.add_argument("--duration", type=float, help="seconds to run (default 60 without --iterations)")
    p.add_argument("--log", help="operation log (default $VM_OUT/fuzz-<tool>-<user>-<seed>.log)")
    p.add_argument("--replay", metavar="LOG", help="run the operations of LOG instead of generating")
    p.add_argument("--avoid", default="", help="comma-separated known crashes to steer around (see --help)")
    p.add_argument("--no-sync", action="store_true", help="do not fsync the log after each write")
    p.add_argument("--batch", type=int,
                   help="operations per log write (default 8; 1 when replaying)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


def default_log(tool, user, seed):
    """Where a run's log goes when --log is not given."""
    d = os.environ.get("VM_OUT") or os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(d, "fuzz-%s-%s-%d.log" % (tool, user, seed))


def summary(tool, user, seed, nops, elapsed, outcomes, worker, log):
    """The summary line(s) both fuzzers print."""
    rate = nops / elapsed if elapsed > 0 else 0.0
    top = sorted(outcomes.items(), key=lambda kv: -kv[1])[:12]
    print("%s: user=%s seed=%d ops=%d time=%.1fs rate=%.1f ops/s worker=%s log=%s"
          % (tool, user, seed, nops, elapsed, rate, worker, log))
    print("%s: outcomes: %s" % (tool, " ".join("%s=%d" % kv for kv in top)))


# ---------------------------------------------------------------------------
# The IPVS sockopt ABI (<uapi/linux/ip_vs.h>), x86-64 layout.

IP_VS_BASE_CTL = 64 + 1024 + 64
SO_SET_ADD = IP_VS_BASE_CTL + 2
SO_SET_EDIT = IP_VS_BASE_CTL + 3
SO_SET_DEL = IP_VS_BASE_CTL + 4
SO_SET_FLUSH = IP_VS_BASE_CTL + 5
SO_SET_ADDDEST = IP_VS_BASE_CTL + 7
SO_SET_DELDEST = IP_VS_BASE_CTL + 8
SO_SET_EDITDEST = IP_VS_BASE_CTL + 9
SO_SET_TIMEOUT = IP_VS_BASE_CTL + 10
SO_SET_ZERO = IP_VS_BASE_CTL + 15

FWD_MASQ, FWD_LOCAL, FWD_TUNNEL, FWD_DROUTE = 0, 1, 2, 3


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC32c (Castagnoli) of data, as SCTP's checksum takes it (stored
    little-endian, over the packet with the checksum field zero)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def pack_service(proto, addr, port, fwmark=0, sched=b"rr", flags=0, timeout=0,
                 netmask=b"\xff\xff\xff\xff"):
    """struct ip_vs_service_user (44 bytes); ADDR a dotted quad or 4 bytes."""
    import socket
    import struct
    if isinstance(addr, str):
        addr = socket.inet_aton(addr)
    if isinstance(sched, str):
        sched = sched.encode()
    return struct.pack("<H2x4sH2xI16sII4s", proto, addr, socket.htons(port & 0xFFFF),
                       fwmark & 0xFFFFFFFF, sched[:16].ljust(16, b"\x00"),
                       flags & 0xFFFFFFFF, timeout & 0xFFFFFFFF, netmask)


def pack_dest(addr, port, conn_flags=0, weight=1, u_threshold=0, l_threshold=0):
    """struct ip_vs_dest_user (24 bytes)."""
    import socket
    import struct
    if isinstance(addr, str):
        addr = socket.inet_aton(addr)
    return struct.pack("<4sH2xIIII", addr, socket.htons(port & 0xFFFF), conn_flags & 0xFFFFFFFF,
                       weight & 0xFFFFFFFF, u_threshold & 0xFFFFFFFF, l_threshold & 0xFFFFFFFF)


def sockopt_set(fd, cmd, data):
    """setsockopt(fd, IPPROTO_IP, cmd, data): "OK" or the errno name."""
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    if libc.setsockopt(fd, 0, cmd, buf if data else None, len(data)) == 0:
        return "OK"
    return errname(ctypes.get_errno())
