# SPDX-License-Identifier: GPL-2.0
"""Raw generic netlink for the IPVS family, shared by tools/ipvs-fuzz-ctl and
tools/ipvs-nl-probe: message and attribute encoding, one request with its
answer (errno, data messages, extended ACK message), attribute decoding.

No library beyond Python's own: the tools run inside the test VM.
"""

import socket
import struct

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLM_F_MULTI = 2
NLM_F_ACK = 4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_ACK_TLVS = 0x200
NLM_F_CAPPED = 0x100
NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF


def nla(t, payload):
    """One attribute of type t (flags included) with its padding."""
    n = 4 + len(payload)
    return struct.pack("=HH", n & 0xFFFF, t) + payload + b"\0" * ((4 - n % 4) % 4)


def u8(t, v):
    return nla(t, struct.pack("=B", v & 0xFF))


def u16(t, v):
    return nla(t, struct.pack("=H", v & 0xFFFF))


def be16(t, v):
    return nla(t, struct.pack("!H", v & 0xFFFF))


def u32(t, v):
    return nla(t, struct.pack("=I", v & 0xFFFFFFFF))


def string(t, s):
    return nla(t, s.encode() + b"\0")


def msg(family, cmd, flags, seq, attrs, version=1, hdr=None):
    """A netlink message with a genl header (or the given raw header bytes)."""
    body = (struct.pack("=BBH", cmd, version, 0) if hdr is None else hdr) + attrs
    return struct.pack("=IHHII", 16 + len(body), family, flags, seq, 0) + body


def parse_attrs(buf):
    """[(type with flags, payload)] of a buffer of attributes; a malformed
    tail ends the list."""
    out, off = [], 0
    while off + 4 <= len(buf):
        n, t = struct.unpack_from("=HH", buf, off)
        if n < 4 or off + n > len(buf):
            break
        out.append((t, buf[off + 4:off + n]))
        off += (n + 3) & ~3
    return out


class Nl:
    """A NETLINK_GENERIC socket that sends one request at a time."""

    def __init__(self, timeout=10, ext_ack=False):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        if ext_ack:
            self.s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.s.bind((0, 0))
        self.s.settimeout(timeout)
        self.seq = 0

    def send_raw(self, data):
        self.s.send(data)

    def request(self, family, cmd, flags, attrs, **kw):
        """Sends one request (with NLM_F_ACK) and reads its whole answer.

        Returns (errno, data, extack): errno 0 for an ACK or the end of a
        dump; data the payloads (genl header included) of the data messages;
        extack the extended ACK message text, or None.
        """
        self.seq += 1
        self.s.send(msg(family, cmd, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, attrs, **kw))
        return self.answer(self.seq)

    def answer(self, seq):
        result, data, extack = None, [], None
        while result is None:
            buf = self.s.recv(1 << 17)
            off = 0
            while off + 16 <= len(buf):
                ln, ty, fl, sq, _ = struct.unpack_from("=IHHII", buf, off)
                if ln < 16 or off + ln > len(buf):
                    break
                body = buf[off + 16:off + ln]
                off += (ln + 3) & ~3
                if sq != seq:
                    continue
                if ty in (NLMSG_ERROR, NLMSG_DONE):
                    result = -struct.unpack_from("=i", body, 0)[0] if len(body) >= 4 else 0
                    tlvs = b""
                    if ty == NLMSG_ERROR and fl & NLM_F_ACK_TLVS:
                        # struct nlmsgerr: the error, then the request's
                        # header (and all of it unless capped).
                        skip = 4 + 16
                        if not fl & NLM_F_CAPPED and len(body) >= 8:
                            skip = 4 + struct.unpack_from("=I", body, 4)[0]
                        tlvs = body[(skip + 3) & ~3:]
                    elif ty == NLMSG_DONE and fl & NLM_F_ACK_TLVS:
                        tlvs = body[4:]
                    for t, p in parse_attrs(tlvs):
                        if t == NLMSGERR_ATTR_MSG:
                            extack = p.rstrip(b"\0").decode(errors="replace")
                else:
                    data.append(body)
        return result, data, extack

    def family_id(self, name):
        err, data, _ = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0,
                                    string(CTRL_ATTR_FAMILY_NAME, name))
        if err or not data:
            return None
        for t, p in parse_attrs(data[0][4:]):
            if t & NLA_TYPE_MASK == CTRL_ATTR_FAMILY_ID and len(p) >= 2:
                return struct.unpack_from("=H", p)[0]
        return None


# ---------------------------------------------------------------------------
# Random requests (the generator of the netlink operations of
# tools/ipvs-fuzz-ctl): every command number, requests and dumps, random
# top-level attributes and nests, plausible service and real server nests.

INTS = [0, 1, 2, 6, 17, 132, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
        0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 10, 16, 300, 8080]


def payload(r, depth):
    k = r.randrange(9)
    if k == 0:
        return b""
    if k == 1:
        return struct.pack("=B", r.choice(INTS) & 0xFF)
    if k == 2:
        return struct.pack("=H", r.choice(INTS) & 0xFFFF)
    if k == 3:
        return struct.pack("=I", r.choice(INTS))
    if k == 4:
        return struct.pack("=Q", r.choice(INTS) | (r.choice(INTS) << 32))
    if k == 5:
        s = r.choice([b"rr", b"wlc", b"sh", b"none", b"sip", b"lo", b"x" * 15, b"y" * 16, b"z" * 40])
        return s + (b"\0" if r.random() < 0.7 else b"")
    if k == 6 and depth < 2:
        return nest(r, depth + 1)
    if k == 7:
        return bytes([10, 0, 0, r.randrange(1, 5)]) + bytes(r.choice([0, 12]))
    return bytes(r.randrange(256) for _ in range(r.randrange(1, 40)))


def nest(r, depth):
    out = b""
    for _ in range(r.randrange(0, 12)):
        t = r.randrange(0, 18) if r.random() < 0.95 else r.randrange(0, 0x10000)
        out += nla(t & 0x7FFF if r.random() < 0.9 else t, payload(r, depth))
    if r.random() < 0.05 and out:
        out = out[:r.randrange(len(out))]
    return out


def plausible(r):
    """A service nest and a real server nest close to what ipvsadm sends."""
    svc = nla(1, struct.pack("=H", r.choice([2, 2, 2, 10, 0, 99])))
    if r.random() < 0.3:
        svc += nla(5, struct.pack("=I", r.choice(INTS)))
    else:
        svc += nla(2, struct.pack("=H", r.choice([6, 17, 132, 0, 255])))
        svc += nla(3, bytes([10, 0, 0, r.randrange(1, 4)]) + bytes(12))
        svc += nla(4, struct.pack("!H", r.choice([80, 0, 65535])))
    if r.random() < 0.8:
        svc += nla(6, r.choice([b"rr\0", b"wlc\0", b"nosuch\0", b"\0"]))
        svc += nla(7, struct.pack("=II", r.choice(INTS), r.choice(INTS)))
        svc += nla(8, struct.pack("=I", r.choice(INTS)))
        svc += nla(9, struct.pack("=I", r.choice(INTS)))
    if r.random() < 0.1:
        svc += nla(11, b"sip\0")
    dest = nla(1, bytes([10, 0, 1, r.randrange(1, 4)]) + bytes(12))
    dest += nla(2, struct.pack("!H", r.choice([80, 0, 8080])))
    if r.random() < 0.2:
        dest += nla(11, struct.pack("=H", r.choice([2, 10, 0, 7])))
    if r.random() < 0.8:
        dest += nla(3, struct.pack("=I", r.choice(INTS)))
        dest += nla(4, struct.pack("=I", r.choice(INTS)))
        dest += nla(5, struct.pack("=I", r.choice(INTS)))
        dest += nla(6, struct.pack("=I", r.choice(INTS)))
    if r.random() < 0.2:
        dest += nla(13, struct.pack("=B", r.randrange(4)))
        dest += nla(14, struct.pack("!H", r.choice([0, 6080])))
    return svc, dest


def random_request(r):
    """One random request: (command, netlink flags, attributes)."""
    cmd = r.randrange(0, 21) if r.random() < 0.95 else r.randrange(256)
    flags = NLM_F_DUMP if r.random() < 0.3 else 0
    if r.random() < 0.6:
        svc, dest = plausible(r)
        attrs = nla(1, svc)
        if r.random() < 0.6:
            attrs += nla(2, dest)
        if r.random() < 0.2:
            attrs += nla(r.randrange(4, 7), struct.pack("=I", r.choice(INTS)))
        if r.random() < 0.1:
            attrs += nla(3, nest(r, 1))
    else:
        attrs = nest(r, 0)
    return cmd, flags, attrs
