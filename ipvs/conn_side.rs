// SPDX-License-Identifier: GPL-2.0

//! State kept beside connection entries, for the few connections that have it, so that the
//! 128-byte entry keeps its budget: the persistence-engine data of templates (`conn_pe.rs`)
//! and the application-helper state of connections bound to a helper (`app.rs`).
//!
//! A [`SideTable`] is an RCU hash table of such states keyed by the address of the entry
//! they belong to. A state is added once its entry is made and removed when the entry's
//! memory is freed (the entry's `Drop`, in the RCU callback that frees it, outside any bucket
//! lock of a connection table, whose locks share a lock class with these), so no other entry
//! can have that address meanwhile. One table serves every namespace: each state is its own
//! allocation, so the number of states is bounded by the connections each namespace may
//! have, not by the table. The table grows and shrinks with its number of states; the
//! namespaces' resizers (`conn.rs`) do it in process context.

use crate::conn::ConnData;
use crate::hash;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox},
    prelude::*,
    rcu_hash::{HashTable, Item, Pool},
    sync::rcu,
};

/// Smallest table: 2^8 buckets.
const MIN_BITS: u32 = 8;
/// Largest table: 2^20 buckets.
const MAX_BITS: u32 = 20;

/// A state kept beside a connection entry.
pub(crate) trait Side: Item {
    /// The address of the entry it belongs to.
    fn owner(&self) -> usize;
}

/// The key of an entry.
pub(crate) fn owner_of(c: &ConnData) -> usize {
    core::ptr::from_ref(c) as usize
}

/// The states of one kind, of the entries of every namespace.
pub(crate) struct SideTable<V: Side> {
    table: HashTable<V>,
    seed: u32,
}

impl<V: Side> SideTable<V> {
    /// An empty table whose states come from the slab cache `name`. Process context.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        let pool = Pool::new(name)?;
        Ok(Self { table: HashTable::new(pool, MIN_BITS, 0)?, seed: crate::abi::random_u32() })
    }

    fn hash(&self, owner: usize) -> u32 {
        let o = owner as u64;
        hash::jhash_3words(o as u32, (o >> 32) as u32, 0, self.seed)
    }

    /// The state of entry `c`, if it has one.
    #[inline]
    pub(crate) fn get<'a>(&'a self, c: &ConnData, g: &'a rcu::Guard) -> Option<&'a V> {
        self.get_owned(owner_of(c), g)
    }

    /// The state of the entry at address `owner`, if it has one.
    #[inline]
    pub(crate) fn get_owned<'a>(&'a self, owner: usize, g: &'a rcu::Guard) -> Option<&'a V> {
        self.table.lookup(self.hash(owner), g, |s| s.owner() == owner).map(|e| &**e)
    }

    /// Adds `v` (`ENOMEM` when memory is short). Any context.
    pub(crate) fn attach<'a>(&'a self, v: V, g: &'a rcu::Guard) -> Result<&'a V> {
        let h = self.hash(v.owner());
        self.table.insert(h, v, u32::MAX, g).map(|e| &**e)
    }

    /// Removes the state of entry `c` (its memory is being freed). Any context, but not
    /// under a bucket lock of a connection table.
    pub(crate) fn detach(&self, c: &ConnData) {
        self.detach_owned(owner_of(c));
    }

    /// Removes the state of the entry at address `owner`.
    pub(crate) fn detach_owned(&self, owner: usize) {
        let g = rcu::read_lock();
        if let Some(e) = self.table.lookup(self.hash(owner), &g, |s| s.owner() == owner) {
            self.table.unlink(e);
        }
    }

    /// Hands the removed states to RCU.
    pub(crate) fn submit(&self) {
        self.table.submit();
    }

    /// Number of states.
    pub(crate) fn count(&self) -> u32 {
        self.table.count()
    }

    /// Number of buckets, and its bits.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.table.size()
    }

    /// The bits of the array `n` states want: one bucket per state, rounded up to a power
    /// of two.
    fn want_bits(n: u32) -> u32 {
        n.max(1).checked_next_power_of_two().map_or(MAX_BITS, |p| p.trailing_zeros()).clamp(MIN_BITS, MAX_BITS)
    }

    /// Whether the array is too small (over 2 states per bucket) or too large (under one
    /// per 8 buckets) for its states.
    pub(crate) fn needs_resize(&self) -> bool {
        let (size, bits) = self.size();
        let n = self.count();
        (n > size.saturating_mul(2) && bits < MAX_BITS) || (n < size / 8 && bits > MIN_BITS)
    }

    /// Resizes the array to its number of states. Process context.
    pub(crate) fn resize_to_load(&self) {
        if !self.needs_resize() {
            return;
        }
        if self.table.resize(Self::want_bits(self.count()), 0).is_err() {
            pr_warn!("IPVS: no memory to resize a connection side table\n");
        }
    }
}

/// The module's table of one kind, in a `static`: created at module load, before any
/// namespace is set up, dropped at unload, after every namespace's connections are gone.
pub(crate) struct SideSlot<V: Side> {
    ptr: AtomicPtr<SideTable<V>>,
}

impl<V: Side> SideSlot<V> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self { ptr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    /// Creates the table, its states coming from the slab cache `name`.
    pub(crate) fn install(&self, name: &'static CStr) -> Result {
        let t = KBox::new(SideTable::new(name)?, GFP_KERNEL)?;
        let p = KBox::into_raw(t);
        if self.ptr.compare_exchange(core::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: `p` came from `KBox::into_raw` just now and was not published.
            drop(unsafe { KBox::from_raw(p) });
            return Err(EBUSY);
        }
        Ok(())
    }

    /// Drops the table (module unload: every namespace's connection table is gone and the
    /// RCU callbacks that free their entries have run).
    pub(crate) fn remove(&self) {
        let p = self.ptr.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            rcu::synchronize_rcu();
            // SAFETY: Published by `install` from `KBox::into_raw`, taken out of the slot
            // once, here; readers are done (grace period above, and no entry is left).
            drop(unsafe { KBox::from_raw(p) });
        }
    }

    /// The table.
    #[inline]
    pub(crate) fn get(&self) -> Option<&'static SideTable<V>> {
        // SAFETY: Null or the table `install` published, which `remove` frees only at module
        // unload, after every user (connection tables and their entries) is gone.
        unsafe { self.ptr.load(Ordering::Acquire).as_ref() }
    }
}
