//! What users run on the rig: TCP bulk with Debian's `iperf3`, UDP
//! request/response latency with Debian's `sockperf`, and a CPU hog to make
//! a core busy. Every process is started here, pinned to a CPU, and ended by
//! its PID (a [`Spawned`] guard), never by name.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::control::netns::in_netns;
use crate::sim::Lan;

/// The TCP port of the bench's iperf3 server.
const IPERF_PORT: u16 = 5201;
/// The UDP port of the bench's sockperf server.
const SOCKPERF_PORT: u16 = 11111;

/// Tools the bench runs and the Debian packages that have them.
pub const TOOLS: [(&str, &str, &str); 5] = [
    ("ip", "-V", "iproute2"),
    ("ethtool", "--version", "ethtool"),
    ("trafgen", "-v", "netsniff-ng"),
    ("iperf3", "--version", "iperf3"),
    ("sockperf", "--version", "sockperf"),
];

/// Fails with the Debian package to install if a tool is missing.
pub fn check_tools(tools: &[&str]) -> Result<()> {
    for (tool, arg, package) in TOOLS.iter().filter(|(t, ..)| tools.contains(t)) {
        let found = Command::new(tool)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .is_ok();
        if !found {
            bail!(
                "{tool} not found: install the Debian package {package} (`make deps` installs every tool the bench needs)"
            );
        }
    }
    Ok(())
}

/// `ip netns exec NS ARGS...`, pinned to `cpu` (the pinning is inherited
/// through both execs, and `ip netns exec` execs the tool in its own PID).
fn in_ns_pinned(ns: &str, cpu: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    pin_command(&mut cmd, cpu);
    cmd.stdin(Stdio::null());
    cmd
}

/// Makes `cmd`'s process start pinned to `cpu`.
fn pin_command(cmd: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu < 8 * std::mem::size_of::<libc::cpu_set_t>() {
        // SAFETY: CPU_SET writes one bit of a live set, within its size (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the closure only calls sched_setaffinity(2), a plain syscall that
    // is async-signal-safe, on a set built before fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Best effort: a CPU that is not there leaves the process unpinned.
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}

/// A process the bench started; dropping it ends it by PID (SIGTERM, then
/// SIGKILL after two seconds) and reaps it.
pub struct Spawned {
    child: Child,
    what: String,
}

impl Spawned {
    fn spawn(mut cmd: Command, what: &str) -> Result<Spawned> {
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Spawned {
            child,
            what: what.to_string(),
        })
    }

    /// Fails if the process has already exited.
    fn check_running(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!("{} exited early ({st})", self.what);
        }
        Ok(())
    }

    /// Waits for the process to exit on its own up to `timeout`, then ends it;
    /// returns its output (read as it comes, so a full pipe never blocks it).
    fn finish(mut self, timeout: Duration) -> Result<Output> {
        fn drain(
            pipe: Option<impl std::io::Read + Send + 'static>,
        ) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        }
        let stdout = drain(self.child.stdout.take());
        let stderr = drain(self.child.stderr.take());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Ok(Output {
            status: self.child.wait()?,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something listens on `port` in namespace `ns` (`proto`
/// "tcp" or "udp", IPv4), reading /proc inside the namespace.
fn wait_listening(ns: &str, proto: &str, port: u16, server: &mut Spawned) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = format!("/proc/thread-self/net/{proto}");
    loop {
        let table = in_netns(&Lan::path(ns), || std::fs::read_to_string(&file))??;
        if listening(&table, proto, port) {
            return Ok(());
        }
        server.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on {proto} port {port} within 10 s",
                server.what
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether /proc/net/{tcp,udp} text shows a socket bound to `port`
/// (listening, for TCP).
fn listening(table: &str, proto: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && (proto == "udp" || f[3] == "0A")
    })
}

/// One iperf3 run.
#[derive(Debug, Clone, Copy)]
pub struct TcpRun {
    /// Goodput at the receiver, Gbit/s.
    pub gbps: f64,
    /// TCP retransmissions at the sender.
    pub retransmits: u64,
}

/// iperf3, one TCP stream for `secs` seconds between a server in
/// `server_ns` at `server_ip` and a client in `client_ns`; `reverse` makes
/// the server send (`-R`). Both ends run on `cpu`.
pub fn iperf3(
    client_ns: &str,
    server_ns: &str,
    server_ip: Ipv4Addr,
    reverse: bool,
    secs: u32,
    cpu: usize,
) -> Result<TcpRun> {
    let ip = server_ip.to_string();
    let port = IPERF_PORT.to_string();
    let mut server = in_ns_pinned(
        server_ns,
        cpu,
        &["iperf3", "-s", "-1", "-B", &ip, "-p", &port],
    );
    server.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = Spawned::spawn(server, "iperf3 server (Debian package iperf3)")?;
    wait_listening(server_ns, "tcp", IPERF_PORT, &mut server)?;

    let t = secs.max(1).to_string();
    let mut args = vec!["iperf3", "-c", &ip, "-p", &port, "-t", &t, "-J"];
    if reverse {
        args.push("-R");
    }
    let mut client = in_ns_pinned(client_ns, cpu, &args);
    client.stdout(Stdio::piped()).stderr(Stdio::piped());
    let client = Spawned::spawn(client, "iperf3 client (Debian package iperf3)")?;
    let out = client.finish(Duration::from_secs(u64::from(secs) + 20))?;
    drop(server);
    parse_iperf3(&String::from_utf8_lossy(&out.stdout)).with_context(|| {
        format!(
            "iperf3 client to {ip} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Goodput and retransmissions from iperf3's `-J` output.
fn parse_iperf3(json: &str) -> Result<TcpRun> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3's output is not JSON")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let end = &v["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3's JSON has no end.sum_received.bits_per_second")?;
    Ok(TcpRun {
        gbps: bps / 1e9,
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    })
}

/// Round-trip latency percentiles of one sockperf run, µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatencyRun {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Round trips measured.
    pub observations: u64,
}

/// sockperf UDP ping-pong (64-byte messages, back to back, full round trip)
/// for `secs` seconds from `client_ns` to a server in `server_ns` at
/// `server_ip`; both ends on `cpu`.
pub fn sockperf(
    client_ns: &str,
    server_ns: &str,
    server_ip: Ipv4Addr,
    secs: u32,
    cpu: usize,
) -> Result<LatencyRun> {
    let ip = server_ip.to_string();
    let port = SOCKPERF_PORT.to_string();
    let mut server = in_ns_pinned(
        server_ns,
        cpu,
        &["sockperf", "server", "-i", &ip, "-p", &port],
    );
    server.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = Spawned::spawn(server, "sockperf server (Debian package sockperf)")?;
    wait_listening(server_ns, "udp", SOCKPERF_PORT, &mut server)?;

    let t = secs.max(1).to_string();
    let mut client = in_ns_pinned(
        client_ns,
        cpu,
        &[
            "sockperf",
            "ping-pong",
            "-i",
            &ip,
            "-p",
            &port,
            "-t",
            &t,
            "-m",
            "64",
            "--full-rtt",
        ],
    );
    client.stdout(Stdio::piped()).stderr(Stdio::piped());
    let client = Spawned::spawn(client, "sockperf client (Debian package sockperf)")?;
    let out = client.finish(Duration::from_secs(u64::from(secs) + 20))?;
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    parse_sockperf(&text).with_context(|| {
        format!(
            "sockperf ping-pong to {ip} ({}): {}{}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Percentiles from sockperf's summary ("---> percentile 99.900 =   81.009").
fn parse_sockperf(text: &str) -> Result<LatencyRun> {
    let mut run = LatencyRun::default();
    let (mut p50, mut p99, mut p999) = (None, None, None);
    for line in text.lines() {
        if let Some(rest) = line.split("---> percentile ").nth(1) {
            let Some((pct, value)) = rest.split_once('=') else {
                continue;
            };
            let value: Option<f64> = value.trim().parse().ok();
            match pct.trim() {
                "50.000" => p50 = value,
                "99.000" => p99 = value,
                "99.900" => p999 = value,
                _ => {}
            }
        } else if let Some(rest) = line.split("Total ").nth(1) {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                run.observations = n;
            }
        }
    }
    match (p50, p99, p999) {
        (Some(a), Some(b), Some(c)) => {
            run.p50_us = a;
            run.p99_us = b;
            run.p999_us = c;
            Ok(run)
        }
        _ => bail!("no percentiles in sockperf's output"),
    }
}

/// A busy loop pinned to `cpu` (a shell spinning on `:`); ends when dropped.
pub fn cpu_hog(cpu: usize) -> Result<Spawned> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "while :; do :; done"]);
    pin_command(&mut cmd, cpu);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut hog = Spawned::spawn(cmd, &format!("a CPU hog on CPU {cpu}"))?;
    hog.check_running()?;
    Ok(hog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_summary_parses() {
        let text = "sockperf: \u{1b}[2;35mTotal 9864 observations\u{1b}[0m; each percentile contains 98.64 observations\n\
            sockperf: ---> <MAX> observation = 1878.898\n\
            sockperf: ---> percentile 99.999 = 1878.898\n\
            sockperf: ---> percentile 99.990 = 1071.420\n\
            sockperf: ---> percentile 99.900 =  132.616\n\
            sockperf: ---> percentile 99.000 =   87.680\n\
            sockperf: ---> percentile 90.000 =   66.949\n\
            sockperf: ---> percentile 50.000 =   52.688\n\
            sockperf: ---> <MIN> observation =   17.465\n";
        let r = parse_sockperf(text).expect("parses");
        assert_eq!(
            (r.p50_us, r.p99_us, r.p999_us, r.observations),
            (52.688, 87.68, 132.616, 9864)
        );
        assert!(parse_sockperf("sockperf: ERROR").is_err());
    }

    #[test]
    fn iperf3_json_parses() {
        let json = r#"{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":2.1e9,"retransmits":7},
            "sum_received":{"bits_per_second":2.0e9}}}"#;
        let r = parse_iperf3(json).expect("parses");
        assert_eq!((r.gbps, r.retransmits), (2.0, 7));
        let err = parse_iperf3(r#"{"start":{},"error":"unable to connect to server"}"#);
        assert!(format!("{:#}", err.unwrap_err()).contains("unable to connect"));
    }

    #[test]
    fn proc_net_tables_show_listeners() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0B004D0A:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n";
        assert!(listening(tcp, "tcp", 5201));
        assert!(!listening(tcp, "tcp", 5202));
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  \
            1: 0B004D0A:2B67 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n";
        assert!(listening(udp, "udp", 11111));
    }
}
