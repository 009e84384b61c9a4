//! The kernel fast path (issue 7): known unicast of veth endpoints moves in
//! tc programs, the workers carry the rest, and the two tiers count as one.
//!
//! Every test here sets `[dataplane] fast_path = "on"` itself; the rest of
//! the suite runs once per tier (`MVDP_TEST_FAST_PATH`, see `make test`).

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1 << 20;
const FAST_ON: &str = "[dataplane]\nfast_path = \"on\"";

/// `ethtool -k` of the container's interface, as "feature: on|off" lines.
fn features(c: &Container) -> String {
    c.ns.run(&["ethtool", "-k", c.ifname()])
}

fn feature_on(features: &str, name: &str) -> bool {
    features
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{name}: on")))
}

/// The fast path carries TCP and UDP between the wire and veth endpoints and
/// between endpoints in the kernel: the containers keep their offloads, no
/// XDP program is needed on the parent, the tc programs decide nearly every
/// frame, and nothing stays attached after SIGTERM.
#[test]
fn veth_unicast_moves_in_the_kernel_with_offloads_kept() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", FAST_ON));
    d.wait_ready(Duration::from_secs(20));
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));

    assert_eq!(d.metric("mvdp_fast_path_active"), Some(1.0), "{}", d.log());
    assert_eq!(d.metric("mvdp_fast_path_endpoints"), Some(3.0));
    assert_eq!(
        d.metric("mvdp_xdp_attached"),
        Some(0.0),
        "veth endpoints on a bridge network need no XDP program"
    );
    assert!(!xdp_attached(&rig.host, PARENT_IF));
    assert_eq!(tcx_programs(&rig.host, PARENT_IF), ["mvdp_tc_wire"]);
    for c in [c1, c2, c3] {
        let f = features(c);
        assert!(
            feature_on(&f, "tx-checksumming") && feature_on(&f, "tcp-segmentation-offload"),
            "{} lost its TX checksum offload or TSO:\n{f}",
            c.name
        );
    }

    tcp_transfer(&c1.ns, c1.ip, &rig.wire, 8 * MIB).expect("TCP wire -> c1 server");
    tcp_transfer(&rig.wire, WIRE_IP, &c2.ns, 8 * MIB).expect("TCP c2 -> wire server");
    tcp_transfer(&c3.ns, c3.ip, &c1.ns, 8 * MIB).expect("TCP c1 -> c3 server");
    assert_eq!(udp_exchange(&c1.ns, c1.ip, &rig.wire, 300), (300, 300));
    assert_eq!(udp_exchange(&rig.wire, WIRE_IP, &c2.ns, 300), (300, 300));
    assert_eq!(udp_exchange(&c2.ns, c2.ip, &c3.ns, 300), (300, 300));

    let s = settled(&d);
    assert_accounting(&s);
    let received = value(&s, "mvdp_frames_received_total", &[]);
    // The tc programs decided all but the ARP broadcasts (punted to the
    // workers, who count them as received).
    let fast = value(
        &s,
        "mvdp_fast_path_frames_total",
        &[("action", "from_wire")],
    ) + value(
        &s,
        "mvdp_fast_path_frames_total",
        &[("action", "from_endpoint")],
    );
    let punted = value(&s, "mvdp_fast_path_frames_total", &[("action", "punted")]);
    assert!(received > 1000.0, "only {received} frames counted");
    assert!(
        fast >= 0.98 * received,
        "the fast path decided {fast} of {received} frames ({punted} punted)"
    );
    assert!(
        punted > 0.0,
        "ARP broadcasts should have gone to the workers"
    );

    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(
        tcx_programs(&rig.host, PARENT_IF).is_empty(),
        "tc programs left on {PARENT_IF}"
    );
    rig.assert_host_clean();
}

/// veth endpoints on the fast path and a TAP endpoint (the workers' alone)
/// on one bridge network reach each other and the wire, both ways.
#[test]
fn fast_and_worker_endpoints_share_a_network() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let mut toml = rig.base_toml(FAST_ON);
    toml += &rig.endpoint_toml(c1, "veth");
    toml += &rig.endpoint_toml(c2, "veth");
    toml += &rig.endpoint_toml(c3, "tap");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(d.metric("mvdp_fast_path_endpoints"), Some(2.0));
    assert_eq!(
        d.metric("mvdp_xdp_attached"),
        Some(1.0),
        "the TAP endpoint needs the XDP program"
    );

    for (a, b) in [(c1, c3), (c3, c2)] {
        assert!(
            ping(&a.ns, b.ip, 2),
            "{} -> {}\n{}",
            a.name,
            b.name,
            d.log()
        );
    }
    assert!(ping(&rig.wire, c3.ip, 2), "wire -> tap");
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> veth");
    tcp_transfer(&c3.ns, c3.ip, &c1.ns, 4 * MIB).expect("TCP veth c1 -> tap c3");
    tcp_transfer(&c2.ns, c2.ip, &c3.ns, 4 * MIB).expect("TCP tap c3 -> veth c2");
    tcp_transfer(&c3.ns, c3.ip, &rig.wire, 4 * MIB).expect("TCP wire -> tap c3");
    assert_eq!(udp_exchange(&c3.ns, c3.ip, &c2.ns, 200), (200, 200));

    assert_accounting(&settled(&d));
    assert!(d.stop().success(), "{}", d.log());
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "XDP left on {PARENT_IF}"
    );
}

/// Frame-exact counters when both tiers carry a mix: unicast both ways
/// (fast path), broadcasts both ways (workers), spoofed and VLAN-hopping
/// frames (dropped by the fast path). Every series adds both tiers up.
#[test]
fn counters_are_exact_across_tiers() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", FAST_ON));
    d.wait_ready(Duration::from_secs(20));
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let before = settled(&d);

    const N: usize = 40; // wire -> c1 unicast
    const M: usize = 10; // wire broadcast
    const K: usize = 20; // c1 -> wire unicast
    const S: usize = 5; // c1 spoofed
    const B: usize = 5; // c1 broadcast
    const T: usize = 3; // c1 tagged (VLAN hop)
    let marker = format!("mvdp-tiers-{}", std::process::id());
    let payload = marker.as_bytes();
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    let caps: Vec<Capture> = [c1, c2, c3]
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    for _ in 0..N {
        send_raw(
            &rig.wire,
            WIRE_IF,
            &eth_frame(c1.mac(), wire_mac, ETHERTYPE_TEST, payload),
        );
    }
    for _ in 0..M {
        send_raw(
            &rig.wire,
            WIRE_IF,
            &eth_frame(BROADCAST, wire_mac, ETHERTYPE_TEST, payload),
        );
    }
    for _ in 0..K {
        send_raw(
            &c1.ns,
            c1.ifname(),
            &eth_frame(wire_mac, c1.mac(), ETHERTYPE_TEST, payload),
        );
    }
    for _ in 0..S {
        send_raw(
            &c1.ns,
            c1.ifname(),
            &eth_frame(wire_mac, c2.mac(), ETHERTYPE_TEST, payload),
        );
    }
    for _ in 0..B {
        send_raw(
            &c1.ns,
            c1.ifname(),
            &eth_frame(BROADCAST, c1.mac(), ETHERTYPE_TEST, payload),
        );
    }
    let mut tagged = vec![0x00, 0x07]; // VID 7
    tagged.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    tagged.extend_from_slice(payload);
    for _ in 0..T {
        send_raw(
            &c1.ns,
            c1.ifname(),
            &eth_frame(wire_mac, c1.mac(), 0x8100, &tagged),
        );
    }

    let has = |f: &[u8]| f.windows(payload.len()).any(|w| w == payload);
    let on_wire = wire_cap.finish_matching(Duration::from_millis(700), has);
    let got: Vec<usize> = caps
        .into_iter()
        .map(|c| c.finish_matching(Duration::from_millis(300), has).len())
        .collect();
    // The wire sees its own sends too: K + B of them are mvdp's.
    let from_c1 = on_wire.iter().filter(|f| f[6..12] == c1.mac()).count();
    assert_eq!(from_c1, K + B, "frames from c1 on the wire");
    assert_eq!(got, [N + M, M + B, M + B], "frames in c1, c2, c3");

    let after = settled(&d);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let c1l = [("endpoint", c1.name.as_str()), ("network", NETWORK)];
    let c2l = [("endpoint", c2.name.as_str()), ("network", NETWORK)];
    let report = d.metrics();
    let all = (N + M + K + S + B + T) as f64;
    assert_eq!(delta("mvdp_frames_received_total", &[]), all, "{report}");
    assert_eq!(
        delta("mvdp_frames_received_total", &[("source", "wire")]),
        N as f64
    );
    assert_eq!(
        delta("mvdp_frames_received_total", &[("source", "wire_group")]),
        M as f64
    );
    assert_eq!(
        delta("mvdp_frames_received_total", &[("source", "endpoint")]),
        (K + S + B + T) as f64
    );
    assert_eq!(
        delta("mvdp_frames_delivered_total", &[]),
        (N + M + K + B) as f64
    );
    assert_eq!(
        delta("mvdp_drops_total", &[("reason", "spoofed_source")]),
        S as f64
    );
    assert_eq!(
        delta("mvdp_drops_total", &[("reason", "vlan_hop")]),
        T as f64
    );
    assert_eq!(delta("mvdp_drops_total", &[]), (S + T) as f64, "{report}");
    assert_eq!(delta("mvdp_wire_tx_packets_total", &[]), (K + B) as f64);
    assert_eq!(
        delta("mvdp_endpoint_rx_packets_total", &c1l),
        (K + S + B + T) as f64
    );
    assert_eq!(
        delta("mvdp_endpoint_tx_packets_total", &c1l),
        (N + M) as f64
    );
    assert_eq!(
        delta("mvdp_endpoint_tx_packets_total", &c2l),
        (M + B) as f64
    );
    // The spoofed and VLAN-hopping frames are c1's drops, not c2's (whose
    // MAC the spoofed ones claimed).
    assert_eq!(
        delta("mvdp_endpoint_dropped_frames_total", &c1l),
        (S + T) as f64
    );
    assert_eq!(delta("mvdp_endpoint_dropped_frames_total", &c2l), 0.0);
    assert_eq!(
        delta("mvdp_fast_path_frames_total", &[("action", "punted")]),
        B as f64
    );
    // The wire's broadcasts reach the workers as the fast path's copies.
    assert_eq!(
        delta("mvdp_fast_path_frames_total", &[("action", "group_copied")]),
        M as f64
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// Endpoints added and removed at run time (config + SIGHUP) while the fast
/// path carries a steady stream to another: the stream loses nothing, the
/// new endpoint works while it is there, and its interface goes with it.
#[test]
fn endpoint_added_and_removed_under_traffic_loses_nothing() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let base = rig.base_toml(FAST_ON) + &rig.endpoint_toml(c1, "veth");
    let mut d = Daemon::start(&rig, &base);
    d.wait_ready(Duration::from_secs(20));
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());

    // A steady UDP stream wire -> c1: 2000 datagrams/s, numbered.
    const TOTAL: u32 = 6000;
    let rx = c1
        .ns
        .in_ns(|| UdpSocket::bind((c1.ip, 0)))
        .expect("bind in c1");
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = rx.local_addr().unwrap().port();
    let tx = rig
        .wire
        .in_ns(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .expect("bind in wire");
    let done = Arc::new(AtomicBool::new(false));
    let dst = (c1.ip, port);
    let sender = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..TOTAL {
                let due = start + Duration::from_micros(500 * u64::from(i));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                tx.send_to(&i.to_be_bytes(), dst).expect("send");
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let receiver = std::thread::spawn(move || {
        let mut seen = vec![false; TOTAL as usize];
        let mut buf = [0u8; 64];
        let mut quiet = 0;
        while quiet < 10 {
            match rx.recv(&mut buf) {
                Ok(4) => {
                    let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                    if i < seen.len() {
                        seen[i] = true;
                    }
                    quiet = 0;
                }
                Ok(_) => {}
                Err(_) => quiet += 1,
            }
        }
        seen.iter().filter(|s| **s).count()
    });

    // Add c2, use it, remove it -- all while the stream runs.
    let with_c2 = base.clone() + &rig.endpoint_toml(c2, "veth");
    std::fs::write(d.config_path(), &with_c2).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d.metric("mvdp_fdb_entries")
            == Some(2.0)),
        "c2 was not added\n{}",
        d.log()
    );
    assert!(ping(&rig.wire, c2.ip, 2), "wire -> added c2\n{}", d.log());
    tcp_transfer(&c2.ns, c2.ip, &c1.ns, MIB).expect("TCP c1 -> added c2");
    assert_eq!(d.metric("mvdp_fast_path_endpoints"), Some(2.0));
    std::fs::write(d.config_path(), &base).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d.metric("mvdp_fdb_entries")
            == Some(1.0)),
        "c2 was not removed\n{}",
        d.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || !link_exists(&c2.ns, c2.ifname())),
        "c2's interface is still there"
    );
    assert!(
        !done.load(Ordering::Relaxed),
        "the stream ended before the changes did"
    );

    sender.join().unwrap();
    let received = receiver.join().unwrap();
    assert_eq!(
        received, TOTAL as usize,
        "c1 lost datagrams while c2 came and went"
    );
    assert!(ping(&rig.wire, c1.ip, 2), "c1 after the changes");
    assert!(d.stop().success(), "{}", d.log());
    rig.assert_host_clean();
}
