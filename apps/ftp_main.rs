// SPDX-License-Identifier: GPL-2.0

//! The FTP application helper (`ip_vs_ftp`): for NAT FTP services on its `ports` (21 by
//! default), it watches the control connection. A client's `PASV`/`EPSV` command turns on
//! passive mode; the server's `227`/`229` reply then names the server's data port, for
//! which an expected connection (any client port, the control connection as controller) is
//! created and whose address in the reply becomes the virtual service's. A client's
//! `PORT`/`EPRT` command names the client's data port: an expected active-mode connection
//! from the real server's port 20 (the control port less one) to it is created.
//!
//! Only IPv4 addresses are parsed (upstream also takes IPv6 ones in `EPRT` and `EPSV 2`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ftp.c`

use kernel::prelude::*;

#[path = "../ipvs/app_abi.rs"]
mod app_abi;

use app_abi::{App, Pkt, EXPECT_ACTIVE, EXPECT_PASSIVE};

module! {
    type: FtpModule,
    name: "ip_vs_ftp",
    author: "Rust IPVS developers",
    description: "ipvs ftp helper",
    license: "GPL",
}

extern "C" {
    fn ip_vs_ftp_ports(out: *mut u16, max: usize) -> usize;
}

/// Helper word values (`IP_VS_FTP_*`).
const MODE_ACTIVE: u32 = 0;
const MODE_PASV: u32 = 1;
const MODE_EPRT: u32 = 2;
const MODE_EPSV: u32 = 3;

const AF_INET: u16 = 2;

/// Outcome of [`get_addrport`].
enum Parse {
    /// The pattern does not start the data.
    NoMatch,
    /// The pattern (or a prefix of it) starts the data, but what follows is not a valid
    /// address and port, or is cut short.
    Bad,
    /// Address, port (network order) and the range of the payload that holds them.
    Found { addr: [u8; 16], port: [u8; 2], start: usize, end: usize },
}

fn eq_nocase(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// `in4_pton` with delimiter `delim`: an IPv4 address starting `s`; returns it and where
/// it ends (at the delimiter).
fn in4_pton(s: &[u8], delim: u8) -> Option<([u8; 4], usize)> {
    let (mut d, mut i, mut w, mut seen) = ([0u8; 4], 0usize, 0u32, false);
    let mut k = 0;
    loop {
        let c = s.get(k).copied().unwrap_or(0);
        if c == delim || c == 0 || c == b':' || c == b'.' {
            if !seen {
                return None;
            }
            *d.get_mut(i)? = w as u8;
            w = 0;
            seen = false;
            i += 1;
            if c != b'.' {
                if i != 4 {
                    return None;
                }
                return Some((d, k));
            }
        } else if c.is_ascii_digit() {
            w = w * 10 + u32::from(c - b'0');
            seen = true;
            if w > 255 {
                return None;
            }
        } else {
            return None;
        }
        if i >= 4 {
            return None;
        }
        k += 1;
    }
}

/// `ip_vs_ftp_get_addrport`: `<addr,port>` after `pattern` at the start of `data`, in the
/// old `h1,h2,h3,h4,p1,p2` form or (`ext`) the extended `|af|addr|port|` form, after the
/// `skip` character (when not 0). `addr` may be preset (an `EPSV` reply names none).
fn get_addrport(data: &[u8], pattern: &[u8], skip: u8, ext: bool, mode: u32, af: u16, preset: [u8; 16]) -> Parse {
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
        addr[0] = a;
        addr[1] = b;
        addr[2] = c;
        addr[3] = e;
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
        // Only an address of the connection's family (IPv4 here).
        if af != AF_INET || c != b'1' {
            return Parse::Bad;
        }
        s += 1;
        if at(s) != Some(edelim) {
            return Parse::Bad;
        }
        s += 1;
        if at(s).is_none() {
            return Parse::Bad;
        }
        let Some((a, len)) = in4_pton(data.get(s..).unwrap_or(&[]), edelim) else {
            return Parse::Bad;
        };
        addr = [0u8; 16];
        for (d, v) in addr.iter_mut().zip(a) {
            *d = v;
        }
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
        if let (Some(b), Some(t)) = (buf.get_mut(*n), tmp.get(k)) {
            *b = *t;
            *n += 1;
        }
    }
}

fn put(buf: &mut [u8], n: &mut usize, c: u8) {
    if let Some(b) = buf.get_mut(*n) {
        *b = c;
        *n += 1;
    }
}

struct Ftp;

impl App for Ftp {
    const NAME: &'static [u8] = b"ftp";

    /// `ip_vs_ftp_out`: a reply to `PASV`/`EPSV`.
    fn pkt_out(pkt: &mut Pkt<'_>) -> bool {
        if !pkt.established() {
            return true;
        }
        let mode = pkt.app_data();
        let data = pkt.data();
        if data.is_empty() {
            return true;
        }
        let parsed = match mode {
            MODE_PASV => get_addrport(data, b"227 ", b'(', false, MODE_PASV, pkt.af(), [0; 16]),
            MODE_EPSV => get_addrport(data, b"229 ", b'(', true, MODE_EPSV, pkt.af(), pkt.daddr()),
            _ => return true,
        };
        let Parse::Found { addr, port, start, end } = parsed else {
            return true;
        };
        let Ok((vaddr, vport)) = pkt.expect(EXPECT_PASSIVE, &addr, port) else {
            return false;
        };
        let mut buf = [0u8; 24];
        let mut n = 0;
        let vp = u16::from_be_bytes(vport);
        if mode == MODE_PASV {
            for (i, b) in vaddr.iter().take(4).enumerate() {
                put_dec(&mut buf, &mut n, u32::from(*b));
                if i < 3 {
                    put(&mut buf, &mut n, b',');
                }
            }
            put(&mut buf, &mut n, b',');
            put_dec(&mut buf, &mut n, u32::from(vp >> 8));
            put(&mut buf, &mut n, b',');
            put_dec(&mut buf, &mut n, u32::from(vp & 0xff));
        } else {
            // Only the port: the client uses the virtual address.
            for c in b"|||" {
                put(&mut buf, &mut n, *c);
            }
            put_dec(&mut buf, &mut n, u32::from(vp));
            put(&mut buf, &mut n, b'|');
        }
        let text = buf.get(..n).unwrap_or(&[]);
        let ok = pkt.replace(start, end, text).is_ok();
        pkt.set_app_data(MODE_ACTIVE);
        ok
    }

    /// `ip_vs_ftp_in`: `PASV`/`EPSV` turn passive mode on; `PORT`/`EPRT` name the client's
    /// data port.
    fn pkt_in(pkt: &mut Pkt<'_>) -> bool {
        if !pkt.established() {
            return true;
        }
        let af = pkt.af();
        let data = pkt.data();
        if data.is_empty() {
            return true;
        }
        let mut i = 0;
        while i + 6 <= data.len() {
            let w = data.get(i..).unwrap_or(&[]);
            if af == AF_INET && eq_nocase(w.get(..6).unwrap_or(&[]), b"PASV\r\n") {
                pkt.set_app_data(MODE_PASV);
                return true;
            }
            if eq_nocase(w.get(..4).unwrap_or(&[]), b"EPSV") && matches!(w.get(4), Some(b' ' | b'\r')) {
                if w.get(4) == Some(&b' ') {
                    let proto = w.get(5).copied();
                    if w.get(6) != Some(&b'\r') {
                        return true;
                    }
                    if !(af == AF_INET && proto == Some(b'1')) {
                        return true;
                    }
                }
                pkt.set_app_data(MODE_EPSV);
                return true;
            }
            i += 1;
        }
        let found = if af == AF_INET {
            match get_addrport(data, b"PORT", b' ', false, MODE_ACTIVE, af, [0; 16]) {
                f @ Parse::Found { .. } => Some(f),
                _ => None,
            }
        } else {
            None
        };
        let found = found.or_else(|| match get_addrport(data, b"EPRT", b' ', true, MODE_EPRT, af, [0; 16]) {
            f @ Parse::Found { .. } => Some(f),
            _ => None,
        });
        let Some(Parse::Found { addr, port, .. }) = found else {
            return true;
        };
        // Passive mode off.
        pkt.set_app_data(MODE_ACTIVE);
        pkt.expect(EXPECT_ACTIVE, &addr, port).is_ok()
    }
}

static OPS: app_abi::AppOps = app_abi::Adapter::<Ftp>::OPS;

struct FtpModule {
    _reg: app_abi::Registration,
}

impl kernel::Module for FtpModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut ports = [0u16; app_abi::MAX_PORTS];
        // SAFETY: `ports` is valid for `MAX_PORTS` entries.
        let n = unsafe { ip_vs_ftp_ports(ports.as_mut_ptr(), ports.len()) };
        let ports = ports.get(..n).unwrap_or(&[]);
        Ok(Self { _reg: app_abi::Registration::new(&OPS, module, ports)? })
    }
}
