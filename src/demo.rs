//! `mvdp demo`: a simulated LAN in network namespaces, for a new user with no spare NIC.
//!
//! ```text
//!  ns wire: w0 10.77.0.1 (the "LAN" and a host on it)
//!      │ veth (stands in for the cable)
//!  ns host: p0 10.77.0.254 (the parent NIC; mvdp runs here)
//!      ├── mvdp endpoint ──► ns c1: eth0 10.77.0.11
//!      ├── mvdp endpoint ──► ns c2: eth0 10.77.0.12
//!      └── ...
//! ```
//! The daemon is this same binary (`mvdp run`) started inside the host
//! namespace, so the demo exercises exactly what an operator runs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cli::DemoKind;
use crate::control::signals::block_termination;
use crate::sim::{sample, DaemonChild, Lan, HOST_ADDR, WIRE_HOST};

const METRICS: &str = "127.0.0.1:9469";

fn ping(ns: &str, to: &str, count: u32) -> (u32, u32) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            to,
        ])
        .output();
    let Ok(out) = out else { return (count, 0) };
    let text = String::from_utf8_lossy(&out.stdout);
    let received = text
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (count, received)
}

fn counts_table(text: &str, n: usize) -> String {
    let mut s = String::from(
        "    endpoint   rx_packets   tx_packets   (rx = from the container, tx = to it)\n",
    );
    for i in 1..=n {
        let labels = format!("{{endpoint=\"c{i}\",network=\"lan\"}}");
        let rx = sample(text, &format!("mvdp_endpoint_rx_packets_total{labels}")).unwrap_or(0.0);
        let tx = sample(text, &format!("mvdp_endpoint_tx_packets_total{labels}")).unwrap_or(0.0);
        s += &format!("    c{i:<9} {rx:>10} {tx:>12}\n");
    }
    s
}

/// Runs the demo.
pub fn run(n: usize, kind: DemoKind, keep: bool) -> Result<()> {
    if unsafe_geteuid() != 0 {
        bail!("the demo creates network namespaces and attaches XDP: run it as root");
    }
    let signals = block_termination()?;
    let tag = format!("mvdp-demo-{}", std::process::id());
    println!("mvdp demo: building a simulated LAN ({n} containers, {kind:?} endpoints) in namespaces {tag}-*");
    let lan = Lan::build(&tag, n, 1)?;
    let kind_name = match kind {
        DemoKind::Veth => "veth",
        DemoKind::Tap => "tap",
    };
    let metrics: SocketAddr = METRICS.parse().expect("address");
    let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let mut daemon = DaemonChild::start(
        &lan.host,
        &lan.config(kind_name, metrics, ""),
        metrics,
        &log_level,
    )?;
    println!(
        "mvdp demo: data plane starting (pid {}) on p0 in {}",
        daemon.pid(),
        lan.host
    );
    daemon.wait_ready(Duration::from_secs(20))?;
    println!(
        "mvdp demo: metrics at http://{METRICS}/metrics inside the host namespace:\n    ip netns exec {} curl -s http://{METRICS}/metrics",
        lan.host
    );

    let mut failures = 0;
    println!("\n1) the wire host ({WIRE_HOST}) pings every container through mvdp");
    for i in 0..n {
        let to = Lan::container_ip(i).to_string();
        let (sent, got) = ping(&lan.wire, &to, 3);
        println!("    wire -> c{} ({to}): {got}/{sent} replies", i + 1);
        failures += u32::from(got == 0);
    }
    if let Ok(t) = daemon.scrape() {
        print!("{}", counts_table(&t, n));
    }
    println!("\n2) each container pings the next one (bridge mode: switched locally by mvdp)");
    for i in 0..n {
        let j = (i + 1) % n;
        let to = Lan::container_ip(j).to_string();
        let (sent, got) = ping(&lan.containers[i], &to, 3);
        println!("    c{} -> c{} ({to}): {got}/{sent} replies", i + 1, j + 1);
        failures += u32::from(got == 0);
    }
    println!("\n3) the host's own address on the parent still answers (not an endpoint: passed to the host stack)");
    let (sent, got) = ping(&lan.wire, &HOST_ADDR.to_string(), 3);
    println!("    wire -> host ({HOST_ADDR}): {got}/{sent} replies");
    failures += u32::from(got == 0);

    let text = daemon.scrape()?;
    println!("\nper-endpoint counters:\n{}", counts_table(&text, n));
    let drops: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("mvdp_drops_total") && !l.trim_end().ends_with(" 0"))
        .map(|l| format!("    {l}"))
        .collect();
    println!(
        "drops:\n{}",
        if drops.is_empty() {
            "    none".into()
        } else {
            drops.join("\n")
        }
    );

    if keep {
        println!("\n--keep: the LAN and mvdp stay up; try e.g.\n    ip netns exec {} ping 10.77.0.11\nCtrl-C to tear down.", lan.wire);
        let mut last = Instant::now();
        while signals.wait(Duration::from_millis(500))?.is_none() {
            if daemon.exited()? {
                break;
            }
            if last.elapsed() >= Duration::from_secs(5) {
                if let Ok(t) = daemon.scrape() {
                    print!("{}", counts_table(&t, n));
                }
                last = Instant::now();
            }
        }
    }

    println!("\nmvdp demo: stopping the data plane and removing the LAN");
    let status = daemon.stop()?;
    drop(daemon);
    drop(lan);
    if !status.success() {
        bail!("mvdp run exited with {status}");
    }
    if failures > 0 {
        bail!("{failures} check(s) got no replies");
    }
    println!("mvdp demo: done; everything it created is gone");
    Ok(())
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() }
}
