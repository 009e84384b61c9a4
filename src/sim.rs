//! A simulated LAN in network namespaces, shared by `mvdp demo` and `mvdp bench`.
//!
//! ```text
//!  ns <tag>-wire: w0 10.77.0.1 (the "LAN" and a host on it)
//!      │ veth (stands in for the cable)
//!  ns <tag>-host: p0 10.77.0.254 (the parent NIC; mvdp runs here)
//!      ├── endpoint ──► ns <tag>-c1: eth0 10.77.0.11
//!      └── ...
//! ```
//! Dropping a [`Lan`] deletes every namespace, and with them every interface
//! in them. The daemon is this same binary (`mvdp run`) started inside the
//! host namespace, so the demo and the bench exercise exactly what an
//! operator runs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::control::netns::in_netns;
use crate::wire::MacAddr;

/// The wire host's address (and the network's gateway).
pub const WIRE_HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The host's own address on the parent.
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
/// Prefix length of the LAN 10.77.0.0.
const PREFIX: u8 = 16;
/// Where namespaces named by `ip netns` live.
const NETNS_DIR: &str = "/var/run/netns";

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
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

/// Runs a command inside a namespace, quietly, ignoring failure (best-effort tuning).
fn exec_quiet(ns: &str, args: &[&str]) {
    let _ = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The namespaces of the simulated LAN; dropping it deletes them.
pub struct Lan {
    /// The wire namespace (holds `w0`).
    pub wire: String,
    /// The host namespace (holds the parent `p0`).
    pub host: String,
    /// One namespace per container.
    pub containers: Vec<String>,
}

impl Lan {
    /// Builds the namespaces and the wire: `w0` ↔ `p0` with `queues` RX/TX queues each.
    pub fn build(tag: &str, containers: usize, queues: u32) -> Result<Lan> {
        let lan = Lan {
            wire: format!("{tag}-wire"),
            host: format!("{tag}-host"),
            containers: (1..=containers).map(|i| format!("{tag}-c{i}")).collect(),
        };
        // From here on, Drop cleans up whatever was created.
        for ns in lan.all() {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            for key in ["all", "default"] {
                exec_quiet(
                    ns,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                    ],
                );
            }
        }
        let q = queues.max(1).to_string();
        ip(&[
            "-n",
            &lan.host,
            "link",
            "add",
            "p0",
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            "w0",
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &lan.wire,
        ])?;
        ip(&[
            "-n",
            &lan.host,
            "addr",
            "add",
            &format!("{HOST_ADDR}/{PREFIX}"),
            "dev",
            "p0",
        ])?;
        ip(&["-n", &lan.host, "link", "set", "p0", "up"])?;
        ip(&[
            "-n",
            &lan.wire,
            "addr",
            "add",
            &format!("{WIRE_HOST}/{PREFIX}"),
            "dev",
            "w0",
        ])?;
        ip(&["-n", &lan.wire, "link", "set", "w0", "up"])?;
        // A real wire carries finished checksums; veth would leave them to offload.
        exec_quiet(&lan.wire, &["ethtool", "-K", "w0", "tx", "off"]);
        Ok(lan)
    }

    /// Every namespace: wire, host, containers.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        [&self.wire, &self.host]
            .into_iter()
            .chain(self.containers.iter())
    }

    /// The file of a namespace, for setns.
    pub fn path(ns: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(ns)
    }

    /// Container `i`'s address (0-based): 10.77.0.11, .12, ... up to
    /// 10.77.0.210, then 10.77.1.1 onwards (the LAN is a /16).
    pub fn container_ip(i: usize) -> Ipv4Addr {
        if i < 200 {
            return Ipv4Addr::new(10, 77, 0, 11 + i as u8);
        }
        let j = i - 200;
        Ipv4Addr::new(10, 77, 1 + (j / 250) as u8, 1 + (j % 250) as u8)
    }

    /// Container `i`'s MAC: Docker's default for its address.
    pub fn container_mac(i: usize) -> MacAddr {
        MacAddr::docker_default(Self::container_ip(i))
    }

    /// A config for mvdp on this LAN: one bridge network, one endpoint per container.
    pub fn config(&self, kind: &str, metrics: SocketAddr, extra: &str) -> String {
        let mut s = self.network_config(metrics, extra);
        for (i, ns) in self.containers.iter().enumerate() {
            s += &format!(
                "\n[[endpoint]]\nname = \"c{}\"\nnetwork = \"lan\"\nkind = \"{kind}\"\nnetns = \"{ns}\"\nip = \"{}\"\n",
                i + 1,
                Self::container_ip(i)
            );
        }
        s
    }

    /// A config for mvdp on this LAN with its bridge network `lan` and no
    /// endpoint (they come over the control socket).
    pub fn network_config(&self, metrics: SocketAddr, extra: &str) -> String {
        format!(
            "[parent]\ninterface = \"p0\"\n{extra}\n[metrics]\nlisten = \"{metrics}\"\n\n\
             [control]\nsocket = \"/run/mvdp/{host}.sock\"\n\n\
             [[network]]\nname = \"lan\"\nmode = \"bridge\"\nsubnet = \"10.77.0.0/{PREFIX}\"\n\
             gateway = \"{WIRE_HOST}\"\naux_addresses = [\"{HOST_ADDR}\"]\n",
            host = self.host
        )
    }

    /// The control socket of the daemon [`Lan::config`] describes.
    pub fn control_socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/mvdp/{}.sock", self.host))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.all() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!(
                    "mvdp: could not delete netns {ns} ({e}); remove it with: ip netns del {ns}"
                );
            }
        }
    }
}

/// `mvdp run` as a child in the host namespace; dropping it stops it with
/// SIGTERM (then SIGKILL) and removes its config file.
pub struct DaemonChild {
    child: Child,
    config: PathBuf,
    host: String,
    metrics: SocketAddr,
}

impl DaemonChild {
    /// Writes `config_toml` to a temporary file and starts `mvdp run` on it in `host`.
    pub fn start(
        host: &str,
        config_toml: &str,
        metrics: SocketAddr,
        log_level: &str,
    ) -> Result<DaemonChild> {
        let config = std::env::temp_dir().join(format!("{host}-{}.toml", std::process::id()));
        std::fs::write(&config, config_toml)?;
        let exe = std::env::current_exe()?;
        let child = Command::new("ip")
            .args(["netns", "exec", host])
            .arg(&exe)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .spawn()
            .context("starting mvdp run")?;
        Ok(DaemonChild {
            child,
            config,
            host: host.to_string(),
            metrics,
        })
    }

    /// The daemon's PID (`ip netns exec` execs it, so this is mvdp's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/metrics` answers; fails if the daemon exits first.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("mvdp run exited early: {st}");
            }
            if self
                .scrape()
                .map(|t| t.contains("mvdp_fdb_entries"))
                .unwrap_or(false)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("mvdp run did not come up within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the daemon has exited.
    pub fn exited(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    /// Fetches the metrics text from inside the host namespace.
    pub fn scrape(&self) -> Result<String> {
        let addr = self.metrics;
        in_netns(&Lan::path(&self.host), || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })?
        .map_err(Into::into)
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that).
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_within(Duration::from_secs(10))
    }

    /// SIGTERM, then waits up to `grace` (SIGKILL after that).
    pub fn stop_within(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(st) = self.child.try_wait()? {
            return Ok(st);
        }
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
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

impl Drop for DaemonChild {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Reads one sample from Prometheus text: `name{labels}` exactly as rendered.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// /proc/net/dev of namespace `ns`.
pub fn net_dev(ns: &str) -> Result<String> {
    Ok(in_netns(&Lan::path(ns), || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })??)
}

/// An interface's (rx_packets, tx_packets) in a namespace, from its /proc/net/dev.
pub fn link_packets(ns: &str, ifname: &str) -> Result<(u64, u64)> {
    let text = net_dev(ns)?;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets ...
        if f.len() >= 10 {
            return Ok((f[1], f[9]));
        }
    }
    bail!("no interface {ifname} in netns {ns}")
}
