//! Host test harness: the kernel-independent files of the modules, compiled for the host so
//! `cargo test` runs their unit tests. The files are the very ones the kernel crates build.

#[path = "../../ipvs/hash.rs"]
pub mod hash;
#[path = "../../ipvs/proto.rs"]
pub mod proto;
#[path = "../../ipvs/proto_tcp.rs"]
pub mod proto_tcp;
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
