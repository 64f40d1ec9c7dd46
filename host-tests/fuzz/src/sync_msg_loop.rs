// SPDX-License-Identifier: GPL-2.0

//! Stable-Rust driver of the mutation fuzzer of the host tests (no libFuzzer): runs it for a
//! time from a seed, reports executions and decoded connections, and can write valid seed
//! messages for the libFuzzer corpus.
//!
//! `sync_msg_loop SECONDS [SEED]` or `sync_msg_loop --seeds DIR [N]`.

#[path = "../../../ipvs/sync_msg.rs"]
mod sync_msg;
#[path = "../../src/sync_msg_check.rs"]
mod sync_msg_check;

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--seeds") {
        let dir = args.get(1).expect("--seeds DIR [N]");
        let n: usize = args.get(2).map_or(256, |s| s.parse().expect("N"));
        std::fs::create_dir_all(dir).expect("corpus directory");
        let mut rng = sync_msg_check::XorShift::new(1);
        for i in 0..n {
            // Control byte 0 (see fuzz_targets/sync_msg.rs), then the message.
            let mut input = vec![0u8];
            input.extend(sync_msg_check::random_message(&mut rng));
            std::fs::write(format!("{dir}/seed-{i:04}"), input).expect("write seed");
        }
        println!("wrote {n} seeds to {dir}");
        return;
    }
    let secs: u64 = args.first().map_or(60, |s| s.parse().expect("SECONDS"));
    let seed: u64 = args.get(1).map_or_else(
        || {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        },
        |s| s.parse().expect("SEED"),
    );
    println!("sync_msg_loop: seed {seed}, {secs} s");
    let t = Instant::now();
    let (mut execs, mut conns, mut round) = (0u64, 0u64, 0u64);
    while t.elapsed() < Duration::from_secs(secs) {
        // Each round restarts from fresh random messages with its own seed, so a failure is
        // reproduced by `run(seed + round, 100_000)`.
        let (e, c) = sync_msg_check::run(seed.wrapping_add(round), 100_000);
        execs += e;
        conns += c;
        round += 1;
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "{execs} executions ({:.0}/s), {conns} connections decoded, no failure",
        execs as f64 / el
    );
}
