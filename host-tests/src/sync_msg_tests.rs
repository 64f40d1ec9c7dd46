// SPDX-License-Identifier: GPL-2.0

//! Tests of `ipvs/sync_msg.rs`: byte-exact encodings written from upstream's structure
//! definitions (`struct ip_vs_sync_mesg{,_v0}`, `ip_vs_sync_conn_v0`, `ip_vs_sync_v4/v6`),
//! round trips, limits, every drop/skip/stop path of the receiver, and a deterministic
//! mutation fuzz run.

use super::sync_msg::*;
use super::sync_msg_check;

const CADDR4: [u8; 4] = [10, 0, 0, 1];
const VADDR4: [u8; 4] = [192, 168, 1, 100];
const DADDR4: [u8; 4] = [172, 16, 0, 7];

fn a4(a: [u8; 4]) -> [u8; 16] {
    let mut r = [0; 16];
    r[..4].copy_from_slice(&a);
    r
}

fn a6(last: u8) -> [u8; 16] {
    let mut r = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    r[15] = last;
    r
}

fn conn4() -> SyncConn<'static> {
    SyncConn {
        v6: false,
        protocol: 6,
        flags: 0x0100 | 0x0002, // INACTIVE | TUNNEL
        state: 3,
        cport: 40000u16.to_be_bytes(),
        vport: 80u16.to_be_bytes(),
        dport: 8080u16.to_be_bytes(),
        fwmark: 0,
        timeout: 0,
        caddr: a4(CADDR4),
        vaddr: a4(VADDR4),
        daddr: a4(DADDR4),
        seq: None,
        pe_data: &[],
        pe_name: &[],
    }
}

fn conn6() -> SyncConn<'static> {
    SyncConn {
        v6: true,
        protocol: 17,
        flags: 0,
        state: 0,
        cport: [0x12, 0x34],
        vport: [0, 53],
        dport: [0, 53],
        fwmark: 0xabcd,
        timeout: 300,
        caddr: a6(1),
        vaddr: a6(2),
        daddr: a6(3),
        seq: None,
        pe_data: &[],
        pe_name: &[],
    }
}

const SEQS: [Seq; 2] = [
    Seq { init_seq: 0x0102_0304, delta: 0x0506_0708, previous_delta: 0x090a_0b0c },
    Seq { init_seq: 0x1112_1314, delta: 0x1516_1718, previous_delta: 0x191a_1b1c },
];

/// The backup's view of sender flags.
fn backup(flags: u32) -> u32 {
    (flags & conn_flags::BACKUP_MASK) | conn_flags::SYNC
}

fn encode(v: Version, syncid: u8, conns: &[SyncConn<'_>], max: usize) -> Vec<u8> {
    let mut buf = vec![0u8; max];
    let mut used = start(&mut buf, v, syncid).unwrap();
    for c in conns {
        used = append(&mut buf, used, v, c).unwrap();
    }
    buf.truncate(used);
    buf
}

fn decode(m: &[u8]) -> Vec<Record<'_>> {
    parse(m, 0).unwrap().collect()
}

fn conns_of<'a>(recs: &[Record<'a>]) -> Vec<SyncConn<'a>> {
    recs.iter()
        .map(|r| match r {
            Record::Conn(c) => *c,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The conn as the backup decodes it.
fn received(v: Version, c: &SyncConn<'_>) -> SyncConn<'static> {
    let mut r = SyncConn { pe_data: &[], pe_name: &[], ..*c };
    r.flags = if v == Version::V0 { backup(c.flags & 0xffff) } else { backup(c.flags) };
    if v == Version::V0 {
        r.seq = (c.flags & conn_flags::SEQ_MASK != 0).then(|| c.seq.unwrap_or_default());
    }
    r
}

#[test]
fn constants_match_upstream() {
    assert_eq!(SYNC_PORT, 8848);
    assert_eq!(MCAST_GROUP4, [224, 0, 0, 81]);
    assert_eq!(conn_flags::BACKUP_MASK, 0x1f87);
    assert_eq!(conn_flags::BACKUP_UPD_MASK, 0x0700);
    assert_eq!(conn_flags::SEQ_MASK, 0x0600);
    assert_eq!(
        (conn_flags::HASHED, conn_flags::SYNC, conn_flags::ONE_PACKET),
        (0x40, 0x20, 0x2000)
    );
    assert_eq!((IP_VS_PENAME_MAXLEN, IP_VS_PEDATA_MAXLEN), (16, 255));
    assert_eq!((header_len(Version::V0), header_len(Version::V1)), (4, 8));
}

#[test]
fn start_writes_headers() {
    let mut b = [0xffu8; 8];
    assert_eq!(start(&mut b, Version::V0, 5), Some(4));
    assert_eq!(b[..4], [0, 5, 0, 4]);
    assert_eq!(start(&mut b, Version::V1, 5), Some(8));
    assert_eq!(b, [0, 5, 0, 8, 0, 1, 0, 0]);
    assert_eq!(start(&mut b[..7], Version::V1, 5), None);
    assert_eq!(start(&mut b[..3], Version::V0, 5), None);
    assert_eq!(count(&b, Version::V1), 0);
    assert!(is_v1(&b));
    assert!(!is_v1(&b[..7]));
    // Empty messages decode to no records.
    assert_eq!(decode(&b).len(), 0);
    assert_eq!(parse(&b, 0).unwrap().version(), Version::V1);
    assert_eq!(parse(&[0, 5, 0, 4], 0).unwrap().version(), Version::V0);
}

#[test]
fn v0_encoding_is_upstreams_layout() {
    let mut c = conn4();
    c.flags |= conn_flags::HASHED | 0x0001_0000; // neither goes on the wire
    let m = encode(Version::V0, 7, &[c], 1500);
    #[rustfmt::skip]
    let want: [u8; 28] = [
        1, 7, 0, 28,                    // nr_conns, syncid, size
        0, 6, 0x9c, 0x40, 0, 80, 0x1f, 0x90, // reserved, protocol, cport, vport, dport
        10, 0, 0, 1, 192, 168, 1, 100, 172, 16, 0, 7,
        0x01, 0x02, 0, 3,               // flags (16 bits), state
    ];
    assert_eq!(m, want);
    assert_eq!(conns_of(&decode(&m)), [received(Version::V0, &c)]);
}

#[test]
#[cfg(target_endian = "little")]
fn v0_sequence_data_is_in_host_order() {
    // Upstream memcpy()s `struct ip_vs_seq` as it is in memory.
    let mut c = conn4();
    c.flags = conn_flags::IN_SEQ;
    c.seq = Some(SEQS);
    let m = encode(Version::V0, 0, &[c], 1500);
    assert_eq!(m.len(), 4 + 48);
    assert_eq!(m[..4], [1, 0, 0, 52]);
    assert_eq!(m[24..28], [0x04, 0x00, 0, 3]);
    #[rustfmt::skip]
    let seq: [u8; 24] = [
        4, 3, 2, 1, 8, 7, 6, 5, 0xc, 0xb, 0xa, 9,
        0x14, 0x13, 0x12, 0x11, 0x18, 0x17, 0x16, 0x15, 0x1c, 0x1b, 0x1a, 0x19,
    ];
    assert_eq!(m[28..], seq);
    assert_eq!(conns_of(&decode(&m)), [received(Version::V0, &c)]);
}

#[test]
fn v1_ipv4_encoding_and_padding() {
    let mut a = conn4();
    a.flags |= conn_flags::HASHED | 0x0001_0000; // HASHED dropped, high bits kept
    a.fwmark = 0x0102_0304;
    a.timeout = 900;
    a.pe_data = &[0xaa, 0xbb, 0xcc];
    a.pe_name = b"sip";
    let b = conn4();
    let m = encode(Version::V1, 3, &[a, b], 1500);
    // a: 36 + (2 + 3) + (2 + 3) = 46 bytes, then 2 bytes of padding, then b: 36.
    assert_eq!(record_len(Version::V1, &a), Some(46));
    assert_eq!(m.len(), 8 + 46 + 2 + 36);
    #[rustfmt::skip]
    let want_a: [u8; 46] = [
        0, 6, 0x00, 46,                 // type IPv4, protocol, version 0 | size
        0, 1, 0x01, 0x02,               // flags
        0, 3, 0x9c, 0x40,               // state, cport
        0, 80, 0x1f, 0x90,              // vport, dport
        1, 2, 3, 4,                     // fwmark
        0, 0, 0x03, 0x84,               // timeout
        10, 0, 0, 1, 192, 168, 1, 100, 172, 16, 0, 7,
        2, 3, 0xaa, 0xbb, 0xcc,         // PE_DATA
        3, 3, b's', b'i', b'p',         // PE_NAME
    ];
    assert_eq!(m[..8], [0, 3, 0, 92, 2, 1, 0, 0]);
    assert_eq!(m[8..54], want_a);
    assert_eq!(m[54..56], [0, 0]);
    assert_eq!(m[56..60], [0, 6, 0, 36]);
    assert_eq!(count(&m, Version::V1), 2);
    let got = decode(&m);
    let mut want = received(Version::V1, &a);
    (want.pe_data, want.pe_name) = (a.pe_data, a.pe_name);
    assert_eq!(conns_of(&got), [want, received(Version::V1, &b)]);
}

#[test]
fn v1_ipv6_with_sequence_data() {
    let mut c = conn6();
    c.flags = conn_flags::OUT_SEQ | conn_flags::TEMPLATE;
    c.seq = Some(SEQS);
    let m = encode(Version::V1, 0, &[c], 1500);
    assert_eq!(m.len(), 8 + 72 + 26);
    let mut want = vec![1, 17, 0, 98, 0, 0, 0x12, 0x00, 0, 0, 0x12, 0x34, 0, 53, 0, 53];
    want.extend_from_slice(&[0, 0, 0xab, 0xcd, 0, 0, 1, 44]);
    for i in 1..=3 {
        want.extend_from_slice(&a6(i));
    }
    want.extend_from_slice(&[1, 24]);
    for s in SEQS {
        for w in [s.init_seq, s.delta, s.previous_delta] {
            want.extend_from_slice(&w.to_be_bytes());
        }
    }
    assert_eq!(m[8..], want[..]);
    assert_eq!(conns_of(&decode(&m)), [received(Version::V1, &c)]);
}

#[test]
fn round_trips() {
    let pe = [1u8, 2, 3, 4, 5, 6, 7];
    let mut cases = Vec::new();
    for v6 in [false, true] {
        for seq in [false, true] {
            for pe_n in 0..3 {
                let mut c = if v6 { conn6() } else { conn4() };
                if seq {
                    c.flags |= conn_flags::SEQ_MASK;
                    c.seq = Some(SEQS);
                }
                if pe_n > 0 {
                    c.pe_data = &pe[..pe_n * 3];
                }
                if pe_n > 1 {
                    c.pe_name = b"sip";
                }
                cases.push(c);
            }
        }
    }
    for v in [Version::V0, Version::V1] {
        let ok: Vec<_> = cases.iter().filter(|c| record_len(v, c).is_some()).copied().collect();
        assert_eq!(ok.len(), if v == Version::V0 { 2 } else { 12 });
        let m = encode(v, 1, &ok, 4000);
        assert_eq!(count(&m, v), ok.len() as u8);
        let recs = parse(&m, 1).unwrap();
        assert_eq!(recs.version(), v);
        let got = conns_of(&recs.collect::<Vec<_>>());
        let want: Vec<_> = ok
            .iter()
            .map(|c| SyncConn { pe_data: c.pe_data, pe_name: c.pe_name, ..received(v, c) })
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn ftp_sequence_data_round_trips() {
    // The record a master sends for an FTP control connection (NAT) whose helper changed
    // reply lengths: OUT_SEQ only, in_seq all zero, out_seq after two rewrites (+1 then -3,
    // deltas as two's complement), its start near the sequence space's wrap; between two
    // records without sequence data, so that the decoder must step over the data exactly.
    let out = Seq { init_seq: 0xffff_fff0, delta: (-2i32) as u32, previous_delta: 1 };
    let mut ftp = conn4();
    ftp.flags = conn_flags::OUT_SEQ; // MASQ, established
    ftp.state = 1;
    ftp.vport = 21u16.to_be_bytes();
    ftp.dport = 21u16.to_be_bytes();
    ftp.timeout = 900;
    ftp.seq = Some([Seq::default(), out]);
    let mut both = ftp;
    both.flags = conn_flags::SEQ_MASK;
    both.cport = 40001u16.to_be_bytes();
    both.seq = Some([Seq { init_seq: 7, delta: 3, previous_delta: 0 }, out]);
    let plain = conn4();
    for v in [Version::V0, Version::V1] {
        let recs = [plain, ftp, both, plain];
        let m = encode(v, 7, &recs, 1500);
        let (rec, seq_len) = if v == Version::V0 { (24, 24) } else { (36, 2 + 24) };
        assert_eq!(record_len(v, &ftp), Some(rec + seq_len));
        // Version 1 pads the two 62-byte records to 64.
        let pad = if v == Version::V0 { 0 } else { 2 * 2 };
        assert_eq!(m.len(), header_len(v) + 4 * rec + 2 * seq_len + pad);
        let at = header_len(v) + 2 * rec + seq_len; // the data of `ftp`
        let data = &m[at - 24..at];
        for (i, w) in [0, 0, 0, out.init_seq, out.delta, out.previous_delta].into_iter().enumerate() {
            let b = if v == Version::V0 { w.to_ne_bytes() } else { w.to_be_bytes() };
            assert_eq!(data[i * 4..i * 4 + 4], b, "{v:?} word {i}");
        }
        if v == Version::V1 {
            assert_eq!(m[at - 26..at - 24], [1, 24]);
        }
        let got = conns_of(&decode(&m));
        // Version 0 carries no timeout.
        let want: Vec<_> = recs
            .iter()
            .map(|c| SyncConn { timeout: if v == Version::V0 { 0 } else { c.timeout }, ..received(v, c) })
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[1].seq, Some([Seq::default(), out]));
        assert_eq!(got[1].flags & conn_flags::SEQ_MASK, conn_flags::OUT_SEQ);
        assert_eq!(got[2].seq, both.seq);
        assert_eq!(got[3].seq, None);
        assert_eq!(got[1].seq.unwrap()[1].delta as i32, -2);
    }
}

#[test]
fn unsupported_records() {
    let mut buf = [0u8; 200];
    let used = start(&mut buf, Version::V0, 0).unwrap();
    assert_eq!(append(&mut buf, used, Version::V0, &conn6()), Err(AppendError::Unsupported));
    let mut c = conn4();
    c.pe_data = b"x";
    assert_eq!(record_len(Version::V0, &c), None);
    c.pe_data = &[];
    c.pe_name = b"sip";
    assert_eq!(record_len(Version::V0, &c), None);
    // Upstream sends a PE name only with PE data.
    assert_eq!(record_len(Version::V1, &c), Some(36));
    let big = [0u8; 256];
    c.pe_data = &big;
    assert_eq!(record_len(Version::V1, &c), None);
    c.pe_data = &big[..255];
    c.pe_name = &big[..17];
    assert_eq!(record_len(Version::V1, &c), None);
    c.pe_name = &big[..16];
    assert_eq!(record_len(Version::V1, &c), Some(36 + 257 + 18));
    // Version 0 sends zeros for missing sequence data, version 1 nothing.
    let mut c = conn4();
    c.flags |= conn_flags::IN_SEQ;
    assert_eq!(record_len(Version::V0, &c), Some(48));
    assert_eq!(record_len(Version::V1, &c), Some(36));
}

#[test]
fn full_buffer_and_record_limit() {
    // Room for exactly two v1 records: the padding counts.
    let mut c = conn4();
    c.pe_data = b"x"; // 39 bytes, so the next record needs one byte of padding
    let mut buf = vec![0u8; 8 + 39 + 1 + 39];
    let mut used = start(&mut buf, Version::V1, 0).unwrap();
    used = append(&mut buf, used, Version::V1, &c).unwrap();
    assert_eq!(used, 47);
    assert_eq!(append(&mut buf[..86], used, Version::V1, &c), Err(AppendError::Full));
    used = append(&mut buf, used, Version::V1, &c).unwrap();
    assert_eq!(used, 87);
    assert_eq!(append(&mut buf, used, Version::V1, &conn4()), Err(AppendError::Full));
    assert_eq!(count(&buf, Version::V1), 2);
    assert_eq!(decode(&buf).len(), 2);
    // A bogus `used` is refused, not trusted.
    assert_eq!(append(&mut buf, 3, Version::V1, &c), Err(AppendError::Full));
    assert_eq!(append(&mut buf, 200, Version::V1, &c), Err(AppendError::Full));

    // The 8-bit count stops at 255 records even with room left.
    for v in [Version::V0, Version::V1] {
        let mut buf = vec![0u8; 8 + 256 * 36];
        let mut used = start(&mut buf, v, 0).unwrap();
        for _ in 0..255 {
            used = append(&mut buf, used, v, &conn4()).unwrap();
        }
        assert_eq!(append(&mut buf, used, v, &conn4()), Err(AppendError::Full));
        assert_eq!(count(&buf, v), 255);
        buf.truncate(used);
        assert_eq!(conns_of(&decode(&buf)).len(), 255);
    }

    // The 16-bit size field bounds a message.
    let mut buf = vec![0u8; 70000];
    let mut used = start(&mut buf, Version::V1, 0).unwrap();
    let mut c = conn6();
    c.pe_data = &[7; 255];
    c.pe_name = b"0123456789abcdef";
    let n = loop {
        match append(&mut buf, used, Version::V1, &c) {
            Ok(u) => used = u,
            Err(e) => {
                assert_eq!(e, AppendError::Full);
                break count(&buf, Version::V1);
            }
        }
    };
    assert!(used <= 0xffff && used + 3 + record_len(Version::V1, &c).unwrap() > 0xffff);
    assert!(n < 255);
    buf.truncate(used);
    assert_eq!(conns_of(&decode(&buf)).len(), usize::from(n));
}

#[test]
fn message_drops() {
    let m = encode(Version::V1, 4, &[conn4()], 1500);
    assert_eq!(parse(&m[..3], 0).err(), Some(Drop::TooShort));
    assert_eq!(parse(&[], 0).err(), Some(Drop::TooShort));
    assert_eq!(parse(&m[..m.len() - 1], 0).err(), Some(Drop::BadSize));
    let mut longer = m.clone();
    longer.push(0);
    assert_eq!(parse(&longer, 0).err(), Some(Drop::BadSize));
    assert_eq!(parse(&m, 5).err(), Some(Drop::OtherSyncId));
    assert_eq!(parse(&m, 4).unwrap().count(), 1);
    assert_eq!(parse(&m, 0).unwrap().count(), 1);
    let m0 = encode(Version::V0, 4, &[conn4()], 1500);
    assert_eq!(parse(&m0, 9).err(), Some(Drop::OtherSyncId));
    assert_eq!(parse(&m0[..27], 4).err(), Some(Drop::BadSize));
}

/// A message of version 0 from raw records.
fn raw_v0(nr: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![nr, 0];
    m.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn v0_rec(flags: u16) -> Vec<u8> {
    let mut r = vec![0, 6, 0, 1, 0, 2, 0, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&[0, 1]);
    r
}

#[test]
fn v0_receiver_paths() {
    let good = v0_rec(0);
    // Fewer records than announced.
    let m = raw_v0(2, &good);
    let r = decode(&m);
    assert!(matches!(r[..], [Record::Conn(_), Record::Stop("v0, bogus conn")]));
    // Sequence flags without the sequence data.
    let mut body = good.clone();
    body.extend(v0_rec(0x0200));
    body.extend_from_slice(&[0; 23]);
    let m = raw_v0(3, &body);
    assert!(matches!(decode(&m)[..], [Record::Conn(_), Record::Stop("v0, bogus conn options")]));
    // Invalid flags skip the record (its sequence data too), not the message.
    let mut body = v0_rec(0x2000 | 0x0400);
    body.extend_from_slice(&[0; 24]);
    body.extend(v0_rec((conn_flags::NO_CPORT | conn_flags::TEMPLATE) as u16));
    body.extend(v0_rec(conn_flags::NO_CPORT as u16 | 0xc000));
    let m = raw_v0(3, &body);
    let r = decode(&m);
    assert!(matches!(r[..2], [Record::Skip(_), Record::Skip(_)]));
    let Record::Conn(c) = r[2] else { panic!("{r:?}") };
    assert_eq!(c.flags, conn_flags::NO_CPORT | conn_flags::SYNC);
    assert_eq!((c.caddr, c.daddr, c.state, c.cport), (a4([1; 4]), a4([3; 4]), 1, [0, 1]));
    // Bytes beyond the announced records are ignored; the reserved byte too.
    let mut body = good.clone();
    body[0] = 0xee;
    body.extend_from_slice(&[9; 30]);
    assert_eq!(conns_of(&decode(&raw_v0(1, &body))).len(), 1);
    // No records announced: nothing, whatever follows.
    assert_eq!(decode(&raw_v0(0, &body)).len(), 0);
    // A v1-like header with a non-zero spare byte is version 0: its first byte (0) is the count.
    let m = [0, 0, 0, 8, 1, 1, 0, 1];
    assert_eq!(parse(&m, 0).unwrap().version(), Version::V0);
    assert_eq!(decode(&m).len(), 0);
}

/// A message of version 1 from raw records.
fn raw_v1(nr: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 0];
    m.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    m.extend_from_slice(&[nr, 1, 0, 0]);
    m.extend_from_slice(body);
    m
}

/// A v1 IPv4 record: fixed part with `ty` and the size of the fixed part plus `opts`.
fn v1_rec(ty: u8, flags: u32, opts: &[u8]) -> Vec<u8> {
    let fixed = if ty & 1 != 0 { 72 } else { 36 };
    let size = (fixed + opts.len()) as u16;
    let mut r = vec![ty, 6];
    r.extend_from_slice(&size.to_be_bytes());
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, 10, 0, 20, 0, 30, 0, 0, 0, 0, 0, 0, 0, 60]);
    r.resize(fixed, 5);
    r.extend_from_slice(opts);
    while r.len() % 4 != 0 {
        r.push(0);
    }
    r
}

/// The single record of `m` (leaked: tests only).
fn one(m: Vec<u8>) -> Record<'static> {
    let r = decode(Vec::leak(m));
    assert_eq!(r.len(), 1, "{r:?}");
    r[0]
}

#[test]
fn v1_message_level_stops() {
    let good = v1_rec(0, 0, &[]);
    // Announced records missing.
    assert!(matches!(decode(&raw_v1(2, &good))[..], [Record::Conn(_), Record::Stop("too small")]));
    // Less than a fixed IPv4 part left.
    assert_eq!(one(raw_v1(1, &good[..35])), Record::Stop("too small"));
    // Size beyond the message.
    let mut r = good.clone();
    r[3] = 37;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("msg > buffer"));
    // Unknown record version (checked after the size).
    let mut r = good.clone();
    r[2] = 0x10;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("unknown record version"));
    r[3] = 0xff;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("msg > buffer"));
    // Unknown type; type bit 0 set means IPv6 whatever the other bits.
    assert_eq!(one(raw_v1(1, &v1_rec(2, 0, &[]))), Record::Stop("unknown record type (err -10)"));
    let Record::Conn(c) = one(raw_v1(1, &v1_rec(0x81, 0, &[]))) else { panic!() };
    assert!(c.v6);
    // Size smaller than the fixed part (the type is still read first).
    let mut r = good.clone();
    r[3] = 20;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("record shorter than its type (err -20)"));
    r[0] = 4;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("unknown record type (err -10)"));
    let mut r = v1_rec(1, 0, &[]);
    r[3] = 36;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("record shorter than its type (err -20)"));
    // A zero size: the next record would start at the same place.
    let mut r = good.clone();
    r[3] = 0;
    assert_eq!(one(raw_v1(1, &r)), Record::Stop("record shorter than its type (err -20)"));
    // After a Stop, nothing more even if announced.
    let mut body = r.clone();
    body.extend(good.clone());
    assert_eq!(decode(&raw_v1(5, &body)).len(), 1);
}

#[test]
fn v1_option_walk() {
    let seq = {
        let mut o = vec![1, 24];
        o.extend_from_slice(&[0; 24]);
        o
    };
    let stop = |opts: &[u8]| {
        let m = raw_v1(2, &[v1_rec(0, 0, opts), v1_rec(0, 0, &[])].concat());
        match decode(&m)[..] {
            [Record::Stop(why)] => why,
            ref r => panic!("{r:?}"),
        }
    };
    // Option header cut by the record's end (padding is not part of the record).
    assert_eq!(stop(&[0x47]), "truncated option header (err -30)");
    assert_eq!(stop(&[2, 0]), "bad option length (err -40)");
    assert_eq!(stop(&[2, 3, 1, 2]), "bad option length (err -40)");
    assert_eq!(
        stop(&[1, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        "bogus conn options length (err -50)"
    );
    assert_eq!(stop(&[seq.clone(), seq.clone()].concat()), "conn options found twice (err -50)");
    // The PARAM bit does not hide a known option.
    let mut seq41 = seq.clone();
    seq41[0] = 0x41;
    assert_eq!(stop(&[seq.clone(), seq41.clone()].concat()), "conn options found twice (err -50)");
    assert_eq!(stop(&[2, 1, 9, 0x42, 1, 9]), "PE data found twice (err -60)");
    let mut long_name = vec![3, 17];
    long_name.extend_from_slice(&[b'a'; 17]);
    assert_eq!(stop(&long_name), "PE name too long (err -70)");
    assert_eq!(stop(&[3, 1, b'a', 3, 1, b'b']), "PE name found twice (err -70)");

    // An unknown mandatory option skips the record, before looking at what follows it.
    let m = raw_v1(2, &[v1_rec(0, 0, &[5, 1, 0, 2, 0]), v1_rec(0, 0, &[])].concat());
    assert!(matches!(
        decode(&m)[..],
        [Record::Skip("unknown mandatory option (err 20)"), Record::Conn(_)]
    ));
    let m = raw_v1(1, &v1_rec(0, 0, &[0x85, 1, 0]));
    assert_eq!(one(m.clone()), Record::Skip("unknown mandatory option (err 20)"));
    // ... but a malformed option before it stops the message.
    let m = raw_v1(1, &v1_rec(0, 0, &[2, 0, 5, 1, 0]));
    assert_eq!(one(m.clone()), Record::Stop("bad option length (err -40)"));
    // Unknown optional options are ignored; options come in any order.
    let mut opts = vec![0x45, 2, 9, 9, 3, 3, b's', b'i', b'p'];
    opts.extend(seq41);
    opts.extend_from_slice(&[0x40, 1, 0, 2, 2, 0xde, 0xad]);
    let m = raw_v1(1, &v1_rec(0, conn_flags::IN_SEQ, &opts));
    let Record::Conn(c) = one(m.clone()) else { panic!() };
    assert_eq!((c.pe_data, c.pe_name), (&[0xde, 0xad][..], &b"sip"[..]));
    assert_eq!(c.seq, Some([Seq::default(); 2]));
    assert_eq!(c.flags, conn_flags::IN_SEQ | conn_flags::SYNC);
    assert_eq!((c.state, c.cport, c.vport, c.dport, c.timeout), (1, [0, 10], [0, 20], [0, 30], 60));
    // A name without data is ignored, as upstream ignores it; data without a name is left to
    // the daemon ("Invalid PE parameters").
    let Record::Conn(c) = one(raw_v1(1, &v1_rec(0, 0, &[3, 3, b's', b'i', b'p']))) else {
        panic!()
    };
    assert_eq!((c.pe_data, c.pe_name), (&[][..], &[][..]));
    let Record::Conn(c) = one(raw_v1(1, &v1_rec(0, 0, &[2, 1, 7]))) else { panic!() };
    assert_eq!((c.pe_data, c.pe_name), (&[7][..], &[][..]));
    // Maximum lengths are accepted.
    let mut opts = vec![2, 255];
    opts.extend_from_slice(&[1; 255]);
    opts.extend_from_slice(&[3, 16]);
    opts.extend_from_slice(&[b'n'; 16]);
    let Record::Conn(c) = one(raw_v1(1, &v1_rec(1, 0, &opts))) else { panic!() };
    assert_eq!((c.pe_data.len(), c.pe_name.len(), c.v6), (255, 16, true));
}

#[test]
fn v1_flags() {
    let skip = |flags: u32| one(raw_v1(1, &v1_rec(0, flags, &[])));
    assert_eq!(skip(conn_flags::ONE_PACKET), Record::Skip("invalid flags (err 25)"));
    assert_eq!(
        skip(conn_flags::NO_CPORT | conn_flags::TEMPLATE),
        Record::Skip("invalid flags (err 25)")
    );
    // Flags are checked after the options.
    let m = raw_v1(1, &v1_rec(0, conn_flags::ONE_PACKET, &[2, 0]));
    assert_eq!(one(m.clone()), Record::Stop("bad option length (err -40)"));
    let Record::Conn(c) = skip(0xffff_dfff & !conn_flags::NO_CPORT) else { panic!() };
    assert_eq!(c.flags, (conn_flags::BACKUP_MASK & !conn_flags::NO_CPORT) | conn_flags::SYNC);
}

#[test]
fn mutation_fuzz() {
    let t = std::time::Instant::now();
    let mut seen = std::collections::BTreeMap::new();
    let (iters, conns) =
        sync_msg_check::run_noting(0x5eed, 200_000, &mut |w| *seen.entry(w).or_insert(0u64) += 1);
    assert_eq!(iters, 200_000);
    eprintln!("{seen:#?}");
    // Every outcome of the decoder is reached.
    assert_eq!(seen.len(), 21, "{seen:?}");
    // The mutants must reach the record decoder, not just the header checks.
    assert!(conns > iters / 2, "{conns} connections decoded");
    eprintln!("sync_msg mutation fuzz: {iters} messages, {conns} connections, {:?}", t.elapsed());
}
