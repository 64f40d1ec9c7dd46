// SPDX-License-Identifier: GPL-2.0

//! Source hashing, independent of the kernel (`no_std`, host-tested).
//!
//! A table of 256 buckets is filled with the service's servers in list order, each taking
//! as many consecutive buckets as its weight (at least one). A new connection goes to the
//! server of the bucket its source address (and with `sh-port` its source port) hashes to;
//! with `sh-fallback` an unusable server there is replaced by probing further buckets.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sh.c`

#![allow(dead_code, unreachable_pub)]

use crate::server::{addr_fold, hash_32, position, Server};

/// `CONFIG_IP_VS_SH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
/// Buckets in the table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// `IP_VS_SVC_F_SCHED_SH_FALLBACK` (`IP_VS_SVC_F_SCHED1`).
pub const SVC_F_FALLBACK: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED_SH_PORT` (`IP_VS_SVC_F_SCHED2`).
pub const SVC_F_PORT: u32 = 0x0010;

/// The bucket of `addr`/`port` (network byte order), moved on by `offset`.
pub fn hashkey(af: u16, addr: &[u8; 16], port: [u8; 2], offset: u32) -> usize {
    let v = (u16::from_be_bytes(port) as u32).wrapping_add(addr_fold(af, addr));
    (offset.wrapping_add(hash_32(v, TAB_BITS)) as usize) & (TAB_SIZE - 1)
}

/// Fills the table from `dests` without `dests[skip]` (the server being removed): `set(bucket,
/// id)` for every bucket, id 0 when there is no server.
pub fn reassign<S: Server>(dests: &[S], skip: Option<usize>, mut set: impl FnMut(usize, u64)) {
    let mut order = dests
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != skip)
        .map(|(_, d)| d)
        .cycle();
    let mut cur = order.next();
    let mut count = 0;
    for b in 0..TAB_SIZE {
        let Some(d) = cur else {
            set(b, 0);
            continue;
        };
        set(b, d.id());
        count += 1;
        if count >= d.weight() {
            cur = order.next();
            count = 0;
        }
    }
}

fn usable<S: Server>(d: &S) -> bool {
    d.weight() > 0 && !d.overloaded()
}

/// The server for a connection from `addr`/`port` (`port` is zero unless the service has
/// `sh-port`), given the table as `get(bucket) -> id`.
pub fn pick<S: Server>(
    dests: &[S],
    get: impl Fn(usize) -> u64,
    af: u16,
    addr: &[u8; 16],
    port: [u8; 2],
    fallback: bool,
) -> Option<usize> {
    let ihash = hashkey(af, addr, port, 0);
    let first = position(dests, get(ihash))?;
    if usable(&dests[first]) {
        return Some(first);
    }
    if !fallback {
        return None;
    }
    for offset in 0..TAB_SIZE {
        let roffset = (offset + ihash) % TAB_SIZE;
        let i = position(dests, get(hashkey(af, addr, port, roffset as u32)))?;
        if usable(&dests[i]) {
            return Some(i);
        }
    }
    None
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

    fn src(n: u32) -> [u8; 16] {
        let mut a = [0; 16];
        a[..4].copy_from_slice(&(0xc0a8_0000 + n).to_be_bytes());
        a
    }

    #[test]
    fn fills_by_weight_in_list_order() {
        let d = [D::new(1, 3), D::new(2, 1), D::new(3, 0)];
        let t = table(&d, None);
        assert_eq!(&t[..10], &[1, 1, 1, 2, 3, 1, 1, 1, 2, 3]);
        // Over the 256 buckets: 3:1:1 per round of five.
        let n = |id| t.iter().filter(|&&x| x == id).count();
        assert_eq!((n(1), n(2), n(3)), (154, 51, 51));
    }

    #[test]
    fn distribution_follows_weights() {
        let d = [D::new(1, 5), D::new(2, 3), D::new(3, 8)];
        let t = table(&d, None);
        let n = |id| t.iter().filter(|&&x| x == id).count();
        // 16 buckets per round, 16 rounds.
        assert_eq!((n(1), n(2), n(3)), (80, 48, 128));
        // A weight above the table size takes every bucket.
        let t = table(&[D::new(1, 1000), D::new(2, 1)], None);
        assert!(t.iter().all(|&x| x == 1));
    }

    #[test]
    fn removal_skips_the_server() {
        let d = [D::new(1, 1), D::new(2, 1)];
        assert!(table(&d, Some(0)).iter().all(|&x| x == 2));
        assert!(table(&d[..1], Some(0)).iter().all(|&x| x == 0));
        assert!(table(&[], None).iter().all(|&x| x == 0));
    }

    #[test]
    fn pick_and_fallback() {
        let mut d = vec![D::new(1, 1), D::new(2, 1)];
        let t = table(&d, None);
        let get = |b: usize| t[b];
        let a = src(7);
        let i = pick(&d, get, 2, &a, [0, 0], false).unwrap();
        assert_eq!(t[hashkey(2, &a, [0, 0], 0)], d[i].id);
        // The same source always maps the same way; the port only counts with sh-port.
        assert_eq!(pick(&d, get, 2, &a, [0, 0], true), Some(i));
        d[i].weight = 0;
        assert_eq!(pick(&d, get, 2, &a, [0, 0], false), None);
        assert_eq!(pick(&d, get, 2, &a, [0, 0], true), Some(1 - i));
        d[1 - i].overloaded = true;
        assert_eq!(pick(&d, get, 2, &a, [0, 0], true), None);
        // A server missing from the list (removed concurrently) is no server.
        assert_eq!(pick(&d[..0], get, 2, &a, [0, 0], true), None);
    }

    #[test]
    fn spreads_sources_by_weight() {
        let d = [D::new(1, 1), D::new(2, 3)];
        let t = table(&d, None);
        let mut n = [0usize; 2];
        for s in 0..4096 {
            n[pick(&d, |b| t[b], 2, &src(s), [0, 0], false).unwrap()] += 1;
        }
        // Consecutive addresses walk the golden-ratio hash evenly over the buckets.
        assert!((900..1150).contains(&n[0]), "{n:?}");
        let with_ports = (0..64u16)
            .map(|p| pick(&d, |b| t[b], 2, &src(1), p.to_be_bytes(), false).unwrap())
            .collect::<Vec<_>>();
        assert!(with_ports.contains(&0) && with_ports.contains(&1));
    }
}
