// SPDX-License-Identifier: GPL-2.0

//! Destination hashing, independent of the kernel (`no_std`, host-tested).
//!
//! A table of 256 buckets is filled round robin with the service's servers in list order,
//! regardless of weight. A new connection goes to the server of the bucket its destination
//! address hashes to, if that server is usable; there is no fallback.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_dh.c`

#![allow(dead_code, unreachable_pub)]

use crate::server::{addr_fold, hash_32, position, Server};

/// `CONFIG_IP_VS_DH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
/// Buckets in the table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// The bucket of a destination address.
pub fn hashkey(af: u16, addr: &[u8; 16]) -> usize {
    hash_32(addr_fold(af, addr), TAB_BITS) as usize
}

/// Fills the table from `dests` without `dests[skip]` (the server being removed): `set(bucket,
/// id)` for every bucket, id 0 when there is no server.
pub fn reassign<S: Server>(dests: &[S], skip: Option<usize>, mut set: impl FnMut(usize, u64)) {
    let mut order = dests
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != skip)
        .map(|(_, d)| d.id())
        .cycle();
    for b in 0..TAB_SIZE {
        set(b, order.next().unwrap_or(0));
    }
}

/// The server for a connection to `daddr`, given the table as `get(bucket) -> id`.
pub fn pick<S: Server>(dests: &[S], get: impl Fn(usize) -> u64, af: u16, daddr: &[u8; 16]) -> Option<usize> {
    let i = position(dests, get(hashkey(af, daddr)))?;
    let d = &dests[i];
    (d.available() && d.weight() > 0 && !d.overloaded()).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::D;

    fn table(d: &[D], skip: Option<usize>) -> Vec<u64> {
        let mut t = vec![u64::MAX; TAB_SIZE];
        reassign(d, skip, |b, id| t[b] = id);
        t
    }

    #[test]
    fn round_robin_ignoring_weights() {
        let d = [D::new(1, 5), D::new(2, 0), D::new(3, 1)];
        let t = table(&d, None);
        assert_eq!(&t[..6], &[1, 2, 3, 1, 2, 3]);
        let n = |id| t.iter().filter(|&&x| x == id).count();
        assert_eq!((n(1), n(2), n(3)), (86, 85, 85));
        let t = table(&d, Some(1));
        assert_eq!(&t[..4], &[1, 3, 1, 3]);
        assert!(table(&d[..1], Some(0)).iter().all(|&x| x == 0));
    }

    #[test]
    fn pick_checks_usability() {
        let mut d = vec![D::new(1, 1), D::new(2, 1), D::new(3, 1), D::new(4, 1)];
        let t = table(&d, None);
        let mut daddr = [0u8; 16];
        let mut seen = [0usize; 4];
        for n in 0..64u8 {
            daddr[..4].copy_from_slice(&[10, 1, 0, n]);
            let i = pick(&d, |b| t[b], 2, &daddr).unwrap();
            assert_eq!(d[i].id, t[hashkey(2, &daddr)]);
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&s| s > 0), "{seen:?}");
        let i = pick(&d, |b| t[b], 2, &daddr).unwrap();
        d[i].weight = 0;
        assert_eq!(pick(&d, |b| t[b], 2, &daddr), None);
        d[i].weight = 1;
        d[i].overloaded = true;
        assert_eq!(pick(&d, |b| t[b], 2, &daddr), None);
        d[i].overloaded = false;
        d[i].available = false;
        assert_eq!(pick(&d, |b| t[b], 2, &daddr), None);
    }
}
