// SPDX-License-Identifier: GPL-2.0

//! The ABI's [`DestInfo`] as the hashing and locality schedulers' [`Server`].

use crate::{
    abi::{DestInfo, DEST_F_AVAILABLE},
    server::Server,
};
use core::sync::atomic::Ordering::Relaxed;

impl Server for &DestInfo {
    fn id(&self) -> u64 {
        self.id
    }
    fn af(&self) -> u16 {
        self.af
    }
    fn addr(&self) -> [u8; 16] {
        self.addr
    }
    fn port(&self) -> [u8; 2] {
        self.port
    }
    fn weight(&self) -> i32 {
        DestInfo::weight(self)
    }
    fn overloaded(&self) -> bool {
        self.is_overloaded()
    }
    fn available(&self) -> bool {
        self.flags.load(Relaxed) & DEST_F_AVAILABLE != 0
    }
    fn activeconns(&self) -> i32 {
        self.activeconns.load(Relaxed) as i32
    }
    fn totalconns(&self) -> i32 {
        self.totalconns.load(Relaxed) as i32
    }
}
