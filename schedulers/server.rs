// SPDX-License-Identifier: GPL-2.0

//! What the hashing and locality schedulers read of a real server, and the helpers upstream
//! shares between them, independent of the kernel (`no_std`, host-tested).
//!
//! The kernel glue implements [`Server`] for the ABI's `&DestInfo`; the host tests implement
//! it for plain structs. The arithmetic follows upstream's `int`/`__s64` types exactly.
//!
//! C: `srctree/include/net/ip_vs.h` (`ip_vs_dest_conn_overhead`),
//! `srctree/include/linux/hash.h` (`hash_32`), `srctree/lib/siphash.c` (`hsiphash`)

#![allow(dead_code, unreachable_pub)]

/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// A real server as the schedulers see it.
pub trait Server {
    /// Identifier, unique for the core module's lifetime (never 0).
    fn id(&self) -> u64;
    /// Address family.
    fn af(&self) -> u16;
    /// Address; IPv4 uses the first four bytes.
    fn addr(&self) -> [u8; 16];
    /// Port, network byte order.
    fn port(&self) -> [u8; 2];
    /// Weight.
    fn weight(&self) -> i32;
    /// `IP_VS_DEST_F_OVERLOAD` is set.
    fn overloaded(&self) -> bool;
    /// `IP_VS_DEST_F_AVAILABLE` is set (still part of its service).
    fn available(&self) -> bool;
    /// Active connections.
    fn activeconns(&self) -> i32;
    /// All connections.
    fn totalconns(&self) -> i32;
}

/// Whether `d` is the server with address `addr` and port `port` (how a table entry names a
/// server: a server removed and added again is the same one to upstream, which restores it
/// from its trash while anything still refers to it).
pub fn same_server<S: Server>(d: &S, af: u16, addr: &[u8; 16], port: [u8; 2]) -> bool {
    d.af() == af && d.port() == port && same_addr(af, &d.addr(), addr)
}

/// `ip_vs_addr_equal`: IPv4 compares the first four bytes only.
pub fn same_addr(af: u16, a: &[u8; 16], b: &[u8; 16]) -> bool {
    if af == AF_INET6 {
        a == b
    } else {
        a[..4] == b[..4]
    }
}

/// Index of the server with id `id` in `dests`.
pub fn position<S: Server>(dests: &[S], id: u64) -> Option<usize> {
    if id == 0 {
        return None;
    }
    dests.iter().position(|d| d.id() == id)
}

/// `ip_vs_dest_conn_overhead`: active connections count 256 times more than the others.
pub fn conn_overhead<S: Server>(d: &S) -> i32 {
    (d.activeconns().wrapping_shl(8)).wrapping_add(d.totalconns())
}

/// The address as the hash functions take it: IPv4 in host order, IPv6 folded by XOR of its
/// four 32-bit words (`ntohl(addr_fold)`).
pub fn addr_fold(af: u16, addr: &[u8; 16]) -> u32 {
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    if af == AF_INET6 {
        w(0) ^ w(4) ^ w(8) ^ w(12)
    } else {
        w(0)
    }
}

/// `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32`: the top `bits` bits of `val` times the golden ratio.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// A key of `hsiphash` as 64-bit kernels use it (two machine words).
#[derive(Clone, Copy)]
pub struct HsiphashKey(pub [u64; 2]);

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// `hsiphash(&v, sizeof(v), key)` of one `u32` on a 64-bit little-endian kernel, where
/// "HalfSipHash" is SipHash-1-3 truncated to 32 bits.
pub fn hsiphash_u32(v: u32, key: &HsiphashKey) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ key.0[0],
        0x646f_7261_6e64_6f6d ^ key.0[1],
        0x6c79_6765_6e65_7261 ^ key.0[0],
        0x7465_6462_7974_6573 ^ key.0[1],
    ];
    let b: u64 = (4u64 << 56) | v as u64;
    s[3] ^= b;
    sipround(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    sipround(&mut s);
    sipround(&mut s);
    sipround(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

/// The weighted least-connection choice of the locality schedulers (`__ip_vs_lblc_schedule`):
/// the first server that is not overloaded and has a positive weight, replaced by any later
/// one that is not overloaded and has a smaller overhead per weight.
pub fn least_loaded<S: Server>(dests: &[S]) -> Option<usize> {
    let first = dests
        .iter()
        .position(|d| !d.overloaded() && d.weight() > 0)?;
    let mut least = first;
    let mut loh = conn_overhead(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded() {
            continue;
        }
        let doh = conn_overhead(d);
        if loh as i64 * d.weight() as i64 > doh as i64 * dests[least].weight() as i64 {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// The locality schedulers' overload rule: `d` has more active connections than its weight
/// while some server of the service has fewer than half its weight.
pub fn is_overloaded<S: Server>(d: &S, dests: &[S]) -> bool {
    d.activeconns() > d.weight()
        && dests
            .iter()
            .any(|o| (o.activeconns() as i64) * 2 < o.weight() as i64)
}

/// `time_before(a, b)` on jiffies.
pub fn time_before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// `time_after(a, b)` on jiffies.
pub fn time_after(a: u64, b: u64) -> bool {
    time_before(b, a)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A server for host tests.
    #[derive(Clone, Debug)]
    pub struct D {
        pub id: u64,
        pub addr: [u8; 16],
        pub port: u16,
        pub weight: i32,
        pub overloaded: bool,
        pub available: bool,
        pub active: i32,
        pub total: i32,
    }

    impl D {
        /// 10.0.0.`n`:80, weight `w`, id `n`.
        pub fn new(n: u8, w: i32) -> Self {
            let mut addr = [0; 16];
            addr[..4].copy_from_slice(&[10, 0, 0, n]);
            Self {
                id: n as u64,
                addr,
                port: 80,
                weight: w,
                overloaded: false,
                available: true,
                active: 0,
                total: 0,
            }
        }
    }

    impl Server for D {
        fn id(&self) -> u64 {
            self.id
        }
        fn af(&self) -> u16 {
            2
        }
        fn addr(&self) -> [u8; 16] {
            self.addr
        }
        fn port(&self) -> [u8; 2] {
            self.port.to_be_bytes()
        }
        fn weight(&self) -> i32 {
            self.weight
        }
        fn overloaded(&self) -> bool {
            self.overloaded
        }
        fn available(&self) -> bool {
            self.available
        }
        fn activeconns(&self) -> i32 {
            self.active
        }
        fn totalconns(&self) -> i32 {
            self.total
        }
    }

    #[test]
    fn hash_32_vectors() {
        // Values computed with the kernel's hash.h formula.
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), 97);
        assert_eq!(hash_32(0x0a00_0002, 8), 137);
        assert_eq!(hash_32(0x0a00_0002, 10), 550);
        assert_eq!(hash_32(0xc0a8_0101, 10), 547);
        assert_eq!(hash_32(0xffff_ffff, 8), 158);
    }

    #[test]
    fn hsiphash_vectors() {
        // Values computed with the kernel's lib/siphash.c (64-bit hsiphash), keys of ip_vs_mh.
        let k1 = HsiphashKey([2654435761, 2654435761]);
        let k2 = HsiphashKey([2654446892, 2654446892]);
        assert_eq!(hsiphash_u32(0, &k1), 0x1d5a_77c2);
        assert_eq!(hsiphash_u32(0, &k2), 0xf882_433f);
        assert_eq!(hsiphash_u32(0x0a00_0052, &k1), 0xa1cf_683b);
        assert_eq!(hsiphash_u32(0xc0a8_0101, &k2), 0xf99f_c1d7);
        assert_eq!(hsiphash_u32(0xffff_ffff, &k1), 0x22c5_d719);
    }

    #[test]
    fn fold_and_compare() {
        let mut a6 = [0u8; 16];
        a6[3] = 1;
        a6[15] = 3;
        assert_eq!(addr_fold(AF_INET6, &a6), 2);
        let mut b = D::new(1, 1).addr;
        assert_eq!(addr_fold(2, &b), 0x0a00_0001);
        b[8] = 9;
        assert!(same_addr(2, &b, &D::new(1, 1).addr));
        assert!(!same_addr(AF_INET6, &b, &D::new(1, 1).addr));
    }

    #[test]
    fn least_loaded_by_overhead_per_weight() {
        let mut d = vec![D::new(1, 1), D::new(2, 2), D::new(3, 0)];
        d[0].active = 1;
        d[0].total = 1;
        d[1].active = 1;
        d[1].total = 1;
        // 257/1 > 257/2: the second.
        assert_eq!(least_loaded(&d), Some(1));
        d[1].overloaded = true;
        assert_eq!(least_loaded(&d), Some(0));
        d[0].weight = 0;
        assert_eq!(least_loaded(&d), None);
        // Ties keep the earlier server.
        let e = vec![D::new(1, 1), D::new(2, 1)];
        assert_eq!(least_loaded(&e), Some(0));
    }

    #[test]
    fn overload_rule() {
        let mut d = vec![D::new(1, 1), D::new(2, 4)];
        d[0].active = 2;
        assert!(is_overloaded(&d[0], &d));
        d[1].active = 2;
        assert!(!is_overloaded(&d[0], &d));
    }

    #[test]
    fn jiffies_compare_wraps() {
        assert!(time_before(u64::MAX - 1, 2));
        assert!(time_after(2, u64::MAX - 1));
        assert!(!time_before(5, 5));
    }
}
