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

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::DemoKind;
use crate::control::netns::in_netns;
use crate::control::signals::block_termination;

const SUBNET_PREFIX: &str = "10.77.0";
const WIRE_HOST: &str = "10.77.0.1";
const HOST_ADDR: &str = "10.77.0.254";
const METRICS: &str = "127.0.0.1:9469";

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces of the simulated LAN; dropping it deletes them.
struct Lan {
    wire: String,
    host: String,
    containers: Vec<String>,
}

impl Lan {
    fn build(tag: &str, n: usize) -> Result<Lan> {
        let lan = Lan {
            wire: format!("{tag}-wire"),
            host: format!("{tag}-host"),
            containers: (1..=n).map(|i| format!("{tag}-c{i}")).collect(),
        };
        for ns in lan.all() {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            for key in ["all", "default"] {
                let _ = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                    ])
                    .status();
            }
        }
        ip(&[
            "-n", &lan.host, "link", "add", "p0", "type", "veth", "peer", "name", "w0", "netns",
            &lan.wire,
        ])?;
        ip(&[
            "-n",
            &lan.host,
            "addr",
            "add",
            &format!("{HOST_ADDR}/24"),
            "dev",
            "p0",
        ])?;
        ip(&["-n", &lan.host, "link", "set", "p0", "up"])?;
        ip(&[
            "-n",
            &lan.wire,
            "addr",
            "add",
            &format!("{WIRE_HOST}/24"),
            "dev",
            "w0",
        ])?;
        ip(&["-n", &lan.wire, "link", "set", "w0", "up"])?;
        // A real wire carries finished checksums; veth would leave them to offload.
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &lan.wire, "ethtool", "-K", "w0", "tx", "off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(lan)
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.wire, &self.host]
            .into_iter()
            .chain(self.containers.iter())
    }

    fn config(&self, kind: DemoKind) -> String {
        let kind = match kind {
            DemoKind::Veth => "veth",
            DemoKind::Tap => "tap",
        };
        let mut s = format!(
            "[parent]\ninterface = \"p0\"\n\n[metrics]\nlisten = \"{METRICS}\"\n\n\
             [[network]]\nname = \"lan\"\nmode = \"bridge\"\nsubnet = \"{SUBNET_PREFIX}.0/24\"\ngateway = \"{WIRE_HOST}\"\naux_addresses = [\"{HOST_ADDR}\"]\n"
        );
        for (i, ns) in self.containers.iter().enumerate() {
            s += &format!(
                "\n[[endpoint]]\nname = \"c{}\"\nnetwork = \"lan\"\nkind = \"{kind}\"\nnetns = \"{ns}\"\nip = \"{SUBNET_PREFIX}.{}\"\n",
                i + 1,
                11 + i
            );
        }
        s
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.all() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!(
                    "demo: could not delete netns {ns} ({e}); remove it with: ip netns del {ns}"
                );
            }
        }
    }
}

/// The daemon child; dropping it stops it with SIGTERM (then SIGKILL).
struct Daemon {
    child: Child,
    config: PathBuf,
}

impl Daemon {
    fn stop(&mut self) -> Result<std::process::ExitStatus> {
        if let Some(st) = self.child.try_wait()? {
            return Ok(st);
        }
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Fetches the metrics text from inside the host namespace.
fn scrape(host_ns: &str) -> Result<String> {
    let path = Path::new("/var/run/netns").join(host_ns);
    in_netns(&path, || -> std::io::Result<String> {
        let mut s =
            TcpStream::connect_timeout(&METRICS.parse().expect("addr"), Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    })?
    .map_err(Into::into)
}

/// Reads one sample from Prometheus text: `name{labels}` exactly as rendered.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

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
    let lan = Lan::build(&tag, n)?;
    let config = std::env::temp_dir().join(format!("{tag}.toml"));
    std::fs::write(&config, lan.config(kind))?;
    let exe = std::env::current_exe()?;
    let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let child = Command::new("ip")
        .args(["netns", "exec", &lan.host])
        .arg(&exe)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", log_level)
        .stdin(Stdio::null())
        .spawn()
        .context("starting mvdp run")?;
    let mut daemon = Daemon { child, config };
    println!(
        "mvdp demo: data plane starting (pid {}) on p0 in {}",
        daemon.child.id(),
        lan.host
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = daemon.child.try_wait()? {
            bail!("mvdp run exited early: {st}");
        }
        if scrape(&lan.host)
            .map(|t| t.contains("mvdp_fdb_entries"))
            .unwrap_or(false)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("mvdp run did not come up within 20 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "mvdp demo: metrics at http://{METRICS}/metrics inside the host namespace:\n    ip netns exec {} curl -s http://{METRICS}/metrics",
        lan.host
    );

    let mut failures = 0;
    println!("\n1) the wire host ({WIRE_HOST}) pings every container through mvdp");
    for i in 0..n {
        let to = format!("{SUBNET_PREFIX}.{}", 11 + i);
        let (sent, got) = ping(&lan.wire, &to, 3);
        println!("    wire -> c{} ({to}): {got}/{sent} replies", i + 1);
        failures += u32::from(got == 0);
    }
    if let Ok(t) = scrape(&lan.host) {
        print!("{}", counts_table(&t, n));
    }
    println!("\n2) each container pings the next one (bridge mode: switched locally by mvdp)");
    for i in 0..n {
        let j = (i + 1) % n;
        let to = format!("{SUBNET_PREFIX}.{}", 11 + j);
        let (sent, got) = ping(&lan.containers[i], &to, 3);
        println!("    c{} -> c{} ({to}): {got}/{sent} replies", i + 1, j + 1);
        failures += u32::from(got == 0);
    }
    println!("\n3) the host's own address on the parent still answers (not an endpoint: passed to the host stack)");
    let (sent, got) = ping(&lan.wire, HOST_ADDR, 3);
    println!("    wire -> host ({HOST_ADDR}): {got}/{sent} replies");
    failures += u32::from(got == 0);

    let text = scrape(&lan.host)?;
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
        println!("\n--keep: the LAN and mvdp stay up; try e.g.\n    ip netns exec {} ping {SUBNET_PREFIX}.11\nCtrl-C to tear down.", lan.wire);
        let mut last = Instant::now();
        while signals.wait(Duration::from_millis(500))?.is_none() {
            if daemon.child.try_wait()?.is_some() {
                break;
            }
            if last.elapsed() >= Duration::from_secs(5) {
                if let Ok(t) = scrape(&lan.host) {
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
