//! Abuse limits and run-time policy: a bounded broadcast queue whose overflow
//! is counted while unicast keeps flowing, per-endpoint rate limits, and a
//! `source` network's allow-list changed at run time (SIGHUP).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn broadcast_flood_overflows_its_queue_and_unicast_keeps_flowing() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let toml = rig.config_toml("veth", "").replacen(
        "mode = \"bridge\"",
        "mode = \"bridge\"\nbcast_queue_len = 4",
        1,
    );
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let flood = eth_frame(BROADCAST, wire_mac, ETHERTYPE_TEST, b"mvdp-flood");
    // Resolve addresses first: ARP requests are broadcasts too, and would
    // wait in the same queue as the flood (as with the kernel's macvlan).
    assert!(ping(&rig.wire, rig.container(1).ip, 1));
    // Flood from one thread while unicast runs on another.
    let (sent, pinged, tcp) = std::thread::scope(|s| {
        let blaster = s.spawn(|| blast(&rig.wire, WIRE_IF, &flood, 200_000));
        let c1 = rig.container(1);
        std::thread::sleep(Duration::from_millis(100));
        let pinged = ping(&rig.wire, c1.ip, 3);
        let tcp = tcp_transfer(&c1.ns, c1.ip, &rig.wire, 2 << 20);
        (blaster.join().unwrap(), pinged, tcp)
    });
    assert!(
        sent > 10_000,
        "the flood was too small to mean anything ({sent})"
    );
    assert!(pinged, "unicast stopped during the broadcast flood");
    tcp.expect("TCP during the broadcast flood");
    let full = wait_until(Duration::from_secs(3), || {
        d.metric("mvdp_drops_total{reason=\"flood_queue_full\"}")
            .unwrap_or(0.0)
            > 0.0
    });
    assert!(
        full,
        "the flood never overflowed a 4-frame queue\n{}",
        d.metrics()
    );
    // The overflow is accounted: every broadcast the listener took is
    // delivered or dropped under a reason.
    let received = d.metric_sum("mvdp_frames_received_total", &[]).unwrap();
    let delivered = d.metric("mvdp_frames_delivered_total").unwrap();
    let dropped = d.metric_sum("mvdp_drops_total", &[]).unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || {
            let r = d.metric_sum("mvdp_frames_received_total", &[]).unwrap();
            let dl = d.metric("mvdp_frames_delivered_total").unwrap();
            let dr = d.metric_sum("mvdp_drops_total", &[]).unwrap();
            r == dl + dr
        }),
        "received {received} != delivered {delivered} + dropped {dropped}"
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn rate_limit_caps_what_an_endpoint_sends() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let c1 = rig.container(1);
    let mut toml = rig.base_toml("");
    toml += &rig.endpoint_toml(c1, "veth");
    toml += "rate_limit = { pps = 200 }\n";
    toml += &rig.endpoint_toml(rig.container(2), "veth");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let marker = format!("mvdp-rl-{}", std::process::id());
    let frame = eth_frame(wire_mac, c1.mac(), ETHERTYPE_TEST, marker.as_bytes());
    // What c1 sent since it came up took tokens too.
    let sent_before = d
        .metric_sum("mvdp_endpoint_rx_packets_total", &[("endpoint", "c1")])
        .unwrap_or(0.0) as usize;
    let cap = Capture::start(&rig.wire, WIRE_IF);
    let start = Instant::now();
    let sent = blast(&c1.ns, "eth0", &frame, 5_000);
    let secs = start.elapsed().as_secs_f64();
    let got = cap
        .finish_matching(Duration::from_millis(500), |f| {
            f.windows(marker.len()).any(|w| w == marker.as_bytes())
        })
        .len();
    // 200 frames/s plus a burst allowance (a tenth of a second, at least 64 frames).
    let allowed = (200.0 * (secs + 0.6)) as usize + 64;
    assert!(
        got <= allowed,
        "{got} of {sent} frames passed a 200 pps limit in {secs:.2} s"
    );
    assert!(
        got + sent_before >= 64,
        "the limit let almost nothing through ({got}; {sent_before} frames before)"
    );
    // Every frame mvdp took from c1 either passed or was limited (frames the
    // kernel dropped before mvdp, its rings being full, never reached it).
    let c1_rx = format!("mvdp_endpoint_rx_packets_total{{endpoint=\"c1\",network=\"{NETWORK}\"}}");
    let limited = || {
        d.metric("mvdp_drops_total{reason=\"rate_limited\"}")
            .unwrap_or(0.0)
    };
    let accounted = wait_until(Duration::from_secs(2), || {
        let rx = d.metric(&c1_rx).unwrap_or(0.0);
        rx > 0.0 && rx == limited() + got as f64
    });
    assert!(
        accounted,
        "c1 sent {sent}, mvdp took {:?}, passed {got}, counted rate_limited {}",
        d.metric(&c1_rx),
        limited()
    );
    assert!(limited() > 0.0);
    // The other endpoint is not limited.
    assert!(ping(&rig.wire, rig.container(2).ip, 3));
    assert!(d.stop().success(), "{}", d.log());
}

/// An endpoint's limit is the endpoint's, not each queue's: with its flows
/// spread over two RX queues (two workers), what passes is still one
/// allowance plus what the time earned. (Run on the worker tier: with the
/// fast path on, a limited endpoint's frames all come through the punt
/// device, whose queues are not the endpoint's.)
#[test]
fn rate_limit_holds_across_queues() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 2);
    let c1 = rig.container(1);
    let mut toml = rig.base_toml("[dataplane]\nfast_path = \"off\"\n");
    toml += &rig.endpoint_toml(c1, "veth");
    toml += "rate_limit = { pps = 200 }\n";
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    // The wire's MAC first, so the burst below is all UDP.
    assert!(ping(&c1.ns, WIRE_IP, 1), "c1 cannot reach the wire");
    // What c1 sent so far (the ping, ARP) took tokens the burst may
    // find not yet earned back.
    let sent_before = d
        .metric_sum("mvdp_endpoint_rx_packets_total", &[("endpoint", "c1")])
        .unwrap_or(0.0) as usize;
    let marker = format!("mvdp-rlq-{}", std::process::id());
    let cap = Capture::start(&rig.wire, WIRE_IF);
    let start = Instant::now();
    // Sixteen sockets: sixteen flow hashes, spread over c1's two TX queues
    // (the host end's two RX queues).
    let payload = marker.clone();
    let sent = c1.ns.in_ns(move || {
        let mut sent = 0;
        for _ in 0..16 {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
            for _ in 0..300 {
                if sock.send_to(payload.as_bytes(), (WIRE_IP, 9)).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    });
    let secs = start.elapsed().as_secs_f64();
    let got = cap
        .finish_matching(Duration::from_millis(500), |f| {
            f.windows(marker.len()).any(|w| w == marker.as_bytes())
        })
        .len();
    // Both workers had c1's frames (else this test proves nothing).
    let host_end = list_links(&rig.host)
        .into_iter()
        .find(|l| l.ends_with("c1"))
        .expect("c1's host end");
    let stats = rig.host.run(&["ethtool", "-S", &host_end]);
    let per_queue: Vec<u64> = (0..2)
        .map(|q| {
            let key = format!("rx_queue_{q}_xdp_packets:");
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(&key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        per_queue.iter().all(|&n| n >= 100),
        "c1's frames did not spread over both queues: {per_queue:?}"
    );
    // One allowance (64 frames) plus 200/s over the burst and its tail;
    // a bucket per queue would pass at least 128.
    let allowed = 64 + (200.0 * (secs + 0.1)) as usize + 4;
    assert!(
        got <= allowed,
        "{got} of {sent} frames passed a 200 pps limit in {secs:.2} s over two queues \
         (at most {allowed})"
    );
    assert!(
        got + sent_before >= 64,
        "the limit let almost nothing through ({got}; {sent_before} frames before)"
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn source_allow_list_changes_at_run_time() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 1);
    let c1 = rig.container(1);
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let wire_mac_str = wire_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let config = |allowed: &str| {
        let mut t = rig
            .base_toml("")
            .replacen("mode = \"bridge\"", "mode = \"source\"", 1);
        t += &rig.endpoint_toml(c1, "veth");
        t += &format!("allowed_sources = [\"{allowed}\"]\n");
        t
    };
    let mut d = Daemon::start(&rig, &config(&wire_mac_str));
    d.wait_ready(Duration::from_secs(20));
    let send_and_count = |tag: &str| {
        let marker = format!("mvdp-src-{tag}-{}", std::process::id());
        let cap = Capture::start(&c1.ns, "eth0");
        for _ in 0..5 {
            send_raw(
                &rig.wire,
                WIRE_IF,
                &eth_frame(c1.mac(), wire_mac, ETHERTYPE_TEST, marker.as_bytes()),
            );
        }
        cap.finish_matching(Duration::from_millis(400), |f| {
            f.windows(marker.len()).any(|w| w == marker.as_bytes())
        })
        .len()
    };
    assert_eq!(
        send_and_count("allowed"),
        5,
        "frames from an allowed source did not arrive"
    );
    // Rewrite the config without the wire's MAC and reload.
    std::fs::write(d.config_path(), config("02:00:00:00:00:01")).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log()
            .contains("SIGHUP: reloaded")),
        "no reload logged\n{}",
        d.log()
    );
    assert_eq!(
        send_and_count("refused"),
        0,
        "frames from a source no longer allowed arrived"
    );
    assert!(
        d.metric("mvdp_drops_total{reason=\"source_not_allowed\"}")
            .unwrap_or(0.0)
            >= 5.0
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// `anti_spoof = "mac+ip"`: a container that answers ARP for its
/// neighbour's address (ARP spoofing, with its own MAC) reaches nobody and
/// is counted as `ip_spoof`; its own ARP and IPv4 still work.
#[test]
fn mac_ip_anti_spoofing_stops_arp_spoofing() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let mut toml = rig.base_toml("").replacen(
        "mode = \"bridge\"",
        "mode = \"bridge\"\nanti_spoof = \"mac+ip\"",
        1,
    );
    toml += &rig.endpoint_toml(c1, "veth");
    toml += &rig.endpoint_toml(c2, "veth");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());

    // c1 tells the wire that c2's address is at c1's MAC.
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, 2];
    arp.extend_from_slice(&c1.mac());
    arp.extend_from_slice(&c2.ip.octets());
    arp.extend_from_slice(&wire_mac);
    arp.extend_from_slice(&WIRE_IP.octets());
    let frame = eth_frame(wire_mac, c1.mac(), 0x0806, &arp);
    let lie = |f: &[u8]| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[22..28] == c1.mac()
            && f[28..32] == c2.ip.octets()
    };
    let cap = Capture::start(&rig.wire, WIRE_IF);
    for _ in 0..3 {
        send_raw(&c1.ns, c1.ifname(), &frame);
    }
    assert_eq!(
        cap.finish_matching(Duration::from_millis(400), lie).len(),
        0,
        "c1's ARP claiming c2's address reached the wire"
    );
    assert!(
        wait_until(Duration::from_secs(3), || d.drops("ip_spoof") == 3.0),
        "ip_spoof drops: {}",
        d.drops("ip_spoof")
    );
    // Its own ARP and IPv4 pass: the wire still reaches both, and c1 reaches c2.
    assert!(ping(&rig.wire, c2.ip, 2), "wire -> c2");
    assert!(ping(&c1.ns, c2.ip, 2), "c1 -> c2");
    assert!(d.stop().success(), "{}", d.log());
}
