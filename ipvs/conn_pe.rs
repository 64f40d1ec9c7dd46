// SPDX-License-Identifier: GPL-2.0

//! The persistence-engine data of templates (upstream's `cp->pe` and `cp->pe_data`), kept
//! beside the connection tables (`conn_side.rs`) so that the 128-byte entry keeps its
//! budget: only templates of services with an engine have it. Such a template carries the
//! internal flag [`crate::conn::F_PE`].
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_conn.c` (`pe_data` of `ip_vs_conn_new`,
//! `ip_vs_conn_rcu_free`)

use crate::{
    conn::ConnData,
    conn_side::{owner_of, Side, SideSlot, SideTable},
    hash,
    pe::{ModuleRef, PeData},
};
use kernel::{c_str, prelude::*, rcu_hash::{EntryRef, Item}, sync::rcu};

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

impl Side for PeSide {
    fn owner(&self) -> usize {
        self.owner
    }
}

/// The engine data of the templates of every namespace.
pub(crate) type PeTable = SideTable<PeSide>;

/// The module's [`PeTable`].
static TABLE: SideSlot<PeSide> = SideSlot::new();

/// Creates the table (module load, before any namespace is set up).
pub(crate) fn install() -> Result {
    TABLE.install(c_str!("ip_vs_pe_data"))
}

/// Drops the table (module unload).
pub(crate) fn remove() {
    TABLE.remove();
}

/// The module's table.
pub(crate) fn table() -> Option<&'static PeTable> {
    TABLE.get()
}

impl SideTable<PeSide> {
    /// The data of template `c`, if it has some.
    pub(crate) fn pe<'a>(&'a self, c: &ConnData, g: &'a rcu::Guard) -> Option<&'a PeData> {
        self.get(c, g).map(|s| &s.pe)
    }

    /// Gives template `c` the data `pe` of the engine whose module `module` pins. Any
    /// context.
    pub(crate) fn attach_pe(&self, c: &ConnData, pe: &PeData, module: ModuleRef, g: &rcu::Guard) -> Result {
        self.attach(PeSide { owner: owner_of(c), pe: *pe, _module: module }, g).map(|_| ())
    }
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
