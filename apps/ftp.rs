// SPDX-License-Identifier: GPL-2.0

//! The FTP control-line parsing of the FTP application helper, as upstream's `ip_vs_ftp`
//! does it, for IPv4 and IPv6 control connections:
//!
//! - a client's segment ([`parse_in`]) starting the data with `PASV\r\n` (IPv4 only),
//!   `EPSV\r\n` or `EPSV <proto>\r\n` anywhere in it (`1` on IPv4, `2` on IPv6; anything else
//!   is ignored) turns passive mode on; otherwise `PORT h1,h2,h3,h4,p1,p2` (IPv4 only) or
//!   `EPRT <d><af><d><addr><d><port><d>` at its start names the client's data address, the
//!   family being the connection's (`1`/`2`; the other family, a missing one, port 0, a
//!   port above 65535 or a malformed address: ignored);
//! - a real server's segment in passive mode ([`parse_out`]) starting with the `227 ` reply
//!   (`h1,h2,h3,h4,p1,p2`, the `(` optional) or the `229 ` reply
//!   (`(<d><d><d><port><d>)` with the real server's address, or `(<d><af><d><addr><d><port><d>)`
//!   of the connection's family) names the real server's data port; [`reply_text`] is
//!   what replaces the address and port.
//!
//! Addresses are parsed by ports of the kernel's `in4_pton` and `in6_pton` (a NUL byte or
//! the end of the data ends an address as the delimiter does; a `:` ends an IPv4 address;
//! `::`, embedded IPv4 and upstream's quirks as they are). Malformed lines are never an
//! error: upstream leaves their packets alone (its parser's `-1` and `0` are alike to its
//! callers), and so do we.
//!
//! Every byte is untrusted: all accesses are checked, nothing here can panic.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ftp.c` (`ip_vs_ftp_get_addrport`, `ip_vs_ftp_in`,
//! `ip_vs_ftp_out`), `srctree/net/core/utils.c` (`in4_pton`, `in6_pton`)

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// The helper's per-connection word (`IP_VS_FTP_ACTIVE`, also `IP_VS_FTP_PORT`).
pub const MODE_ACTIVE: u32 = 0;
/// `IP_VS_FTP_PASV`: a `227` reply is awaited.
pub const MODE_PASV: u32 = 1;
/// `IP_VS_FTP_EPRT`.
pub const MODE_EPRT: u32 = 2;
/// `IP_VS_FTP_EPSV`: a `229` reply is awaited.
pub const MODE_EPSV: u32 = 3;

/// Longest replacement text [`reply_text`] writes (`buf[24]` upstream, NUL included).
pub const REPLY_MAX: usize = 23;

/// Outcome of [`get_addrport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The pattern does not start the data (upstream's `0`).
    NoMatch,
    /// The pattern (or a prefix of it) starts the data, but what follows is not a valid
    /// address and port, or is cut short (upstream's `-1`).
    Bad,
    /// Address (16 bytes, IPv4 in the first 4), port (network order) and the range of the
    /// data that holds them (upstream's `1`).
    Found {
        /// The address.
        addr: [u8; 16],
        /// The port, network order.
        port: [u8; 2],
        /// Start of the address and port text.
        start: usize,
        /// End of it.
        end: usize,
    },
}

/// ASCII case-insensitive equality (the kernel's `strncasecmp` on equal lengths: a NUL
/// never matches a letter, Latin-1 letters never match ASCII ones).
fn eq_nocase(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

// `xdigit2bin` classes (net/core/utils.c).
const XDIGIT: u32 = 0x0001_0000;
const DIGIT: u32 = 0x0002_0000;
const COLON_MASK: u32 = 0x0070_0000;
const COLON_1: u32 = 0x0010_0000;
const COLON_2: u32 = 0x0020_0000;
const COLON_1_2: u32 = 0x0040_0000;
const COLON_1_OR_1_2: u32 = COLON_1 | COLON_1_2;
const DOT: u32 = 0x0080_0000;
const DELIM: u32 = 0x1000_0000;
const NULL: u32 = 0x2000_0000;
const UNKNOWN: u32 = 0x4000_0000;

/// `xdigit2bin`: the class of `c` (and its value, for a hex digit).
fn xdigit2bin(c: u8, delim: u8) -> u32 {
    if c == delim || c == 0 {
        return DELIM;
    }
    if c == b':' {
        return COLON_MASK;
    }
    if c == b'.' {
        return DOT;
    }
    match (c as char).to_digit(16) {
        Some(v) => v | XDIGIT | if v < 10 { DIGIT } else { 0 },
        None => UNKNOWN,
    }
}

/// `in4_pton(src, len(src), dst, delim, &end)`: an IPv4 address at the start of `src`,
/// ended by `delim`, NUL, `:` or the end of `src`; and where parsing stopped (the end
/// delimiter on success).
pub fn in4_pton(src: &[u8], delim: u8) -> (Option<[u8; 4]>, usize) {
    let mut dbuf = [0u8; 4];
    let (mut d, mut w, mut s) = (0usize, 0u32, 0usize);
    loop {
        let c = xdigit2bin(src.get(s).copied().unwrap_or(0), delim);
        if c & (DIGIT | DOT | DELIM | COLON_MASK) == 0 {
            return (None, s);
        }
        if c & (DOT | DELIM | COLON_MASK) != 0 {
            // `w` carries class bits once a digit was seen: 0 means an empty field.
            if w == 0 {
                return (None, s);
            }
            let Some(b) = dbuf.get_mut(d) else { return (None, s) };
            *b = w as u8;
            d += 1;
            w = 0;
            if c & (DELIM | COLON_MASK) != 0 {
                if d != 4 {
                    return (None, s);
                }
                return (Some(dbuf), s);
            }
        } else {
            w = w.wrapping_mul(10).wrapping_add(c);
            if w & 0xffff > 255 {
                return (None, s);
            }
        }
        if d >= 4 {
            return (None, s);
        }
        s += 1;
    }
}

/// `in6_pton(src, len(src), dst, delim, &end)`: an IPv6 address at the start of `src`,
/// ended by `delim`, NUL or the end of `src` (the last 32 bits may be dotted IPv4); and
/// where parsing stopped (the end delimiter on success).
pub fn in6_pton(src: &[u8], delim: u8) -> (Option<[u8; 16]>, usize) {
    let mut dbuf = [0u8; 16];
    let mut d = 0usize;
    let mut dc: Option<usize> = None;
    let mut tok: Option<usize> = None;
    let mut state = COLON_1_2 | XDIGIT | NULL;
    let mut w = 0u32;
    let mut s = 0usize;
    loop {
        let c = xdigit2bin(src.get(s).copied().unwrap_or(0), delim);
        if c & state == 0 {
            return (None, s);
        }
        if c & (DELIM | COLON_MASK) != 0 {
            // One 16-bit word done.
            if state & NULL == 0 {
                let Some(p) = dbuf.get_mut(d..d + 2) else { return (None, s) };
                p.copy_from_slice(&(w as u16).to_be_bytes());
                d += 2;
            }
            w = 0;
            if c & DELIM != 0 {
                break;
            }
            state = match state & COLON_MASK {
                COLON_2 => {
                    dc = Some(d);
                    if d >= dbuf.len() {
                        XDIGIT | DELIM | NULL
                    } else {
                        XDIGIT | DELIM
                    }
                }
                COLON_1_OR_1_2 => XDIGIT | COLON_2,
                COLON_1 => XDIGIT,
                COLON_1_2 => COLON_2,
                _ => 0,
            };
            tok = Some(s + 1);
        } else if c & DOT != 0 {
            // The rest is dotted IPv4, from the start of this word (a colon came before:
            // DOT is allowed only after one).
            let from = tok.unwrap_or(s);
            let (a, end) = in4_pton(src.get(from..).unwrap_or(&[]), delim);
            s = from + end;
            let (Some(a), Some(p)) = (a, dbuf.get_mut(d..d + 4)) else { return (None, s) };
            p.copy_from_slice(&a);
            d += 4;
            break;
        } else {
            w = (w << 4) | (c & 0xff);
            state = COLON_1 | DELIM;
            if w & 0xf000 == 0 {
                state |= XDIGIT;
            }
            if dc.is_none() && d + 2 < dbuf.len() {
                state |= COLON_1_2;
                state &= !DELIM;
            }
            if d + 2 >= dbuf.len() {
                state &= !(COLON_1 | COLON_1_2);
            }
        }
        if (dc.is_some() && d + 4 < dbuf.len()) || d + 4 == dbuf.len() {
            state |= DOT;
        }
        if d >= dbuf.len() {
            state &= !(XDIGIT | COLON_MASK);
        }
        s += 1;
    }
    let Some(dc) = dc else {
        // No `::`: all 16 bytes were given.
        return (Some(dbuf), s);
    };
    // Words after `::` go to the end, zeros in between.
    let mut dst = [0u8; 16];
    let tail = d.saturating_sub(dc);
    let (Some(t), Some(from)) = (dst.get_mut(16usize.saturating_sub(tail)..), dbuf.get(dc..d)) else {
        return (None, s);
    };
    if t.len() != from.len() {
        return (None, s);
    }
    t.copy_from_slice(from);
    let (Some(h), Some(from)) = (dst.get_mut(..dc), dbuf.get(..dc)) else { return (None, s) };
    h.copy_from_slice(from);
    (Some(dst), s)
}

/// `ip_vs_ftp_get_addrport`: `<addr,port>` after `pattern` at the start of `data`, in the
/// old `h1,h2,h3,h4,p1,p2` form or (`ext`) the extended `<d><af><d><addr><d><port><d>` form,
/// after the `skip` character (when not 0; optional before a digit in the old form). The
/// extended address must be of the connection's family `af`; only in an `EPSV` reply
/// (`mode`) may family and address be missing, `preset` is the address then.
pub fn get_addrport(data: &[u8], pattern: &[u8], skip: u8, ext: bool, mode: u32, af: u16, preset: [u8; 16]) -> Parse {
    let n = data.len();
    if n < pattern.len() {
        return if eq_nocase(data, pattern.get(..n).unwrap_or(&[])) { Parse::Bad } else { Parse::NoMatch };
    }
    if !eq_nocase(data.get(..pattern.len()).unwrap_or(&[]), pattern) {
        return Parse::NoMatch;
    }
    let at = |i: usize| data.get(i).copied();
    let mut s = pattern.len();
    if skip != 0 {
        let mut found = false;
        loop {
            let Some(c) = at(s) else { return Parse::Bad };
            if !found {
                // "(" is optional in the old form: a digit starts the address.
                if !ext && c.is_ascii_digit() {
                    break;
                }
                if c == skip {
                    found = true;
                }
            } else if c != skip {
                break;
            }
            s += 1;
        }
    }
    if !ext {
        let (mut p, mut i) = ([0u8; 6], 0usize);
        let mut d = s;
        loop {
            let Some(c) = at(d) else { return Parse::Bad };
            if c.is_ascii_digit() {
                let Some(v) = p.get_mut(i) else { return Parse::Bad };
                let val = u32::from(*v) * 10 + u32::from(c - b'0');
                if val > 255 {
                    return Parse::Bad;
                }
                *v = val as u8;
            } else if c == b',' && i < 5 {
                i += 1;
            } else {
                break;
            }
            d += 1;
        }
        if i != 5 {
            return Parse::Bad;
        }
        let [a, b, c, e, p1, p2] = p;
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[a, b, c, e]);
        return Parse::Found { addr, port: [p1, p2], start: s, end: d };
    }
    let start = s;
    let Some(edelim) = at(s) else { return Parse::Bad };
    s += 1;
    if !(33..=126).contains(&edelim) {
        return Parse::Bad;
    }
    let Some(c) = at(s) else { return Parse::Bad };
    let mut addr = preset;
    if c == edelim {
        // No address family: only in an EPSV reply, and then no address either.
        if mode != MODE_EPSV {
            return Parse::Bad;
        }
        s += 1;
        if at(s) != Some(edelim) {
            return Parse::Bad;
        }
        s += 1;
    } else {
        // Only an address of the connection's family.
        let v6 = match (af, c) {
            (AF_INET6, b'2') => true,
            (AF_INET6, _) => return Parse::Bad,
            (AF_INET, b'1') => false,
            (AF_INET, _) => return Parse::Bad,
            // Upstream would parse an IPv4 one; connections are of these two families.
            _ => return Parse::Bad,
        };
        s += 1;
        if at(s) != Some(edelim) {
            return Parse::Bad;
        }
        s += 1;
        let rest = data.get(s..).unwrap_or(&[]);
        if rest.is_empty() {
            return Parse::Bad;
        }
        let len = if v6 {
            let (a, len) = in6_pton(rest, edelim);
            let Some(a) = a else { return Parse::Bad };
            addr = a;
            len
        } else {
            let (a, len) = in4_pton(rest, edelim);
            let Some(a) = a else { return Parse::Bad };
            // Upstream writes the first 4 bytes of the (preset) address.
            addr = [0u8; 16];
            addr[..4].copy_from_slice(&a);
            len
        };
        s += len;
        if at(s) != Some(edelim) {
            return Parse::Bad;
        }
        s += 1;
    }
    let mut hport: u32 = 0;
    loop {
        let Some(c) = at(s) else { return Parse::Bad };
        if !c.is_ascii_digit() {
            break;
        }
        hport = hport * 10 + u32::from(c - b'0');
        if hport > 65535 {
            return Parse::Bad;
        }
        s += 1;
    }
    if hport == 0 || at(s) != Some(edelim) {
        return Parse::Bad;
    }
    s += 1;
    Parse::Found { addr, port: (hport as u16).to_be_bytes(), start, end: s }
}

/// What a client's segment on the control connection asks of the helper (`ip_vs_ftp_in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    /// Nothing.
    Nothing,
    /// Passive mode on: the helper's word becomes this ([`MODE_PASV`], [`MODE_EPSV`]).
    Mode(u32),
    /// Active mode (`PORT`, `EPRT`): passive mode off, and an expected connection from the
    /// real server to the client's `addr`/`port` (network order).
    Expect {
        /// The client's data address.
        addr: [u8; 16],
        /// Its port.
        port: [u8; 2],
    },
}

/// The client's segment `data` of a control connection of family `af`.
pub fn parse_in(data: &[u8], af: u16) -> In {
    let mut i = 0;
    while i + 6 <= data.len() {
        let w = data.get(i..).unwrap_or(&[]);
        if af == AF_INET && eq_nocase(w.get(..6).unwrap_or(&[]), b"PASV\r\n") {
            return In::Mode(MODE_PASV);
        }
        // EPSV or EPSV<space><net-prt>.
        if eq_nocase(w.get(..4).unwrap_or(&[]), b"EPSV") && matches!(w.get(4), Some(b' ' | b'\r')) {
            if w.get(4) == Some(&b' ') {
                let proto = w.get(5).copied();
                if w.get(6) != Some(&b'\r') {
                    return In::Nothing;
                }
                let ok = matches!((af, proto), (AF_INET, Some(b'1')) | (AF_INET6, Some(b'2')));
                if !ok {
                    return In::Nothing;
                }
            }
            return In::Mode(MODE_EPSV);
        }
        i += 1;
    }
    let mut found = Parse::NoMatch;
    if af == AF_INET {
        found = get_addrport(data, b"PORT", b' ', false, MODE_ACTIVE, af, [0; 16]);
    }
    if !matches!(found, Parse::Found { .. }) {
        found = get_addrport(data, b"EPRT", b' ', true, MODE_EPRT, af, [0; 16]);
    }
    match found {
        Parse::Found { addr, port, .. } => In::Expect { addr, port },
        _ => In::Nothing,
    }
}

/// A real server's segment `data` of a control connection of family `af` whose helper
/// word is `mode` (`ip_vs_ftp_out`): the passive reply's address and port (the real
/// server's `daddr` when a `229` reply names none) and the range of `data` they take.
pub fn parse_out(data: &[u8], mode: u32, af: u16, daddr: [u8; 16]) -> Option<([u8; 16], [u8; 2], usize, usize)> {
    let parsed = match mode {
        MODE_PASV => get_addrport(data, b"227 ", b'(', false, MODE_PASV, af, [0; 16]),
        MODE_EPSV => get_addrport(data, b"229 ", b'(', true, MODE_EPSV, af, daddr),
        _ => return None,
    };
    match parsed {
        Parse::Found { addr, port, start, end } => Some((addr, port, start, end)),
        _ => None,
    }
}

/// Writes `v` in decimal to `buf` at `*n`.
fn put_dec(buf: &mut [u8], n: &mut usize, v: u32) {
    let mut tmp = [0u8; 10];
    let (mut k, mut v) = (0, v);
    loop {
        if let Some(t) = tmp.get_mut(k) {
            *t = b'0' + (v % 10) as u8;
        }
        k += 1;
        v /= 10;
        if v == 0 || k == tmp.len() {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        if let Some(t) = tmp.get(k) {
            put(buf, n, *t);
        }
    }
}

fn put(buf: &mut [u8], n: &mut usize, c: u8) {
    if let Some(b) = buf.get_mut(*n) {
        *b = c;
        *n += 1;
    }
}

/// The text that replaces a passive reply's address and port (`mode`), naming the virtual
/// address `vaddr` and port `vport` (network order): `h1,h2,h3,h4,p1,p2` for `227`, only
/// `|||port|` for `229` (the client uses the virtual address it is connected to). Written
/// to `buf`; returns its length.
pub fn reply_text(mode: u32, vaddr: &[u8; 16], vport: [u8; 2], buf: &mut [u8; REPLY_MAX]) -> usize {
    let mut n = 0;
    let vp = u16::from_be_bytes(vport);
    if mode == MODE_PASV {
        for (i, b) in vaddr.iter().take(4).enumerate() {
            put_dec(buf, &mut n, u32::from(*b));
            if i < 3 {
                put(buf, &mut n, b',');
            }
        }
        put(buf, &mut n, b',');
        put_dec(buf, &mut n, u32::from(vp >> 8));
        put(buf, &mut n, b',');
        put_dec(buf, &mut n, u32::from(vp & 0xff));
    } else if mode == MODE_EPSV {
        for c in b"|||" {
            put(buf, &mut n, *c);
        }
        put_dec(buf, &mut n, u32::from(vp));
        put(buf, &mut n, b'|');
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Option<[u8; 16]> {
        let (a, end) = in6_pton(s.as_bytes(), b'|');
        a.filter(|_| s.as_bytes().get(end).map_or(true, |&c| c == b'|'))
    }

    fn std6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn in6_pton_forms() {
        for s in [
            "::",
            "::1",
            "1::",
            "fd00::2",
            "fd00:1:2::2",
            "2001:db8::8:800:200c:417a",
            "1:2:3:4:5:6:7:8",
            "FD00:0:0:0:0:0:0:2",
            "::ffff:10.0.0.1",
            "64:ff9b::192.0.2.33",
            "1:2:3:4:5:6:1.2.3.4",
            "1::7:8",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
        ] {
            assert_eq!(v6(s), Some(std6(s)), "{s}");
        }
    }

    #[test]
    fn in6_pton_rejects() {
        for s in [
            "",
            ":",
            ":1",
            "1:",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "12345::",
            "g::",
            "1.2.3.4",
            "::1.2.3",
            "::1.2.3.256",
        ] {
            assert_eq!(v6(s), None, "{s}");
        }
    }

    #[test]
    fn in6_pton_ends() {
        // NUL and the end of the data end an address like the delimiter.
        assert_eq!(in6_pton(b"::1\0x", b'|'), (Some(std6("::1")), 3));
        assert_eq!(in6_pton(b"fd00::2", b'|'), (Some(std6("fd00::2")), 7));
        // The delimiter may be any printable character, even a hex digit.
        assert_eq!(in6_pton(b"fd00::2f1", b'f'), (None, 0));
        assert_eq!(in6_pton(b"1::2a", b'a'), (Some(std6("1::2")), 4));
        // A stray character stops it where it is.
        assert_eq!(in6_pton(b"fd00::x|", b'|').0, None);
        assert_eq!(in6_pton(b"fd00::x|", b'|').1, 6);
    }

    #[test]
    fn in4_pton_forms() {
        assert_eq!(in4_pton(b"10.0.0.2|", b'|'), (Some([10, 0, 0, 2]), 8));
        assert_eq!(in4_pton(b"10.0.0.2:", b'|'), (Some([10, 0, 0, 2]), 8));
        assert_eq!(in4_pton(b"10.0.0.2", b'|'), (Some([10, 0, 0, 2]), 8));
        assert_eq!(in4_pton(b"10.0.0.256|", b'|').0, None);
        assert_eq!(in4_pton(b"10.0..2|", b'|').0, None);
        assert_eq!(in4_pton(b"10.0.0|", b'|').0, None);
        assert_eq!(in4_pton(b"10.0.0.1.1|", b'|').0, None);
        assert_eq!(in4_pton(b"010.0.0.1|", b'|'), (Some([10, 0, 0, 1]), 9));
        assert_eq!(in4_pton(b"a.0.0.1|", b'|').0, None);
    }

    fn a4(a: [u8; 4]) -> [u8; 16] {
        let mut r = [0; 16];
        r[..4].copy_from_slice(&a);
        r
    }

    fn expect(addr: [u8; 16], port: u16) -> In {
        In::Expect { addr, port: port.to_be_bytes() }
    }

    #[test]
    fn client_commands_v6() {
        let af = AF_INET6;
        assert_eq!(parse_in(b"EPSV\r\n", af), In::Mode(MODE_EPSV));
        assert_eq!(parse_in(b"epsv 2\r\n", af), In::Mode(MODE_EPSV));
        assert_eq!(parse_in(b"EPSV 1\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"EPSV ALL\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"NOOP\r\nEPSV\r\n", af), In::Mode(MODE_EPSV));
        assert_eq!(parse_in(b"PASV\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"PORT 10,0,0,2,4,1\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"EPRT |2|fd00::2|40000|\r\n", af), expect(std6("fd00::2"), 40000));
        assert_eq!(parse_in(b"eprt !2!fd00::99!1!\r\n", af), expect(std6("fd00::99"), 1));
        assert_eq!(parse_in(b"EPRT   |2|::ffff:10.0.0.2|65535|\r\n", af), expect(std6("::ffff:10.0.0.2"), 65535));
        for bad in [
            &b"EPRT |1|10.0.0.2|40000|\r\n"[..],
            b"EPRT |2|fd00::2|0|\r\n",
            b"EPRT |2|fd00::2|65536|\r\n",
            b"EPRT |2|fd00::2|40000\r\n",
            b"EPRT |2|fd00::2|\r\n",
            b"EPRT |2|fd00::g|1|\r\n",
            b"EPRT |2||1|\r\n",
            b"EPRT ||fd00::2|1|\r\n",
            b"EPRT |||1|\r\n",
            b"EPRT |3|fd00::2|1|\r\n",
            b"EPRT \x7f2\x7ffd00::2\x7f1\x7f\r\n",
            b"EPRT |2|fd00::2",
            b"EPRT",
            b"EPR",
            b" EPRT |2|fd00::2|1|\r\n",
        ] {
            assert_eq!(parse_in(bad, af), In::Nothing, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn client_commands_v4() {
        let af = AF_INET;
        assert_eq!(parse_in(b"PASV\r\n", af), In::Mode(MODE_PASV));
        assert_eq!(parse_in(b"EPSV 1\r\n", af), In::Mode(MODE_EPSV));
        assert_eq!(parse_in(b"EPSV 2\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"PORT 10,0,0,2,4,1\r\n", af), expect(a4([10, 0, 0, 2]), 1025));
        assert_eq!(parse_in(b"PORT 10,0,0,2,0,0\r\n", af), expect(a4([10, 0, 0, 2]), 0));
        assert_eq!(parse_in(b"EPRT |1|10.0.0.2|40000|\r\n", af), expect(a4([10, 0, 0, 2]), 40000));
        assert_eq!(parse_in(b"EPRT |2|fd00::2|40000|\r\n", af), In::Nothing);
        assert_eq!(parse_in(b"PORT 10,0,0,256,1,1\r\n", af), In::Nothing);
    }

    #[test]
    fn server_replies() {
        let rip6 = std6("fd00:1:1::2");
        assert_eq!(
            parse_out(b"229 Entering Extended Passive Mode (|||30001|)\r\n", MODE_EPSV, AF_INET6, rip6),
            Some((rip6, 30001u16.to_be_bytes(), 36, 45))
        );
        let other = std6("fd00:1:2::2");
        let r = b"229 x (|2|fd00:1:2::2|30002|)\r\n";
        assert_eq!(parse_out(r, MODE_EPSV, AF_INET6, rip6), Some((other, 30002u16.to_be_bytes(), 7, 28)));
        assert_eq!(parse_out(b"229 x (|1|10.1.1.2|30002|)\r\n", MODE_EPSV, AF_INET6, rip6), None);
        assert_eq!(parse_out(b"229 x (|||0|)\r\n", MODE_EPSV, AF_INET6, rip6), None);
        assert_eq!(parse_out(b"227 x (10,1,1,2,117,49)\r\n", MODE_EPSV, AF_INET6, rip6), None);
        assert_eq!(parse_out(b"229 x (|||30001|)\r\n", MODE_ACTIVE, AF_INET6, rip6), None);
        assert_eq!(
            parse_out(b"227 Entering Passive Mode (10,1,1,2,117,49).\r\n", MODE_PASV, AF_INET, [0; 16]),
            Some((a4([10, 1, 1, 2]), 30001u16.to_be_bytes(), 27, 42))
        );
    }

    #[test]
    fn replies_written() {
        let mut buf = [0u8; REPLY_MAX];
        let n = reply_text(MODE_EPSV, &std6("fd00:100::1"), 30001u16.to_be_bytes(), &mut buf);
        assert_eq!(&buf[..n], b"|||30001|");
        let n = reply_text(MODE_PASV, &a4([255, 255, 255, 255]), 65535u16.to_be_bytes(), &mut buf);
        assert_eq!(&buf[..n], b"255,255,255,255,255,255");
        assert_eq!(reply_text(MODE_ACTIVE, &[0; 16], [0, 1], &mut buf), 0);
    }

    /// Every prefix of every test line, and byte flips of them, parse without panicking.
    #[test]
    fn no_panic_on_junk() {
        let lines: [&[u8]; 4] =
            [b"EPRT |2|1:2:3:4:5:6:1.2.3.4|1|\r\n", b"EPRT |2|::ffff:1.2.3.4|65535|", b"229 (|||1|)", b"PORT 1,2,3,4,5,6"];
        let mut seed = 1u32;
        for l in lines {
            for k in 0..=l.len() {
                let mut v = l[..k].to_vec();
                for af in [AF_INET, AF_INET6] {
                    let _ = parse_in(&v, af);
                    let _ = parse_out(&v, MODE_EPSV, af, [0; 16]);
                    let _ = parse_out(&v, MODE_PASV, af, [0; 16]);
                }
                for _ in 0..200 {
                    if v.is_empty() {
                        break;
                    }
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let i = (seed >> 8) as usize % v.len();
                    v[i] = (seed >> 20) as u8;
                    let _ = parse_in(&v, AF_INET6);
                    let _ = in6_pton(&v, b'|');
                }
            }
        }
    }
}
