//! Host test harness: the kernel-independent files of the modules, compiled for the host so
//! `cargo test` runs their unit tests. The files are the very ones the kernel crates build.

#[path = "../../ipvs/ctl_config.rs"]
pub mod ctl_config;
#[path = "../../ipvs/est.rs"]
pub mod est;
#[path = "../../ipvs/hash.rs"]
pub mod hash;
#[path = "../../ipvs/proto.rs"]
pub mod proto;
#[path = "../../ipvs/proto_sctp.rs"]
pub mod proto_sctp;
#[path = "../../ipvs/proto_tcp.rs"]
pub mod proto_tcp;
#[path = "../../ipvs/proto_udp.rs"]
pub mod proto_udp;
#[path = "../../ipvs/sync_msg.rs"]
pub mod sync_msg;
#[cfg(test)]
mod sync_msg_check;
#[cfg(test)]
mod sync_msg_tests;
#[path = "../../ipvs/uapi.rs"]
pub mod uapi;
#[path = "../../schedulers/rr.rs"]
pub mod rr;
#[path = "../../schedulers/server.rs"]
pub mod server;
#[path = "../../schedulers/sh.rs"]
pub mod sh;
#[path = "../../schedulers/dh.rs"]
pub mod dh;
#[path = "../../schedulers/mh.rs"]
pub mod mh;
#[path = "../../schedulers/lblc.rs"]
pub mod lblc;
#[path = "../../schedulers/lblcr.rs"]
pub mod lblcr;
#[path = "../../schedulers/dest.rs"]
pub mod dest;
#[path = "../../schedulers/wrr.rs"]
pub mod wrr;
#[path = "../../schedulers/lc.rs"]
pub mod lc;
#[path = "../../schedulers/wlc.rs"]
pub mod wlc;
#[path = "../../schedulers/sed.rs"]
pub mod sed;
#[path = "../../schedulers/nq.rs"]
pub mod nq;
#[path = "../../schedulers/fo.rs"]
pub mod fo;
#[path = "../../schedulers/ovf.rs"]
pub mod ovf;
#[path = "../../schedulers/twos.rs"]
pub mod twos;
#[path = "../../pe/sip.rs"]
pub mod sip;
#[path = "../../apps/ftp.rs"]
pub mod ftp;
