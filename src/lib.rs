//! mvdp: a userspace macvlan data plane.
//!
//! An XDP program on the parent NIC steers frames for container MACs into
//! AF_XDP sockets; per-core workers classify them by destination MAC and hand
//! them to per-container endpoints (veth or TAP); container egress is checked
//! and multiplexed back onto the NIC or switched locally.
//!
//! Layout: `wire` (frame views) ← `switch` (FDB, classify; pure) ←
//! `dataplane` (worker loops) → `io` (ports). `control` owns configuration,
//! netlink and the lifecycle of everything mvdp creates.

pub mod bench;
pub mod cli;
pub mod cni;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod demo;
pub mod dhcp;
pub mod docker;
pub mod io;
pub mod metrics;
pub mod sim;
pub mod switch;
pub mod wire;
