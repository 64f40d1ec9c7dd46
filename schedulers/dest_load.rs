// SPDX-License-Identifier: GPL-2.0

//! The core's [`DestInfo`] as the load-based schedulers' kernel-independent [`Dest`].

use crate::{abi::DestInfo, dest::Dest};

impl Dest for &DestInfo {
    fn weight(&self) -> i32 {
        DestInfo::weight(self)
    }
    fn overloaded(&self) -> bool {
        self.is_overloaded()
    }
    fn activeconns(&self) -> u32 {
        DestInfo::activeconns(self)
    }
    fn totalconns(&self) -> u32 {
        self.totalconns.load(core::sync::atomic::Ordering::Relaxed)
    }
}
