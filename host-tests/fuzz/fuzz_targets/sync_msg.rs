// SPDX-License-Identifier: GPL-2.0

//! libFuzzer target for the sync message decoder: every input is decoded and checked with
//! the invariants of the host tests (`host-tests/src/sync_msg_check.rs`), each decoded
//! connection re-encoded and decoded again.
//!
//! Input: one control byte, then the datagram. Bit 0 of the control byte leaves the header's
//! size field as it is (otherwise it is set to the length, so that most inputs reach the
//! records); bits 1-2 choose the backup's sync id (0, the message's, or the control byte).

#![no_main]

#[path = "../../../ipvs/sync_msg.rs"]
mod sync_msg;
#[path = "../../src/sync_msg_check.rs"]
mod sync_msg_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, msg)) = data.split_first() else {
        return;
    };
    let mut m = msg.to_vec();
    if ctl & 1 == 0 && m.len() >= 4 && m.len() <= 0xffff {
        let n = (m.len() as u16).to_be_bytes();
        m[2..4].copy_from_slice(&n);
    }
    let syncid = match (ctl >> 1) & 3 {
        0 | 3 => 0,
        1 => m.get(1).copied().unwrap_or(0),
        _ => ctl,
    };
    sync_msg_check::check(&m, syncid);
});
