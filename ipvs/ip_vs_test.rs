// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the connection table, the round-robin scheduler and the scheduler
//! interface (`abi.rs`, `sched.rs`), run in the kernel when this module loads (results in the
//! kernel log as KTAP).
//!
//! The module compiles the core's own source files (the table, its entries, the slow timer,
//! the TCP state machine) into a private copy, so the tests exercise the real code without
//! touching a loaded `ip_vs`.

#![allow(dead_code, unreachable_pub)]

use core::{
    mem::MaybeUninit,
    ptr::addr_of_mut,
    sync::atomic::{AtomicI32, AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed},
};
use kernel::{
    bindings, c_str,
    init::InPlaceInit,
    net::skbuff::RouteCache,
    prelude::*,
    sync::{rcu, rcu::{RcuBox, RcuNode}, Arc},
    time::msecs_to_jiffies,
    timer::Timer,
};

mod abi;
mod app;
mod app_abi;
mod conn;
mod conn_pe;
mod conn_side;
mod ctl_config;
mod est;
mod hash;
mod proto;
mod proto_sctp;
mod proto_tcp;
mod proto_udp;
mod registry;
mod protocol;
mod pe;
mod pe_abi;
mod sched;
mod service;
mod stats;
mod sync_msg;
mod uapi;
#[path = "../schedulers/rr.rs"]
mod rr;

use abi::{Adapter, DestInfo, Packet, Scheduler, DEST_F_AVAILABLE};
use conn::{ConnParam, ConnTable, Expiry, Resizer, ResizerFlush};
use sched::SchedBinding;
use service::{v4, Dest, AF_INET};
use stats::Stats;

module! {
    type: IpVsTest,
    name: "ip_vs_test",
    author: "Rust IPVS developers",
    description: "KUnit tests of the Rust IPVS connection table and schedulers",
    license: "GPL",
}

struct IpVsTest;

impl kernel::Module for IpVsTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

/// A running KUnit test case.
struct Test(*mut bindings::kunit);

impl Test {
    fn expect(&self, ok: bool, what: &str) {
        if !ok {
            pr_err!("    # {}: EXPECTATION FAILED\n", what);
            // SAFETY: KUnit passes a live test object to the case, which owns it meanwhile.
            unsafe { (*self.0).status = bindings::kunit_status_KUNIT_FAILURE };
        }
    }

    fn ok(&self, r: Result, what: &str) {
        if let Err(e) = r {
            pr_err!("    # {}: error {}\n", what, e.to_errno());
            self.expect(false, what);
        }
    }
}

fn hz() -> u32 {
    msecs_to_jiffies(1000) as u32
}

fn dest(addr: [u8; 4], port: u16, weight: i32, id: u64) -> Result<Arc<Dest>> {
    Ok(Arc::new(
        Dest {
            info: DestInfo {
                id,
                weight: AtomicI32::new(weight),
                flags: AtomicU32::new(DEST_F_AVAILABLE),
                activeconns: AtomicU32::new(0),
                totalconns: AtomicU32::new(0),
                persistconns: AtomicU32::new(0),
                u_threshold: AtomicU32::new(0),
                l_threshold: AtomicU32::new(0),
                af: AF_INET,
                port: port.to_be_bytes(),
                addr: v4(addr),
                last_weight: AtomicI32::new(weight),
            },
            conn_flags: AtomicU32::new(uapi::conn_flags::INACTIVE),
            stats: Stats::new()?,
            svc_stats: RcuBox::new(Some(RcuNode::new(Arc::new(Stats::new()?, GFP_KERNEL)?, GFP_KERNEL)?)),
            route: RouteCache::new(),
            tun_type: AtomicU8::new(0),
            tun_port: AtomicU16::new(0),
            tun_flags: AtomicU16::new(0),
            svc_fwmark: 0,
        },
        GFP_KERNEL,
    )?)
}

fn client(port: u16, protocol: u8) -> ConnParam {
    ConnParam {
        af: AF_INET,
        protocol,
        caddr: v4([10, 0, 0, 2]),
        cport: port.to_be_bytes(),
        vaddr: v4([10, 0, 100, 1]),
        vport: 80u16.to_be_bytes(),
    }
}

/// Runs `body` with the connection slab cache installed, then waits for the RCU frees.
fn with_cache(t: &Test, what: &str, body: impl FnOnce(&Test) -> Result) {
    match conn::ConnCache::new() {
        Ok(cache) => {
            let r = body(t);
            t.ok(r, what);
            rcu::barrier();
            drop(cache);
        }
        Err(e) => t.ok(Err(e), "creating the ip_vs_conn cache"),
    }
}

/// The slow timer of `table`, with the resizer it queues and what waits for it.
fn expiry_timer(table: &Arc<ConnTable>) -> Result<(core::pin::Pin<KBox<Timer<Expiry>>>, ResizerFlush)> {
    let resizer = Arc::pin_init(Resizer::new(table.clone()), GFP_KERNEL)?;
    let timer = KBox::pin_init(Timer::new(Expiry { resizer: resizer.clone() }), GFP_KERNEL)?;
    Ok((timer, ResizerFlush(resizer)))
}

unsafe extern "C" fn conn_insert_lookup(test: *mut bindings::kunit) {
    with_cache(&Test(test), "insert/lookup", |t| {
        const N: u16 = 2000;
        let table = ConnTable::new(8, hz(), None)?;
        let rs = dest([10, 0, 1, 2], 8080, 1, 1)?;
        {
            let g = rcu::read_lock();
            for port in 1..=N {
                table.new_conn(&client(port, 6), rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
            }
            t.expect(table.count() == N as u32, "count after inserts");
            let mut found = 0;
            for port in 1..=N {
                if let Some(c) = table.in_get(&client(port, 6), &g) {
                    if c.cport == port.to_be_bytes() && c.daddr == rs.info.addr {
                        found += 1;
                    }
                }
            }
            t.expect(found == N, "every connection found by its client tuple");
            t.expect(table.in_get(&client(N + 1, 6), &g).is_none(), "unknown port not found");
            t.expect(table.in_get(&client(1, 17), &g).is_none(), "other protocol not found");
            // A reply from the real server to the client finds the same entry.
            let reply = ConnParam {
                af: AF_INET,
                protocol: 6,
                caddr: rs.info.addr,
                cport: rs.info.port,
                vaddr: v4([10, 0, 0, 2]),
                vport: 7u16.to_be_bytes(),
            };
            t.expect(
                table.out_get(&reply, &g).is_some_and(|c| c.cport == 7u16.to_be_bytes()),
                "reply tuple finds the connection",
            );
        }
        t.expect(rs.info.totalconns.load(Relaxed) == N as u32, "destination counts its connections");
        table.flush();
        t.expect(table.count() == 0, "flush empties the table");
        t.expect(rs.info.totalconns.load(Relaxed) == 0, "flush releases the destination");
        Ok(())
    });
}

/// IPv6 entries are found by their tuples, and an IPv4 and an IPv6 tuple whose addresses
/// start with the same bytes (1.2.3.4 and 102:304::) never find each other's entry.
unsafe extern "C" fn conn_families(test: *mut bindings::kunit) {
    with_cache(&Test(test), "families", |t| {
        let table = ConnTable::new(8, hz(), None)?;
        let rs = dest([10, 0, 1, 2], 80, 1, 1)?;
        let mut a6 = [0u8; 16];
        a6[..4].copy_from_slice(&[1, 2, 3, 4]);
        let v4p = ConnParam { af: AF_INET, protocol: 6, caddr: v4([1, 2, 3, 4]), cport: [0, 9], vaddr: v4([10, 0, 100, 1]), vport: [0, 80] };
        let v6p = ConnParam { af: crate::proto::AF_INET6, caddr: a6, vaddr: { let mut v = a6; v[15] = 1; v }, ..v4p };
        let g = rcu::read_lock();
        table.new_conn(&v4p, rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
        t.expect(table.in_get(&v6p, &g).is_none(), "an IPv6 tuple does not find the IPv4 entry");
        table.new_conn(&v6p, rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
        t.expect(table.in_get(&v6p, &g).is_some_and(|c| u16::from(c.af) == crate::proto::AF_INET6), "the IPv6 entry is found");
        t.expect(table.in_get(&v4p, &g).is_some_and(|c| u16::from(c.af) == AF_INET), "the IPv4 entry is still found");
        let reply6 = ConnParam { af: crate::proto::AF_INET6, protocol: 6, caddr: rs.info.addr, cport: rs.info.port, vaddr: a6, vport: [0, 9] };
        t.expect(table.out_get(&reply6, &g).is_some_and(|c| u16::from(c.af) == crate::proto::AF_INET6), "an IPv6 reply finds the IPv6 entry");
        drop(g);
        table.flush();
        Ok(())
    });
}

/// The bucket array follows the load (`conn_lfactor` -4: sixteen buckets per entry, up to
/// `2^max_bits`), every entry and every control reference survives the moves, and the array
/// shrinks back once the table empties.
unsafe extern "C" fn conn_resize(test: *mut bindings::kunit) {
    with_cache(&Test(test), "resize", |t| {
        const N: u16 = 5000;
        let table = ConnTable::new(16, hz(), None)?;
        let rs = dest([10, 0, 1, 6], 80, 1, 5)?;
        t.expect(table.size() == (256, 8), "a new table has 2^8 buckets");
        {
            let g = rcu::read_lock();
            let tp = ConnParam { cport: [0, 0], ..client(0, 6) };
            let tpl = table.new_template(&tp, rs.info.addr, rs.info.port, &rs, 60 * hz(), &g)?;
            for port in 1..=N {
                table.new_controlled(&client(port, 6), rs.info.addr, rs.info.port, &rs, hz(), 0, tpl, &g)?;
            }
            t.expect(tpl.ref_count() == N as u32, "the template counts its connections");
        }
        table.resize_to_load();
        t.expect(table.size() == (1 << 16, 16), "5,000 entries: 2^16 buckets (the maximum)");
        {
            let g = rcu::read_lock();
            let found = (1..=N).filter(|p| table.in_get(&client(*p, 6), &g).is_some()).count();
            t.expect(found == N as usize, "every entry found after the move");
            let tp = ConnParam { cport: [0, 0], ..client(0, 6) };
            t.expect(table.template_get(&tp, &g).is_some_and(|c| c.ref_count() == N as u32), "the template moved with its count");
        }
        table.flush();
        t.expect(table.count() == 0, "flush empties the table");
        table.resize_to_load();
        t.expect(table.size() == (256, 8), "an empty table shrinks back to 2^8");
        resize_policy(t);
        t.expect(rs.info.totalconns.load(Relaxed) == 0 && rs.info.persistconns.load(Relaxed) == 0, "counts released");
        Ok(())
    });
}

/// A namespace's teardown drains the table as it drops it: every entry leaves (the cache is
/// empty when `with_cache` destroys it, or the slab allocator reports the leftovers), each
/// counted out of its real server, templates after the connections they control whichever
/// chain comes first.
unsafe extern "C" fn conn_teardown(test: *mut bindings::kunit) {
    with_cache(&Test(test), "teardown", |t| {
        const N: u16 = 3000;
        let table = ConnTable::new(16, hz(), None)?;
        let a = dest([10, 0, 1, 7], 80, 1, 5)?;
        let b = dest([10, 0, 1, 8], 80, 1, 5)?;
        {
            let g = rcu::read_lock();
            // Templates of 30 clients on `a`, each controlling 50 connections; 1,500 more
            // connections on `b` alone.
            for k in 0..30u16 {
                let tp = ConnParam { cport: [0, 0], ..client(10_000 + k, 6) };
                let tp = ConnParam { caddr: v4([10, 9, (k >> 8) as u8, k as u8]), ..tp };
                let tpl = table.new_template(&tp, a.info.addr, a.info.port, &a, 60 * hz(), &g)?;
                for i in 0..50u16 {
                    let p = ConnParam { caddr: tp.caddr, ..client(1 + k * 50 + i, 6) };
                    table.new_controlled(&p, a.info.addr, a.info.port, &a, hz(), 0, tpl, &g)?;
                }
            }
            for port in 1..=N / 2 {
                table.new_conn(&client(port, 17), b.info.addr, b.info.port, &b, hz(), 0, &g)?;
            }
        }
        table.resize_to_load();
        t.expect(table.count() == 30 + 1500 + 1500, "3,030 entries before the teardown");
        t.expect(a.info.totalconns.load(Relaxed) == 1500 && a.info.persistconns.load(Relaxed) == 30, "a counts its entries");
        t.expect(b.info.totalconns.load(Relaxed) == 1500, "b counts its entries");
        drop(table);
        rcu::barrier();
        t.expect(a.info.totalconns.load(Relaxed) == 0 && a.info.persistconns.load(Relaxed) == 0, "a's entries counted out");
        t.expect(b.info.totalconns.load(Relaxed) == 0 && b.info.activeconns() == 0, "b's entries counted out");
        Ok(())
    });
}

/// A state kept beside a (pretend) entry.
struct TestSide {
    owner: usize,
    value: u32,
}

impl kernel::rcu_hash::Item for TestSide {
    fn take_ref(&self) -> Option<kernel::rcu_hash::EntryRef<Self>> {
        None
    }
}

impl conn_side::Side for TestSide {
    fn owner(&self) -> usize {
        self.owner
    }
}

/// A side table (`conn_side.rs`) grows with its states, finds every one of them after the
/// move, and shrinks back once they are gone.
unsafe extern "C" fn conn_side_resize(test: *mut bindings::kunit) {
    let t = Test(test);
    let r = (|| -> Result {
        const N: usize = 3000;
        let owner = |i: usize| 0x10_0000 + i * 128;
        let side = conn_side::SideTable::<TestSide>::new(c_str!("ip_vs_test_side"))?;
        t.expect(side.size() == (256, 8) && !side.needs_resize(), "a new side table has 2^8 buckets");
        {
            let g = rcu::read_lock();
            for i in 0..N {
                side.attach(TestSide { owner: owner(i), value: i as u32 }, &g)?;
            }
        }
        t.expect(side.needs_resize(), "3,000 states in 256 buckets: a resize is due");
        side.resize_to_load();
        t.expect(side.size() == (4096, 12), "3,000 states: 2^12 buckets");
        {
            let g = rcu::read_lock();
            let found = (0..N).filter(|&i| side.get_owned(owner(i), &g).is_some_and(|s| s.value == i as u32)).count();
            t.expect(found == N, "every state found after the move");
            t.expect(side.get_owned(owner(N), &g).is_none(), "no state for another address");
        }
        for i in 0..N {
            side.detach_owned(owner(i));
        }
        side.submit();
        t.expect(side.count() == 0, "every state detached");
        side.resize_to_load();
        t.expect(side.size() == (256, 8), "an empty side table shrinks back to 2^8");
        Ok(())
    })();
    t.ok(r, "side table resize");
    rcu::barrier();
}

/// `desired_size` and `thresholds` give upstream's sizes.
fn resize_policy(t: &Test) {
    use conn::{desired_size, thresholds};
    t.expect(desired_size(1000, -4, 256, -4, 20) == 16384, "1,000 entries at -4: 2^14");
    t.expect(desired_size(1000, 2, 256, -4, 20) == 256, "another factor: clamped to the minimum");
    t.expect(desired_size(0, -4, 1 << 20, -4, 20) == 256, "an empty table shrinks to the minimum");
    t.expect(desired_size(3 << 20, -4, 1 << 12, -4, 20) == 1 << 20, "capped at the maximum");
    t.expect(thresholds(256, -4, 20) == (16, 0), "the smallest table never shrinks");
    t.expect(thresholds(1 << 20, -4, 20) == (u32::MAX, 1 << 16), "the largest never grows");
}

unsafe extern "C" fn conn_slow_timer_expiry(test: *mut bindings::kunit) {
    with_cache(&Test(test), "slow timer expiry", |t| {
        let table = Arc::new(ConnTable::new(8, hz(), None)?, GFP_KERNEL)?;
        let rs = dest([10, 0, 1, 3], 80, 1, 2)?;
        {
            let g = rcu::read_lock();
            for port in 1..=300u16 {
                table.new_conn(&client(port, 17), rs.info.addr, rs.info.port, &rs, 1, 0, &g)?;
            }
            for port in 1000..1010u16 {
                table.new_conn(&client(port, 17), rs.info.addr, rs.info.port, &rs, 3600 * hz(), 0, &g)?;
            }
        }
        let (timer, resizer) = expiry_timer(&table)?;
        timer.schedule_after(hz() as u64);
        // SAFETY: An FFI call; KUnit cases run in process context.
        unsafe { bindings::msleep(2600) };
        t.expect(table.count() == 10, "expired entries gone, live ones kept after two ticks");
        let g = rcu::read_lock();
        t.expect(table.in_get(&client(1005, 17), &g).is_some(), "a live entry is still found");
        t.expect(table.in_get(&client(5, 17), &g).is_none(), "an expired entry is gone");
        drop(g);
        drop(timer);
        drop(resizer);
        t.expect(rs.info.totalconns.load(Relaxed) == 10, "destination counts follow expiry");
        Ok(())
    });
}

/// An entry whose timeout gets shorter after the sweep last looked at its bucket (a TCP
/// connection closing, a shorter UDP timeout) expires on time: the bucket's bound follows.
unsafe extern "C" fn conn_expiry_shortened(test: *mut bindings::kunit) {
    with_cache(&Test(test), "shortened expiry", |t| {
        let table = Arc::new(ConnTable::new(8, hz(), None)?, GFP_KERNEL)?;
        let rs = dest([10, 0, 1, 5], 80, 1, 4)?;
        {
            let g = rcu::read_lock();
            for port in 1..=20u16 {
                table.new_conn(&client(port, 17), rs.info.addr, rs.info.port, &rs, 3600 * hz(), 0, &g)?;
            }
        }
        let (timer, resizer) = expiry_timer(&table)?;
        timer.schedule_after(1);
        // Several full sweeps (two ticks each): every bucket's bound is an hour away now.
        // SAFETY: An FFI call; KUnit cases run in process context.
        unsafe { bindings::msleep(1000) };
        t.expect(table.count() == 20, "entries with an hour to go are kept");
        {
            let g = rcu::read_lock();
            for port in 1..=10u16 {
                if let Some(c) = table.in_get(&client(port, 17), &g) {
                    c.refresh(&table, 1);
                }
            }
        }
        // SAFETY: As above.
        unsafe { bindings::msleep(1000) };
        t.expect(table.count() == 10, "entries whose timeout shrank to a jiffy are gone");
        let g = rcu::read_lock();
        t.expect(table.in_get(&client(15, 17), &g).is_some(), "the others are still found");
        t.expect(table.in_get(&client(5, 17), &g).is_none(), "a shortened entry is gone");
        drop(g);
        drop(timer);
        drop(resizer);
        table.flush();
        Ok(())
    });
}

unsafe extern "C" fn conn_tcp_states(test: *mut bindings::kunit) {
    with_cache(&Test(test), "tcp states", |t| {
        let table = ConnTable::new(8, hz(), None)?;
        let rs = dest([10, 0, 1, 4], 80, 1, 3)?;
        let timeouts = proto_tcp::default_timeouts(hz());
        let g = rcu::read_lock();
        let c = table.new_conn(&client(4000, 6), rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
        let active = || rs.info.activeconns();
        let inact = || rs.info.inactconns();
        t.expect(active() == 0 && inact() == 1, "new connection is inactive");
        c.tcp_transition(&table, false, 0x02, &timeouts); // SYN
        t.expect(active() == 1 && inact() == 0, "SYN_RECV is active");
        c.tcp_transition(&table, true, 0x12, &timeouts); // SYN+ACK from the server
        c.tcp_transition(&table, false, 0x10, &timeouts); // ACK
        t.expect(active() == 1, "ESTABLISHED is active");
        c.tcp_transition(&table, false, 0x11, &timeouts); // FIN
        t.expect(active() == 0 && inact() == 1, "CLOSE_WAIT is inactive");
        c.tcp_transition(&table, true, 0x11, &timeouts); // FIN from the server
        c.tcp_transition(&table, false, 0x10, &timeouts); // last ACK
        t.expect(active() == 0 && inact() == 1, "TIME_WAIT is inactive");
        c.tcp_transition(&table, false, 0x04, &timeouts); // RST
        t.expect(active() == 0 && inact() == 1, "CLOSE stays inactive");
        drop(g);
        table.flush();
        t.expect(active() == 0 && inact() == 0, "flush clears the counters");
        Ok(())
    });
}

/// One-packet connections (`IP_VS_CONN_F_ONE_PACKET`, from a one-packet service or a
/// server's options): counted while in the table, never found by lookups (each datagram is
/// scheduled anew), gone at once when put back; their template lives on. A server's
/// one-packet option is for UDP only.
unsafe extern "C" fn conn_one_packet(test: *mut bindings::kunit) {
    use uapi::conn_flags::ONE_PACKET;
    with_cache(&Test(test), "one-packet", |t| {
        let table = ConnTable::new(8, hz(), None)?;
        let rs = dest([10, 0, 1, 7], 80, 1, 6)?;
        let g = rcu::read_lock();
        let c = table.new_conn(&client(5000, 17), rs.info.addr, rs.info.port, &rs, hz(), ONE_PACKET, &g)?;
        t.expect(c.is_one_packet() && table.count() == 1, "a one-packet connection is in the table");
        t.expect(rs.info.inactconns() == 1, "and counts on its server");
        t.expect(table.in_get(&client(5000, 17), &g).is_none(), "a client packet does not find it");
        let reply = ConnParam {
            af: AF_INET,
            protocol: 17,
            caddr: rs.info.addr,
            cport: rs.info.port,
            vaddr: v4([10, 0, 0, 2]),
            vport: 5000u16.to_be_bytes(),
        };
        t.expect(table.out_get(&reply, &g).is_none(), "a reply does not find it");
        table.put_one_packet(c);
        t.expect(table.count() == 0 && rs.info.inactconns() == 0, "put back, it is gone with its counts");

        let tp = ConnParam { cport: [0, 0], ..client(0, 17) };
        let tpl = table.new_template(&tp, rs.info.addr, rs.info.port, &rs, 60 * hz(), &g)?;
        let c = table.new_controlled(&client(5001, 17), rs.info.addr, rs.info.port, &rs, hz(), ONE_PACKET, tpl, &g)?;
        t.expect(!tpl.is_one_packet() && tpl.ref_count() == 1, "the template is not one-packet and controls it");
        table.put_one_packet(c);
        t.expect(tpl.ref_count() == 0 && table.count() == 1, "put back, the template stays");
        t.expect(table.template_get(&tp, &g).is_some(), "and is still found");

        // A server whose connections are one-packet: UDP ones only.
        rs.conn_flags.fetch_or(ONE_PACKET, Relaxed);
        let u = table.new_conn(&client(5002, 17), rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
        let tc = table.new_conn(&client(5002, 6), rs.info.addr, rs.info.port, &rs, hz(), 0, &g)?;
        t.expect(u.is_one_packet(), "a server's one-packet option applies to UDP");
        t.expect(!tc.is_one_packet() && table.in_get(&client(5002, 6), &g).is_some(), "not to TCP");
        table.put_one_packet(u);
        table.put_one_packet(tc);
        t.expect(table.count() == 2, "putting back a connection that is not one-packet keeps it");
        drop(g);
        table.flush();
        t.expect(rs.info.inactconns() == 0 && rs.info.persistconns.load(Relaxed) == 0, "counts released");
        Ok(())
    });
}

/// `RcuBox::retire` (the service table's flush): the old value stays readable at once and is
/// owned after a grace period; one dropped before its grace period is freed by RCU.
unsafe extern "C" fn rcu_retired(test: *mut bindings::kunit) {
    let t = Test(test);
    let r = (|| -> Result {
        let b = RcuBox::new(Some(RcuNode::new(KVec::from_elem(5u32, 3, GFP_KERNEL)?, GFP_KERNEL)?));
        let old = b.retire(Some(RcuNode::new(KVec::from_elem(6u32, 1, GFP_KERNEL)?, GFP_KERNEL)?));
        let Some(old) = old else {
            t.expect(false, "retire gives the old value back");
            return Ok(());
        };
        t.expect(old.get()[..] == [5, 5, 5], "the retired value is readable at once");
        t.expect(b.get(&rcu::read_lock()).is_some_and(|v| v[..] == [6]), "the new one is published");
        let v = old.into_inner();
        t.expect(v[..] == [5, 5, 5], "owned after the grace period");
        let again = b.retire(None);
        t.expect(b.get(&rcu::read_lock()).is_none(), "retiring with none unpublishes");
        // Dropped before its grace period: freed by an RCU callback (KASAN and kmemleak
        // would tell otherwise).
        drop(again);
        rcu::barrier();
        Ok(())
    })();
    t.ok(r, "rcu_retired");
}

unsafe extern "C" fn stats_percpu(test: *mut bindings::kunit) {
    let t = Test(test);
    let r = (|| -> Result {
        let (d, s, all) = (Stats::new()?, Stats::new()?, Stats::new()?);
        for _ in 0..10 {
            Stats::count_in(&[&d, &s, &all], 100);
        }
        Stats::count_out(&[&d, &s, &all], 1500);
        d.count_conn();
        t.expect(d.totals() == [1, 10, 1, 1000, 1500], "server: conns, in/out packets and bytes");
        t.expect(s.totals() == [0, 10, 1, 1000, 1500], "service: the same packets");
        t.expect(all.totals() == s.totals(), "namespace: the same packets");
        let mut sum = [0u64; 5];
        let mut cpus = 0;
        d.for_each_cpu(|_, v| {
            cpus += 1;
            for (a, b) in sum.iter_mut().zip(v) {
                *a += b;
            }
        });
        t.expect(cpus >= 1 && sum == d.totals(), "the CPUs' counters add up to the totals");
        d.zero();
        t.expect(d.totals() == [0; 5], "zeroing starts the totals over");
        Stats::count_in(&[&d, &s, &all], 40);
        t.expect(d.totals() == [0, 1, 0, 40, 0], "counting goes on from the new zero");
        let mut raw = [0u64; 5];
        d.for_each_cpu(|_, v| {
            for (a, b) in raw.iter_mut().zip(v) {
                *a += b;
            }
        });
        t.expect(raw == [1, 11, 1, 1040, 1500], "the per-CPU counters are not zeroed");
        // Rates count from the zeroing: 1,000 packets in a 2-s period are 500/s, of which the
        // first sample's average takes a quarter (125).
        for _ in 0..999 {
            Stats::count_in(&[&d], 40);
        }
        d.estimate(1);
        let r1 = d.rates();
        t.expect(r1[1] == 125 && r1[0] == 0 && r1[3] == 5_000, "rates from the zero point");
        d.estimate(1);
        t.expect(d.rates() == r1, "one sample per estimation pass");
        d.estimate(2);
        t.expect(d.rates()[1] == 94, "the next pass decays an idle rate");
        Ok(())
    })();
    t.ok(r, "stats");
}

impl rr::Candidate for &DestInfo {
    fn id(&self) -> u64 {
        self.id
    }
    fn usable(&self) -> bool {
        self.is_usable()
    }
}

unsafe extern "C" fn rr_schedule(test: *mut bindings::kunit) {
    let t = Test(test);
    let r = (|| -> Result {
        let ds = [
            dest([10, 0, 1, 3], 80, 1, 13)?,
            dest([10, 0, 1, 2], 80, 2, 12)?,
            dest([10, 0, 1, 1], 80, 1, 11)?,
        ];
        let infos: [&DestInfo; 3] = [&ds[0].info, &ds[1].info, &ds[2].info];
        let mut last = 0;
        let mut seq = [0u64; 6];
        for s in seq.iter_mut() {
            let i = rr::pick(&infos, last).ok_or(EINVAL)?;
            last = infos[i].id;
            *s = last;
        }
        t.expect(seq == [13, 12, 11, 13, 12, 11], "round robin in list order");
        ds[1].info.weight.store(0, Relaxed);
        let i = rr::pick(&infos, 13).ok_or(EINVAL)?;
        t.expect(infos[i].id == 11, "weight 0 is skipped");
        ds[1].info.weight.store(1, Relaxed);
        let last = rr::after_removal(&infos, 1, 12);
        let rest: [&DestInfo; 2] = [&ds[0].info, &ds[2].info];
        let i = rr::pick(&rest, last).ok_or(EINVAL)?;
        t.expect(rest[i].id == 11, "removing the last choice continues with its follower");
        Ok(())
    })();
    t.ok(r, "rr");
}

/// Counters of what [`Probe`] was told, for [`sched_binding`] (KUnit runs one case at a time).
static PROBE_DEL: AtomicUsize = AtomicUsize::new(usize::MAX);
static PROBE_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A scheduler that picks the index the packet's `fwmark` names (even out of range), refuses a
/// service of two real servers, and implements `del_dest` only.
struct Probe;

#[vtable]
impl Scheduler for Probe {
    const NAME: &'static CStr = c_str!("kunitprobe");

    fn new(dests: &[&DestInfo]) -> Result<Self> {
        if dests.len() == 2 {
            return Err(EDOM);
        }
        Ok(Self)
    }

    fn schedule(&self, _dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        Some(pkt.fwmark as usize)
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        PROBE_DEL.store(index * 100 + dests.len(), Relaxed);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        PROBE_DROPS.fetch_add(1, Relaxed);
    }
}

fn probe_packet(fwmark: u32) -> Packet {
    Packet {
        saddr: v4([10, 0, 0, 2]),
        daddr: v4([10, 0, 100, 1]),
        sport: 1000u16.to_be_bytes(),
        dport: 80u16.to_be_bytes(),
        af: AF_INET,
        protocol: 6,
        _pad: [0; 3],
        svc_flags: 0,
        fwmark,
    }
}

/// The scheduler interface end to end, in a private registry: the table `Adapter` builds,
/// registration, binding by name (with a reference on the module), calls through the
/// table, and the checks of the safe wrappers.
///
/// # Safety
///
/// KUnit's: `test` is the live test object of the running case.
unsafe extern "C" fn sched_binding(test: *mut bindings::kunit) {
    let t = Test(test);
    let r = (|| -> Result {
        let _registry = sched::new_registry()?;
        let mut ops = KBox::new(Adapter::<Probe>::OPS, GFP_KERNEL)?;
        ops.module = THIS_MODULE.as_ptr();
        t.expect(
            ops.add_dest.is_none() && ops.upd_dest.is_none() && ops.del_dest.is_some(),
            "hooks the scheduler does not implement are NULL",
        );
        t.expect(ops.name.starts_with(b"kunitprobe\0"), "the table has the name");
        // SAFETY: `ops` is `Adapter`'s table for code of this module; it stays allocated and
        // unchanged until it is unregistered below.
        t.ok(unsafe { sched::register(&*ops) }, "register");
        let again = KBox::new(*ops, GFP_KERNEL)?;
        // SAFETY: As above, for `again`, which is never registered (the name is taken).
        let dup = unsafe { sched::register(&*again) };
        t.expect(dup == Err(EEXIST), "a second table of the same name is EEXIST");

        let name = ctl_config::SchedName::new(b"kunitprobe").ok_or(EINVAL)?;
        let ds = [
            dest([10, 0, 1, 3], 80, 1, 13)?,
            dest([10, 0, 1, 2], 80, 1, 12)?,
            dest([10, 0, 1, 1], 80, 1, 11)?,
        ];
        let infos: [&DestInfo; 3] = [&ds[0].info, &ds[1].info, &ds[2].info];
        let refused = SchedBinding::new(name, &infos[..2]);
        t.expect(
            refused.as_ref().err() == Some(&EDOM),
            "the scheduler's error from new() comes back",
        );
        drop(refused);
        let b = SchedBinding::new(name, &infos)?;
        t.expect(b.schedule(&infos, &probe_packet(2)) == Some(2), "schedule");
        t.expect(b.schedule(&infos, &probe_packet(3)).is_none(), "an index out of range is none");
        t.expect(b.schedule(&[], &probe_packet(0)).is_none(), "no servers, no pick");
        b.add_dest(&infos, 0);
        b.upd_dest(&infos, 0);
        PROBE_DEL.store(usize::MAX, Relaxed);
        b.del_dest(&infos, 3);
        t.expect(PROBE_DEL.load(Relaxed) == usize::MAX, "a hook for an index out of range is skipped");
        b.del_dest(&infos, 1);
        t.expect(PROBE_DEL.load(Relaxed) == 103, "del_dest gets the index and the list");
        let drops = PROBE_DROPS.load(Relaxed);
        drop(b);
        t.expect(PROBE_DROPS.load(Relaxed) == drops + 1, "dropping the binding drops the state");

        // Unbinding, as a service deleted or flushed does: the module reference goes back at
        // once (so that the module can be unloaded when the command returns), the binding
        // and its state after a grace period.
        // SAFETY: This module is live while its tests run.
        let refs = || unsafe { bindings::module_refcount(THIS_MODULE.as_ptr()) };
        let before = refs();
        let slot = RcuBox::new(Some(RcuNode::new(SchedBinding::new(name, &infos)?, GFP_KERNEL)?));
        t.expect(refs() == before + 1, "a binding holds a reference on its module");
        let drops = PROBE_DROPS.load(Relaxed);
        SchedBinding::unbind(&slot, &rcu::read_lock());
        t.expect(refs() == before, "unbind gives the module reference back at once");
        t.expect(slot.get(&rcu::read_lock()).is_none(), "unbound: no scheduler");
        rcu::barrier();
        t.expect(PROBE_DROPS.load(Relaxed) == drops + 1, "unbind drops the state after a grace period");

        sched::unregister(&*ops);
        let gone = SchedBinding::new(name, &infos);
        t.expect(gone.as_ref().err() == Some(&ENOENT), "unregistered: ENOENT");
        Ok(())
    })();
    t.ok(r, "sched_binding");
}

/// The service table's sizing (`svc_lfactor`): sizes from the count, thresholds with their
/// hysteresis, bounds; and an empty table's status.
unsafe extern "C" fn svc_table_sizing(test: *mut bindings::kunit) {
    let t = Test(test);
    use service::{bits_for, resize_to};
    t.expect(bits_for(0, -3) == 4 && bits_for(2, -3) == 4, "bits_for: least 2^4");
    t.expect(bits_for(3, -3) == 5, "bits_for: 3 services at -3 want 24 buckets: 2^5");
    t.expect(bits_for(2001, -3) == 14, "bits_for: 2001 at -3: 2^14");
    t.expect(bits_for(50_000, -3) == 19, "bits_for: 50000 at -3: 2^19");
    t.expect(bits_for(usize::MAX, -8) == 20, "bits_for: at most 2^20");
    t.expect(bits_for(4096, 8) == 4 && bits_for(1 << 20, 8) == 12, "bits_for: positive lfactor");
    t.expect(resize_to(4, 2, -3).is_none(), "resize_to: 2 services fit 16 buckets at -3");
    t.expect(resize_to(4, 3, -3) == Some(5), "resize_to: the third grows it");
    t.expect(resize_to(19, 50_000, -3).is_none(), "resize_to: 50000 stay in 2^19");
    t.expect(resize_to(19, 4096, -3).is_none(), "resize_to: no shrink at u_thresh/16");
    t.expect(resize_to(19, 4095, -3) == Some(15), "resize_to: shrink below u_thresh/16");
    t.expect(resize_to(15, 4095, -3).is_none(), "resize_to: no oscillation after a shrink");
    t.expect(resize_to(20, usize::MAX, -8).is_none(), "resize_to: nothing past 2^20");
    t.expect(resize_to(4, 0, -3).is_none(), "resize_to: nothing below 2^4");
    match service::ServiceTable::new() {
        Ok(tab) => {
            let g = rcu::read_lock();
            let st = tab.status(&g);
            t.expect(
                st.services == 0 && st.buckets == 16 && st.bits == 4 && st.lfactor == -3 && st.chains[0] == 16,
                "status of an empty table",
            );
        }
        Err(e) => t.ok(Err(e), "ServiceTable::new"),
    }
}

const fn case(
    name: &'static kernel::str::CStr,
    run: unsafe extern "C" fn(*mut bindings::kunit),
) -> bindings::kunit_case {
    // SAFETY: All-zeroes is a valid `kunit_case` (no callbacks, no attributes).
    let mut c: bindings::kunit_case = unsafe { MaybeUninit::zeroed().assume_init() };
    c.run_case = Some(run);
    c.name = name.as_char_ptr();
    c
}

const fn slow(mut c: bindings::kunit_case) -> bindings::kunit_case {
    c.attr.speed = bindings::kunit_speed_KUNIT_SPEED_SLOW;
    c
}

const fn suite_name(name: &[u8]) -> [u8; 256] {
    let mut out = [0u8; 256];
    let mut i = 0;
    while i < name.len() && i < 255 {
        out[i] = name[i];
        i += 1;
    }
    out
}

static mut CASES: [bindings::kunit_case; 15] = [
    case(c_str!("conn_insert_lookup"), conn_insert_lookup),
    case(c_str!("conn_families"), conn_families),
    case(c_str!("conn_resize"), conn_resize),
    case(c_str!("conn_teardown"), conn_teardown),
    case(c_str!("conn_side_resize"), conn_side_resize),
    slow(case(c_str!("conn_slow_timer_expiry"), conn_slow_timer_expiry)),
    slow(case(c_str!("conn_expiry_shortened"), conn_expiry_shortened)),
    case(c_str!("conn_tcp_states"), conn_tcp_states),
    case(c_str!("conn_one_packet"), conn_one_packet),
    case(c_str!("rr_schedule"), rr_schedule),
    case(c_str!("sched_binding"), sched_binding),
    case(c_str!("rcu_retired"), rcu_retired),
    case(c_str!("stats_percpu"), stats_percpu),
    case(c_str!("svc_table_sizing"), svc_table_sizing),
    // SAFETY: The all-zeroes terminator KUnit expects.
    unsafe { MaybeUninit::zeroed().assume_init() },
];

static mut SUITE: bindings::kunit_suite = {
    // SAFETY: All-zeroes is a valid `kunit_suite`; the fields KUnit needs are set below.
    let mut s: bindings::kunit_suite = unsafe { MaybeUninit::zeroed().assume_init() };
    s.name = suite_name(b"ip_vs_rust");
    s.test_cases = addr_of_mut!(CASES).cast();
    s
};

/// KUnit runs the suites listed in this section when the module loads.
#[used]
#[link_section = ".kunit_test_suites"]
static mut SUITE_ENTRY: *const bindings::kunit_suite = addr_of_mut!(SUITE);
