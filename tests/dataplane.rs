//! End-to-end tests of the data plane: the real `mvdp run` in its own
//! namespaces, a veth standing in for the parent NIC, three containers.
//!
//! Each test builds its own rig (unique names) and tears it down in Drop.

mod common;

use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

fn start(rig: &Rig, kind: &str) -> Daemon {
    let mut d = Daemon::start(rig, &rig.config_toml(kind, ""));
    d.wait_ready(Duration::from_secs(20));
    d
}

/// Everything a user would try first, for one endpoint kind.
fn end_to_end(kind: &str) {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let mut d = start(&rig, kind);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));

    // The wire host reaches every container, and the containers each other.
    for c in [c1, c2, c3] {
        assert!(
            ping(&rig.wire, c.ip, 2),
            "wire -> {} ({kind}): no reply\n{}",
            c.name,
            d.log()
        );
    }
    for (a, b) in [(c1, c2), (c2, c3), (c3, c1)] {
        assert!(
            ping(&a.ns, b.ip, 2),
            "{} -> {} ({kind}): no reply",
            a.name,
            b.name
        );
    }
    // Non-endpoint traffic still reaches the host stack.
    assert!(
        ping(&rig.wire, HOST_IP, 2),
        "the host's own address stopped answering"
    );

    // TCP, several MiB checked byte for byte, connections opened both ways.
    tcp_transfer(&c1.ns, c1.ip, &rig.wire, 8 * MIB).expect("TCP wire -> c1 server");
    tcp_transfer(&rig.wire, WIRE_IP, &c2.ns, 8 * MIB).expect("TCP c2 -> wire server");
    tcp_transfer(&c3.ns, c3.ip, &c1.ns, 8 * MIB)
        .expect("TCP c1 -> c3 server (container to container)");
    // UDP both ways.
    assert_eq!(
        udp_exchange(&c1.ns, c1.ip, &rig.wire, 300),
        (300, 300),
        "UDP wire <-> c1"
    );
    assert_eq!(
        udp_exchange(&rig.wire, WIRE_IP, &c2.ns, 300),
        (300, 300),
        "UDP c2 <-> wire"
    );
    assert_eq!(
        udp_exchange(&c2.ns, c2.ip, &c3.ns, 300),
        (300, 300),
        "UDP c3 <-> c2"
    );

    let samples = settled(&d);
    assert_accounting(&samples);
    for c in [c1, c2, c3] {
        let labels = [("endpoint", c.name.as_str()), ("network", NETWORK)];
        assert!(
            value(&samples, "mvdp_endpoint_tx_packets_total", &labels) > 0.0,
            "{} tx",
            c.name
        );
        assert!(
            value(&samples, "mvdp_endpoint_rx_packets_total", &labels) > 0.0,
            "{} rx",
            c.name
        );
    }
    assert_eq!(
        value(
            &samples,
            "mvdp_drops_total",
            &[("reason", "spoofed_source")]
        ),
        0.0
    );
    assert_eq!(value(&samples, "mvdp_fdb_entries", &[]), 3.0);

    let status = d.stop();
    assert!(status.success(), "mvdp exited with {status}\n{}", d.log());
    assert_clean(&rig);
}

/// After shutdown: no XDP or tc program on the parent, no interface mvdp created.
fn assert_clean(rig: &Rig) {
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "XDP program left on {PARENT_IF}"
    );
    assert_eq!(
        tcx_programs(&rig.host, PARENT_IF),
        Vec::<String>::new(),
        "tc programs left on {PARENT_IF}"
    );
    rig.assert_host_clean();
    for c in &rig.containers {
        assert_eq!(
            list_links(&c.ns),
            vec!["lo".to_string()],
            "links left in {}",
            c.name
        );
    }
}

#[test]
fn veth_end_to_end() {
    end_to_end("veth");
}

#[test]
fn tap_end_to_end() {
    end_to_end("tap");
}

/// One broadcast from the wire reaches every container exactly once, and the host too.
fn broadcast_once(kind: &str) {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let mut d = start(&rig, kind);
    let marker = format!("mvdp-bcast-{kind}-{}", std::process::id());
    let is_ours =
        |f: &[u8]| f.len() >= 14 + marker.len() && &f[14..14 + marker.len()] == marker.as_bytes();
    let caps: Vec<Capture> = rig
        .containers
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    let host_cap = Capture::start(&rig.host, PARENT_IF);
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    send_raw(
        &rig.wire,
        WIRE_IF,
        &eth_frame(BROADCAST, wire_mac, ETHERTYPE_TEST, marker.as_bytes()),
    );
    for (c, cap) in rig.containers.iter().zip(caps) {
        let got = cap.finish_matching(Duration::from_millis(700), is_ours);
        assert_eq!(
            got.len(),
            1,
            "{} saw the broadcast {} times ({kind})\n{}",
            c.name,
            got.len(),
            d.log()
        );
    }
    let got = host_cap.finish_matching(Duration::from_millis(100), is_ours);
    assert_eq!(
        got.len(),
        1,
        "the host saw the broadcast {} times",
        got.len()
    );

    // A broadcast tagged for VLAN 99 belongs to no network here: it must not
    // reach the untagged containers (the kernel strips the tag before packet
    // sockets see the frame; mvdp has to put it back before classifying).
    let tagged_marker = format!("mvdp-tagged-{kind}-{}", std::process::id());
    let mut payload = vec![0x00, 99]; // TCI: VID 99
    payload.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    payload.extend_from_slice(tagged_marker.as_bytes());
    let caps: Vec<Capture> = rig
        .containers
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    send_raw(
        &rig.wire,
        WIRE_IF,
        &eth_frame(BROADCAST, wire_mac, 0x8100, &payload),
    );
    let has_tagged = |f: &[u8]| {
        f.windows(tagged_marker.len())
            .any(|w| w == tagged_marker.as_bytes())
    };
    for (c, cap) in rig.containers.iter().zip(caps) {
        let got = cap.finish_matching(Duration::from_millis(500), has_tagged);
        assert!(
            got.is_empty(),
            "{} received a broadcast tagged for VLAN 99 ({kind})",
            c.name
        );
    }
    let status = d.stop();
    assert!(status.success());
}

#[test]
fn veth_broadcast_reaches_every_container_once() {
    broadcast_once("veth");
}

#[test]
fn tap_broadcast_reaches_every_container_once() {
    broadcast_once("tap");
}

/// A container cannot put a frame with someone else's source MAC on the wire,
/// the counters add up frame for frame, and the spoofed frames are the
/// sender's drops, in `/metrics` and in `mvdp endpoint list`.
fn spoof_and_counters(kind: &str) {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let mut d = start(&rig, kind);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let before = settled(&d);
    let c1_labels = [("endpoint", c1.name.as_str()), ("network", NETWORK)];
    // Each endpoint's drops as `mvdp endpoint list --json` shows them.
    let listed_drops = || -> (u64, u64) {
        let list = endpoint_list(&rig);
        let drops = |name: &str| {
            list.iter()
                .find(|e| e["name"] == name)
                .and_then(|e| e["drops"].as_u64())
                .unwrap_or_else(|| panic!("no drops for {name} in endpoint list: {list:?}"))
        };
        (drops(&c1.name), drops(&c2.name))
    };
    let listed_before = listed_drops();

    // 1. Spoofed: c1 claims c2's MAC, and a made-up one. Never on the wire.
    let spoof = format!("mvdp-spoof-{}", std::process::id());
    let legit = format!("mvdp-legit-{}", std::process::id());
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    send_raw(
        &c1.ns,
        c1.ifname(),
        &eth_frame(wire_mac, c2.mac(), ETHERTYPE_TEST, spoof.as_bytes()),
    );
    send_raw(
        &c1.ns,
        c1.ifname(),
        &eth_frame(
            wire_mac,
            [0x02, 0, 0, 0, 0, 9],
            ETHERTYPE_TEST,
            spoof.as_bytes(),
        ),
    );
    // Control: the same frame with c1's own MAC does reach the wire.
    send_raw(
        &c1.ns,
        c1.ifname(),
        &eth_frame(wire_mac, c1.mac(), ETHERTYPE_TEST, legit.as_bytes()),
    );
    let seen = wire_cap.finish(Duration::from_millis(700));
    let count = |m: &str| {
        seen.iter()
            .filter(|f| f.windows(m.len()).any(|w| w == m.as_bytes()))
            .count()
    };
    assert_eq!(
        count(&spoof),
        0,
        "a spoofed frame reached the wire ({kind})"
    );
    assert_eq!(
        count(&legit),
        1,
        "c1's own frame did not reach the wire exactly once ({kind})"
    );

    // 2. N unicast frames from the wire to c2 arrive N times, counted N times.
    const N: usize = 50;
    let uni = format!("mvdp-uni-{}", std::process::id());
    let c2_cap = Capture::start(&c2.ns, c2.ifname());
    for _ in 0..N {
        send_raw(
            &rig.wire,
            WIRE_IF,
            &eth_frame(c2.mac(), wire_mac, ETHERTYPE_TEST, uni.as_bytes()),
        );
    }
    let got = c2_cap.finish_matching(Duration::from_millis(700), |f| {
        f.windows(uni.len()).any(|w| w == uni.as_bytes())
    });
    assert_eq!(
        got.len(),
        N,
        "c2 received {} of {N} frames ({kind})",
        got.len()
    );

    let after = settled(&d);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let c2_labels = [("endpoint", c2.name.as_str()), ("network", NETWORK)];
    assert_eq!(
        delta("mvdp_drops_total", &[("reason", "spoofed_source")]),
        2.0
    );
    assert_eq!(
        delta("mvdp_endpoint_rx_packets_total", &c1_labels),
        3.0,
        "c1 sent 3 frames"
    );
    assert_eq!(
        delta("mvdp_endpoint_tx_packets_total", &c2_labels),
        N as f64,
        "c2 was sent {N} frames"
    );
    // The spoofed frames are c1's drops (it sent them), not c2's (whose MAC
    // one of them claimed), whichever tier dropped them.
    assert_eq!(
        delta("mvdp_endpoint_dropped_frames_total", &c1_labels),
        2.0,
        "c1's drops ({kind}, fast path {})",
        tier()
    );
    assert_eq!(
        delta("mvdp_endpoint_dropped_frames_total", &c2_labels),
        0.0,
        "c2's drops ({kind}, fast path {})",
        tier()
    );
    let mut listed = (0, 0);
    let shown = wait_until(Duration::from_secs(5), || {
        let now = listed_drops();
        listed = (now.0 - listed_before.0, now.1 - listed_before.1);
        listed == (2, 0)
    });
    assert!(
        shown,
        "endpoint list --json: c1's and c2's drops rose by {listed:?}, not (2, 0) ({kind}, fast path {})",
        tier()
    );
    assert_eq!(
        delta("mvdp_frames_received_total", &[("source", "wire")]),
        N as f64
    );
    assert_eq!(
        delta("mvdp_wire_tx_packets_total", &[]),
        1.0,
        "only the legit frame left"
    );
    assert_accounting(&after);
    let status = d.stop();
    assert!(status.success());
}

#[test]
fn veth_spoofing_blocked_and_counters_add_up() {
    spoof_and_counters("veth");
}

#[test]
fn tap_spoofing_blocked_and_counters_add_up() {
    spoof_and_counters("tap");
}

/// Unknown unicast from the wire is not mvdp's: the XDP program leaves it to
/// the host stack (which drops frames not for its MAC), and counts it.
#[test]
fn unknown_unicast_is_passed_and_counted() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let d = start(&rig, "veth");
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let before = settled(&d);
    let caps: Vec<Capture> = rig
        .containers
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    let marker = format!("mvdp-unknown-{}", std::process::id());
    for _ in 0..10 {
        send_raw(
            &rig.wire,
            WIRE_IF,
            &eth_frame(
                [0x02, 0x99, 0, 0, 0, 1],
                wire_mac,
                ETHERTYPE_TEST,
                marker.as_bytes(),
            ),
        );
    }
    for (c, cap) in rig.containers.iter().zip(caps) {
        let got = cap.finish_matching(Duration::from_millis(500), |f| {
            f.windows(marker.len()).any(|w| w == marker.as_bytes())
        });
        assert!(got.is_empty(), "{} received unknown unicast", c.name);
    }
    let after = settled(&d);
    // Left to the host by whichever tier looked at it: the XDP program (the
    // fast path off) or the fast path's tc program.
    let pass = |s: &[Sample]| {
        value(s, "mvdp_xdp_frames_total", &[("action", "pass_host")])
            + value(s, "mvdp_fast_path_frames_total", &[("action", "passed")])
    };
    assert!(
        pass(&after) - pass(&before) >= 10.0,
        "unknown unicast not counted as passed to the host"
    );
}

/// A container that vanishes is removed; the others go on.
#[test]
fn vanished_container_is_removed_cleanly() {
    if !require_privileges() {
        return;
    }
    let mut rig = Rig::new(3, 1);
    let mut d = start(&rig, "veth");
    let free_before = settled(&d);
    let gone = rig.containers.remove(1); // c2
    drop(gone); // deletes its namespace, and with it the container end of its veth
    assert!(
        wait_until(Duration::from_secs(10), || d.metric("mvdp_fdb_entries")
            == Some(2.0)),
        "mvdp did not notice c2 vanished\n{}",
        d.log()
    );
    assert!(
        d.try_wait().is_none(),
        "mvdp exited when a container vanished"
    );
    for c in &rig.containers {
        assert!(
            ping(&rig.wire, c.ip, 2),
            "{} unreachable after c2 vanished",
            c.name
        );
    }
    assert!(d.log().contains("c2"), "the removal is not logged");
    // The file still lists c2: a reload leaves it out (its namespace is
    // gone) instead of failing, and the others keep running.
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .contains("SIGHUP: reloaded")),
        "a reload failed over the vanished c2\n{}",
        d.log()
    );
    assert_eq!(d.metric("mvdp_fdb_entries"), Some(2.0));
    assert!(
        ping(&rig.wire, rig.containers[0].ip, 1),
        "c1 after the reload"
    );
    // The frames posted to c2's socket came back to the pool. With the fast
    // path, c2's socket only transmitted (its egress took the tc program),
    // so none were posted: none may be lost either.
    let free = |s: &[Sample]| value(s, "mvdp_umem_free_frames", &[]);
    let free_after = settled(&d);
    if tier() == "off" {
        assert!(
            free(&free_after) > free(&free_before),
            "UMEM frames of the removed endpoint were not reclaimed: {} -> {}",
            free(&free_before),
            free(&free_after)
        );
    } else {
        assert!(
            free(&free_after) >= free(&free_before),
            "UMEM frames lost with the removed endpoint: {} -> {}",
            free(&free_before),
            free(&free_after)
        );
    }
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_clean(&rig);
}

/// Two RX queues, two workers: everything still works and cleans up.
#[test]
fn two_queues_two_workers() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 2);
    let mut d = start(&rig, "veth");
    for c in &rig.containers {
        assert!(ping(&rig.wire, c.ip, 2), "wire -> {}", c.name);
    }
    tcp_transfer(
        &rig.container(1).ns,
        rig.container(1).ip,
        &rig.container(2).ns,
        4 * MIB,
    )
    .expect("TCP c2 -> c1");
    let samples = settled(&d);
    assert_accounting(&samples);
    assert!(d.metrics().contains("queue=\"1\""), "no worker for queue 1");
    // Each worker publishes its own socket's ring statistics (no other
    // thread holds the socket's fd, which could outlive it).
    for q in ["0", "1"] {
        for socket in ["parent", "endpoints"] {
            let labels = [("queue", q), ("socket", socket)];
            assert!(
                wait_until(Duration::from_secs(3), || d
                    .metric_sum("mvdp_xsk_fill_ring_empty_total", &labels)
                    .is_some()),
                "no mvdp_xsk_fill_ring_empty_total{labels:?}"
            );
        }
    }
    let status = d.stop();
    assert!(status.success());
    assert_clean(&rig);
}

/// A bad config is refused with exit 78 and a message naming the key.
#[test]
fn check_names_the_bad_key() {
    let cases = [
        ("[parent]\ninterface = \"p0\"\nbogus = 1\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\n", "bogus"),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\n\
             [[endpoint]]\nname = \"a\"\nnetwork = \"lan\"\nnetns = \"x\"\nip = \"10.2.0.5\"\n",
            "endpoint[0] (a).ip",
        ),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\n\
             [[endpoint]]\nname = \"a\"\nnetwork = \"lan\"\nnetns = \"x\"\nmac = \"01:00:5e:00:00:01\"\n",
            "mac",
        ),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\n\
             [[endpoint]]\nname = \"a\"\nnetwork = \"lan\"\nnetns = \"mvdp-no-such-netns-here\"\n",
            "netns",
        ),
        // Impossible combinations (issue 4).
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"pt\"\nmode = \"passthru\"\nsubnet = \"10.1.0.0/24\"\n\
             [[endpoint]]\nname = \"a\"\nnetwork = \"pt\"\nnetns = \"x\"\n\
             [[endpoint]]\nname = \"b\"\nnetwork = \"pt\"\nnetns = \"y\"\n",
            "endpoint[1] (b).network",
        ),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"v\"\nvlan = 4095\nsubnet = \"10.1.0.0/24\"\n",
            "network[0] (v).vlan",
        ),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\nhost_shim = \"10.2.0.1\"\n",
            "network[0] (lan).host_shim",
        ),
        (
            "[parent]\ninterface = \"p0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.1.0.0/24\"\n\
             [[endpoint]]\nname = \"a\"\nnetwork = \"lan\"\nnetns = \"x\"\nrate_limit = { pps = 0 }\n",
            "rate_limit.pps",
        ),
    ];
    for (toml, key) in cases {
        let cfg = TempConfig::new(toml);
        let out = mvdp_command()
            .args(["check", "--config"])
            .arg(cfg.path())
            .output()
            .expect("run mvdp check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "exit code for {key}: {err}");
        assert!(err.contains(key), "message does not name {key}: {err}");
    }
}

/// `[workers] poll = "busy"`: a worker that never sleeps still carries
/// everything (unicast, broadcast, TCP both ways) and stops on SIGTERM.
#[test]
fn busy_polling_worker_carries_traffic_and_stops() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", "[workers]\npoll = \"busy\""));
    d.wait_ready(Duration::from_secs(20));
    let (c1, c2) = (rig.container(1), rig.container(2));
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());
    assert!(ping(&c1.ns, c2.ip, 2), "c1 -> c2");
    tcp_transfer(&c1.ns, c1.ip, &rig.wire, 4 * MIB).expect("TCP wire -> c1");
    tcp_transfer(&rig.wire, WIRE_IP, &c2.ns, 4 * MIB).expect("TCP c2 -> wire");
    assert_accounting(&settled(&d));
    // A busy worker never sleeps in poll().
    assert_eq!(d.metric_sum("mvdp_worker_sleeps_total", &[]), Some(0.0));
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_clean(&rig);
}

/// A daemon started right after another stopped binds the same queues: the
/// kernel frees a closed AF_XDP socket's hold on its queue in deferred work,
/// and mvdp waits for it instead of failing with EBUSY.
#[test]
fn restart_right_after_stop_binds_again() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    for round in 0..3 {
        let mut d = start(&rig, "veth");
        assert!(
            ping(&rig.wire, rig.container(1).ip, 1),
            "round {round}: wire -> c1\n{}",
            d.log()
        );
        let status = d.stop();
        assert!(status.success(), "round {round}: {status}\n{}", d.log());
    }
    assert_clean(&rig);
}

/// Shutdown deletes the endpoints' host ends in one request by their
/// interface group, but only when the group holds nothing else: an
/// interface of someone else's that happens to be in the group survives,
/// and every endpoint still goes.
#[test]
fn shutdown_spares_foreign_links_in_the_endpoint_group() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let group = u32::from_be_bytes(*b"mvdp").to_string();
    for round in ["alone", "with a foreign link"] {
        let mut d = start(&rig, "veth");
        let members = rig.host.ip(&["-o", "link", "show", "group", &group]);
        assert_eq!(
            members.lines().count(),
            2,
            "{round}: the endpoint host ends are not in group {group}:\n{members}"
        );
        if round != "alone" {
            rig.host.ip(&[
                "link", "add", "foreign0", "group", &group, "type", "veth", "peer", "name",
                "foreign1",
            ]);
        }
        let status = d.stop();
        assert!(status.success(), "{round}: {status}\n{}", d.log());
        if round != "alone" {
            assert!(
                link_exists(&rig.host, "foreign0"),
                "{round}: shutdown deleted an interface mvdp did not create"
            );
            rig.host.ip(&["link", "del", "foreign0"]);
        }
        assert_clean(&rig);
    }
}

/// A TAP container's frame larger than a UMEM frame is dropped whole and
/// counted as `too_long` (it was counted as `malformed`), charged to the
/// container that sent it.
#[test]
fn oversize_tap_frame_is_counted_too_long() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 1);
    let c1 = rig.container(1);
    let mut d = Daemon::start(&rig, &rig.config_toml("tap", ""));
    d.wait_ready(Duration::from_secs(20));
    c1.ns.ip(&["link", "set", c1.ifname(), "mtu", "9000"]);
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let frame = eth_frame(wire_mac, c1.mac(), ETHERTYPE_TEST, &[0x5a; 6000]);
    send_raw(&c1.ns, c1.ifname(), &frame);
    let too_long = || {
        d.metric("mvdp_drops_total{reason=\"too_long\"}")
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || too_long() == 1.0),
        "a 6 kB frame from a TAP container was not counted as too_long ({})\n{}",
        too_long(),
        d.metrics()
    );
    assert_eq!(
        d.metric("mvdp_drops_total{reason=\"malformed\"}"),
        Some(0.0)
    );
    assert_eq!(
        d.metric(&format!(
            "mvdp_endpoint_dropped_frames_total{{endpoint=\"c1\",network=\"{NETWORK}\"}}"
        )),
        Some(1.0)
    );
    assert!(d.stop().success(), "{}", d.log());
}
