//! A real Prometheus (Debian's `prometheus`) with the shipped
//! `config/prometheus.yml`, alert rules included, scrapes a running mvdp;
//! the per-endpoint rates it computes match the traffic sent within 5 %.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus.yml");
/// Where the shipped config scrapes: mvdp's default listen address.
const DEFAULT_LISTEN: &str = "127.0.0.1:9469";
const PROMETHEUS_PORT: u16 = 9090;
const RATE: u64 = 2000;

/// The Prometheus server, killed (it is our child) and its data removed on drop.
struct Prometheus {
    child: Child,
    data: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_file(self.data.with_extension("log"));
    }
}

/// `GET path` on Prometheus inside `ns`; the body.
fn get(ns: &Netns, path: &str) -> Option<String> {
    ns.in_ns(|| {
        let mut s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], PROMETHEUS_PORT).into(),
            Duration::from_secs(1),
        )
        .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text.split_once("\r\n\r\n")?.1.to_string())
    })
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query with one result, if it has one.
fn query(ns: &Netns, q: &str) -> Option<f64> {
    let body = get(ns, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_sees_the_endpoint_rates_that_were_sent() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let c1 = rig.container(1);
    // The rig's namespace is mvdp's own: the default address is free there.
    let toml = rig
        .config_toml("veth", "")
        .replace(&rig.metrics_addr.to_string(), DEFAULT_LISTEN);
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));

    let data = std::env::temp_dir().join(unique("mvdp-prom-"));
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", rig.host.name(), "prometheus"])
        .arg(format!("--config.file={SHIPPED}"))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; `make deps` installs it)");
    let prom = Prometheus { child, data };
    let prom_log = || std::fs::read_to_string(prom.data.with_extension("log")).unwrap_or_default();

    // Prometheus is up, scrapes mvdp (`up` is 1) and loaded the alert rules.
    assert!(
        wait_until(Duration::from_secs(30), || query(
            &rig.host,
            "up{job=\"mvdp\"}"
        ) == Some(1.0)),
        "Prometheus never scraped mvdp\n{}",
        prom_log()
    );
    let rules = get(&rig.host, "/api/v1/rules").unwrap_or_default();
    assert!(
        rules.contains("MvdpWorkerDown"),
        "alert rules not loaded: {rules}"
    );

    let stream = UdpStream::start(&rig.wire, c1, RATE);
    // A 20 s window holds four scrapes (every 5 s); the first windows reach
    // back before the stream started, so wait for one that lies inside it.
    let window = "mvdp_endpoint_tx_packets_total{endpoint=\"c1\"}[20s]";
    let mut measured = None;
    let ok = wait_until(Duration::from_secs(60), || {
        measured = query(&rig.host, &format!("rate({window})"));
        measured.is_some_and(|r| (r - RATE as f64).abs() <= 0.05 * RATE as f64)
    });
    let (sent, received, _) = stream.finish();
    assert!(
        ok,
        "Prometheus's rate of c1's delivered frames is {measured:?}, sent {RATE}/s \
         ({sent} sent, {received} received)"
    );
    let idle = query(
        &rig.host,
        "rate(mvdp_endpoint_tx_packets_total{endpoint=\"c2\"}[20s])",
    )
    .unwrap_or(f64::NAN);
    assert!(
        idle < 0.05 * RATE as f64,
        "c2, sent nothing, shows {idle}/s"
    );
    drop(prom);
    assert!(d.stop().success(), "{}", d.log());
}
