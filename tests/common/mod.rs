//! Shared rig for privileged end-to-end tests.
//!
//! A test builds a [`Rig`]: a "host" network namespace whose parent NIC `p0`
//! is one end of a veth pair, the other end `w0` living in a "wire" namespace
//! with the wire host's address, plus container namespaces `c1..cN` where
//! mvdp puts its endpoints. It then starts the real binary with [`Daemon`],
//! drives traffic with the helpers in [`traffic`] and [`packet`], and checks
//! links and metrics. Every name is unique per process and per call, so
//! tests run in parallel; every namespace and process is removed in `Drop`,
//! even when the test fails.
//!
//! Each test crate uses a subset of these helpers, hence `dead_code` is
//! allowed for the whole module, and so are unused re-exports.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod links;
pub mod macvlan;
pub mod netns;
pub mod packet;
pub mod rig;
pub mod seqstream;
pub mod skip;
pub mod traffic;
pub mod vlan;

pub use daemon::{
    assert_accounting, endpoint_list, frame_counters, mvdp_command, mvdp_ctl, parse_prometheus,
    scrape_metrics, settled, sum_samples, value, Daemon, Sample, TempConfig, MVDP,
};
pub use links::{link_exists, link_mac, list_links, tcx_programs, xdp_attached};
pub use macvlan::{add_kernel_macvlans, fmt_mac, Reflector, StackCapture};
pub use netns::{in_netns_path, Netns};
pub use packet::{
    blast, capture, eth_frame, send_raw, Capture, RawSender, BROADCAST, ETHERTYPE_TEST,
};
pub use rig::{
    tier, Container, Rig, HOST_IP, NETWORK, PARENT_IF, PREFIX_LEN, SUBNET, WIRE_IF, WIRE_IP,
};
pub use seqstream::{pin_wire_neighbours, Received, SeqStream, Target};
pub use skip::{require, require_command, require_privileges, skip_verdict, Needs, SkipVerdict};
pub use traffic::{ping, tcp_transfer, udp_exchange, UdpStream};
pub use vlan::VlanIf;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name unique to this process and call: `prefix` + the PID in base 36 +
/// `-` + a per-process counter in base 36, e.g. `mv1k3f-2`. With a prefix of
/// at most 6 bytes the result fits an interface name (15 bytes); namespace
/// names may be longer.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("base36 digits are ASCII")
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns
/// whether it held. For waiting on asynchronous effects (a link appearing, a
/// counter reaching a value) without sleeping a fixed time.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
