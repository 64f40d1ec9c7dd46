// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters.
//!
//! [`PerCpuCounters`] gives every possible CPU its own array of `N` 64-bit counters. The local
//! CPU adds to its own array with bottom halves disabled, with plain (not locked) loads and
//! stores; readers on any CPU sum the arrays. No lock and no shared cache line is written on
//! the update path.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)

use crate::{alloc::Flags, bindings, error::code::ENOMEM, prelude::*};
use core::{
    ffi::c_void,
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

/// `N` counters on each possible CPU.
///
/// # Invariants
///
/// `ptr` is a per-CPU allocation of `[AtomicU64; N]`, zero-initialised, owned by `self`.
pub struct PerCpuCounters<const N: usize> {
    ptr: NonNull<c_void>,
}

// SAFETY: The per-CPU arrays are only accessed through atomics; `self` only owns memory.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}
// SAFETY: All `&self` methods use atomics only.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

/// Bottom halves, and with them preemption and migration, disabled on the local CPU while the
/// guard lives (`local_bh_disable`; in a softirq, or where the caller disabled them, they are
/// off already and the guard leaves them so). Several per-CPU updates can share one guard.
pub struct BhDisabled {
    /// The local CPU's per-CPU offset (`__my_cpu_offset`), fixed while bottom halves are off.
    cpu_offset: usize,
    /// Whether [`Self::new`] disabled bottom halves, to be enabled again on drop.
    disabled: bool,
    // Not `Send`: it must be dropped on the CPU it was taken on.
    _not_send: PhantomData<*mut ()>,
}

impl BhDisabled {
    /// Disables bottom halves, if they are not already, until the guard is dropped.
    #[inline]
    pub fn new() -> Self {
        let mut disabled = false;
        // SAFETY: `disabled` is valid for the write; a disable it reports is paired with the
        // enable in `drop`, on this CPU (the guard is not `Send`).
        let cpu_offset = unsafe { bindings::local_bh_off_cpu_offset(&mut disabled) } as usize;
        Self { cpu_offset, disabled, _not_send: PhantomData }
    }
}

impl Default for BhDisabled {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for BhDisabled {
    #[inline]
    fn drop(&mut self) {
        if self.disabled {
            // SAFETY: Paired with the disable in `new`.
            unsafe { bindings::local_bh_enable() };
        }
    }
}

/// The local CPU's counters, valid while bottom halves are disabled (see
/// [`PerCpuCounters::local`]).
pub struct LocalCounters<'a, const N: usize> {
    cells: &'a [AtomicU64; N],
    // Not `Send`: the counters belong to the CPU the guard was taken on.
    _not_send: PhantomData<*mut ()>,
}

impl<const N: usize> LocalCounters<'_, N> {
    /// Adds `v` to counter `i` (ignored if `i` is out of range).
    #[inline]
    pub fn add(&self, i: usize, v: u64) {
        if let Some(c) = self.cells.get(i) {
            // Only this CPU writes this cell, with bottom halves off, so a plain read-modify-write
            // cannot lose an update; readers elsewhere see either value (64-bit stores do not
            // tear on the architectures Rust supports in the kernel).
            c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
        }
    }
}

impl<const N: usize> PerCpuCounters<N> {
    /// Allocates zeroed counters for every possible CPU.
    pub fn new(flags: Flags) -> Result<Self> {
        // SAFETY: FFI call; size and alignment are those of a valid type.
        let p = unsafe {
            bindings::alloc_percpu_zeroed(
                core::mem::size_of::<[AtomicU64; N]>(),
                core::mem::align_of::<[AtomicU64; N]>(),
                flags.as_raw(),
            )
        };
        let ptr = NonNull::new(p).ok_or(ENOMEM)?;
        // INVARIANT: a zeroed per-CPU allocation of the array's size and alignment.
        Ok(Self { ptr })
    }

    /// The local CPU's counters, for as long as bottom halves stay disabled by `bh`.
    #[inline]
    pub fn local<'a>(&'a self, bh: &'a BhDisabled) -> LocalCounters<'a, N> {
        // The local copy is the per-CPU pointer shifted by the CPU's offset, as `this_cpu_ptr`
        // computes it, without a call per counter array.
        let local = (self.ptr.as_ptr() as usize).wrapping_add(bh.cpu_offset);
        // SAFETY: `ptr` is a live per-CPU allocation (type invariant), so shifting it by the
        // local CPU's offset gives that CPU's copy; while `bh` lives the task cannot migrate,
        // so it stays the local CPU's for the borrow.
        let cells = unsafe { &*(local as *const [AtomicU64; N]) };
        LocalCounters { cells, _not_send: PhantomData }
    }

    /// Runs `f` on the local CPU's counters with bottom halves (and so preemption) disabled.
    #[inline]
    pub fn update<R>(&self, f: impl FnOnce(&LocalCounters<'_, N>) -> R) -> R {
        let bh = BhDisabled::new();
        f(&self.local(&bh))
    }

    /// Calls `f` with each possible CPU's number and a snapshot of its counters.
    ///
    /// The possible CPUs are read from their mask and each copy found by the CPU's per-CPU
    /// offset, as `for_each_possible_cpu` and `per_cpu_ptr` do inline, without a call per CPU.
    #[inline]
    pub fn for_each_cpu(&self, mut f: impl FnMut(u32, [u64; N])) {
        // SAFETY: `nr_cpu_ids` is set once during boot, before modules load.
        let nr = unsafe { bindings::nr_cpu_ids } as usize;
        // SAFETY: The possible mask and the per-CPU offsets are set during boot, before
        // modules load, and never written afterwards; shared references to them are sound.
        let (mask, offsets) = unsafe {
            (
                &*core::ptr::addr_of!(bindings::__cpu_possible_mask.bits),
                &*core::ptr::addr_of!(bindings::__per_cpu_offset),
            )
        };
        let word_bits = usize::BITS as usize;
        for (w, &word) in mask.iter().enumerate().take(nr.div_ceil(word_bits)) {
            let mut bits = word as usize;
            while bits != 0 {
                let cpu = w * word_bits + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(&offset) = offsets.get(cpu) else { return };
                if cpu >= nr {
                    return;
                }
                let copy = (self.ptr.as_ptr() as usize).wrapping_add(offset as usize);
                // SAFETY: `cpu` is a possible CPU and `ptr` a live per-CPU allocation of the
                // array (type invariant): shifted by that CPU's offset it is that CPU's copy.
                let cells = unsafe { &*(copy as *const [AtomicU64; N]) };
                f(cpu as u32, core::array::from_fn(|i| cells[i].load(Relaxed)));
            }
        }
    }

    /// The sum over all possible CPUs of each counter.
    #[inline]
    pub fn sum(&self) -> [u64; N] {
        let mut total = [0u64; N];
        self.for_each_cpu(|_, v| {
            for (t, x) in total.iter_mut().zip(v) {
                *t = t.wrapping_add(x);
            }
        });
        total
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the per-CPU allocator and is freed once, here.
        unsafe { bindings::free_percpu(self.ptr.as_ptr()) };
    }
}
