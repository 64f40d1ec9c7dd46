// SPDX-License-Identifier: GPL-2.0

//! The interface between the core `ip_vs` module and application helper modules
//! (`ip_vs_ftp`).
//!
//! Compiled into both crates (`#[path]`), as `abi.rs` is for schedulers:
//!
//! - [`App`], what a helper implements with safe types only: it looks at the TCP payload of a
//!   packet of a connection bound to it ([`Pkt`]), may ask the core for an expected
//!   connection and may replace a range of the payload;
//! - [`AppOps`], the C-ABI table built from an [`App`] by [`Adapter`], and [`PktAbi`], the
//!   packet context the core hands to it, with the core's [`CoreFns`];
//! - [`Registration`], which registers the table for some ports and unregisters it when
//!   dropped.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_app.c` (`register_ip_vs_app`,
//! `register_ip_vs_app_inc`), `srctree/include/net/ip_vs.h` (`struct ip_vs_app`)

#![allow(dead_code, unreachable_pub)]

use core::{
    ffi::{c_int, c_void},
    marker::PhantomData,
};
use kernel::error::{Error, Result};

/// Bytes a helper may put in place of a range of the payload.
pub const REWRITE_MAX: usize = 64;
/// Ports one registration may cover (upstream's `IP_VS_APP_MAX_PORTS`).
pub const MAX_PORTS: usize = 8;

/// Kind of expected connection a helper asks for.
pub const EXPECT_PASSIVE: u32 = 1;
/// An active-mode data connection: from the real server's port below the control
/// connection's to the client's given address and port.
pub const EXPECT_ACTIVE: u32 = 2;

/// The core's functions a helper may call during a packet callback.
#[repr(C)]
pub struct CoreFns {
    /// Finds or creates the expected connection of `kind` for `addr`/`port` (network byte
    /// order); on success writes the virtual address and port the client is to use.
    pub expect: unsafe extern "C" fn(
        core: *mut c_void,
        kind: u32,
        addr: *const [u8; 16],
        port: *const [u8; 2],
        out_addr: *mut [u8; 16],
        out_port: *mut [u8; 2],
    ) -> c_int,
}

/// A packet of a connection bound to a helper, as the core hands it over.
#[repr(C)]
pub struct PktAbi {
    /// The TCP payload, valid for `len` bytes during the call.
    pub data: *const u8,
    /// Bytes of payload.
    pub len: usize,
    /// Address family of the connection.
    pub af: u16,
    /// Whether the connection is in the TCP ESTABLISHED state.
    pub established: bool,
    /// Client address (IPv4 in the first 4 bytes).
    pub caddr: [u8; 16],
    /// Virtual address.
    pub vaddr: [u8; 16],
    /// Real server address.
    pub daddr: [u8; 16],
    /// Client port, network byte order.
    pub cport: [u8; 2],
    /// Virtual port.
    pub vport: [u8; 2],
    /// Real server port.
    pub dport: [u8; 2],
    /// The helper's per-connection word (upstream's `cp->app_data`), read and written back.
    pub app_data: u32,
    /// Set by the helper: the payload range `rw_start..rw_end` is to become
    /// `rw_buf[..rw_len]`.
    pub rw_set: bool,
    /// Start of the replaced range.
    pub rw_start: usize,
    /// End of the replaced range.
    pub rw_end: usize,
    /// Length of the replacement.
    pub rw_len: usize,
    /// The replacement.
    pub rw_buf: [u8; REWRITE_MAX],
    /// The core's functions.
    pub core: *const CoreFns,
    /// The core's context for them.
    pub core_priv: *mut c_void,
}

/// The table a helper module registers (upstream's `struct ip_vs_app`).
#[repr(C)]
pub struct AppOps {
    /// Name, NUL-padded.
    pub name: [u8; 16],
    /// The transport protocol (`IPPROTO_TCP`).
    pub protocol: u8,
    /// Client to server packets (`pkt_in`): 0 drops the packet.
    pub pkt_in: unsafe extern "C" fn(pkt: *mut PktAbi) -> c_int,
    /// Server to client packets (`pkt_out`): 0 drops the packet.
    pub pkt_out: unsafe extern "C" fn(pkt: *mut PktAbi) -> c_int,
}

/// The safe face of a [`PktAbi`] during a callback.
pub struct Pkt<'a> {
    raw: &'a mut PktAbi,
}

impl Pkt<'_> {
    /// The TCP payload.
    pub fn data(&self) -> &[u8] {
        if self.raw.data.is_null() || self.raw.len == 0 {
            return &[];
        }
        // SAFETY: The core passes a payload valid for `len` bytes for the whole callback,
        // which `self` does not outlive.
        unsafe { core::slice::from_raw_parts(self.raw.data, self.raw.len) }
    }

    /// The connection's address family.
    pub fn af(&self) -> u16 {
        self.raw.af
    }

    /// Whether the connection is established.
    pub fn established(&self) -> bool {
        self.raw.established
    }

    /// The real server's address.
    pub fn daddr(&self) -> [u8; 16] {
        self.raw.daddr
    }

    /// The helper's per-connection word.
    pub fn app_data(&self) -> u32 {
        self.raw.app_data
    }

    /// Sets the helper's per-connection word.
    pub fn set_app_data(&mut self, v: u32) {
        self.raw.app_data = v;
    }

    /// Finds or creates the expected connection of `kind` (`EXPECT_*`) for `addr`/`port`;
    /// returns the virtual address and port to announce.
    pub fn expect(&mut self, kind: u32, addr: &[u8; 16], port: [u8; 2]) -> Result<([u8; 16], [u8; 2])> {
        let (mut a, mut p) = ([0u8; 16], [0u8; 2]);
        // SAFETY: The core's table and context are valid during the callback; the pointers
        // are to live locals.
        let r = unsafe { ((*self.raw.core).expect)(self.raw.core_priv, kind, addr, &port, &mut a, &mut p) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok((a, p))
    }

    /// Asks the core to replace `start..end` of the payload with `text`.
    pub fn replace(&mut self, start: usize, end: usize, text: &[u8]) -> Result {
        if start > end || end > self.raw.len || text.len() > REWRITE_MAX {
            return Err(kernel::error::code::EINVAL);
        }
        self.raw.rw_buf.get_mut(..text.len()).ok_or(kernel::error::code::EINVAL)?.copy_from_slice(text);
        self.raw.rw_len = text.len();
        self.raw.rw_start = start;
        self.raw.rw_end = end;
        self.raw.rw_set = true;
        Ok(())
    }
}

/// What an application helper implements.
pub trait App {
    /// The helper's name.
    const NAME: &'static [u8];
    /// A client to server packet; false drops it.
    fn pkt_in(pkt: &mut Pkt<'_>) -> bool;
    /// A server to client packet; false drops it.
    fn pkt_out(pkt: &mut Pkt<'_>) -> bool;
}

/// Builds the [`AppOps`] of an [`App`].
pub struct Adapter<T: App>(PhantomData<T>);

impl<T: App> Adapter<T> {
    unsafe extern "C" fn pkt_in(pkt: *mut PktAbi) -> c_int {
        // SAFETY: The core passes a valid, exclusively borrowed context for the call.
        let mut p = Pkt { raw: unsafe { &mut *pkt } };
        T::pkt_in(&mut p) as c_int
    }

    unsafe extern "C" fn pkt_out(pkt: *mut PktAbi) -> c_int {
        // SAFETY: As in `pkt_in`.
        let mut p = Pkt { raw: unsafe { &mut *pkt } };
        T::pkt_out(&mut p) as c_int
    }

    const fn name() -> [u8; 16] {
        let mut n = [0u8; 16];
        let mut i = 0;
        while i < T::NAME.len() && i < 15 {
            n[i] = T::NAME[i];
            i += 1;
        }
        n
    }

    /// The table.
    pub const OPS: AppOps = AppOps {
        name: Self::name(),
        protocol: 6,
        pkt_in: Self::pkt_in,
        pkt_out: Self::pkt_out,
    };
}

extern "C" {
    fn ip_vs_register_app(
        ops: *const AppOps,
        module: *mut c_void,
        ports: *const u16,
        n: usize,
    ) -> c_int;
    fn ip_vs_unregister_app(ops: *const AppOps);
}

/// A registered helper; unregistered when dropped.
pub struct Registration {
    ops: &'static AppOps,
}

// SAFETY: Holds a reference to an immutable static table.
unsafe impl Send for Registration {}
// SAFETY: As above.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `ops` of `module` for `ports` (host byte order; zeros skipped). Every
    /// connection bound to the helper pins `module` (`ip_vs_app_inc_get`).
    pub fn new(ops: &'static AppOps, module: &'static kernel::ThisModule, ports: &[u16]) -> Result<Self> {
        // SAFETY: `ops` is a static table, valid and unchanged until it is unregistered in
        // `drop`; `module` is the caller's own module; `ports` is valid for its length
        // during the call.
        let r = unsafe { ip_vs_register_app(ops, module.as_ptr().cast(), ports.as_ptr(), ports.len()) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; the core waits for the callbacks in flight.
        unsafe { ip_vs_unregister_app(self.ops) };
    }
}
