// SPDX-License-Identifier: GPL-2.0

//! Invariants of the sync message decoder and a mutation fuzzer for it, shared by the host
//! tests (`sync_msg_tests.rs`, a deterministic run) and the coverage-guided fuzz crate
//! (`host-tests/fuzz`, long runs). Both include this file next to `ipvs/sync_msg.rs`.

// Each includer uses part of it.
#![allow(dead_code)]

use super::sync_msg::{
    append, conn_flags, count, is_v1, parse, record_len, start, Drop, Record, Seq, SyncConn,
    Version, IP_VS_PEDATA_MAXLEN, IP_VS_PENAME_MAXLEN,
};

/// xorshift64* pseudo-random numbers: deterministic, no dependencies.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        XorShift(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.byte();
        }
    }
}

/// A random connection as the sender would describe it, persistence data taken from `pool`.
pub fn random_conn<'a>(rng: &mut XorShift, v: Version, pool: &'a [u8]) -> SyncConn<'a> {
    let v6 = v == Version::V1 && rng.one_in(2);
    let mut addr = || {
        let mut a = [0u8; 16];
        let n = if v6 { 16 } else { 4 };
        rng.fill(&mut a[..n]);
        a
    };
    let (caddr, vaddr, daddr) = (addr(), addr(), addr());
    // Mostly flags a backup accepts; sometimes anything.
    let flags = if rng.one_in(8) {
        rng.next() as u32
    } else {
        (rng.next() as u32)
            & (conn_flags::BACKUP_MASK | conn_flags::HASHED | conn_flags::SYNC)
            & !(conn_flags::NO_CPORT | conn_flags::ONE_PACKET)
    };
    let mut seq = || Seq {
        init_seq: rng.next() as u32,
        delta: rng.next() as u32,
        previous_delta: rng.next() as u32,
    };
    let seq = (flags & conn_flags::SEQ_MASK != 0).then(|| [seq(), seq()]);
    let (mut pe_data, mut pe_name): (&[u8], &[u8]) = (&[], &[]);
    if v == Version::V1 && rng.one_in(3) {
        let dlen = 1 + rng.below(IP_VS_PEDATA_MAXLEN.min(pool.len()));
        let off = rng.below(pool.len() - dlen + 1);
        pe_data = &pool[off..off + dlen];
        if !rng.one_in(4) {
            let nlen = 1 + rng.below(IP_VS_PENAME_MAXLEN);
            pe_name = &pool[..nlen];
        }
    }
    SyncConn {
        v6,
        protocol: [6, 17, 132, rng.byte()][rng.below(4)],
        flags,
        state: if rng.one_in(8) { rng.next() as u16 } else { rng.below(12) as u16 },
        cport: [rng.byte(), rng.byte()],
        vport: [rng.byte(), rng.byte()],
        dport: [rng.byte(), rng.byte()],
        fwmark: if v == Version::V1 && rng.one_in(2) { rng.next() as u32 } else { 0 },
        timeout: if v == Version::V1 { rng.next() as u32 % 100_000 } else { 0 },
        caddr,
        vaddr,
        daddr,
        seq,
        pe_data,
        pe_name,
    }
}

/// A valid message of random version, size and records.
pub fn random_message(rng: &mut XorShift) -> Vec<u8> {
    let v = if rng.one_in(3) { Version::V0 } else { Version::V1 };
    let mut pool = [0u8; 256];
    rng.fill(&mut pool);
    let mut buf = vec![0u8; 8 + rng.below(1200)];
    let mut used = start(&mut buf, v, rng.byte()).unwrap();
    let n = rng.below(12);
    for _ in 0..n {
        let c = random_conn(rng, v, &pool);
        match append(&mut buf, used, v, &c) {
            Ok(u) => used = u,
            Err(_) => break,
        }
    }
    buf.truncate(used);
    buf
}

/// Fixes the header's size field to the length, so that mutations reach the records.
fn fix_size(m: &mut [u8]) {
    if m.len() >= 4 {
        let n = (m.len().min(0xffff) as u16).to_be_bytes();
        m[2..4].copy_from_slice(&n);
    }
}

/// The records (without padding) of a version 1 message, as far as their sizes lead.
fn v1_records(m: &[u8]) -> Vec<Vec<u8>> {
    let mut recs = Vec::new();
    let mut pos = 8;
    for _ in 0..count(m, Version::V1) {
        let Some(h) = m.get(pos..pos + 4) else { break };
        let size = usize::from(u16::from_be_bytes([h[2], h[3]]) & 0xfff);
        let Some(r) = m.get(pos..pos + size) else { break };
        recs.push(r.to_vec());
        pos += size.next_multiple_of(4);
    }
    recs
}

/// A version 1 message of `m`'s header and `recs`, sizes and padding made consistent.
fn v1_rebuild(m: &[u8], recs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = m[..8].to_vec();
    out[4] = recs.len().min(255) as u8;
    for r in recs {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        let at = out.len();
        out.extend_from_slice(r);
        if r.len() >= 4 {
            let vs = (u16::from_be_bytes([r[2], r[3]]) & 0xf000) | (r.len() as u16 & 0xfff);
            out[at + 2..at + 4].copy_from_slice(&vs.to_be_bytes());
        }
    }
    out
}

/// Structure-aware mutation of a version 1 message: options duplicated or added, records
/// duplicated, dropped or swapped, with the sizes kept consistent.
fn mutate_v1_records(rng: &mut XorShift, m: &mut Vec<u8>) {
    let mut recs = v1_records(m);
    if recs.is_empty() {
        return;
    }
    let i = rng.below(recs.len());
    if recs[i].is_empty() {
        return;
    }
    match rng.below(5) {
        0 => {
            // Repeat the options (or a tail of the record).
            let fixed = if recs[i][0] & 1 != 0 { 72 } else { 36 };
            let from = if recs[i].len() > fixed && !rng.one_in(4) {
                fixed
            } else {
                rng.below(recs[i].len())
            };
            let tail = recs[i][from..].to_vec();
            recs[i].extend(tail);
        }
        1 => {
            // A random option.
            let ty = [1, 2, 3, 4, 0x41, 0x42, 0x43, 0x44, 0x80, 0][rng.below(10)];
            let len = if rng.one_in(2) { rng.below(30) } else { rng.below(256) };
            recs[i].extend_from_slice(&[ty, len as u8]);
            for _ in 0..len.min(if rng.one_in(3) { 0 } else { len }) {
                recs[i].push(rng.byte());
            }
        }
        2 => recs.insert(i, recs[i].clone()),
        3 => {
            recs.remove(i);
        }
        _ => {
            let j = rng.below(recs.len());
            recs.swap(i, j);
        }
    }
    let out = v1_rebuild(m, &recs);
    if out.len() <= 0xffff {
        *m = out;
    }
}

const INTERESTING: [u8; 16] =
    [0, 1, 2, 3, 4, 7, 0x10, 0x18, 0x24, 0x40, 0x41, 0x42, 0x43, 0x48, 0x7f, 0xff];

/// Mutates `m` a few times: bit flips, byte overwrites, insertions, deletions, truncation,
/// record counts, size fields, splices from `other`.
pub fn mutate(rng: &mut XorShift, m: &mut Vec<u8>, other: &[u8]) {
    if is_v1(m) && rng.one_in(3) {
        mutate_v1_records(rng, m);
        if rng.one_in(2) {
            fix_size(m);
            return;
        }
    }
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = m.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                m[i] = rng.byte();
            }
            3 => {
                let i = rng.below(len + 1);
                for _ in 0..1 + rng.below(8) {
                    m.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
                }
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(40));
                m.drain(i..i + n);
            }
            5 if len > 0 => m.truncate(rng.below(len)),
            6 if len > 5 => {
                // Record count of either version.
                let i = if rng.one_in(2) { 0 } else { 4 };
                m[i] = if rng.one_in(2) { rng.byte() } else { m[i].wrapping_add(1) };
            }
            7 if len > 1 => {
                // A 16-bit field (ver_size, size, state...) at an even offset.
                let i = rng.below(len / 2) * 2;
                let x: u16 = match rng.below(4) {
                    0 => rng.below(0x1000) as u16,
                    1 => rng.next() as u16,
                    2 => (rng.below(100) as u16) & !3,
                    _ => u16::from_be_bytes([m[i], m[i + 1]])
                        .wrapping_add(rng.below(9) as u16)
                        .wrapping_sub(4),
                };
                m[i..i + 2].copy_from_slice(&x.to_be_bytes());
            }
            8 if !other.is_empty() => {
                let s = rng.below(other.len());
                let n = 1 + rng.below((other.len() - s).min(80));
                let at = rng.below(len + 1);
                let tail = m.split_off(at);
                m.extend_from_slice(&other[s..s + n]);
                m.extend_from_slice(&tail);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    m[i] = m[i].wrapping_add(1);
                }
            }
        }
    }
    if m.len() > 0xffff {
        m.truncate(0xffff);
    }
    if !rng.one_in(10) {
        fix_size(m);
    }
}

/// Checks a decoded record's invariants and that it encodes back to itself. Returns whether
/// it is a connection.
fn check_conn(v: Version, c: &SyncConn<'_>) {
    assert!(c.pe_data.len() <= IP_VS_PEDATA_MAXLEN);
    assert!(c.pe_name.len() <= IP_VS_PENAME_MAXLEN);
    assert!(c.pe_name.is_empty() || !c.pe_data.is_empty(), "PE name without data");
    assert_eq!(c.flags & !(conn_flags::BACKUP_MASK | conn_flags::SYNC), 0, "flags {:#x}", c.flags);
    assert_ne!(c.flags & conn_flags::SYNC, 0);
    assert!(c.flags & conn_flags::NO_CPORT == 0 || c.flags & conn_flags::TEMPLATE == 0);
    if !c.v6 {
        for a in [&c.caddr, &c.vaddr, &c.daddr] {
            assert_eq!(a[4..], [0; 12]);
        }
    }
    if v == Version::V0 {
        assert!(!c.v6 && c.timeout == 0 && c.fwmark == 0);
        assert!(c.pe_data.is_empty() && c.pe_name.is_empty());
        assert_eq!(c.seq.is_some(), c.flags & conn_flags::SEQ_MASK != 0);
    }
    // Re-encode alone in a message and decode again: the same record.
    let len = record_len(v, c).expect("a decoded record is encodable");
    let mut out = vec![0u8; 8 + len];
    let used = start(&mut out, v, 9).unwrap();
    let end = append(&mut out, used, v, c).expect("a decoded record fits");
    assert_eq!(end, used + len);
    let mut it = parse(&out[..end], 9).expect("re-encoded message accepted");
    assert_eq!(it.version(), v);
    assert_eq!(it.next(), Some(Record::Conn(*c)));
    assert_eq!(it.next(), None);
}

/// Decodes `m` and checks every invariant; returns the number of connections yielded.
pub fn check(m: &[u8], syncid: u8) -> usize {
    check_noting(m, syncid, &mut |_| {})
}

/// [`check`], telling `seen` each outcome: a drop, skip or stop reason, or "conn".
pub fn check_noting(m: &[u8], syncid: u8, seen: &mut impl FnMut(&'static str)) -> usize {
    let recs = match parse(m, syncid) {
        Ok(recs) => recs,
        Err(Drop::TooShort) => {
            seen("drop: too short");
            return 0;
        }
        Err(Drop::BadSize) => {
            seen("drop: bad size");
            return 0;
        }
        Err(Drop::OtherSyncId) => {
            seen("drop: other sync id");
            return 0;
        }
    };
    assert!(m.len() >= 4);
    assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
    assert!(syncid == 0 || m[1] == syncid);
    let v = recs.version();
    assert_eq!(v == Version::V1, is_v1(m));
    let announced = usize::from(count(m, v));
    let (mut n, mut conns, mut stopped) = (0, 0, false);
    for r in recs {
        assert!(!stopped, "record after Stop");
        n += 1;
        assert!(n <= announced);
        match r {
            Record::Stop(why) | Record::Skip(why) => {
                assert!(!why.is_empty());
                seen(why);
                stopped = matches!(r, Record::Stop(_));
            }
            Record::Conn(c) => {
                seen("conn");
                check_conn(v, &c);
                conns += 1;
            }
        }
    }
    assert!(stopped || n == announced);
    conns
}

/// Runs `iters` mutation rounds from `seed`; returns (iterations, connections decoded).
pub fn run(seed: u64, iters: u64) -> (u64, u64) {
    run_noting(seed, iters, &mut |_| {})
}

/// [`run`], telling `seen` every outcome (see [`check_noting`]).
pub fn run_noting(seed: u64, iters: u64, seen: &mut impl FnMut(&'static str)) -> (u64, u64) {
    let mut rng = XorShift::new(seed);
    let mut corpus: Vec<Vec<u8>> = (0..64).map(|_| random_message(&mut rng)).collect();
    let mut conns = 0u64;
    for i in 0..iters {
        let a = rng.below(corpus.len());
        let b = rng.below(corpus.len());
        let mut m = corpus[a].clone();
        mutate(&mut rng, &mut m, &corpus[b].clone());
        let syncid = match rng.below(4) {
            0 if m.len() > 1 => m[1],
            1 => rng.byte(),
            _ => 0,
        };
        let n = check_noting(&m, syncid, seen);
        conns += n as u64;
        // Keep mutants that still decode something, for deeper mutations.
        if n > 0 && rng.one_in(4) {
            let slot = rng.below(corpus.len());
            corpus[slot] = m;
        }
        if i % 1024 == 0 {
            let slot = rng.below(corpus.len());
            corpus[slot] = random_message(&mut rng);
        }
    }
    (iters, conns)
}
