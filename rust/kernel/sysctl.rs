// SPDX-License-Identifier: GPL-2.0

//! Per-namespace integer sysctls under `/proc/sys`.
//!
//! C header: [`include/linux/sysctl.h`](srctree/include/linux/sysctl.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    error::{code::ENOMEM, Result},
    net::namespace::Net,
    str::CStr,
};
use core::{
    ffi::c_void,
    sync::atomic::{AtomicI32, Ordering},
};

/// Description of one integer sysctl.
#[derive(Clone, Copy)]
pub struct IntSysctl {
    /// File name.
    pub name: &'static CStr,
    /// Initial value.
    pub default: i32,
    /// Smallest accepted value (writes outside the range fail with `EINVAL`).
    pub min: i32,
    /// Largest accepted value.
    pub max: i32,
    /// File mode, such as `0o644`.
    pub mode: u16,
}

/// A directory of integer sysctls registered in one namespace; dropping unregisters it.
///
/// # Invariants
///
/// `header` is the registration of `table` in a namespace that outlives this object; `table`,
/// `values` and `limits` are never resized, so the pointers the table holds stay valid.
pub struct NetSysctlTable {
    header: *mut bindings::ctl_table_header,
    table: KVec<bindings::ctl_table>,
    values: KVec<AtomicI32>,
    _limits: KVec<i32>,
}

// SAFETY: The values are atomics; the rest is only touched on creation and drop.
unsafe impl Send for NetSysctlTable {}
// SAFETY: As above.
unsafe impl Sync for NetSysctlTable {}

impl NetSysctlTable {
    /// Registers `entries` under `/proc/sys/<path>` of `net` (`register_net_sysctl_sz`).
    ///
    /// # Safety
    ///
    /// The table must be dropped before `net` is destroyed.
    pub unsafe fn new(net: &Net, path: &'static CStr, entries: &[IntSysctl]) -> Result<Self> {
        let n = entries.len();
        let mut values = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut limits = KVec::with_capacity(2 * n, GFP_KERNEL)?;
        for e in entries {
            values.push(AtomicI32::new(e.default), GFP_KERNEL)?;
            limits.push(e.min, GFP_KERNEL)?;
            limits.push(e.max, GFP_KERNEL)?;
        }
        let mut table = KVec::with_capacity(n, GFP_KERNEL)?;
        for (i, e) in entries.iter().enumerate() {
            // SAFETY: All-zeroes is a valid (empty) `ctl_table`.
            let mut t: bindings::ctl_table = unsafe { core::mem::zeroed() };
            t.procname = e.name.as_char_ptr();
            t.data = values.as_ptr().wrapping_add(i).cast_mut().cast::<c_void>();
            t.maxlen = core::mem::size_of::<i32>() as i32;
            t.mode = e.mode;
            t.proc_handler = Some(bindings::proc_dointvec_minmax);
            t.extra1 = limits.as_ptr().wrapping_add(2 * i).cast_mut().cast::<c_void>();
            t.extra2 = limits.as_ptr().wrapping_add(2 * i + 1).cast_mut().cast::<c_void>();
            table.push(t, GFP_KERNEL)?;
        }
        // SAFETY: The table and everything it points to live until `drop` unregisters it;
        // `AtomicI32` has the layout of `int`.
        let header = unsafe {
            bindings::register_net_sysctl_sz(net.as_ptr(), path.as_char_ptr(), table.as_mut_ptr(), n)
        };
        if header.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: Registered above; the vectors are never resized.
        Ok(Self {
            header,
            table,
            values,
            _limits: limits,
        })
    }

    /// The current value of entry `index` (in the order given to [`Self::new`]).
    pub fn get(&self, index: usize) -> i32 {
        self.values.get(index).map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

impl Drop for NetSysctlTable {
    fn drop(&mut self) {
        // SAFETY: By the type invariants `header` is our live registration; unregistering
        // waits for running handlers before `table` and `values` are freed.
        unsafe { bindings::unregister_net_sysctl_table(self.header) };
        let _ = &self.table;
    }
}
