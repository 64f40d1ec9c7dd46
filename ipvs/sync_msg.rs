// SPDX-License-Identifier: GPL-2.0

//! Wire format of the connection synchronization messages that a master director multicasts
//! to its backups: encoding of the sender side and the structural decoding of the receiver
//! side, for both protocol versions.
//!
//! Version 0 (IPv4 only) has a 4-byte header `nr_conns, syncid, size` and fixed 24-byte
//! records, followed by 24 bytes of sequence adjustment data when the record's flags ask for
//! it. Version 1 has an 8-byte header `0, syncid, size, nr_conns, version = 1, 0, 0` (its
//! first byte is zero so that a version 0 receiver sees no records) and records of 36 (IPv4)
//! or 72 (IPv6) bytes followed by type-length-value options, each record starting 4-byte
//! aligned; the padding counts in the header's size but not in the record's.
//!
//! Only the structure is checked here; what needs the kernel's tables (protocol known, state
//! in range, persistence engine loaded) is left to the sync daemon.
//!
//! Kernel independent (`no_std`, host-tested: `host-tests/src/sync_msg_tests.rs`; fuzzed by
//! `host-tests/fuzz`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sync.c`

#![allow(dead_code, unreachable_pub)]

/// Default UDP port of the sync daemons (`IP_VS_SYNC_PORT`); thread `i` uses `SYNC_PORT + i`.
pub(crate) const SYNC_PORT: u16 = 8848;

/// Default multicast group (`IP_VS_SYNC_GROUP`, 224.0.0.81). Upstream has no IPv6 default: an
/// IPv6 sync daemon needs a group from the user.
pub(crate) const MCAST_GROUP4: [u8; 4] = [224, 0, 0, 81];

/// `IP_VS_CONN_F_*` flags the sync code uses (`include/uapi/linux/ip_vs.h`).
pub(crate) mod conn_flags {
    /// Mask of the forwarding method.
    pub(crate) const FWD_MASK: u32 = 0x0007;
    /// Entry created by the sync daemon.
    pub(crate) const SYNC: u32 = 0x0020;
    /// Entry is in the connection hash table.
    pub(crate) const HASHED: u32 = 0x0040;
    /// No output packets.
    pub(crate) const NOOUTPUT: u32 = 0x0080;
    /// Connection not established.
    pub(crate) const INACTIVE: u32 = 0x0100;
    /// Output sequence numbers must be adjusted.
    pub(crate) const OUT_SEQ: u32 = 0x0200;
    /// Input sequence numbers must be adjusted.
    pub(crate) const IN_SEQ: u32 = 0x0400;
    /// Both sequence adjustment flags.
    pub(crate) const SEQ_MASK: u32 = IN_SEQ | OUT_SEQ;
    /// Client port not known yet.
    pub(crate) const NO_CPORT: u32 = 0x0800;
    /// Persistence template, not a connection.
    pub(crate) const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling: never synced.
    pub(crate) const ONE_PACKET: u32 = 0x2000;
    /// Flags a backup takes from a sync record.
    pub(crate) const BACKUP_MASK: u32 =
        FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// Flags a sync record may change on an existing connection of the backup.
    pub(crate) const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

use conn_flags::{HASHED, NO_CPORT, ONE_PACKET, SEQ_MASK, SYNC, TEMPLATE};

/// Longest persistence engine name on the wire (`IP_VS_PENAME_MAXLEN`, no NUL).
pub(crate) const IP_VS_PENAME_MAXLEN: usize = 16;
/// Longest persistence engine data (`IP_VS_PEDATA_MAXLEN`).
pub(crate) const IP_VS_PEDATA_MAXLEN: usize = 255;

/// Version 0 header: `nr_conns, syncid, size`.
const V0_HEADER: usize = 4;
/// Version 1 header: `reserved, syncid, size, nr_conns, version, spare(2)`.
const V1_HEADER: usize = 8;
/// Version 0 record without sequence data (`SIMPLE_CONN_SIZE`).
const V0_CONN: usize = 24;
/// The two sequence adjustment blocks (`struct ip_vs_sync_conn_options`).
const SEQ_OPTS: usize = 24;
/// Fixed part of a version 1 IPv4 record (`struct ip_vs_sync_v4`).
const V1_CONN4: usize = 36;
/// Fixed part of a version 1 IPv6 record (`struct ip_vs_sync_v6`).
const V1_CONN6: usize = 72;
/// Header of a version 1 option: type and length bytes.
const OPT_HEADER: usize = 2;

/// Protocol version in a version 1 header (`SYNC_PROTO_VER`).
const SYNC_PROTO_VER: u8 = 1;
/// Record type bit: IPv6 (`STYPE_F_INET6`).
const STYPE_F_INET6: u8 = 1;
/// Record version in the top bits of `ver_size` (`SVER_SHIFT`).
const SVER_SHIFT: u32 = 12;
/// Record size in the low bits of `ver_size` (`SVER_MASK`).
const SVER_MASK: u16 = 0x0fff;

/// Option: sequence adjustment data (`IPVS_OPT_SEQ_DATA`).
const OPT_SEQ_DATA: u8 = 1;
/// Option: persistence engine data (`IPVS_OPT_PE_DATA`).
const OPT_PE_DATA: u8 = 2;
/// Option: persistence engine name (`IPVS_OPT_PE_NAME`).
const OPT_PE_NAME: u8 = 3;
/// Option type bit: a receiver that does not know the option may ignore it
/// (`IPVS_OPT_F_PARAM`); without it an unknown option makes the record unusable.
const OPT_F_PARAM: u8 = 1 << (7 - 1);

/// Sequence number adjustment of one direction (`struct ip_vs_seq`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Seq {
    /// Sequence number from which `delta` applies.
    pub(crate) init_seq: u32,
    /// Delta added to sequence numbers after `init_seq`.
    pub(crate) delta: u32,
    /// Delta for sequence numbers before `init_seq`.
    pub(crate) previous_delta: u32,
}

/// Protocol version of a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Version {
    /// The original format: IPv4 only, no timeout, fwmark or persistence data.
    V0,
    /// The current format (`SYNC_PROTO_VER`).
    V1,
}

/// One connection record, either version.
///
/// Ports are in network byte order, as the connection table stores them. Addresses take 16
/// bytes; an IPv4 address is in the first 4 and the rest is zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SyncConn<'a> {
    /// IPv6 addresses (version 1 only).
    pub(crate) v6: bool,
    /// IP protocol number.
    pub(crate) protocol: u8,
    /// `IP_VS_CONN_F_*` flags (version 0 carries only the low 16 bits).
    pub(crate) flags: u32,
    /// Protocol state (or template state).
    pub(crate) state: u16,
    /// Client port.
    pub(crate) cport: [u8; 2],
    /// Virtual port.
    pub(crate) vport: [u8; 2],
    /// Destination (real server) port.
    pub(crate) dport: [u8; 2],
    /// Firewall mark of the service; version 0 carries none (decoded as 0).
    pub(crate) fwmark: u32,
    /// Timeout in seconds; version 0 carries none (decoded as 0).
    pub(crate) timeout: u32,
    /// Client address.
    pub(crate) caddr: [u8; 16],
    /// Virtual address.
    pub(crate) vaddr: [u8; 16],
    /// Destination address.
    pub(crate) daddr: [u8; 16],
    /// Sequence adjustment `[in_seq, out_seq]`.
    ///
    /// Version 1 sends it (as upstream, the sender sets it exactly when `flags & SEQ_MASK`)
    /// when it is `Some`. Version 0 sends it when `flags & SEQ_MASK`, zeros for `None`, and
    /// decodes it exactly then.
    pub(crate) seq: Option<[Seq; 2]>,
    /// Persistence engine data (version 1 only, at most [`IP_VS_PEDATA_MAXLEN`]).
    pub(crate) pe_data: &'a [u8],
    /// Persistence engine name (version 1 only, at most [`IP_VS_PENAME_MAXLEN`], no NUL).
    /// As upstream, sent and decoded only together with non-empty `pe_data`.
    pub(crate) pe_name: &'a [u8],
}

/// Why [`append`] did not add a record.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum AppendError {
    /// No room left in the buffer, or the message already has 255 records (or `used` is not
    /// the length of a message started by [`start`]): send it and start a new one.
    Full,
    /// The record cannot be expressed in this version ([`record_len`] is `None`).
    Unsupported,
}

/// Why a whole message is dropped before any record is looked at.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Drop {
    /// Shorter than a version 0 header ("message header too short").
    TooShort,
    /// The header's size is not the datagram's length ("bogus message size").
    BadSize,
    /// Another sync id than the configured one: ignored silently (a debug message only).
    OtherSyncId,
}

/// One decoded record, or what the receiver does instead of applying it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Record<'a> {
    /// A record to apply. Its flags are already the backup's: `(flags & BACKUP_MASK) | SYNC`.
    ///
    /// The daemon still checks the protocol and state, and, when `pe_data` is not empty, that
    /// `pe_name` is not empty ("Invalid PE parameters", skip) and names a loaded engine.
    Conn(SyncConn<'a>),
    /// The record is skipped and the next one processed (upstream: a positive return of
    /// `ip_vs_proc_sync_conn`, or `continue` in version 0). Reasons of version 1 records end
    /// with upstream's code, `(err N)`.
    Skip(&'static str),
    /// The rest of the message is dropped ("Dropping buffer"); nothing follows. Reasons that
    /// upstream reports as "Err: N in decoding" end with `(err N)`.
    Stop(&'static str),
}

/// Header length of a version (4 or 8).
pub(crate) fn header_len(v: Version) -> usize {
    match v {
        Version::V0 => V0_HEADER,
        Version::V1 => V1_HEADER,
    }
}

/// Whether `c`'s persistence engine name goes on the wire: only with its data, as upstream.
fn sends_pe_name(c: &SyncConn<'_>) -> bool {
    !c.pe_data.is_empty() && !c.pe_name.is_empty()
}

/// Bytes a record takes in version `v` (options included, padding not), or `None` when `v`
/// cannot carry it (IPv6 or persistence data in version 0; data or name too long).
pub(crate) fn record_len(v: Version, c: &SyncConn<'_>) -> Option<usize> {
    match v {
        Version::V0 => {
            if c.v6 || !c.pe_data.is_empty() || !c.pe_name.is_empty() {
                return None;
            }
            Some(if c.flags & SEQ_MASK != 0 { V0_CONN + SEQ_OPTS } else { V0_CONN })
        }
        Version::V1 => {
            if c.pe_data.len() > IP_VS_PEDATA_MAXLEN || c.pe_name.len() > IP_VS_PENAME_MAXLEN {
                return None;
            }
            let mut len = if c.v6 { V1_CONN6 } else { V1_CONN4 };
            let opts = [
                (c.seq.is_some(), SEQ_OPTS),
                (!c.pe_data.is_empty(), c.pe_data.len()),
                (sends_pe_name(c), c.pe_name.len()),
            ];
            for (_, data) in opts.into_iter().filter(|&(present, _)| present) {
                len = len.checked_add(OPT_HEADER)?.checked_add(data)?;
            }
            Some(len)
        }
    }
}

/// Offset of the record count in the header of a version.
fn count_offset(v: Version) -> usize {
    match v {
        Version::V0 => 0,
        Version::V1 => 4,
    }
}

/// Writes an empty message header of version `v` into `buf` and returns the bytes used
/// ([`header_len`]), or `None` if `buf` is too short.
pub(crate) fn start(buf: &mut [u8], v: Version, syncid: u8) -> Option<usize> {
    let len = header_len(v);
    let size = u16::try_from(len).ok()?.to_be_bytes();
    let hdr = buf.get_mut(..len)?;
    match v {
        Version::V0 => hdr.copy_from_slice(&[0, syncid, size[0], size[1]]),
        Version::V1 => hdr.copy_from_slice(&[0, syncid, size[0], size[1], 0, SYNC_PROTO_VER, 0, 0]),
    }
    Some(len)
}

/// Records in the message (0 if `buf` is shorter than the header).
pub(crate) fn count(buf: &[u8], v: Version) -> u8 {
    buf.get(count_offset(v)).copied().unwrap_or(0)
}

/// Sequential writer into a buffer sized beforehand.
struct Writer<'b> {
    rest: &'b mut [u8],
}

impl Writer<'_> {
    fn put(&mut self, src: &[u8]) -> Option<()> {
        let rest = core::mem::take(&mut self.rest);
        let (dst, rest) = rest.split_at_mut_checked(src.len())?;
        dst.copy_from_slice(src);
        self.rest = rest;
        Some(())
    }

    fn u8(&mut self, x: u8) -> Option<()> {
        self.put(&[x])
    }

    fn be16(&mut self, x: u16) -> Option<()> {
        self.put(&x.to_be_bytes())
    }

    fn be32(&mut self, x: u32) -> Option<()> {
        self.put(&x.to_be_bytes())
    }
}

/// Encodes the record of `c` into `rec`, which is exactly `record_len(v, c)` bytes.
fn encode(rec: &mut [u8], v: Version, c: &SyncConn<'_>) -> Option<()> {
    let len = u16::try_from(rec.len()).ok()?;
    let flags = c.flags & !HASHED;
    let mut w = Writer { rest: rec };
    match v {
        Version::V0 => {
            // `struct ip_vs_sync_conn_v0`.
            w.u8(0)?;
            w.u8(c.protocol)?;
            w.put(&c.cport)?;
            w.put(&c.vport)?;
            w.put(&c.dport)?;
            w.put(c.caddr.get(..4)?)?;
            w.put(c.vaddr.get(..4)?)?;
            w.put(c.daddr.get(..4)?)?;
            // The field has 16 bits; upstream truncates the flags the same way.
            let [_, _, lo @ ..] = flags.to_be_bytes();
            w.put(&lo)?;
            w.be16(c.state)?;
            if flags & SEQ_MASK != 0 {
                // Upstream copies `struct ip_vs_seq` as it is in memory: host byte order.
                for s in c.seq.unwrap_or_default() {
                    w.put(&s.init_seq.to_ne_bytes())?;
                    w.put(&s.delta.to_ne_bytes())?;
                    w.put(&s.previous_delta.to_ne_bytes())?;
                }
            }
        }
        Version::V1 => {
            // `struct ip_vs_sync_v4` / `struct ip_vs_sync_v6`, record version 0.
            w.u8(if c.v6 { STYPE_F_INET6 } else { 0 })?;
            w.u8(c.protocol)?;
            w.be16(len & SVER_MASK)?;
            w.be32(flags)?;
            w.be16(c.state)?;
            w.put(&c.cport)?;
            w.put(&c.vport)?;
            w.put(&c.dport)?;
            w.be32(c.fwmark)?;
            w.be32(c.timeout)?;
            let alen = if c.v6 { 16 } else { 4 };
            w.put(c.caddr.get(..alen)?)?;
            w.put(c.vaddr.get(..alen)?)?;
            w.put(c.daddr.get(..alen)?)?;
            if let Some(seq) = c.seq {
                w.put(&[OPT_SEQ_DATA, u8::try_from(SEQ_OPTS).ok()?])?;
                for s in seq {
                    w.be32(s.init_seq)?;
                    w.be32(s.delta)?;
                    w.be32(s.previous_delta)?;
                }
            }
            if !c.pe_data.is_empty() {
                w.put(&[OPT_PE_DATA, u8::try_from(c.pe_data.len()).ok()?])?;
                w.put(c.pe_data)?;
                if sends_pe_name(c) {
                    w.put(&[OPT_PE_NAME, u8::try_from(c.pe_name.len()).ok()?])?;
                    w.put(c.pe_name)?;
                }
            }
        }
    }
    w.rest.is_empty().then_some(())
}

/// Appends `c` to the message in `buf[..used]` (started by [`start`] with the same `v`);
/// `buf.len()` is the message's maximum size (above 65535 bytes only 65535 are used).
///
/// Writes upstream's sender encoding: flags without `HASHED`, in version 1 zero padding
/// before the record so that it starts 4-byte aligned; updates the header's size and count.
/// Returns the new used length.
pub(crate) fn append(
    buf: &mut [u8],
    used: usize,
    v: Version,
    c: &SyncConn<'_>,
) -> Result<usize, AppendError> {
    let len = record_len(v, c).ok_or(AppendError::Unsupported)?;
    if used < header_len(v) || used > buf.len() {
        return Err(AppendError::Full);
    }
    // Upstream has no limit here and its 8-bit count would wrap past 255 records.
    let nr = count(buf, v).checked_add(1).ok_or(AppendError::Full)?;
    let pad = match v {
        Version::V0 => 0,
        Version::V1 => used.wrapping_neg() & 3,
    };
    let end = used.checked_add(pad).and_then(|s| s.checked_add(len)).ok_or(AppendError::Full)?;
    let size = u16::try_from(end).map_err(|_| AppendError::Full)?;
    let (msg, _) = buf.split_at_mut_checked(end).ok_or(AppendError::Full)?;
    let (hdr, body) = msg.split_at_mut_checked(used).ok_or(AppendError::Full)?;
    let (padding, rec) = body.split_at_mut_checked(pad).ok_or(AppendError::Full)?;
    padding.fill(0);
    encode(rec, v, c).ok_or(AppendError::Full)?;
    if let Some(h) = hdr.get_mut(2..4) {
        h.copy_from_slice(&size.to_be_bytes());
    }
    if let Some(n) = hdr.get_mut(count_offset(v)) {
        *n = nr;
    }
    Ok(end)
}

/// Whether `buf` has a version 1 header (upstream's test: reserved byte 0, version 1, spare 0).
///
/// Upstream reads those bytes even from a datagram shorter than the header; such a message
/// has no room for a record of either version, so only the log message can differ.
pub(crate) fn is_v1(buf: &[u8]) -> bool {
    matches!(buf.first_chunk::<V1_HEADER>(), Some(&[0, _, _, _, _, SYNC_PROTO_VER, 0, 0]))
}

/// Checks the header of a received datagram as upstream's `ip_vs_process_message` does and
/// returns its records. `syncid` is the backup's configured sync id (0 accepts any).
pub(crate) fn parse(buf: &[u8], syncid: u8) -> Result<Records<'_>, Drop> {
    let &[nr0, msg_syncid, s0, s1] = buf.first_chunk::<V0_HEADER>().ok_or(Drop::TooShort)?;
    if usize::from(u16::from_be_bytes([s0, s1])) != buf.len() {
        return Err(Drop::BadSize);
    }
    if syncid != 0 && msg_syncid != syncid {
        return Err(Drop::OtherSyncId);
    }
    let (version, left, pos) = if is_v1(buf) {
        (Version::V1, count(buf, Version::V1), V1_HEADER)
    } else {
        (Version::V0, nr0, V0_HEADER)
    };
    Ok(Records { buf, version, pos, left })
}

/// The records of a received message, in order, as upstream's receiver handles them.
#[derive(Clone, Debug)]
pub(crate) struct Records<'a> {
    buf: &'a [u8],
    version: Version,
    /// Offset of the next record (may be past the end).
    pos: usize,
    /// Records the header still announces; 0 after a [`Record::Stop`].
    left: u8,
}

impl<'a> Records<'a> {
    /// Protocol version of the message.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// Version 0 record (`ip_vs_process_message_v0`, one loop iteration).
    fn next_v0(&mut self) -> Record<'a> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let Some((fixed, tail)) = rest.split_first_chunk::<V0_CONN>() else {
            return Record::Stop("v0, bogus conn");
        };
        let mut r = Reader(fixed);
        let _reserved = r.u8();
        let protocol = r.u8();
        let cport = r.arr();
        let vport = r.arr();
        let dport = r.arr();
        let caddr = r.addr(false);
        let vaddr = r.addr(false);
        let daddr = r.addr(false);
        let flags = u32::from(r.be16());
        let state = r.be16();
        let seq = if flags & SEQ_MASK != 0 {
            let Some(opts) = tail.first_chunk::<SEQ_OPTS>() else {
                return Record::Stop("v0, bogus conn options");
            };
            let mut r = Reader(opts);
            self.pos = self.pos.saturating_add(V0_CONN + SEQ_OPTS);
            Some([r.seq_ne(), r.seq_ne()])
        } else {
            self.pos = self.pos.saturating_add(V0_CONN);
            None
        };
        if !valid_flags(flags) {
            return Record::Skip("v0, invalid flags");
        }
        Record::Conn(SyncConn {
            v6: false,
            protocol,
            flags: backup_flags(flags),
            state,
            cport,
            vport,
            dport,
            fwmark: 0,
            timeout: 0,
            caddr,
            vaddr,
            daddr,
            seq,
            pe_data: &[],
            pe_name: &[],
        })
    }

    /// Version 1 record (`ip_vs_process_message`, one loop iteration).
    fn next_v1(&mut self) -> Record<'a> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let Some(fixed4) = rest.first_chunk::<V1_CONN4>() else {
            return Record::Stop("too small");
        };
        let ver_size = u16::from_be_bytes([fixed4[2], fixed4[3]]);
        let size = usize::from(ver_size & SVER_MASK);
        let Some(rec) = rest.get(..size) else {
            return Record::Stop("msg > buffer");
        };
        if ver_size >> SVER_SHIFT != 0 {
            return Record::Stop("unknown record version");
        }
        // Records start 4-byte aligned; the padding is not part of `size`.
        self.pos = size
            .checked_next_multiple_of(4)
            .and_then(|s| self.pos.checked_add(s))
            .unwrap_or(usize::MAX);
        proc_sync_conn(fixed4[0], rec)
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        self.left = self.left.checked_sub(1)?;
        let r = match self.version {
            Version::V0 => self.next_v0(),
            Version::V1 => self.next_v1(),
        };
        if let Record::Stop(_) = r {
            self.left = 0;
        }
        Some(r)
    }
}

/// Upstream's `ip_vs_sync_validate_flags`: templates must have a client port, and one-packet
/// connections are never synced.
fn valid_flags(flags: u32) -> bool {
    !(flags & NO_CPORT != 0 && flags & TEMPLATE != 0) && flags & ONE_PACKET == 0
}

/// The flags a backup gives a synced connection.
fn backup_flags(flags: u32) -> u32 {
    (flags & conn_flags::BACKUP_MASK) | SYNC
}

/// Sequential reader of a fixed-size block; reads past its end give zeros (never happens:
/// callers size the block for what they read).
struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take<const N: usize>(&mut self) -> Option<&'b [u8; N]> {
        let (h, t) = self.0.split_first_chunk::<N>()?;
        self.0 = t;
        Some(h)
    }

    fn arr<const N: usize>(&mut self) -> [u8; N] {
        self.take::<N>().copied().unwrap_or([0; N])
    }

    fn u8(&mut self) -> u8 {
        u8::from_be_bytes(self.arr())
    }

    fn be16(&mut self) -> u16 {
        u16::from_be_bytes(self.arr())
    }

    fn be32(&mut self) -> u32 {
        u32::from_be_bytes(self.arr())
    }

    fn addr(&mut self, v6: bool) -> [u8; 16] {
        if v6 {
            return self.arr();
        }
        let mut a = [0; 16];
        if let Some((head, _)) = a.split_first_chunk_mut::<4>() {
            *head = self.arr();
        }
        a
    }

    /// `struct ip_vs_seq` in network byte order (version 1).
    fn seq_be(&mut self) -> Seq {
        Seq { init_seq: self.be32(), delta: self.be32(), previous_delta: self.be32() }
    }

    /// `struct ip_vs_seq` in host byte order (version 0).
    fn seq_ne(&mut self) -> Seq {
        let mut f = || u32::from_ne_bytes(self.arr());
        Seq { init_seq: f(), delta: f(), previous_delta: f() }
    }
}

/// Decodes one version 1 record as upstream's `ip_vs_proc_sync_conn` does, up to what needs
/// the kernel's tables. `ty` is the type byte, read (as upstream does) even when `rec`, the
/// record as long as its `size` says, is shorter than its fixed part.
fn proc_sync_conn(ty: u8, rec: &[u8]) -> Record<'_> {
    let (v6, fixed_len) = if ty & STYPE_F_INET6 != 0 {
        (true, V1_CONN6)
    } else if ty == 0 {
        (false, V1_CONN4)
    } else {
        return Record::Stop("unknown record type (err -10)");
    };
    let Some((fixed, mut opts)) = rec.split_at_checked(fixed_len) else {
        return Record::Stop("record shorter than its type (err -20)");
    };

    let mut seq = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut pe_name: Option<&[u8]> = None;
    while !opts.is_empty() {
        let Some((&[ptype, plen], tail)) = opts.split_first_chunk::<OPT_HEADER>() else {
            return Record::Stop("truncated option header (err -30)");
        };
        let plen = usize::from(plen);
        let Some((data, tail)) = tail.split_at_checked(plen).filter(|_| plen != 0) else {
            return Record::Stop("bad option length (err -40)");
        };
        match ptype & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if plen != SEQ_OPTS {
                    return Record::Stop("bogus conn options length (err -50)");
                }
                if seq.is_some() {
                    return Record::Stop("conn options found twice (err -50)");
                }
                let mut r = Reader(data);
                seq = Some([r.seq_be(), r.seq_be()]);
            }
            OPT_PE_DATA => {
                // A one-byte length cannot exceed IP_VS_PEDATA_MAXLEN (255).
                if pe_data.is_some() {
                    return Record::Stop("PE data found twice (err -60)");
                }
                pe_data = Some(data);
            }
            OPT_PE_NAME => {
                if plen > IP_VS_PENAME_MAXLEN {
                    return Record::Stop("PE name too long (err -70)");
                }
                if pe_name.is_some() {
                    return Record::Stop("PE name found twice (err -70)");
                }
                pe_name = Some(data);
            }
            _ => {
                if ptype & OPT_F_PARAM == 0 {
                    return Record::Skip("unknown mandatory option (err 20)");
                }
            }
        }
        opts = tail;
    }

    let mut r = Reader(fixed);
    let _ty = r.u8();
    let protocol = r.u8();
    let _ver_size = r.be16();
    let flags = r.be32();
    if !valid_flags(flags) {
        return Record::Skip("invalid flags (err 25)");
    }
    let state = r.be16();
    let cport = r.arr();
    let vport = r.arr();
    let dport = r.arr();
    let fwmark = r.be32();
    let timeout = r.be32();
    let caddr = r.addr(v6);
    let vaddr = r.addr(v6);
    let daddr = r.addr(v6);
    let pe_data = pe_data.unwrap_or(&[]);
    // Upstream looks at the name only when there is data.
    let pe_name = if pe_data.is_empty() { &[] } else { pe_name.unwrap_or(&[]) };
    Record::Conn(SyncConn {
        v6,
        protocol,
        flags: backup_flags(flags),
        state,
        cport,
        vport,
        dport,
        fwmark,
        timeout,
        caddr,
        vaddr,
        daddr,
        seq,
        pe_data,
        pe_name,
    })
}
