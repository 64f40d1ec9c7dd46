// SPDX-License-Identifier: GPL-2.0

//! Maglev hashing, independent of the kernel (`no_std`, host-tested).
//!
//! Every server gets a preference order over the 4093 slots of a lookup table (an offset and
//! a step, both from `hsiphash` of its address and port with upstream's fixed keys, so the
//! table is the same on every machine and in the C scheduler). The servers take turns, in
//! list order and as many turns as their weight scaled down by the weights' gcd and a shift,
//! claiming their next free preferred slot until the table is full. A connection goes to the
//! server of the slot its source address (and with `mh-port` its source port) hashes to;
//! with `mh-fallback` an unusable server there is replaced by probing further slots.
//!
//! Weights are the servers' last non-zero weights: a quiesced server keeps its slots (so its
//! clients come back to it) but gets no new connections.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_mh.c`

#![allow(dead_code, unreachable_pub)]

use crate::server::{addr_fold, hsiphash_u32, position, HsiphashKey, Server};

/// `CONFIG_IP_VS_MH_TAB_INDEX`.
pub const TAB_INDEX: usize = 12;
/// Upstream's table sizes, indexed by `TAB_INDEX - 8`.
const PRIMES: [usize; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
/// Slots in the lookup table.
pub const TAB_SIZE: usize = PRIMES[TAB_INDEX - 8];
/// Bits of the scaled weights that are kept.
const TAB_BITS: u32 = (TAB_INDEX / 2) as u32;

/// `IP_VS_SVC_F_SCHED_MH_FALLBACK` (`IP_VS_SVC_F_SCHED1`).
pub const SVC_F_FALLBACK: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED_MH_PORT` (`IP_VS_SVC_F_SCHED2`).
pub const SVC_F_PORT: u32 = 0x0010;

/// Upstream's fixed key for slot lookups and preference offsets.
const KEY1: HsiphashKey = HsiphashKey([2654435761, 2654435761]);
/// Upstream's fixed key for preference steps.
const KEY2: HsiphashKey = HsiphashKey([2654446892, 2654446892]);

/// Words of the slot bitmap used while populating.
pub const BITMAP_WORDS: usize = TAB_SIZE.div_ceil(64);

/// `ip_vs_mh_hashkey`.
fn hashkey(af: u16, addr: &[u8; 16], port: [u8; 2], key: &HsiphashKey, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u16::from_be_bytes(port) as u32)
        .wrapping_add(addr_fold(af, addr));
    hsiphash_u32(v, key)
}

/// A server's state while the table is populated (`ip_vs_mh_dest_setup`).
#[derive(Clone, Copy, Default)]
pub struct Setup {
    perm: u32,
    skip: u32,
    turns: i32,
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `fls`: one plus the index of the highest set bit, 0 for 0.
fn fls(x: i32) -> i32 {
    32 - (x as u32).leading_zeros() as i32
}

/// Why the table was left as it was.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// More servers than slots (upstream's `EINVAL`).
    TooMany,
    /// `setup` is shorter than the number of servers.
    NoRoom,
}

/// Fills the lookup table from `dests` without `dests[skip]` (the server being removed):
/// `set(slot, id)` for every slot (id 0 when no server has a positive weight). `last_weight`
/// gives each server's last non-zero weight (its weight when it was added); `setup` is scratch
/// space for one entry per server.
pub fn reassign<S: Server>(
    dests: &[S],
    skip: Option<usize>,
    last_weight: impl Fn(&S) -> i32,
    setup: &mut [Setup],
    mut set: impl FnMut(usize, u64),
) -> Result<(), Error> {
    let servers = || {
        dests
            .iter()
            .enumerate()
            .filter(move |&(i, _)| Some(i) != skip)
            .map(|(_, d)| d)
    };
    let m = servers().count();
    if m > TAB_SIZE {
        return Err(Error::TooMany);
    }
    let setup = setup.get_mut(..m).ok_or(Error::NoRoom)?;

    // The weights' gcd and the shift that keeps the largest scaled weight within TAB_BITS.
    let g = servers()
        .map(&last_weight)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    if g < 1 {
        for c in 0..TAB_SIZE {
            set(c, 0);
        }
        return Ok(());
    }
    let max = servers().map(&last_weight).fold(0, i32::max);
    let rshift = (fls(max / g) - TAB_BITS as i32).max(0) as u32;

    for (s, d) in setup.iter_mut().zip(servers()) {
        let (addr, port) = (d.addr(), d.port());
        s.perm = hashkey(d.af(), &addr, port, &KEY1, 0) % TAB_SIZE as u32;
        s.skip = hashkey(d.af(), &addr, port, &KEY2, 0) % (TAB_SIZE as u32 - 1) + 1;
        let lw = last_weight(d);
        let t = (lw / g) >> rshift;
        s.turns = if t != 0 { t } else { (lw != 0) as i32 };
    }

    let mut used = [0u64; BITMAP_WORDS];
    let mut filled = 0;
    let mut count = 0;
    loop {
        let mut k = 0;
        for d in servers() {
            let s = &mut setup[k];
            if s.turns < 1 {
                k += 1;
                continue;
            }
            loop {
                // A turn: the server's next preferred slot that is still free.
                let mut c = s.perm as usize;
                while used[c / 64] & (1 << (c % 64)) != 0 {
                    s.perm += s.skip;
                    if s.perm >= TAB_SIZE as u32 {
                        s.perm -= TAB_SIZE as u32;
                    }
                    c = s.perm as usize;
                }
                used[c / 64] |= 1 << (c % 64);
                set(c, d.id());
                filled += 1;
                if filled == TAB_SIZE {
                    return Ok(());
                }
                count += 1;
                if count >= s.turns {
                    count = 0;
                    break;
                }
            }
            k += 1;
        }
    }
}

fn usable<S: Server>(d: &S) -> bool {
    d.weight() > 0 && !d.overloaded()
}

/// The server for a connection from `addr`/`port` (`port` is zero unless the service has
/// `mh-port`), given the table as `get(slot) -> id`.
pub fn pick<S: Server>(
    dests: &[S],
    get: impl Fn(usize) -> u64,
    af: u16,
    addr: &[u8; 16],
    port: [u8; 2],
    fallback: bool,
) -> Option<usize> {
    let ihash = hashkey(af, addr, port, &KEY1, 0) as usize % TAB_SIZE;
    let first = position(dests, get(ihash))?;
    if usable(&dests[first]) {
        return Some(first);
    }
    if !fallback {
        return None;
    }
    for offset in 0..TAB_SIZE {
        let roffset = (offset + ihash) % TAB_SIZE;
        let slot = hashkey(af, addr, port, &KEY1, roffset as u32) as usize % TAB_SIZE;
        let i = position(dests, get(slot))?;
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
        let mut setup = vec![Setup::default(); d.len()];
        reassign(d, skip, |d| d.weight, &mut setup, |c, id| t[c] = id).unwrap();
        t
    }

    fn count(t: &[u64], id: u64) -> usize {
        t.iter().filter(|&&x| x == id).count()
    }

    #[test]
    fn size_and_helpers() {
        assert_eq!(TAB_SIZE, 4093);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!((fls(0), fls(1), fls(64), fls(127)), (0, 1, 7, 7));
    }

    #[test]
    fn every_slot_is_filled_evenly() {
        let d: Vec<D> = (1..=7).map(|n| D::new(n, 1)).collect();
        let t = table(&d, None);
        for n in 1..=7 {
            let c = count(&t, n);
            assert!((580..=590).contains(&c), "{n}: {c}");
        }
        assert_eq!(t.iter().filter(|&&x| x == 0 || x == u64::MAX).count(), 0);
    }

    #[test]
    fn weights_are_scaled_by_gcd_and_shift() {
        let d = [D::new(1, 100), D::new(2, 300)];
        let t = table(&d, None);
        let (a, b) = (count(&t, 1), count(&t, 2));
        assert_eq!(a + b, TAB_SIZE);
        assert!((1015..=1030).contains(&a), "{a} {b}");
        // Scaled weights keep six bits: 1000:1 becomes 62:1 (shifted by 4; at least 1).
        let d = [D::new(1, 1000), D::new(2, 1)];
        let t = table(&d, None);
        assert!((60..=70).contains(&count(&t, 2)), "{}", count(&t, 2));
        // Zero weights take no slots; all zero leaves the table empty.
        let d = [D::new(1, 0), D::new(2, 2)];
        assert_eq!(count(&table(&d, None), 2), TAB_SIZE);
        assert!(table(&[D::new(1, 0)], None).iter().all(|&x| x == 0));
        assert!(table(&d, Some(1)).iter().all(|&x| x == 0));
    }

    #[test]
    fn removal_remaps_about_one_nth() {
        for n in [3u8, 5, 10, 20] {
            let d: Vec<D> = (1..=n).map(|i| D::new(i, 1)).collect();
            let before = table(&d, None);
            let victim = n as usize / 2;
            let after = table(&d, Some(victim));
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            let owned = count(&before, d[victim].id);
            // Exactly the victim's slots must move; only a few others may be disturbed.
            assert!(after.iter().all(|&x| x != d[victim].id));
            assert!(moved >= owned);
            let extra = moved - owned;
            assert!(extra * 100 <= TAB_SIZE * 4, "n={n}: {owned} owned, {moved} moved");
            let ideal = TAB_SIZE / n as usize;
            assert!(moved * 2 <= ideal * 3, "n={n}: moved {moved}, ideal {ideal}");
            println!("n={n}: {owned} owned, {moved} moved, ideal {ideal}");
        }
    }

    #[test]
    fn pick_and_fallback() {
        let mut d: Vec<D> = (1..=4).map(|i| D::new(i, 1)).collect();
        let t = table(&d, None);
        let src = [192, 168, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let i = pick(&d, |c| t[c], 2, &src, [0, 0], false).unwrap();
        let j = pick(&d, |c| t[c], 2, &src, [0x1f, 0x90], false).unwrap();
        assert_eq!(pick(&d, |c| t[c], 2, &src, [0, 0], true), Some(i));
        d[i].weight = 0;
        assert_eq!(pick(&d, |c| t[c], 2, &src, [0, 0], false), None);
        let k = pick(&d, |c| t[c], 2, &src, [0, 0], true).unwrap();
        assert_ne!(k, i);
        let _ = j;
        for x in d.iter_mut() {
            x.overloaded = true;
        }
        assert_eq!(pick(&d, |c| t[c], 2, &src, [0, 0], true), None);
    }

    #[test]
    fn too_many_servers() {
        let d: Vec<D> = (0..TAB_SIZE as u64 + 1)
            .map(|i| {
                let mut x = D::new(1, 1);
                x.id = i + 1;
                x
            })
            .collect();
        let mut setup = vec![Setup::default(); d.len()];
        assert_eq!(reassign(&d, None, |d| d.weight, &mut setup, |_, _| ()), Err(Error::TooMany));
        assert_eq!(reassign(&d, Some(0), |d| d.weight, &mut setup[..1], |_, _| ()), Err(Error::NoRoom));
    }
}
