// SPDX-License-Identifier: GPL-2.0

//! Per-namespace integer sysctls under `/proc/sys`.
//!
//! C header: [`include/linux/sysctl.h`](srctree/include/linux/sysctl.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    error::{code::ENOMEM, Result},
    net::namespace::{Net, NetScope},
    str::CStr,
    sync::Arc,
};
use core::{
    ffi::{c_int, c_void},
    sync::atomic::{AtomicI32, AtomicU64, Ordering},
};

/// What a sysctl holds and which writes it accepts.
#[derive(Clone, Copy)]
pub enum Kind {
    /// One `int` in `min..=max`; other writes fail with `EINVAL` (`proc_dointvec_minmax`).
    Int {
        /// Smallest accepted value.
        min: i32,
        /// Largest accepted value.
        max: i32,
    },
    /// One `int` that must be a power of two (at least 1).
    PowerOfTwo,
    /// Two `int`s `[a, b]`, both non-negative and `a < b` unless `b` is 0; the default is
    /// `[IntSysctl::default, second]`. A write may give only `a`.
    Threshold {
        /// Default of the second value.
        second: i32,
    },
    /// One `int` stored in jiffies, shown and written in seconds (`proc_dointvec_jiffies`).
    Jiffies,
    /// One `unsigned long`, any value (`proc_doulongvec_minmax` without limits).
    ULong,
    /// A soft limit under a hard one, as upstream's `conn_max`: an administrator of the
    /// initial user namespace (`CAP_NET_ADMIN` there) sets both to a value in `0..=max`,
    /// any other writer only the soft one, up to the hard one. Reads show the soft limit;
    /// both start at the entry's default.
    Limit {
        /// Largest value a privileged writer may set.
        max: i32,
    },
}

/// Description of one sysctl.
#[derive(Clone, Copy)]
pub struct IntSysctl {
    /// File name.
    pub name: &'static CStr,
    /// Initial value (in jiffies for [`Kind::Jiffies`]).
    pub default: i32,
    /// Type and accepted values.
    pub kind: Kind,
    /// File mode, such as `0o644`.
    pub mode: u16,
    /// Read-only (`0o444`) in a namespace owned by a user namespace other than the initial
    /// one: for settings an unprivileged owner must not change (upstream makes such entries
    /// read-only there).
    pub unpriv_ro: bool,
    /// Called after a write changed the value of a [`Kind::Int`] sysctl (or was accepted by
    /// a [`Kind::Limit`] one), with the namespace and the index of the entry.
    pub on_write: Option<fn(&Net, usize)>,
}

/// Storage of one value: an `int`, two `int`s or an `unsigned long`.
#[repr(C, align(8))]
struct Slot([AtomicI32; 2]);

/// Per-entry data the handlers reach through `extra1`.
#[repr(C)]
struct Meta {
    min: i32,
    max: i32,
    kind: Kind,
    on_write: Option<fn(&Net, usize)>,
    net: *mut bindings::net,
    index: usize,
}

/// The values of a [`NetSysctlTable`], shareable with code that outlives no namespace but
/// must not hold the registration (timers).
pub struct SysctlValues {
    slots: KVec<Slot>,
}

impl SysctlValues {
    #[inline]
    fn slot(&self, index: usize) -> Option<&Slot> {
        self.slots.get(index)
    }

    /// The current value of `int` entry `index` (in the order given to
    /// [`NetSysctlTable::new`]), or the first `int` of a pair.
    #[inline]
    pub fn get(&self, index: usize) -> i32 {
        self.slot(index).map_or(0, |s| s.0[0].load(Ordering::Relaxed))
    }

    /// The two values of a [`Kind::Threshold`] entry.
    #[inline]
    pub fn get_pair(&self, index: usize) -> [i32; 2] {
        self.slot(index).map_or([0, 0], |s| {
            [s.0[0].load(Ordering::Relaxed), s.0[1].load(Ordering::Relaxed)]
        })
    }

    /// Sets `int` entry `index`, as the kernel does for sysctls whose value it changes.
    pub fn set(&self, index: usize, value: i32) {
        if let Some(s) = self.slot(index) {
            s.0[0].store(value, Ordering::Relaxed);
        }
    }

    /// Sets both limits of [`Kind::Limit`] entry `index` (a namespace inheriting another's).
    pub fn set_limits(&self, index: usize, value: i32) {
        if let Some(s) = self.slot(index) {
            s.0[1].store(value, Ordering::Relaxed);
            s.0[0].store(value, Ordering::Relaxed);
        }
    }

    /// Sets [`Kind::ULong`] entry `index`.
    pub fn set_ulong(&self, index: usize, value: u64) {
        if let Some(s) = self.slot(index) {
            // SAFETY: `Slot` has the size and alignment of `AtomicU64` and only atomics in it.
            let u = unsafe { &*(s as *const Slot).cast::<AtomicU64>() };
            u.store(value, Ordering::Relaxed);
        }
    }

    /// The value of [`Kind::ULong`] entry `index`.
    pub fn get_ulong(&self, index: usize) -> u64 {
        self.slot(index).map_or(0, |s| {
            // SAFETY: As in `set_ulong`.
            let u = unsafe { &*(s as *const Slot).cast::<AtomicU64>() };
            u.load(Ordering::Relaxed)
        })
    }
}

/// A directory of integer sysctls registered in one namespace; dropping unregisters it.
///
/// # Invariants
///
/// `header` is the registration of `table` in a namespace that outlives this object; `table`,
/// `values` and `meta` are never resized, so the pointers the table holds stay valid.
pub struct NetSysctlTable {
    header: *mut bindings::ctl_table_header,
    table: KVec<bindings::ctl_table>,
    values: Arc<SysctlValues>,
    _meta: KVec<Meta>,
}

// SAFETY: The values are atomics; the rest is only touched on creation and drop.
unsafe impl Send for NetSysctlTable {}
// SAFETY: As above.
unsafe impl Sync for NetSysctlTable {}

/// Reads or writes one or two `int`s through a copy, then checks the written values before
/// storing them: the accepted values of [`Kind::PowerOfTwo`], [`Kind::Threshold`] and of
/// [`Kind::Int`] with a write callback, which runs after a change.
unsafe extern "C" fn checked_handler(
    table: *const bindings::ctl_table,
    write: c_int,
    buffer: *mut c_void,
    lenp: *mut usize,
    ppos: *mut bindings::loff_t,
) -> c_int {
    // SAFETY: The kernel passes one of our entries: `extra1` is its `Meta`, `data` its
    // `Slot`, both alive while the table is registered.
    let (meta, slot) = unsafe { (&*(*table).extra1.cast::<Meta>(), &*(*table).data.cast::<Slot>()) };
    let old = [slot.0[0].load(Ordering::Relaxed), slot.0[1].load(Ordering::Relaxed)];
    let mut val = old;
    if write != 0 && matches!(meta.kind, Kind::Limit { .. }) {
        // Tells a write that gave no number from one that gave the current value.
        val[0] = i32::MIN;
    }
    // SAFETY: As above; a copy of the entry pointing at `val`, with the same length.
    let mut tmp = unsafe { *table };
    tmp.data = val.as_mut_ptr().cast::<c_void>();
    tmp.extra1 = core::ptr::null_mut();
    tmp.extra2 = core::ptr::null_mut();
    // SAFETY: `tmp` is a valid entry whose data holds `maxlen` bytes (at most two `int`s);
    // the other arguments come from the kernel.
    let mut rc = unsafe { bindings::proc_dointvec(&tmp, write, buffer, lenp, ppos) };
    if write == 0 {
        return rc;
    }
    let einval = -(bindings::EINVAL as c_int);
    match meta.kind {
        Kind::Threshold { .. } => {
            if val[0] < 0 || val[1] < 0 || (val[1] != 0 && val[0] >= val[1]) {
                rc = einval;
            } else {
                slot.0[0].store(val[0], Ordering::Relaxed);
                slot.0[1].store(val[1], Ordering::Relaxed);
            }
        }
        Kind::Limit { .. } => {
            if rc == 0 && val[0] != i32::MIN {
                // SAFETY: An FFI call with no additional requirements.
                let privileged = unsafe { bindings::capable(bindings::CAP_NET_ADMIN as c_int) };
                let max = if privileged { meta.max } else { old[1] };
                if val[0] < 0 || val[0] > max {
                    rc = einval;
                } else {
                    if privileged {
                        slot.0[1].store(val[0], Ordering::Relaxed);
                    }
                    slot.0[0].store(val[0], Ordering::Relaxed);
                    if let Some(f) = meta.on_write {
                        // SAFETY: The namespace outlives its registered table.
                        f(unsafe { Net::from_raw(meta.net) }, meta.index);
                    }
                }
            }
        }
        Kind::PowerOfTwo => {
            if val[0] != old[0] {
                if val[0] < 1 || (val[0] & (val[0] - 1)) != 0 {
                    rc = einval;
                } else {
                    slot.0[0].store(val[0], Ordering::Relaxed);
                }
            }
        }
        _ => {
            if rc >= 0 && val[0] != old[0] {
                if val[0] < meta.min || val[0] > meta.max {
                    rc = einval;
                } else {
                    slot.0[0].store(val[0], Ordering::Relaxed);
                    if let Some(f) = meta.on_write {
                        // SAFETY: The namespace outlives its registered table.
                        f(unsafe { Net::from_raw(meta.net) }, meta.index);
                    }
                }
            }
        }
    }
    rc
}

impl NetSysctlTable {
    /// Registers `entries` under `/proc/sys/<path>` of the scope's namespace, kept in `scope`
    /// under `key` (see [`NetScope`]); returns the values, to read and set them.
    pub fn register(
        scope: &NetScope,
        key: usize,
        path: &'static CStr,
        entries: &[IntSysctl],
    ) -> Result<Arc<SysctlValues>> {
        // SAFETY: The table goes into the namespace's scope, which drops it before the
        // namespace is destroyed.
        let t = unsafe { Self::new(scope.net(), path, entries)? };
        let values = t.values.clone();
        scope.insert(key, t)?;
        Ok(values)
    }

    /// Registers `entries` under `/proc/sys/<path>` of `net` (`register_net_sysctl_sz`).
    ///
    /// # Safety
    ///
    /// The table must be dropped before `net` is destroyed.
    unsafe fn new(net: &Net, path: &'static CStr, entries: &[IntSysctl]) -> Result<Self> {
        let n = entries.len();
        let unpriv = !net.owned_by_init_user_ns();
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut meta = KVec::with_capacity(n, GFP_KERNEL)?;
        for (i, e) in entries.iter().enumerate() {
            let second = match e.kind {
                Kind::Threshold { second } => second,
                Kind::Limit { .. } => e.default,
                _ => 0,
            };
            slots.push(Slot([AtomicI32::new(e.default), AtomicI32::new(second)]), GFP_KERNEL)?;
            let (min, max) = match e.kind {
                Kind::Int { min, max } => (min, max),
                Kind::Limit { max } => (0, max),
                _ => (i32::MIN, i32::MAX),
            };
            meta.push(
                Meta {
                    min,
                    max,
                    kind: e.kind,
                    on_write: e.on_write,
                    net: net.as_ptr(),
                    index: i,
                },
                GFP_KERNEL,
            )?;
        }
        let values = Arc::new(SysctlValues { slots }, GFP_KERNEL)?;
        let mut table = KVec::with_capacity(n, GFP_KERNEL)?;
        for (i, e) in entries.iter().enumerate() {
            // SAFETY: All-zeroes is a valid (empty) `ctl_table`.
            let mut t: bindings::ctl_table = unsafe { core::mem::zeroed() };
            let m = meta.as_ptr().wrapping_add(i).cast_mut();
            t.procname = e.name.as_char_ptr();
            t.data = values.slots.as_ptr().wrapping_add(i).cast_mut().cast::<c_void>();
            t.maxlen = core::mem::size_of::<i32>() as i32;
            t.mode = if e.unpriv_ro && unpriv { 0o444 } else { e.mode };
            t.extra1 = m.cast::<c_void>();
            match e.kind {
                Kind::Int { .. } if e.on_write.is_none() => {
                    t.proc_handler = Some(bindings::proc_dointvec_minmax);
                    // SAFETY: `m` points into `meta`, allocated above; `min` and `max` are
                    // adjacent `int`s as the handler wants them.
                    unsafe {
                        t.extra1 = core::ptr::addr_of_mut!((*m).min).cast::<c_void>();
                        t.extra2 = core::ptr::addr_of_mut!((*m).max).cast::<c_void>();
                    }
                }
                Kind::Int { .. } | Kind::PowerOfTwo | Kind::Limit { .. } => {
                    t.proc_handler = Some(checked_handler)
                }
                Kind::Threshold { .. } => {
                    t.proc_handler = Some(checked_handler);
                    t.maxlen = 2 * core::mem::size_of::<i32>() as i32;
                }
                Kind::Jiffies => t.proc_handler = Some(bindings::proc_dointvec_jiffies),
                Kind::ULong => {
                    t.proc_handler = Some(bindings::proc_doulongvec_minmax);
                    t.maxlen = core::mem::size_of::<u64>() as i32;
                    t.extra1 = core::ptr::null_mut();
                }
            }
            table.push(t, GFP_KERNEL)?;
        }
        // SAFETY: The table and everything it points to live until `drop` unregisters it;
        // `AtomicI32` has the layout of `int`, a `Slot` that of `unsigned long`.
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
            _meta: meta,
        })
    }

    /// The values, to read and set them.
    #[inline]
    pub fn values(&self) -> &Arc<SysctlValues> {
        &self.values
    }

    /// The current value of entry `index` (in the order given to [`Self::new`]).
    #[inline]
    pub fn get(&self, index: usize) -> i32 {
        self.values.get(index)
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
