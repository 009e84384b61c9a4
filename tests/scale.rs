//! Many endpoints on one daemon (issue 10, part 4): endpoints added one by
//! one over the control socket, several to a namespace (distinct ifnames),
//! frames from the wire reach a sample of them, the counters add up, and
//! the daemon stops leaving nothing behind. The 4096-endpoint figures are
//! `mvdp bench --scale`'s (adding 4096 endpoints takes minutes); here, as
//! many as the rig's /24 holds, and the limit itself through `mvdp check`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mvdp::control::api::{call, Request};

/// Endpoints the test adds: the rig's /24 holds 250 addresses.
const ENDPOINTS: usize = 200;
/// Endpoints per container namespace (eth0, eth1, ...).
const PER_NETNS: usize = 50;
/// Frames sent to each sampled endpoint.
const FRAMES: usize = 20;
/// An ethertype no stack answers (IEEE local experimental).
const ETHERTYPE: u16 = 0x88b5;

/// RX packets of every `eth*` interface in `ns`, by ifname.
fn rx_packets(ns: &Netns) -> std::collections::HashMap<String, u64> {
    let text = ns
        .in_ns(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
        .expect("read /proc/net/dev");
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let rx = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((name.trim().to_string(), rx))
        })
        .collect()
}

#[test]
fn two_hundred_endpoints_added_at_run_time_all_take_frames() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("scale", ENDPOINTS / PER_NETNS, 1);
    let mut d = Daemon::start(&rig, &rig.base_toml(""));
    d.wait_ready(Duration::from_secs(20));

    // (name, netns index, ifname, MAC) of each endpoint, in order.
    let mut made = Vec::new();
    let mut add_ms = Vec::new();
    for i in 0..ENDPOINTS {
        let c = &rig.containers[i / PER_NETNS];
        let ifname = format!("eth{}", i % PER_NETNS);
        let name = format!("s{i}");
        let request = Request::EndpointAdd {
            endpoint: mvdp::config::EndpointSpec {
                name: name.clone(),
                network: NETWORK.into(),
                kind: Some("veth".into()),
                netns: Some(c.ns.name().into()),
                ifname: Some(ifname.clone()),
                ..Default::default()
            },
        };
        let t = Instant::now();
        let info = call(&rig.control_socket, &request)
            .unwrap_or_else(|e| panic!("adding {name}: {e}\n{}", d.log()));
        add_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let mac: mvdp::wire::MacAddr = info["mac"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .expect("the answer names the MAC");
        made.push((name, i / PER_NETNS, ifname, mac));
    }
    let quarter = |k: usize| {
        let mut v = add_ms[k * ENDPOINTS / 4..(k + 1) * ENDPOINTS / 4].to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!(
        "add median, first quarter {:.1} ms, last quarter {:.1} ms",
        quarter(0),
        quarter(3)
    );
    assert_eq!(endpoint_list(&rig).len(), ENDPOINTS);
    assert_eq!(
        d.metric_sum("mvdp_fdb_entries", &[]),
        Some(ENDPOINTS as f64),
        "{}",
        d.metrics()
    );

    // Frames from the wire to a sample: the first, the last, and a spread
    // over every namespace.
    let sample: Vec<usize> = (0..ENDPOINTS).step_by(23).chain([ENDPOINTS - 1]).collect();
    let before: Vec<_> = rig.containers.iter().map(|c| rx_packets(&c.ns)).collect();
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    for &i in &sample {
        let frame = eth_frame(made[i].3 .0, wire_mac, ETHERTYPE, &[0u8; 46]);
        for _ in 0..FRAMES {
            send_raw(&rig.wire, WIRE_IF, &frame);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: Vec<_> = rig.containers.iter().map(|c| rx_packets(&c.ns)).collect();
        let short: Vec<String> = sample
            .iter()
            .filter_map(|&i| {
                let (name, k, ifname, _) = &made[i];
                let got = now[*k].get(ifname).copied().unwrap_or(0)
                    - before[*k].get(ifname).copied().unwrap_or(0);
                (got < FRAMES as u64).then(|| format!("{name}: {got}"))
            })
            .collect();
        if short.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sampled endpoints short of {FRAMES} frames: {short:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Both tiers count into the same per-endpoint series, and every frame
    // that entered is accounted for.
    let samples = settled(&d);
    for &i in &sample {
        let name = &made[i].0;
        let tx = value(
            &samples,
            "mvdp_endpoint_tx_packets_total",
            &[("endpoint", name)],
        );
        assert!(
            tx >= FRAMES as f64,
            "{name}: mvdp counted {tx} frames to it, {FRAMES} arrived"
        );
    }
    assert_accounting(&samples);

    let t = Instant::now();
    assert!(d.stop().success(), "{}", d.log());
    eprintln!(
        "{ENDPOINTS} endpoints stopped in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    rig.assert_host_clean();
    for c in &rig.containers {
        let left: Vec<String> = list_links(&c.ns)
            .into_iter()
            .filter(|l| l != "lo")
            .collect();
        assert!(left.is_empty(), "{} still holds {left:?}", c.ns.name());
    }
}

/// The limit: 4096 container endpoints, host shims on top; one more is
/// refused with the key and the limit named, and `mvdp check` exits 78.
#[test]
fn a_4097th_endpoint_is_refused_naming_the_limit() {
    let endpoints = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "[[endpoint]]\nname = \"e{i}\"\nnetwork = \"big\"\nnetns = \"scale-n{i}\"\n"
                )
            })
            .collect()
    };
    let config = |n: usize| {
        format!(
            "[parent]\ninterface = \"eth0\"\n\
             [[network]]\nname = \"big\"\nsubnet = \"10.0.0.0/16\"\nhost_shim = \"10.0.255.250\"\n{}",
            endpoints(n)
        )
    };
    // `mvdp check` on a config: its exit code and stderr.
    let check = |toml: &str| {
        let file = TempConfig::new(toml);
        let out = mvdp_command()
            .args(["check", "--config"])
            .arg(file.path())
            .output()
            .expect("run mvdp check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check(&config(4097));
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("endpoint") && stderr.contains("at most 4096"),
        "{stderr}"
    );
    // 4096 and the shim pass validation (the namespaces do not exist here,
    // which `mvdp check` reports at a namespace key, not at the limit).
    let (_, stderr) = check(&config(4096));
    assert!(!stderr.contains("at most"), "{stderr}");
}
