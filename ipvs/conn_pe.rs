// SPDX-License-Identifier: GPL-2.0

//! The persistence-engine data of templates (upstream's `cp->pe` and `cp->pe_data`), kept
//! beside the connection table so that the 128-byte entry keeps its budget: only templates
//! of services with an engine have it. An entry here is keyed by the address of its
//! template, which carries the internal flag [`crate::conn::F_PE`]; it is added when the
//! template is made and removed when the template leaves the table (under the template's
//! bucket lock), before the template's memory can be reused.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_conn.c` (`pe_data` of `ip_vs_conn_new`,
//! `ip_vs_conn_rcu_free`)

use crate::{conn::ConnData, hash, pe::PeData};
use kernel::{
    c_str,
    prelude::*,
    rcu_hash::{EntryRef, HashTable, Item, Pool, PoolSlot},
    sync::rcu,
};

/// The engine data of one template.
pub(crate) struct PeSide {
    /// The template's address.
    owner: usize,
    /// Its data.
    pub(crate) pe: PeData,
}

impl Item for PeSide {
    fn take_ref(&self) -> Option<EntryRef<Self>> {
        None
    }
}

/// The `ip_vs_pe_data` slab cache of every namespace's [`PeTable`].
pub(crate) static PE_POOL: PoolSlot<PeSide> = PoolSlot::new();

/// Creates the cache of [`PE_POOL`] (module load).
pub(crate) fn install_pool() -> Result {
    PE_POOL.install(Pool::new(c_str!("ip_vs_pe_data"))?)
}

/// Empties [`PE_POOL`] (module unload).
pub(crate) fn remove_pool() {
    PE_POOL.take();
}

/// The engine data of a namespace's templates.
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
        let pool = PE_POOL.get().ok_or(ENOMEM)?;
        Ok(Self { table: HashTable::new(pool, 8, 0)?, seed: crate::abi::random_u32() })
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

    /// Gives template `c` the data `pe`. Any context.
    pub(crate) fn attach(&self, c: &ConnData, pe: &PeData, g: &rcu::Guard) -> Result {
        let owner = owner_of(c);
        self.table.insert(self.hash(owner), PeSide { owner, pe: *pe }, u32::MAX, g).map(|_| ())
    }

    /// Removes the data of template `c` (it is leaving the connection table).
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
            w.get_mut(..c.len()).map(|w| w.copy_from_slice(c));
            let a = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
            let b = u32::from_ne_bytes([w[4], w[5], w[6], w[7]]);
            h = hash::jhash_3words(a, b, c.len() as u32, h);
        }
        hash::jhash_3words(pe.data().len() as u32, 0, 0, h)
    }
}
