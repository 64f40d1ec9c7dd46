// SPDX-License-Identifier: GPL-2.0

//! The interface between the core `ip_vs` module and persistence-engine modules
//! (`ip_vs_pe_<name>`), in the shape of the scheduler one (`abi.rs`).
//!
//! - [`PersistenceEngine`]: what an engine implements, with safe types only: it finds its
//!   data (for SIP, the Call-ID) in the payload of the packet that starts a connection;
//! - [`PeOps`], the C-ABI table the core keeps ([`Adapter`] builds it);
//! - [`Registration`], which registers a table and unregisters it when dropped;
//! - [`module_ip_vs_pe!`], which declares an engine module holding its [`Registration`].
//!
//! Upstream's engines also bring `ct_match`, `hashkey_raw` and `show_pe_data`; its only engine
//! (SIP) compares, hashes and shows its data as raw bytes, which the core does for every
//! engine here, so the table holds the one function that differs.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_pe.c`, `srctree/include/net/ip_vs.h`
//! (`struct ip_vs_pe`)

#![allow(dead_code, unreachable_pub, unused_macros)]

use core::ffi::{c_int, c_void};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox},
    bindings,
    error::{to_result, Result},
    ThisModule,
};

/// Longest engine name (`IP_VS_PENAME_MAXLEN`).
pub const PENAME_MAXLEN: usize = 16;

/// Longest engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PEDATA_MAXLEN: usize = 255;

/// Finds the engine's data in `len` bytes at `data`, the transport payload of a packet, of
/// which `dataoff` is the offset in the packet; stores its offset and length in the payload
/// and returns 0, or returns a negative errno if there is none.
pub type FillParamFn =
    unsafe extern "C" fn(data: *const u8, len: usize, dataoff: usize, off: *mut usize, plen: *mut usize) -> c_int;

/// An engine's table (`struct ip_vs_pe`).
///
/// # Contract
///
/// `fill_param` may run on any CPU in any context (softirq included), concurrently, with
/// `data` valid for reading `len` bytes and `off`, `plen` valid for writing; on success the
/// range it reports lies inside the `len` bytes and is at most [`PEDATA_MAXLEN`] long.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PeOps {
    /// NUL-terminated name.
    pub name: [u8; PENAME_MAXLEN + 1],
    /// The module holding the code.
    pub module: *mut bindings::module,
    /// See [`FillParamFn`].
    pub fill_param: FillParamFn,
}

// As `exports.c` declares them; the argument is a `PeOps`.
extern "C" {
    fn ip_vs_register_pe(ops: *const c_void) -> c_int;
    fn ip_vs_unregister_pe(ops: *const c_void);
}

/// A persistence engine.
pub trait PersistenceEngine {
    /// The engine's name (`sip`); at most [`PENAME_MAXLEN`] bytes.
    const NAME: &'static [u8];

    /// The engine's data in `payload`, the transport payload of a packet of which `dataoff`
    /// is the offset in the packet: its offset and length in `payload` (`fill_param`).
    fn fill_param(payload: &[u8], dataoff: usize) -> Option<(usize, usize)>;
}

/// Builds the table of a [`PersistenceEngine`].
pub struct Adapter<E>(core::marker::PhantomData<E>);

impl<E: PersistenceEngine> Adapter<E> {
    const fn name() -> [u8; PENAME_MAXLEN + 1] {
        let mut n = [0u8; PENAME_MAXLEN + 1];
        let mut i = 0;
        while i < E::NAME.len() && i < PENAME_MAXLEN {
            n[i] = E::NAME[i];
            i += 1;
        }
        n
    }

    /// The table, without its module.
    pub const OPS: PeOps = PeOps {
        name: Self::name(),
        module: core::ptr::null_mut(),
        fill_param: Self::fill_param,
    };

    /// `fill_param` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`PeOps`].
    unsafe extern "C" fn fill_param(
        data: *const u8,
        len: usize,
        dataoff: usize,
        off: *mut usize,
        plen: *mut usize,
    ) -> c_int {
        if data.is_null() {
            return -(bindings::EINVAL as c_int);
        }
        // SAFETY: `data` is valid for reading `len` bytes for the call (contract).
        let payload = unsafe { core::slice::from_raw_parts(data, len) };
        match E::fill_param(payload, dataoff) {
            Some((o, l)) if l <= PEDATA_MAXLEN && o.checked_add(l).is_some_and(|e| e <= len) => {
                // SAFETY: Valid for writing (contract).
                unsafe {
                    *off = o;
                    *plen = l;
                }
                0
            }
            _ => -(bindings::EINVAL as c_int),
        }
    }
}

/// An engine registered with the core; dropping it unregisters. Services that use the
/// engine hold a reference on its module and a copy of the table.
///
/// # Invariants
///
/// `ops` is registered with the core, at the address it has in its box, until `drop`.
pub struct Registration {
    ops: KBox<PeOps>,
}

// SAFETY: The table is immutable once registered; the core reads it under its registry lock.
unsafe impl Send for Registration {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `E` on behalf of `module`, the module holding its code; `EEXIST` if an
    /// engine of that name is registered already.
    pub fn new<E: PersistenceEngine>(module: &'static ThisModule) -> Result<Self> {
        let mut ops = KBox::new(Adapter::<E>::OPS, GFP_KERNEL)?;
        ops.module = module.as_ptr();
        // SAFETY: The function of `ops` is `Adapter::<E>`'s, which keeps the table's contract,
        // and is code of `module`. The table stays at its address in the box until `drop`.
        to_result(unsafe { ip_vs_register_pe((&*ops as *const PeOps).cast()) })?;
        // INVARIANT: Registered just now.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` is registered (type invariant); after this the core no longer
        // reads it.
        unsafe { ip_vs_unregister_pe((&*self.ops as *const PeOps).cast()) };
    }
}

/// Declares an engine module whose module object holds the [`Registration`] of the given
/// [`PersistenceEngine`] (upstream's `register_ip_vs_pe`/`unregister_ip_vs_pe`). The keys
/// after `type` are those of `module!`.
macro_rules! module_ip_vs_pe {
    (type: $pe:ty, name: $name:tt, $($rest:tt)*) => {
        /// The module object: keeps the engine registered while the module is loaded.
        struct PeModule {
            _reg: $crate::pe_abi::Registration,
        }

        ::kernel::prelude::module! {
            type: PeModule,
            name: $name,
            $($rest)*
        }

        impl ::kernel::Module for PeModule {
            fn init(module: &'static ::kernel::ThisModule) -> ::kernel::error::Result<Self> {
                Ok(Self {
                    _reg: $crate::pe_abi::Registration::new::<$pe>(module)?,
                })
            }
        }
    };
}
