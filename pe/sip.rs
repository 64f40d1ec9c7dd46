// SPDX-License-Identifier: GPL-2.0

//! The SIP Call-ID of a UDP payload, found as upstream's SIP persistence engine finds it:
//! its `get_callid` on top of the conntrack SIP helper's `ct_sip_get_header` for the
//! `Call-ID` header (compact form `i`) and `callid_len`. Upstream's quirks are kept, so that
//! the same payloads give the same Call-IDs (or none):
//!
//! - the engine searches the UDP payload from its start ([`fill_param`]: upstream 6.12's
//!   `ip_vs_sip_fill_param` calls `get_callid` with offset 0, so a Call-ID right after a
//!   start line shorter than the packet's headers is found);
//! - a header is found only at the start of a line after the first one (lines end with CR,
//!   LF or CRLF); continuation lines (starting with a space or tab) are skipped;
//! - the name matches case-insensitively; the compact `i` must be followed by a
//!   non-letter; the name may be followed by spaces and continuation lines, then a colon:
//!   anything else there ends the search with no Call-ID;
//! - the value is a word (letters, digits and `!"%()*+,-./:<>?[\]_`{}~`), optionally
//!   followed by `@` and another word; an empty value goes on searching after it;
//! - the Call-ID must be at most [`PEDATA_MAXLEN`] bytes and be followed by CR or LF.
//!
//! Every byte is untrusted: all accesses are checked, nothing here can panic.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_pe_sip.c`,
//! `srctree/net/netfilter/nf_conntrack_sip.c` (`ct_sip_get_header`)

/// Longest Call-ID kept (`IP_VS_PEDATA_MAXLEN`).
pub const PEDATA_MAXLEN: usize = 255;

/// Byte `i` of `d`, or 0 past its end (0 is neither a line end, a space, a colon nor a word
/// character, so reading past the end never matches anything).
#[inline]
fn at(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

/// A character of a Call-ID word (`iswordc`).
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'"' | b'%' | b'('..=b'/' | b':' | b'<' | b'>' | b'?' | b'['..=b']' | b'_' | b'`'
                | b'{' | b'}' | b'~'
        )
}

/// Length of the word at `i` (`word_len`).
fn word_len(d: &[u8], i: usize) -> usize {
    d.get(i..).map_or(0, |s| s.iter().take_while(|&&c| is_word(c)).count())
}

/// Length of the Call-ID at `i` (`callid_len`): a word, or word `@` word; 0 if none.
fn callid_len(d: &[u8], i: usize) -> usize {
    let len = word_len(d, i);
    let end = i.saturating_add(len);
    if len == 0 || end >= d.len() || at(d, end) != b'@' {
        return len;
    }
    let domain = word_len(d, end.saturating_add(1));
    if domain == 0 {
        return 0;
    }
    len.saturating_add(1).saturating_add(domain)
}

/// Past a line end at `i` and the whitespace of a continuation line
/// (`sip_follow_continuation`): where the continuation's text starts, or `None` if the next
/// line is no continuation or the data ends.
fn follow_continuation(d: &[u8], i: usize) -> Option<usize> {
    let mut i = i.checked_add(1).filter(|&i| i < d.len())?;
    if at(d, i - 1) == b'\r' && at(d, i) == b'\n' {
        i = i.checked_add(1).filter(|&i| i < d.len())?;
    }
    if !matches!(at(d, i), b' ' | b'\t') {
        return None;
    }
    while i < d.len() && matches!(at(d, i), b' ' | b'\t') {
        i += 1;
    }
    Some(i)
}

/// Past spaces and continuation lines at `i` (`sip_skip_whitespace`); `None` at a line end
/// that is not followed by a continuation. As upstream, the first character after a
/// continuation's indentation is stepped over too.
fn skip_whitespace(d: &[u8], mut i: usize) -> Option<usize> {
    while i < d.len() {
        let c = at(d, i);
        if c != b' ' {
            if c != b'\r' && c != b'\n' {
                break;
            }
            i = follow_continuation(d, i)?;
        }
        i += 1;
    }
    Some(i)
}

/// Whether `d` holds `name` at `i`, compared case-insensitively.
fn has_name(d: &[u8], i: usize, name: &[u8]) -> bool {
    d.get(i..)
        .and_then(|s| s.get(..name.len()))
        .is_some_and(|s| s.eq_ignore_ascii_case(name))
}

/// The outcome of one header search (`ct_sip_get_header`).
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// No Call-ID header (upstream's 0).
    None,
    /// A header with no value at offset `.0` (upstream's -1): search again from there.
    Empty(usize),
    /// The value's offset and length (upstream's 1).
    Found(usize, usize),
}

/// Looks for a Call-ID header from offset `from` of `d` (`ct_sip_get_header` for
/// `SIP_HDR_CALL_ID`).
fn get_header(d: &[u8], from: usize) -> Header {
    const NAME: &[u8] = b"Call-Id";
    const CNAME: &[u8] = b"i";
    let limit = d.len();
    let mut i = from;
    while i < limit {
        // Find the beginning of a line.
        if !matches!(at(d, i), b'\r' | b'\n') {
            i += 1;
            continue;
        }
        i += 1;
        if i >= limit {
            break;
        }
        if at(d, i - 1) == b'\r' && at(d, i) == b'\n' {
            i += 1;
            if i >= limit {
                break;
            }
        }
        // Continuation lines are no headers.
        if matches!(at(d, i), b' ' | b'\t') {
            i += 1;
            continue;
        }
        if limit - i >= NAME.len() && has_name(d, i, NAME) {
            i += NAME.len();
        } else if limit - i > CNAME.len()
            && has_name(d, i, CNAME)
            && !at(d, i + CNAME.len()).is_ascii_alphabetic()
        {
            i += CNAME.len();
        } else {
            i += 1;
            continue;
        }
        // The colon, with whitespace before and after it.
        let Some(j) = skip_whitespace(d, i) else {
            break;
        };
        if at(d, j) != b':' || j + 1 >= limit {
            break;
        }
        let Some(j) = skip_whitespace(d, j + 1) else {
            break;
        };
        let len = callid_len(d, j);
        if len == 0 {
            return Header::Empty(j);
        }
        return Header::Found(j, len);
    }
    Header::None
}

/// The Call-ID of the SIP message `d` (a UDP payload), searched from `dataoff` as upstream's
/// `get_callid` does: its offset and length in `d`, or `None`.
pub fn get_callid(d: &[u8], dataoff: usize) -> Option<(usize, usize)> {
    let mut dataoff = dataoff;
    let (off, len) = loop {
        match get_header(d, dataoff) {
            Header::Found(off, len) => break (off, len),
            Header::None => return None,
            // Upstream adds the offset from the start of the data to `dataoff`.
            Header::Empty(off) => dataoff = dataoff.checked_add(off)?,
        }
    };
    if len > PEDATA_MAXLEN {
        return None;
    }
    let end = off.checked_add(len)?;
    // A header is always followed by a line end.
    match d.get(end) {
        Some(b'\r' | b'\n') => Some((off, len)),
        _ => None,
    }
}

/// The Call-ID of the UDP payload `d`, as the engine takes it (`ip_vs_sip_fill_param`): the
/// search starts at the payload's start, whatever the packet's header lengths.
pub fn fill_param(d: &[u8]) -> Option<(usize, usize)> {
    get_callid(d, 0)
}

/// The Call-ID of `d` as bytes (see [`get_callid`]).
pub fn callid(d: &[u8], dataoff: usize) -> Option<&[u8]> {
    let (off, len) = get_callid(d, dataoff)?;
    d.get(off..off.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(msg: &[u8]) -> Option<&[u8]> {
        callid(msg, 0)
    }

    #[test]
    fn finds_call_id() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID: 1-2@10.0.0.1\r\nCSeq: 1\r\n\r\n";
        assert_eq!(cid(m), Some(&b"1-2@10.0.0.1"[..]));
    }

    #[test]
    fn case_compact_and_line_ends() {
        assert_eq!(cid(b"X\r\ncall-id:abc\r\n"), Some(&b"abc"[..]));
        assert_eq!(cid(b"X\nCALL-ID :  abc\n"), Some(&b"abc"[..]));
        assert_eq!(cid(b"X\ri: abc\r"), Some(&b"abc"[..]));
        assert_eq!(cid(b"X\r\nI:abc\r\n"), Some(&b"abc"[..]));
        // The compact name must not start a longer one.
        assert_eq!(cid(b"X\r\nIn-Reply-To: q\r\ni: z\r\n"), Some(&b"z"[..]));
        // Tabs are not whitespace before the colon.
        assert_eq!(cid(b"X\r\nCall-ID\t: abc\r\n"), None);
    }

    #[test]
    fn first_line_and_dataoff() {
        // The first line is never a header.
        assert_eq!(cid(b"Call-ID: abc\r\n"), None);
        // The search starts `dataoff` bytes in.
        let m = b"X\r\nCall-ID: abc\r\nk\r\ni: def\r\n";
        assert_eq!(callid(m, 0), Some(&b"abc"[..]));
        assert_eq!(callid(m, 10), Some(&b"def"[..]));
        assert_eq!(callid(m, 1000), None);
    }

    #[test]
    fn fill_param_searches_from_the_payload_start() {
        // A start line shorter than an IPv4 and UDP header (28 bytes): the Call-ID on the
        // second line is found (an offset of 28 into the payload would miss it).
        let m = b"OPTIONS sip:rs SIP/2.0\r\nCall-ID: a-1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(fill_param(m), Some((33, 3)));
        assert_eq!(callid(m, 28), None);
    }

    #[test]
    fn continuation_lines() {
        // The first character after a continuation's indentation is skipped (upstream).
        assert_eq!(cid(b"X\r\nCall-ID:\r\n  abc\r\n"), Some(&b"bc"[..]));
        // A continuation line is no header.
        assert_eq!(cid(b"X\r\n Call-ID: abc\r\n"), None);
        // A line end after the name with no continuation: no Call-ID.
        assert_eq!(cid(b"X\r\nCall-ID\r\nCall-ID: b\r\n"), None);
    }

    #[test]
    fn values() {
        assert_eq!(cid(b"X\r\nCall-ID: a@\r\n"), None);
        assert_eq!(cid(b"X\r\nCall-ID: a@b@c\r\n"), None);
        assert_eq!(cid(b"X\r\nCall-ID: a b\r\n"), None);
        assert_eq!(cid(b"X\r\nCall-ID: [x]~{y}\r\n"), Some(&b"[x]~{y}"[..]));
        // An empty value: the search goes on after it.
        assert_eq!(cid(b"X\r\nCall-ID: ;\r\nCall-ID: b\r\n"), Some(&b"b"[..]));
    }

    #[test]
    fn limits() {
        let mut m = b"X\r\nCall-ID: ".to_vec();
        m.extend(core::iter::repeat(b'a').take(PEDATA_MAXLEN));
        m.extend(b"\r\n");
        assert_eq!(cid(&m).map(|c| c.len()), Some(PEDATA_MAXLEN));
        let mut m = b"X\r\nCall-ID: ".to_vec();
        m.extend(core::iter::repeat(b'a').take(PEDATA_MAXLEN + 1));
        m.extend(b"\r\n");
        assert_eq!(cid(&m), None);
        // Not followed by a line end.
        assert_eq!(cid(b"X\r\nCall-ID: abc"), None);
        assert_eq!(cid(b"X\r\nCall-ID: abc;x\r\n"), None);
    }

    #[test]
    fn truncated_and_garbage() {
        for m in [
            &b""[..], b"\r", b"\n", b"\r\n", b"X\r\n", b"X\r\nC", b"X\r\nCall-ID", b"X\r\nCall-ID:",
            b"X\r\nCall-ID: ", b"X\r\nCall-ID:\r", b"X\r\nCall-ID:\r\n", b"X\r\nCall-ID:\r\n ",
            b"X\r\ni", b"X\r\ni:", b"X\r\ni: a", b"\r\n\r\n\r\n", b"X\r\nCall-ID: @\r\n",
        ] {
            assert_eq!(cid(m), None, "{m:?}");
        }
        // Every prefix of a real message, and every byte value in every position.
        let m = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: 1-2@h\r\n\r\n";
        for n in 0..m.len() {
            let _ = cid(&m[..n]);
        }
        let mut x = m.to_vec();
        for i in 0..x.len() {
            let old = x[i];
            for b in 0..=255u8 {
                x[i] = b;
                let _ = cid(&x);
            }
            x[i] = old;
        }
        for off in 0..m.len() + 2 {
            let _ = callid(m, off);
        }
        let _ = callid(m, usize::MAX);
    }
}
