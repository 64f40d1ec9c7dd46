// SPDX-License-Identifier: GPL-2.0

//! The FTP application helper (`ip_vs_ftp`): for NAT FTP services on its `ports` (21 by
//! default), it watches the control connection. A client's `PASV`/`EPSV` command turns on
//! passive mode; the server's `227`/`229` reply then names the server's data port, for
//! which an expected connection (any client port, the control connection as controller) is
//! created and whose address in the reply becomes the virtual service's. A client's
//! `PORT`/`EPRT` command names the client's data port: an expected active-mode connection
//! from the real server's port 20 (the control port less one) to it is created.
//!
//! IPv4 and IPv6 control connections alike: on IPv6 ones `EPSV`/`EPSV 2` and `229`
//! replies, and `EPRT |2|addr|port|`; `PASV`, `227` and `PORT` only on IPv4 ones, and
//! `EPRT` only with an address of the connection's family. The lines are parsed by
//! `ftp.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ftp.c`

use kernel::prelude::*;

#[path = "../ipvs/app_abi.rs"]
mod app_abi;

#[path = "ftp.rs"]
#[allow(dead_code, unreachable_pub)]
mod ftp;

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

struct Ftp;

impl App for Ftp {
    const NAME: &'static [u8] = b"ftp";

    /// `ip_vs_ftp_out`: a reply to `PASV`/`EPSV`.
    fn pkt_out(pkt: &mut Pkt<'_>) -> bool {
        if !pkt.established() {
            return true;
        }
        let mode = pkt.app_data();
        let Some((addr, port, start, end)) = ftp::parse_out(pkt.data(), mode, pkt.af(), pkt.daddr()) else {
            return true;
        };
        let Ok((vaddr, vport)) = pkt.expect(EXPECT_PASSIVE, &addr, port) else {
            return false;
        };
        let mut buf = [0u8; ftp::REPLY_MAX];
        let n = ftp::reply_text(mode, &vaddr, vport, &mut buf);
        let ok = pkt.replace(start, end, buf.get(..n).unwrap_or(&[])).is_ok();
        pkt.set_app_data(ftp::MODE_ACTIVE);
        ok
    }

    /// `ip_vs_ftp_in`: `PASV`/`EPSV` turn passive mode on; `PORT`/`EPRT` name the client's
    /// data port.
    fn pkt_in(pkt: &mut Pkt<'_>) -> bool {
        if !pkt.established() {
            return true;
        }
        match ftp::parse_in(pkt.data(), pkt.af()) {
            ftp::In::Nothing => true,
            ftp::In::Mode(m) => {
                pkt.set_app_data(m);
                true
            }
            ftp::In::Expect { addr, port } => {
                // Passive mode off.
                pkt.set_app_data(ftp::MODE_ACTIVE);
                pkt.expect(EXPECT_ACTIVE, &addr, port).is_ok()
            }
        }
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
