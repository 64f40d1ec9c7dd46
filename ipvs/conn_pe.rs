// SPDX-License-Identifier: GPL-2.0

//! The persistence-engine data of templates (upstream's `cp->pe` and `cp->pe_data`), kept
//! beside the connection tables so that the 128-byte entry keeps its budget: only templates
//! of services with an engine have it. An entry here is keyed by the address of its
//! template, which carries the internal flag [`crate::conn::F_PE`]; it is added when the
//! template is made and removed when the template's memory is freed (its `Drop`, in the RCU
//! callback that frees it, outside any bucket lock), so no other template can have that
//! address meanwhile. One table serves every namespace (addresses are unique).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_conn.c` (`pe_data` of `ip_vs_conn_new`,
//! `ip_vs_conn_rcu_free`)

use crate::{
    conn::ConnData,
    hash,
    pe::{ModuleRef, PeData},
};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox},
    c_str,
    prelude::*,
    rcu_hash::{EntryRef, HashTable, Item, Pool},
    sync::rcu,
};

/// The engine data of one template.
pub(crate) struct PeSide {
    /// The template's address.
    owner: usize,
    /// Its data.
    pub(crate) pe: PeData,
    /// Keeps the engine's module loaded while a template has its data (as upstream).
    _module: ModuleRef,
}

impl Item for PeSide {
    fn take_ref(&self) -> Option<EntryRef<Self>> {
        None
    }
}

/// The module's [`PeTable`], published for the connection entries' `Drop`; null outside
/// the module's lifetime.
static TABLE: AtomicPtr<PeTable> = AtomicPtr::new(core::ptr::null_mut());

/// Creates the table (module load, before any namespace is set up).
pub(crate) fn install() -> Result {
    let t = KBox::new(PeTable::new()?, GFP_KERNEL)?;
    let p = KBox::into_raw(t);
    if TABLE.compare_exchange(core::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // SAFETY: `p` came from `KBox::into_raw` just now and was not published.
        drop(unsafe { KBox::from_raw(p) });
        return Err(EBUSY);
    }
    Ok(())
}

/// Drops the table (module unload: every namespace's connection table is gone and the RCU
/// callbacks that free their entries have run).
pub(crate) fn remove() {
    let p = TABLE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        rcu::synchronize_rcu();
        // SAFETY: Published by `install` from `KBox::into_raw`, taken out of `TABLE` once, here;
        // readers are done (grace period above, and no entry is left to drop).
        drop(unsafe { KBox::from_raw(p) });
    }
}

/// The module's table.
pub(crate) fn table() -> Option<&'static PeTable> {
    // SAFETY: Null or the table `install` published, which `remove` frees only at module
    // unload, after every user (connection tables and their entries) is gone.
    unsafe { TABLE.load(Ordering::Acquire).as_ref() }
}

/// The engine data of the templates of every namespace.
pub(crate) struct PeTable {
    table: HashTable<PeSide>,
    seed: u32,
}

/// The key of a template.
fn owner_of(c: &ConnData) -> usize {
    core::ptr::from_ref(c) as usize
}

impl PeTable {
    /// An empty table. Process context.
    pub(crate) fn new() -> Result<Self> {
        let pool = Pool::new(c_str!("ip_vs_pe_data"))?;
        Ok(Self { table: HashTable::new(pool, 12, 0)?, seed: crate::abi::random_u32() })
    }

    fn hash(&self, owner: usize) -> u32 {
        let o = owner as u64;
        hash::jhash_3words(o as u32, (o >> 32) as u32, 0, self.seed)
    }

    /// The data of template `c`, if it has some.
    pub(crate) fn get<'a>(&'a self, c: &ConnData, g: &'a rcu::Guard) -> Option<&'a PeData> {
        let owner = owner_of(c);
        self.table.lookup(self.hash(owner), g, |s| s.owner == owner).map(|e| &e.pe)
    }

    /// Gives template `c` the data `pe` of the engine whose module `module` pins. Any
    /// context.
    pub(crate) fn attach(&self, c: &ConnData, pe: &PeData, module: ModuleRef, g: &rcu::Guard) -> Result {
        let owner = owner_of(c);
        let side = PeSide { owner, pe: *pe, _module: module };
        self.table.insert(self.hash(owner), side, u32::MAX, g).map(|_| ())
    }

    /// Removes the data of template `c` (its memory is being freed). Any context, but not
    /// under a bucket lock of a connection table (the tables share a lock class).
    pub(crate) fn detach(&self, c: &ConnData) {
        let owner = owner_of(c);
        let g = rcu::read_lock();
        if let Some(e) = self.table.lookup(self.hash(owner), &g, |s| s.owner == owner) {
            self.table.unlink(e);
        }
    }

    /// Hands the removed entries to RCU (the slow timer calls it with the table's).
    pub(crate) fn submit(&self) {
        self.table.submit();
    }

    /// Hash of engine data (upstream's SIP `hashkey_raw`, a hash of the bytes), for the
    /// template's bucket.
    pub(crate) fn data_hash(pe: &PeData, seed: u32) -> u32 {
        let mut h = seed;
        for c in pe.data().chunks(8) {
            let mut w = [0u8; 8];
            if let Some(w) = w.get_mut(..c.len()) {
                w.copy_from_slice(c);
            }
            let [a0, a1, a2, a3, b0, b1, b2, b3] = w;
            let a = u32::from_ne_bytes([a0, a1, a2, a3]);
            let b = u32::from_ne_bytes([b0, b1, b2, b3]);
            h = hash::jhash_3words(a, b, c.len() as u32, h);
        }
        hash::jhash_3words(pe.data().len() as u32, 0, 0, h)
    }
}
