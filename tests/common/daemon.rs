//! `Daemon`: the real `mvdp run` inside a rig's host namespace, its logs and
//! its Prometheus metrics.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::netns::in_netns_path;
use super::rig::Rig;
use super::unique;

/// Metrics address mvdp uses when the config does not say.
const DEFAULT_METRICS: &str = "127.0.0.1:9469";
/// How long [`Daemon::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `ip netns exec <host> mvdp run --config <file>`, with
/// `RUST_LOG=info` and stdout/stderr captured to files. Drop stops it
/// (SIGTERM, then SIGKILL), prints its config and log if the test is
/// panicking, and removes its files.
pub struct Daemon {
    child: Child,
    status: Option<ExitStatus>,
    ns_path: PathBuf,
    metrics_addr: SocketAddr,
    config: TempConfig,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Daemon {
    /// Writes `config_toml` to a unique temp file and starts `mvdp run` with
    /// it in `rig`'s host namespace. Does not wait: see [`Daemon::wait_ready`].
    pub fn start(rig: &Rig, config_toml: &str) -> Daemon {
        Daemon::start_with(rig, config_toml, &[])
    }

    /// Like [`Daemon::start`] with extra environment variables (e.g.
    /// `("RUST_LOG", "debug")`, which overrides the default `info`).
    pub fn start_with(rig: &Rig, config_toml: &str, env: &[(&str, &str)]) -> Daemon {
        let config = TempConfig::new(config_toml);
        let stdout_path = config.path().with_extension("stdout");
        let stderr_path = config.path().with_extension("stderr");
        let metrics_addr = metrics_listen(config_toml);

        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", rig.host.name(), MVDP])
            .arg("run")
            .arg("--config")
            .arg(config.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create daemon stdout file"))
            .stderr(File::create(&stderr_path).expect("create daemon stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `ip netns exec` execs mvdp in place (no fork), so this PID is
        // mvdp's own.
        let child = cmd.spawn().expect("spawn `ip netns exec ... mvdp run`");
        Daemon {
            child,
            status: None,
            ns_path: rig.host.path(),
            metrics_addr,
            config,
            stdout_path,
            stderr_path,
        }
    }

    /// mvdp's PID.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Path of the config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        self.config.path()
    }

    /// Where the exporter listens (in the host namespace).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Waits until the metrics endpoint answers. Panics with the daemon's log
    /// if it exits first or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("never tried");
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                panic!("mvdp exited before it was ready ({status})\n{}", self.log());
            }
            match self.try_metrics() {
                Ok(_) => return,
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "mvdp not ready within {timeout:?} (metrics at {}: {last_error})\n{}",
            self.metrics_addr,
            self.log()
        );
    }

    /// The current `/metrics` text. Panics if the exporter does not answer.
    pub fn metrics(&self) -> String {
        self.try_metrics()
            .unwrap_or_else(|e| panic!("scrape mvdp metrics: {e}\n{}", self.log()))
    }

    /// Scrapes `/metrics` with a plain HTTP/1.0 GET from inside the host
    /// namespace; 2 s timeouts.
    pub fn try_metrics(&self) -> Result<String, String> {
        scrape_metrics(&self.ns_path, self.metrics_addr)
    }

    /// The value of one series, written as in the exposition format:
    /// `mvdp_drops_total{reason="no_endpoint"}` (label order does not
    /// matter) or a bare name for an unlabelled series. `None` if absent.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (name, labels) =
            parse_series(series).unwrap_or_else(|| panic!("not a Prometheus series: {series:?}"));
        parse_prometheus(&self.metrics())
            .into_iter()
            .find(|s| s.name == name && same_labels(&s.labels, &labels))
            .map(|s| s.value)
    }

    /// Sum over every series of `name` whose labels include all of
    /// `labels` (e.g. all `mvdp_drops_total` reasons with `&[]`). `None` if
    /// no series matches.
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sum_samples(&parse_prometheus(&self.metrics()), name, labels)
    }

    /// The exit status if mvdp has exited (reaps it), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid(mvdp)");
        }
        self.status
    }

    /// Waits up to `timeout` for mvdp to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `mvdp_drops_total` for `reason` (0 before any).
    pub fn drops(&self, reason: &str) -> f64 {
        self.metric(&format!("mvdp_drops_total{{reason=\"{reason}\"}}"))
            .unwrap_or(0.0)
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to mvdp if it is still running.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_wait().is_some() {
            return;
        }
        // SAFETY: kill(2) has no memory effects. The PID is our own child,
        // not yet reaped (try_wait just said so), so it cannot have been
        // reused by another process.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, then waits up to 10 s for a clean exit; after that SIGKILL
    /// (loudly) and returns the resulting status, which a test asserting
    /// `success()` will then reject.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_exit(STOP_TIMEOUT) {
            return status;
        }
        eprintln!(
            "mvdp (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?}; sending SIGKILL",
            self.pid()
        );
        self.signal(libc::SIGKILL);
        self.wait_exit(STOP_TIMEOUT)
            .expect("mvdp survived SIGKILL for 10 s")
    }

    /// Everything mvdp wrote so far, stdout then stderr.
    pub fn log(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"));
        format!(
            "----- mvdp stdout ({}) -----\n{}----- mvdp stderr ({}) -----\n{}----- end of mvdp log -----",
            self.stdout_path.display(),
            read(&self.stdout_path),
            self.stderr_path.display(),
            read(&self.stderr_path)
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                self.signal(libc::SIGKILL);
                let _ = self.wait_exit(Duration::from_secs(5));
            }
        }
        if std::thread::panicking() {
            // Everything goes to stderr, so nothing needs to stay on disk.
            let config = std::fs::read_to_string(self.config.path()).unwrap_or_default();
            eprintln!(
                "mvdp exit status: {:?}\n----- mvdp config -----\n{config}\n{}",
                self.status,
                self.log()
            );
        }
        let _ = std::fs::remove_file(&self.stdout_path);
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The mvdp binary under test.
pub const MVDP: &str = env!("CARGO_BIN_EXE_mvdp");

/// A `Command` for the mvdp binary under test (e.g. `mvdp check --config`).
pub fn mvdp_command() -> Command {
    let mut cmd = Command::new(MVDP);
    cmd.env("RUST_LOG", "info").stdin(Stdio::null());
    cmd
}

/// `mvdp ARGS --socket <the rig's control socket>`: (exit code, stdout, stderr).
pub fn mvdp_ctl(rig: &Rig, args: &[&str]) -> (i32, String, String) {
    let out = mvdp_command()
        .args(args)
        .arg("--socket")
        .arg(&rig.control_socket)
        .output()
        .expect("run mvdp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mvdp endpoint list --json` against the rig's daemon, parsed.
pub fn endpoint_list(rig: &Rig) -> Vec<serde_json::Value> {
    let (code, out, err) = mvdp_ctl(rig, &["endpoint", "list", "--json"]);
    assert_eq!(code, 0, "endpoint list: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("endpoint list --json: {e}\n{out}"))
}

/// A config written to a unique file under the temp dir, removed on drop.
pub struct TempConfig {
    path: PathBuf,
}

impl TempConfig {
    /// Writes `toml` to `<tmp>/mvdp-cfg-<unique>.toml`.
    pub fn new(toml: &str) -> TempConfig {
        let path = std::env::temp_dir()
            .join(unique("mvdp-cfg-"))
            .with_extension("toml");
        std::fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        TempConfig { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `[metrics] listen` from a config, or mvdp's default.
fn metrics_listen(config_toml: &str) -> SocketAddr {
    let table: toml::Table = config_toml
        .parse()
        .unwrap_or_else(|e| panic!("config handed to Daemon is not TOML: {e}"));
    let listen = table
        .get("metrics")
        .and_then(|m| m.get("listen"))
        .and_then(|l| l.as_str())
        .unwrap_or(DEFAULT_METRICS);
    listen
        .parse()
        .unwrap_or_else(|e| panic!("[metrics] listen = {listen:?} is not ip:port: {e}"))
}

/// GET `/metrics` from `addr` inside the network namespace at `ns_path`
/// (e.g. `rig.host.path()`): HTTP/1.0, 2 s timeouts; returns the body.
pub fn scrape_metrics(ns_path: &Path, addr: SocketAddr) -> Result<String, String> {
    in_netns_path(ns_path, move || http_get(addr, "/metrics"))
}

/// A minimal HTTP/1.0 GET; returns the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let timeout = Duration::from_secs(2);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send request to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read answer from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP answer from {addr}: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {path} on {addr}: {status}"));
    }
    Ok(body.to_string())
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `mvdp_drops_total`.
    pub name: String,
    /// Labels in the order exposed.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN`/`+Inf` parse as such).
    pub value: f64,
}

/// Parses Prometheus text exposition; comments and unparsable lines are
/// skipped, timestamps ignored.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let split = match line.find('{') {
                Some(open) => open + line[open..].find('}')? + 1,
                None => line.find(char::is_whitespace)?,
            };
            let (series, rest) = line.split_at(split);
            let (name, labels) = parse_series(series)?;
            let value = parse_value(rest.split_whitespace().next()?)?;
            Some(Sample {
                name,
                labels,
                value,
            })
        })
        .collect()
}

/// Sum over samples of `name` whose labels include all of `labels`.
pub fn sum_samples(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// Splits `name{k="v",...}` (or a bare `name`) into name and labels,
/// unescaping `\"`, `\\` and `\n` in values.
fn parse_series(series: &str) -> Option<(String, Vec<(String, String)>)> {
    let series = series.trim();
    let Some(open) = series.find('{') else {
        return (!series.is_empty()).then(|| (series.to_string(), Vec::new()));
    };
    let name = series[..open].trim().to_string();
    let body = series[open + 1..].strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
    Some((name, labels))
}

fn same_labels(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The frame counters (not the worker's own activity, like poll() sleeps).
pub fn frame_counters(samples: &[Sample]) -> Vec<&Sample> {
    const FRAME_SERIES: [&str; 6] = [
        "mvdp_frames_",
        "mvdp_drops_",
        "mvdp_endpoint_",
        "mvdp_wire_tx_",
        "mvdp_xdp_",
        "mvdp_fast_path_frames_",
    ];
    let mut v: Vec<&Sample> = samples
        .iter()
        .filter(|s| FRAME_SERIES.iter().any(|p| s.name.starts_with(p)))
        .collect();
    // The exporter's order is not stable between scrapes.
    v.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    v
}

/// How often [`settled`] scrapes.
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// How long the frame counters must stand still before [`settled`] trusts
/// them: frames still in a ring or a worker's batch move them within this.
const SETTLE_QUIET: Duration = Duration::from_millis(150);
/// Longest [`settled`] waits before it gives up.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// Scrapes until the frame counters have not moved for [`SETTLE_QUIET`]
/// (consecutive scrapes agree on every one), so that assertions compare
/// settled numbers. Panics if they keep moving for [`SETTLE_DEADLINE`].
pub fn settled(d: &Daemon) -> Vec<Sample> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut last = parse_prometheus(&d.metrics());
    let mut last_change = Instant::now();
    loop {
        std::thread::sleep(SETTLE_POLL);
        let now = parse_prometheus(&d.metrics());
        if frame_counters(&now) != frame_counters(&last) {
            last_change = Instant::now();
        } else if last_change.elapsed() >= SETTLE_QUIET {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "mvdp frame counters still moving after {SETTLE_DEADLINE:?}:\n{}",
            d.metrics()
        );
        last = now;
    }
}

/// A series' value summed over the samples matching `labels` (0 if none).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    sum_samples(samples, name, labels).unwrap_or(0.0)
}

/// received = delivered + Σ dropped{reason}, over every source.
pub fn assert_accounting(samples: &[Sample]) {
    let received = value(samples, "mvdp_frames_received_total", &[]);
    let delivered = value(samples, "mvdp_frames_delivered_total", &[]);
    let dropped = value(samples, "mvdp_drops_total", &[]);
    assert!(received > 0.0, "mvdp received nothing");
    assert_eq!(
        received,
        delivered + dropped,
        "received {received} != delivered {delivered} + dropped {dropped}"
    );
}
