//! `mvdp bench --scale`: how mvdp holds up as endpoints grow (4, 256, 4096).
//!
//! For each endpoint count and each tier (fast path on, and every frame
//! through the workers), on the simulated LAN of [`crate::sim`]:
//!
//! - the daemon starts with the network alone, and the endpoints come one
//!   by one over the control socket, as a container runtime adds them; the
//!   time of each add is taken at the client (request sent to answer read),
//!   and the figures are the median and p99 of the adds that grow the daemon
//!   from n/2 to n endpoints (all of them for n ≤ 4);
//! - resident memory per endpoint: the daemon's VmRSS after the adds, less
//!   its VmRSS before the first, over n;
//! - frames from the wire spread over every endpoint (the NIC-like
//!   generator rewrites the destination MAC round robin over all n): the
//!   delivered frames/s at maximum load, and the CPU time per delivered frame
//!   at a fixed rate, counted as the main bench counts it;
//! - the time `mvdp run` takes to stop (SIGTERM to exit) and remove them.
//!
//! Endpoints share namespaces: [`ScaleOptions::per_netns`] interfaces
//! (`eth0`, `eth1`, …) in each container namespace. What is measured is
//! mvdp's side (its sockets, programs, maps, counters and control path per
//! endpoint), which is the same whether an endpoint's container end shares a
//! namespace or not; 4096 namespaces would only add the kernel's cost of
//! making namespaces to the rig's set-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::traffic::{self, link_stats, CpuScope, CpuTimes, NicLoad, Port};
use super::{nic_generator, nic_like_wire, rss_kib, utc_now, wire_mac, worker_cores_line};
use crate::config::{umem_frames_for, EndpointSpec};
use crate::control::api::{call, Request};
use crate::sim::{DaemonChild, Lan};

/// What the scale run measures.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Endpoint counts.
    pub sizes: Vec<usize>,
    /// Endpoint interfaces per container namespace.
    pub per_netns: usize,
    /// Fast path on, off, or both (in this order).
    pub fast_path: Vec<bool>,
    /// Seconds per traffic measurement.
    pub seconds: f64,
    /// The fixed offered rate for CPU per frame, frames/s.
    pub fixed_rate: f64,
    /// Where the JSON and text go.
    pub out: PathBuf,
    /// The command line, recorded with the results.
    pub command: String,
}

impl ScaleOptions {
    /// The default run: 4, 256 and 4096 endpoints, both tiers.
    pub fn full() -> ScaleOptions {
        ScaleOptions {
            sizes: vec![4, 256, 4096],
            per_netns: 64,
            fast_path: vec![true, false],
            seconds: 2.0,
            fixed_rate: 200_000.0,
            out: PathBuf::from("benches/results"),
            command: String::new(),
        }
    }
}

/// One endpoint count in one tier.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// Endpoints.
    pub endpoints: usize,
    /// Whether the fast path was on.
    pub fast_path: bool,
    /// Container namespaces they sat in.
    pub netns: usize,
    /// `[parent] umem_frames` (the smallest the config takes for this count).
    pub umem_frames: usize,
    /// Adds timed for the add figures (those from n/2 to n).
    pub adds_timed: usize,
    /// Median time of an add over the control socket, ms.
    pub add_ms_median: f64,
    /// 99th percentile of the same, ms.
    pub add_ms_p99: f64,
    /// Slowest add of the same, ms.
    pub add_ms_max: f64,
    /// Wall time of all n adds, s.
    pub adds_total_s: f64,
    /// VmRSS with no endpoint, KiB.
    pub rss_base_kib: u64,
    /// VmRSS with n endpoints, KiB.
    pub rss_kib: u64,
    /// (rss - base) / n, KiB.
    pub rss_per_endpoint_kib: f64,
    /// Kernel memory per endpoint: the growth of /proc/meminfo's VmallocUsed
    /// plus Slab over the adds, over n, KiB (machine-wide: others' work
    /// moves it too). The veth pair, the AF_XDP sockets' rings and buffer
    /// pools, the programs.
    pub kernel_per_endpoint_kib: f64,
    /// Frames the parent took at maximum load.
    pub max_offered: u64,
    /// Frames the endpoints received at maximum load.
    pub max_delivered: u64,
    /// Delivered frames/s at maximum load.
    pub max_delivered_fps: f64,
    /// Endpoints that received at least one frame at maximum load.
    pub endpoints_reached: usize,
    /// Offered frames/s of the fixed-rate measurement.
    pub fixed_rate_fps: f64,
    /// 1 - delivered/offered at the fixed rate.
    pub fixed_loss_ratio: f64,
    /// CPU ns per delivered frame at the fixed rate (all cores, the rig's threads).
    pub cpu_ns_per_frame: f64,
    /// SIGTERM to exit, s.
    pub stop_s: f64,
}

/// Everything one scale run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResults {
    /// The command line.
    pub command: String,
    /// When (UTC).
    pub started_at: String,
    /// Kernel release.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// /proc/loadavg at the start and at the end (how busy the machine was).
    pub loadavg: [String; 2],
    /// Seconds per traffic measurement.
    pub seconds: f64,
    /// How the figures are taken.
    pub method: String,
    /// Per endpoint count and tier.
    pub results: Vec<ScaleResult>,
    /// Counts and tiers not measured, and why.
    pub skipped: Vec<String>,
}

const METHOD: &str = "endpoints added one by one over the control socket (veth, bridge network, \
    distinct ifnames eth0..ethK in shared container namespaces); add time at the client, median and \
    p99 over the adds from n/2 to n; memory = (VmRSS with n endpoints - VmRSS with none) / n; \
    traffic: the NIC-like generator on the wire end, 64 B frames, destination MAC round robin over all \
    n endpoints; delivered = RX packets of the endpoints' container ends; CPU = schedstat run time of \
    the rig's threads at the fixed rate over delivered frames, as in the main bench";

/// The metrics address of the scale daemon (not the main bench's, so both can be read apart).
const METRICS: &str = "127.0.0.1:9471";

/// Runs the scale bench.
pub fn run(opts: &ScaleOptions) -> Result<ScaleResults> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench builds network namespaces and attaches XDP: run it as root");
    }
    super::apps::check_tools(&["ip", "ethtool"])?;
    let t0 = Instant::now();
    let started_at = utc_now();
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let load_start = loadavg();
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for &n in &opts.sizes {
        for &fast in &opts.fast_path {
            eprintln!(
                "[{:6.1}s] {n} endpoints, fast path {}",
                t0.elapsed().as_secs_f64(),
                if fast { "on" } else { "off" }
            );
            let need = xsk_pool_bytes(n, fast);
            if need > mem_available() / 2 {
                eprintln!(
                    "[{:6.1}s]   skipped: {n} endpoints x {} UMEM frames would take ~{} MiB of kernel memory in AF_XDP buffer pools, more than half of what is available",
                    t0.elapsed().as_secs_f64(),
                    umem_frames(n, fast),
                    need >> 20
                );
                skipped.push(format!(
                    "{n} endpoints, fast path {}: ~{} MiB of AF_XDP buffer pools ({} UMEM frames x 120 B per endpoint socket)",
                    if fast { "on" } else { "off" },
                    need >> 20,
                    umem_frames(n, fast)
                ));
                continue;
            }
            let r = one(opts, n, fast, t0)
                .with_context(|| format!("{n} endpoints, fast path {fast}"))?;
            eprintln!(
                "[{:6.1}s]   add median {:.2} ms p99 {:.2} ms; {:.1} KiB/endpoint (kernel {:.1}); {:.3} Mfps delivered to {} of {n}; {:.0} ns/frame; stop {:.1} s",
                t0.elapsed().as_secs_f64(),
                r.add_ms_median,
                r.add_ms_p99,
                r.rss_per_endpoint_kib,
                r.kernel_per_endpoint_kib,
                r.max_delivered_fps / 1e6,
                r.endpoints_reached,
                r.cpu_ns_per_frame,
                r.stop_s
            );
            results.push(r);
        }
    }
    eprintln!("[{:6.1}s] done", t0.elapsed().as_secs_f64());
    Ok(ScaleResults {
        command: opts.command.clone(),
        started_at,
        kernel: super::kernel_release(),
        cpus: super::online_cpus(),
        loadavg: [load_start, loadavg()],
        seconds: opts.seconds,
        method: METHOD.into(),
        results,
        skipped,
    })
}

/// The request that adds endpoint `i` of the rig.
fn add_request(lan: &Lan, per_netns: usize, i: usize) -> Request {
    Request::EndpointAdd {
        endpoint: EndpointSpec {
            name: format!("s{i}"),
            network: "lan".into(),
            kind: Some("veth".into()),
            netns: Some(lan.containers[i / per_netns].clone()),
            netns_path: None,
            ifname: Some(format!("eth{}", i % per_netns)),
            ip: Some(Lan::container_ip(i).to_string()),
            ..EndpointSpec::default()
        },
    }
}

/// The kernel's vmalloc area and slab in use, KiB (/proc/meminfo).
fn kernel_kib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    field("VmallocUsed:")
        .zip(field("Slab:"))
        .map(|(v, s)| v + s)
        .context("no VmallocUsed or Slab in /proc/meminfo")
}

/// The `q`-quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// RX packets of every endpoint's container end, in endpoint order.
fn endpoint_rx(lan: &Lan, per_netns: usize, n: usize) -> Result<Vec<u64>> {
    let mut out = vec![0; n];
    for (k, ns) in lan.containers.iter().enumerate() {
        let text = crate::sim::net_dev(ns)?;
        for line in text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let Some(j) = name
                .trim()
                .strip_prefix("eth")
                .and_then(|j| j.parse::<usize>().ok())
            else {
                continue;
            };
            let i = k * per_netns + j;
            if let (Some(slot), Some(rx)) = (out.get_mut(i), rest.split_whitespace().nth(1)) {
                *slot = rx.parse().unwrap_or(0);
            }
        }
    }
    Ok(out)
}

/// Traffic from the wire to all `n` endpoints: (offered, refused? no: delivered per endpoint, cpu ns).
struct Spread {
    offered: u64,
    delivered: Vec<u64>,
    secs: f64,
    busy_ns: u64,
}

fn spread(
    lan: &Lan,
    per_netns: usize,
    n: usize,
    cpu: &CpuScope,
    generate: impl FnOnce() -> Result<traffic::Generated>,
) -> Result<Spread> {
    let rx0 = endpoint_rx(lan, per_netns, n)?;
    let tx0 = link_stats(&lan.wire, "w0")?.tx_packets;
    let cpu0 = CpuTimes::now(cpu)?;
    let g = generate()?;
    // Let frames in flight land before reading the counters.
    std::thread::sleep(Duration::from_millis(150));
    let cpu1 = CpuTimes::now(cpu)?;
    let tx1 = link_stats(&lan.wire, "w0")?.tx_packets;
    let rx1 = endpoint_rx(lan, per_netns, n)?;
    Ok(Spread {
        offered: tx1.saturating_sub(tx0),
        delivered: rx1.iter().zip(&rx0).map(|(a, b)| a - b.min(a)).collect(),
        secs: g.elapsed.as_secs_f64(),
        busy_ns: cpu1.busy_ns_since(&cpu0) + g.own_cpu_ns,
    })
}

/// `[parent] umem_frames` for `n` endpoints: the default, or more where every
/// endpoint's socket posts fill frames (the fast path off).
fn umem_frames(n: usize, fast: bool) -> usize {
    let default = crate::config::DEFAULT_UMEM_FRAMES as usize;
    if fast {
        default
    } else {
        umem_frames_for(n).max(default)
    }
}

/// Kernel memory the endpoints' AF_XDP sockets take, bytes, roughly: each
/// socket on a device other than the UMEM's own gets a buffer pool with a
/// descriptor (`struct xdp_buff_xsk`, 120 bytes on 6.x) for every UMEM frame.
fn xsk_pool_bytes(n: usize, fast: bool) -> u64 {
    (n * umem_frames(n, fast) * 120) as u64
}

/// MemAvailable, bytes.
fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(u64::MAX, |kib| kib * 1024)
}

fn one(opts: &ScaleOptions, n: usize, fast: bool, t0: Instant) -> Result<ScaleResult> {
    let per_netns = opts.per_netns.max(1);
    let tag = format!("mvdp-scale-{}-{n}{}", std::process::id(), u8::from(fast));
    let lan = Lan::build(&tag, n.div_ceil(per_netns), 1)?;
    let socket = lan.control_socket();
    // The daemon keeps the endpoints added at run time beside its socket.
    let _state = RemoveOnDrop(crate::control::service::state_path(&socket));
    nic_like_wire(&lan)?;
    let dsts: Vec<_> = (0..n).map(Lan::container_mac).collect();
    let gen = nic_generator(&lan, &dsts)?;
    let metrics: SocketAddr = METRICS.parse().expect("address");
    let umem_frames = umem_frames(n, fast);
    let extra = format!(
        "umem_frames = {umem_frames}\n\n[dataplane]\nfast_path = \"{}\"\n\n[workers]\n{}",
        if fast { "on" } else { "off" },
        worker_cores_line()
    );
    let mut d = DaemonChild::start(
        &lan.host,
        &lan.network_config(metrics, &extra),
        metrics,
        "warn",
    )?;
    d.wait_ready(Duration::from_secs(60))?;
    let rss_base = rss_kib(d.pid())?;
    let kernel_base = kernel_kib()?;
    let mut add_ms = Vec::with_capacity(n);
    let adds = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        call(&socket, &add_request(&lan, per_netns, i))
            .with_context(|| format!("adding endpoint {i}"))?;
        add_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if (i + 1) % 512 == 0 {
            eprintln!(
                "[{:6.1}s]   {} endpoints added (last {:.1} ms)",
                t0.elapsed().as_secs_f64(),
                i + 1,
                add_ms[i]
            );
        }
    }
    let adds_total_s = adds.elapsed().as_secs_f64();
    let rss = rss_kib(d.pid())?;
    let kernel = kernel_kib()?;
    let mut timed: Vec<f64> = add_ms[if n > 4 { n / 2 } else { 0 }..].to_vec();
    timed.sort_by(f64::total_cmp);

    let cpu = CpuScope::of(lan.all())?;
    let template = traffic::frame(dsts[0], wire_mac(&lan)?, 60);
    let wire = Port::new(&lan.wire, "w0");
    let secs = Duration::from_secs_f64(opts.seconds);
    let max = spread(&lan, per_netns, n, &cpu, || {
        traffic::nic(&gen, &wire, &template, NicLoad::Max, secs)
    })?;
    let fixed = spread(&lan, per_netns, n, &cpu, || {
        traffic::nic(
            &gen,
            &wire,
            &template,
            NicLoad::Paced(opts.fixed_rate),
            secs,
        )
    })?;
    let max_delivered: u64 = max.delivered.iter().sum();
    let fixed_delivered: u64 = fixed.delivered.iter().sum();

    let stop = Instant::now();
    let st = d.stop_within(Duration::from_secs(600))?;
    let stop_s = stop.elapsed().as_secs_f64();
    if !st.success() {
        bail!("mvdp with {n} endpoints exited with {st}");
    }
    Ok(ScaleResult {
        endpoints: n,
        fast_path: fast,
        netns: lan.containers.len(),
        umem_frames,
        adds_timed: timed.len(),
        add_ms_median: quantile(&timed, 0.5),
        add_ms_p99: quantile(&timed, 0.99),
        add_ms_max: timed.last().copied().unwrap_or(f64::NAN),
        adds_total_s,
        rss_base_kib: rss_base,
        rss_kib: rss,
        rss_per_endpoint_kib: rss.saturating_sub(rss_base) as f64 / n as f64,
        kernel_per_endpoint_kib: kernel.saturating_sub(kernel_base) as f64 / n as f64,
        max_offered: max.offered,
        max_delivered,
        max_delivered_fps: max_delivered as f64 / max.secs,
        endpoints_reached: max.delivered.iter().filter(|&&d| d > 0).count(),
        fixed_rate_fps: opts.fixed_rate,
        fixed_loss_ratio: if fixed.offered == 0 {
            0.0
        } else {
            1.0 - fixed_delivered.min(fixed.offered) as f64 / fixed.offered as f64
        },
        cpu_ns_per_frame: if fixed_delivered == 0 {
            f64::NAN
        } else {
            fixed.busy_ns as f64 / fixed_delivered as f64
        },
        stop_s,
    })
}

/// A file removed when this goes out of scope.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The results as a table.
pub fn table(r: &ScaleResults) -> String {
    let mut s = format!(
        "mvdp bench --scale · {} · kernel {} · {} CPUs · load average {} → {}\ncommand: {}\nmethod: {}\n\n",
        r.started_at, r.kernel, r.cpus, r.loadavg[0], r.loadavg[1], r.command, r.method
    );
    s += "  endpoints  fast path  netns  umem frames  add median ms  add p99 ms  KiB/endpoint  kernel KiB/ep  max Mfps delivered  reached  CPU ns/frame @ fixed  loss @ fixed  stop s\n";
    for x in &r.skipped {
        s += &format!("  skipped: {x}\n");
    }
    for x in &r.results {
        s += &format!(
            "  {:>9}  {:>9}  {:>5}  {:>11}  {:>13.2}  {:>10.2}  {:>12.1}  {:>13.1}  {:>18.3}  {:>7}  {:>20.0}  {:>11.2}%  {:>6.1}\n",
            x.endpoints,
            if x.fast_path { "on" } else { "off" },
            x.netns,
            x.umem_frames,
            x.add_ms_median,
            x.add_ms_p99,
            x.rss_per_endpoint_kib,
            x.kernel_per_endpoint_kib,
            x.max_delivered_fps / 1e6,
            x.endpoints_reached,
            x.cpu_ns_per_frame,
            x.fixed_loss_ratio * 100.0,
            x.stop_s
        );
    }
    s
}

/// Writes `scale-<time>.json`, `scale-latest.json` and `scale-latest.txt` into `dir`.
pub fn write(r: &ScaleResults, dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = format!("scale-{}", super::report::file_timestamp(&r.started_at));
    let mut json = serde_json::to_string_pretty(r)?;
    json.push('\n');
    let paths = [
        dir.join(format!("{stem}.json")),
        dir.join("scale-latest.json"),
        dir.join("scale-latest.txt"),
    ];
    std::fs::write(&paths[0], &json)?;
    std::fs::write(&paths[1], &json)?;
    std::fs::write(&paths[2], table(r))?;
    Ok(paths.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
