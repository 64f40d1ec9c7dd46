// SPDX-License-Identifier: GPL-2.0

//! Bob Jenkins' lookup3 hash of three words, as the kernel's `jhash_3words`, used to spread
//! connections over the hash table with a per-boot random seed.
//!
//! Kernel independent (`no_std`, host-tested).

#![allow(dead_code, unreachable_pub)]

const JHASH_INITVAL: u32 = 0xdeadbeef;

#[inline(always)]
fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// Hashes three words with `seed` (same value as the kernel's `jhash_3words`).
#[inline]
pub fn jhash_3words(a: u32, b: u32, c: u32, seed: u32) -> u32 {
    let init = JHASH_INITVAL.wrapping_add(seed).wrapping_add(12);
    final_mix(a.wrapping_add(init), b.wrapping_add(init), c.wrapping_add(init))
}

#[inline]
fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

/// Hashes a 16-byte address with `seed` (the kernel's `jhash(addr, 16, seed)`, words read
/// in the CPU's byte order as on x86), as upstream hashes an IPv6 address into a connection
/// key: every bit of the address counts, so a client cannot choose addresses of its prefix
/// that land in one bucket.
#[inline]
pub fn jhash_addr16(addr: &[u8; 16], seed: u32) -> u32 {
    let w = |i: usize| u32::from_le_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    let init = JHASH_INITVAL.wrapping_add(16).wrapping_add(seed);
    let (a, b, c) = mix(init.wrapping_add(w(0)), init.wrapping_add(w(4)), init.wrapping_add(w(8)));
    final_mix(a.wrapping_add(w(12)), b, c)
}

/// Folds a 16-byte address (IPv4 in the first four bytes, rest zero) into one word.
#[inline]
pub fn fold_addr(addr: &[u8; 16]) -> u32 {
    let w = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    w(0) ^ w(4) ^ w(8) ^ w(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kernel_jhash() {
        // Values printed by the kernel's <linux/jhash.h> compiled on the host.
        assert_eq!(jhash_3words(1, 2, 3, 0), 2757843189);
        assert_eq!(jhash_3words(0x0a000002, 8080, 6, 0x1234), 1603428707);
    }

    const JHASH16_2001_DB8_1_SEED0: u32 = 240847579;
    const JHASH16_2001_DB8_1_SEED1234: u32 = 299065201;
    const JHASH16_ZERO_SEED0: u32 = 3136882572;
    const JHASH16_FF_SEEDDEADBEEF: u32 = 2060369680;

    #[test]
    fn matches_kernel_jhash_of_16_bytes() {
        // jhash(addr, 16, seed) of <linux/jhash.h>, compiled on the host.
        let a: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(jhash_addr16(&a, 0), JHASH16_2001_DB8_1_SEED0);
        assert_eq!(jhash_addr16(&a, 0x1234), JHASH16_2001_DB8_1_SEED1234);
        assert_eq!(jhash_addr16(&[0; 16], 0), JHASH16_ZERO_SEED0);
        assert_eq!(jhash_addr16(&[0xff; 16], 0xdeadbeef), JHASH16_FF_SEEDDEADBEEF);
    }

    #[test]
    fn addresses_that_fold_alike_hash_apart() {
        // Interface ids with the same XOR of their words: one bucket for a fold.
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]);
        b[..8].copy_from_slice(&a[..8]);
        a[8..16].copy_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        b[8..16].copy_from_slice(&[0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(fold_addr(&a), fold_addr(&b));
        assert_ne!(jhash_addr16(&a, 7), jhash_addr16(&b, 7));
    }

    #[test]
    fn every_input_matters() {
        assert_ne!(jhash_3words(1, 2, 3, 0), jhash_3words(1, 2, 4, 0));
        assert_ne!(jhash_3words(1, 2, 3, 0), jhash_3words(1, 2, 3, 1));
    }

    #[test]
    fn spreads_ports() {
        // 4096 consecutive client ports of one address hit most of 4096 buckets.
        let mut hit = [false; 4096];
        for port in 0..4096u32 {
            hit[(jhash_3words(0x0a000002, port, 6, 0x1234) & 4095) as usize] = true;
        }
        let n = hit.iter().filter(|&&h| h).count();
        assert!(n > 2400, "only {n} buckets used");
    }

    #[test]
    fn fold_v4() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(fold_addr(&a), u32::from_ne_bytes([10, 0, 0, 1]));
    }
}
