//! Proves the shared rig helpers work on their own, without mvdp: if this
//! fails, end-to-end failures are the rig's fault, not the data plane's.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn unique_names_are_distinct_and_fit_an_ifname() {
    let names: Vec<String> = (0..1000).map(|_| unique("mvtst")).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "unique() repeated a name");
    assert!(names.iter().all(|n| n.len() <= 15), "{:?}", names.last());
}

#[test]
fn a_skip_passes_loudly_except_in_ci() {
    use SkipVerdict::{Fail, Run, Skip};
    let eperm = Some("Operation not permitted (os error 1)");
    // Root runs; root without AF_XDP runs what needs only root.
    for ci in [false, true] {
        assert_eq!(skip_verdict(Needs::Root, 0, None, ci), Run);
        assert_eq!(skip_verdict(Needs::RootAndXdp, 0, None, ci), Run);
        assert_eq!(skip_verdict(Needs::Root, 0, eperm, ci), Run);
    }
    // Anything missing skips, and in CI fails, with the same reason.
    let cases = [
        (
            Needs::Root,
            1000,
            None,
            "needs root (running as uid 1000, not root)",
        ),
        (
            Needs::RootAndXdp,
            65534,
            None,
            "needs root and AF_XDP (running as uid 65534, not root)",
        ),
        (
            Needs::RootAndXdp,
            0,
            eperm,
            "needs root and AF_XDP (socket(AF_XDP) failed: Operation not permitted (os error 1))",
        ),
    ];
    for (needs, euid, af_xdp_error, reason) in cases {
        assert_eq!(
            skip_verdict(needs, euid, af_xdp_error, false),
            Skip(reason.to_string())
        );
        assert_eq!(
            skip_verdict(needs, euid, af_xdp_error, true),
            Fail(reason.to_string())
        );
    }
}

#[test]
fn prometheus_text_is_parsed() {
    let text = "# HELP mvdp_drops_total Dropped frames.\n\
                # TYPE mvdp_drops_total counter\n\
                mvdp_drops_total{reason=\"no_endpoint\"} 3\n\
                mvdp_drops_total{reason=\"spoofed\"} 4 1700000000000\n\
                mvdp_endpoint_rx_packets_total{endpoint=\"c1\",network=\"lan\"} 12\n\
                mvdp_up 1\n";
    let samples = parse_prometheus(text);
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[3].name, "mvdp_up");
    assert_eq!(samples[3].value, 1.0);
    assert_eq!(
        samples[2].labels,
        vec![
            ("endpoint".to_string(), "c1".to_string()),
            ("network".to_string(), "lan".to_string())
        ]
    );
    assert_eq!(sum_samples(&samples, "mvdp_drops_total", &[]), Some(7.0));
    assert_eq!(
        sum_samples(&samples, "mvdp_drops_total", &[("reason", "spoofed")]),
        Some(4.0)
    );
    assert_eq!(sum_samples(&samples, "mvdp_nothing", &[]), None);
}

#[test]
fn rig_namespaces_links_and_traffic() {
    if !require_privileges() {
        return;
    }
    let names;
    {
        let rig = Rig::new(1, 2);
        names = rig.namespace_names();
        for name in &names {
            assert!(
                Path::new("/var/run/netns").join(name).exists(),
                "{name} missing"
            );
        }

        // Topology.
        assert!(link_exists(&rig.host, PARENT_IF));
        assert!(link_exists(&rig.wire, WIRE_IF));
        assert!(!link_exists(&rig.host, WIRE_IF));
        assert!(list_links(&rig.host).contains(&PARENT_IF.to_string()));
        assert_eq!(list_links(&rig.container(1).ns), vec!["lo".to_string()]);
        assert!(!xdp_attached(&rig.host, PARENT_IF));
        let details = rig.host.ip(&["-d", "link", "show", "dev", PARENT_IF]);
        assert!(details.contains("numrxqueues 2"), "{details}");
        let offloads = rig.wire.run(&["ethtool", "-k", WIRE_IF]);
        assert!(offloads.contains("tx-checksumming: off"), "{offloads}");
        for ns in [&rig.host, &rig.wire, &rig.container(1).ns] {
            assert_eq!(ns.sysctl("net/ipv6/conf/all/disable_ipv6"), "1");
            assert_eq!(ns.sysctl("net/ipv6/conf/default/disable_ipv6"), "1");
        }
        assert!(rig.host.ip(&["-6", "addr"]).trim().is_empty());

        // Config for the daemon.
        let toml_text = rig.config_toml("veth", "xdp_mode = \"skb\"\n[workers]\nbatch = 32");
        let config: toml::Table = toml_text.parse().expect("config_toml is TOML");
        assert_eq!(config["parent"]["interface"].as_str(), Some(PARENT_IF));
        assert_eq!(config["parent"]["xdp_mode"].as_str(), Some("skb"));
        assert_eq!(config["workers"]["batch"].as_integer(), Some(32));
        assert_eq!(
            config["metrics"]["listen"].as_str(),
            Some(rig.metrics_addr.to_string().as_str())
        );
        let endpoints = config["endpoint"].as_array().expect("[[endpoint]]");
        assert_eq!(endpoints.len(), 1);
        assert_eq!(
            endpoints[0]["netns"].as_str(),
            Some(rig.container(1).ns.name())
        );
        assert_eq!(endpoints[0]["ip"].as_str(), Some("10.77.0.11"));
        assert_eq!(rig.container(1).mac(), [0x02, 0x42, 10, 77, 0, 11]);

        // in_ns really runs in the namespace.
        let links_seen = rig
            .wire
            .in_ns(|| Path::new("/proc/self/net/dev").exists() && nametoindex(WIRE_IF) != 0);
        assert!(links_seen);
        assert_eq!(nametoindex(WIRE_IF), 0, "w0 leaked into the test's netns");

        // Traffic between the wire host and the host's own address.
        assert!(ping(&rig.wire, HOST_IP, 3));
        assert!(ping(&rig.container(1).ns, std::net::Ipv4Addr::LOCALHOST, 1));
        tcp_transfer(&rig.host, HOST_IP, &rig.wire, 4 << 20).expect("TCP wire -> host");
        tcp_transfer(&rig.wire, WIRE_IP, &rig.host, 1 << 20).expect("TCP host -> wire");
        assert_eq!(udp_exchange(&rig.host, HOST_IP, &rig.wire, 200), (200, 200));
        assert_eq!(udp_exchange(&rig.wire, WIRE_IP, &rig.host, 50), (50, 50));

        // A raw broadcast from the wire arrives on p0 exactly once.
        let tag = unique("bcast").into_bytes();
        let frame = eth_frame(
            BROADCAST,
            link_mac(&rig.wire, WIRE_IF),
            ETHERTYPE_TEST,
            &tag,
        );
        let on_p0 = Capture::start(&rig.host, PARENT_IF);
        let on_w0 = Capture::start(&rig.wire, WIRE_IF);
        send_raw(&rig.wire, WIRE_IF, &frame);
        let got = on_p0.finish_matching(Duration::from_millis(300), |f| f == frame.as_slice());
        assert_eq!(got.len(), 1, "broadcast seen {} times on p0", got.len());
        // The sender's own copy is outgoing, which Capture::start leaves out.
        let echoed = on_w0.finish_matching(Duration::ZERO, |f| f == frame.as_slice());
        assert!(echoed.is_empty());
        let none = capture(&rig.host, PARENT_IF, Duration::from_millis(100), |f| {
            f == frame.as_slice()
        });
        assert!(none.is_empty(), "a frame sent earlier was captured later");

        xdp_detection(&rig);
        metrics_scrape(&rig);
    }
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for name in &names {
        assert!(
            !Path::new("/var/run/netns").join(name).exists(),
            "{name} left behind"
        );
        assert!(
            !left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} still listed"
        );
    }
}

/// Attaches a trivial XDP_PASS program in generic mode and checks that
/// `xdp_attached` notices; skipped (loudly) if clang or ip cannot do it.
fn xdp_detection(rig: &Rig) {
    let dir = std::env::temp_dir();
    let base = dir.join(unique("xdppass-"));
    let src = base.with_extension("c");
    let obj = base.with_extension("o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int pass(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let built = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&src);
    if !built {
        eprintln!("NOTE: clang cannot build BPF here; xdp_attached not exercised");
        return;
    }
    let obj_path = obj.to_str().unwrap();
    let attach = rig.host.ip_output(&[
        "link",
        "set",
        "dev",
        PARENT_IF,
        "xdpgeneric",
        "obj",
        obj_path,
        "sec",
        "xdp",
    ]);
    let _ = std::fs::remove_file(&obj);
    if !attach.status.success() {
        eprintln!(
            "NOTE: ip cannot attach XDP here ({}); xdp_attached not exercised",
            String::from_utf8_lossy(&attach.stderr).trim()
        );
        return;
    }
    assert!(xdp_attached(&rig.host, PARENT_IF));
    // The wire still reaches the host through a passing program.
    assert!(ping(&rig.wire, HOST_IP, 1));
    rig.host
        .ip(&["link", "set", "dev", PARENT_IF, "xdpgeneric", "off"]);
    assert!(!xdp_attached(&rig.host, PARENT_IF));
}

/// A stand-in exporter in the host namespace answers the scrape a `Daemon`
/// would make.
fn metrics_scrape(rig: &Rig) {
    use std::io::{Read, Write};
    let listener = rig
        .host
        .in_ns(|| std::net::TcpListener::bind(rig.metrics_addr))
        .expect("bind the stand-in exporter");
    let exporter = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("scrape connection");
        // Read the whole request: closing with unread data would reset.
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).expect("read request");
            assert!(n > 0, "request ended early: {request:?}");
            request.extend_from_slice(&buf[..n]);
        }
        let body = "# TYPE mvdp_up gauge\nmvdp_up 1\nmvdp_drops_total{reason=\"no_endpoint\"} 2\n";
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}"
        )
        .expect("write answer");
        String::from_utf8_lossy(&request).into_owned()
    });
    let text = scrape_metrics(&rig.host.path(), rig.metrics_addr).expect("scrape");
    let request = exporter.join().unwrap();
    assert!(
        request.starts_with("GET /metrics HTTP/1.0\r\n"),
        "{request:?}"
    );
    let samples = parse_prometheus(&text);
    assert_eq!(
        sum_samples(&samples, "mvdp_drops_total", &[("reason", "no_endpoint")]),
        Some(2.0)
    );
    // Nothing listens any more: a scrape fails instead of hanging.
    assert!(scrape_metrics(&rig.host.path(), rig.metrics_addr).is_err());
}

fn nametoindex(ifname: &str) -> u32 {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: `name` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}
