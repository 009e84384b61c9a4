//! `mvdp bench`: mvdp against the kernel's macvlan on the same rig, in one run.
//!
//! The rig is the simulated LAN of [`crate::sim`]: a wire namespace that
//! generates traffic, a veth standing in for the parent NIC, N containers.
//! For each run the systems take turns (the order rotates from run to run so
//! that drift hits all alike): the kernel's macvlan in bridge mode (one
//! macvlan per container namespace), mvdp with veth endpoints, mvdp with TAP
//! endpoints. Every figure is a median over the runs.

pub mod nicgen;
pub mod report;
pub mod results;
mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sim::{ip, DaemonChild, Lan};
use crate::wire::MacAddr;
use results::{BenchResults, MemoryResult, Ratios, System, SystemResult};
use traffic::{measure, Sample};

/// What to measure and how long.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Containers on the rig.
    pub containers: usize,
    /// Runs per figure.
    pub runs: usize,
    /// Seconds per maximum-load and fixed-rate measurement.
    pub seconds: f64,
    /// Seconds per step of the zero-loss search.
    pub search_seconds: f64,
    /// Steps of the zero-loss search.
    pub search_steps: usize,
    /// Frame lengths without FCS (60 = a 64-byte frame on the wire).
    pub frame_lens: Vec<usize>,
    /// The fixed offered rate for the CPU comparison, frames/s.
    pub fixed_rate: f64,
    /// Systems to measure.
    pub systems: Vec<System>,
    /// Endpoint counts for the memory figures (empty: skip).
    pub memory_endpoints: Vec<usize>,
    /// Where the JSON and PNG go.
    pub out: PathBuf,
    /// The command line, recorded with the results.
    pub command: String,
}

impl BenchOptions {
    /// The full run (a few minutes).
    pub fn full() -> BenchOptions {
        BenchOptions {
            containers: 4,
            runs: 5,
            seconds: 3.0,
            search_seconds: 1.0,
            search_steps: 7,
            frame_lens: vec![60, 1514],
            fixed_rate: 200_000.0,
            systems: System::ALL.to_vec(),
            memory_endpoints: vec![4, 256],
            out: PathBuf::from("benches/results"),
            command: String::new(),
        }
    }

    /// `--quick`: the same figures with fewer, shorter runs (under two minutes).
    pub fn quick() -> BenchOptions {
        BenchOptions {
            runs: 3,
            seconds: 0.6,
            search_seconds: 0.3,
            search_steps: 4,
            fixed_rate: 100_000.0,
            memory_endpoints: vec![4],
            ..BenchOptions::full()
        }
    }
}

const METRICS: &str = "127.0.0.1:9470";

/// One system set up on the rig; dropping it tears it down.
enum Setup<'a> {
    Kernel(&'a Lan),
    Mvdp(DaemonChild),
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if let Setup::Kernel(lan) = self {
            for ns in &lan.containers {
                let _ = ip(&["-n", ns, "link", "del", "eth0"]);
            }
        }
    }
}

fn set_up<'a>(lan: &'a Lan, system: System) -> Result<Setup<'a>> {
    match system {
        System::KernelMacvlan => {
            let setup = Setup::Kernel(lan);
            for (i, ns) in lan.containers.iter().enumerate() {
                let name = format!("mvb{i}");
                let mac = Lan::container_mac(i).to_string();
                ip(&[
                    "-n", &lan.host, "link", "add", "link", "p0", "name", &name, "type", "macvlan",
                    "mode", "bridge",
                ])?;
                ip(&[
                    "-n", &lan.host, "link", "set", &name, "address", &mac, "netns", ns,
                ])?;
                ip(&["-n", ns, "link", "set", &name, "name", "eth0"])?;
                ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            }
            Ok(setup)
        }
        System::MvdpVeth | System::MvdpTap => {
            let kind = if system == System::MvdpVeth {
                "veth"
            } else {
                "tap"
            };
            let metrics: SocketAddr = METRICS.parse().expect("address");
            let mut d = DaemonChild::start(
                &lan.host,
                &lan.config(kind, metrics, &worker_cores()),
                metrics,
                "warn",
            )?;
            d.wait_ready(Duration::from_secs(60))?;
            Ok(Setup::Mvdp(d))
        }
    }
}

/// The generators are pinned to CPU 0 (trafgen `--cpus 1` pins itself
/// there); mvdp's worker goes to the last CPU, as an operator would place it,
/// instead of `auto` putting it on the generator's core.
fn worker_cores() -> String {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n > 1 {
        format!("[workers]\ncores = [{}]", n - 1)
    } else {
        String::new()
    }
}

/// Raw samples of one system at one frame size, over the runs.
#[derive(Default, Clone)]
struct Raw {
    max: Vec<Sample>,
    zero_loss_fps: Vec<f64>,
    fixed: Vec<Sample>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The highest paced rate that loses nothing, by bisection below `ceiling`.
fn zero_loss_search(
    lan: &Lan,
    frames: &[Vec<u8>],
    ceiling: f64,
    opts: &BenchOptions,
) -> Result<f64> {
    let step = Duration::from_secs_f64(opts.search_seconds);
    let (mut lo, mut hi) = (0.0f64, ceiling.max(10_000.0));
    let mut best = 0.0f64;
    for _ in 0..opts.search_steps {
        let rate = if best == 0.0 && lo == 0.0 {
            hi / 2.0
        } else {
            (lo + hi) / 2.0
        };
        let s = measure(lan, "eth0", || traffic::paced(lan, frames, rate, step))?;
        if s.offered > 0 && s.delivered >= s.offered {
            lo = rate;
            best = best.max(s.offered_fps());
        } else {
            hi = rate;
        }
    }
    Ok(best)
}

fn progress(t0: Instant, msg: &str) {
    eprintln!("[{:6.1}s] {msg}", t0.elapsed().as_secs_f64());
}

/// Runs the benchmark, prints the table, writes JSON and PNG; returns the results.
pub fn run(opts: &BenchOptions) -> Result<BenchResults> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench builds network namespaces and attaches XDP: run it as root");
    }
    for tool in ["trafgen", "ip"] {
        if Command::new(tool).arg("-v").output().is_err() {
            bail!("{tool} not found: install netsniff-ng and iproute2 (make deps)");
        }
    }
    let t0 = Instant::now();
    let started_at = utc_now();
    let tag = format!("mvdp-bench-{}", std::process::id());
    progress(
        t0,
        &format!(
            "building the rig: {} containers in namespaces {tag}-*",
            opts.containers
        ),
    );
    let lan = Lan::build(&tag, opts.containers, 1)?;
    let wire_mac = wire_mac(&lan)?;
    let dsts: Vec<MacAddr> = (0..opts.containers).map(Lan::container_mac).collect();

    let mut raw: Vec<Vec<Raw>> =
        vec![vec![Raw::default(); opts.frame_lens.len()]; opts.systems.len()];
    for run in 0..opts.runs {
        for k in 0..opts.systems.len() {
            let si = (k + run) % opts.systems.len();
            let system = opts.systems[si];
            let setup =
                set_up(&lan, system).with_context(|| format!("setting up {}", system.label()))?;
            for (fi, &len) in opts.frame_lens.iter().enumerate() {
                let frames = traffic::frames(&dsts, wire_mac, len);
                let max = measure(&lan, "eth0", || {
                    traffic::trafgen_max(&lan, &frames, Duration::from_secs_f64(opts.seconds))
                })?;
                let zl = zero_loss_search(&lan, &frames, max.offered_fps(), opts)?;
                let fixed = measure(&lan, "eth0", || {
                    traffic::paced(
                        &lan,
                        &frames,
                        opts.fixed_rate,
                        Duration::from_secs_f64(opts.seconds),
                    )
                })?;
                progress(
                    t0,
                    &format!(
                        "run {}/{} {:<14} {:>4} B: max {:.0} of {:.0} fps offered ({:.1}% loss); zero-loss {:.0} fps; {:.0} ns CPU/frame at {:.0} fps",
                        run + 1,
                        opts.runs,
                        system.label(),
                        len + 4,
                        max.delivered_fps(),
                        max.offered_fps(),
                        max.loss() * 100.0,
                        zl,
                        fixed.cpu_ns_per_frame(),
                        opts.fixed_rate
                    ),
                );
                let r = &mut raw[si][fi];
                r.max.push(max);
                r.zero_loss_fps.push(zl);
                r.fixed.push(fixed);
            }
            let mut setup = setup;
            if let Setup::Mvdp(d) = &mut setup {
                let st = d.stop()?;
                if !st.success() {
                    bail!("{} exited with {st}", system.label());
                }
            }
        }
    }
    drop(lan);

    let mut results = Vec::new();
    for (si, &system) in opts.systems.iter().enumerate() {
        for (fi, &len) in opts.frame_lens.iter().enumerate() {
            let r = &raw[si][fi];
            let m = |f: fn(&Sample) -> f64, v: &[Sample]| median(v.iter().map(f).collect());
            results.push(SystemResult {
                system,
                frame_len: len,
                max_offered_frames: m(|s| s.offered as f64, &r.max) as u64,
                max_delivered_frames: m(|s| s.delivered as f64, &r.max) as u64,
                max_loss_ratio: m(Sample::loss, &r.max),
                max_offered_fps: m(Sample::offered_fps, &r.max),
                max_delivered_fps: m(Sample::delivered_fps, &r.max),
                zero_loss_fps: median(r.zero_loss_fps.clone()),
                fixed_rate_fps: opts.fixed_rate,
                fixed_delivered_frames: m(|s| s.delivered as f64, &r.fixed) as u64,
                fixed_loss_ratio: m(Sample::loss, &r.fixed),
                cpu_ns_per_frame: m(Sample::cpu_ns_per_frame, &r.fixed),
                samples_max_delivered_fps: r.max.iter().map(Sample::delivered_fps).collect(),
                samples_zero_loss_fps: r.zero_loss_fps.clone(),
                samples_cpu_ns_per_frame: r.fixed.iter().map(Sample::cpu_ns_per_frame).collect(),
            });
        }
    }
    let ratios = ratios(&results);

    let mut memory = Vec::new();
    for &n in &opts.memory_endpoints {
        progress(t0, &format!("memory: mvdp with {n} endpoints"));
        memory.push(measure_memory(n, opts)?);
    }

    let out = BenchResults {
        command: opts.command.clone(),
        started_at,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        containers: opts.containers,
        runs: opts.runs,
        seconds: opts.seconds,
        generator: "max load: trafgen (netsniff-ng) unthrottled, 1 process; fixed rates and zero-loss search: mvdp's paced AF_PACKET sender (1 ms slots, sleeping between them)".into(),
        results,
        ratios,
        memory,
    };
    progress(t0, "done");
    Ok(out)
}

fn ratios(results: &[SystemResult]) -> Vec<Ratios> {
    let mut out = Vec::new();
    for r in results.iter().filter(|r| r.system != System::KernelMacvlan) {
        let Some(k) = results
            .iter()
            .find(|k| k.system == System::KernelMacvlan && k.frame_len == r.frame_len)
        else {
            continue;
        };
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        out.push(Ratios {
            system: r.system,
            frame_len: r.frame_len,
            max_delivered_fps: div(r.max_delivered_fps, k.max_delivered_fps),
            zero_loss_fps: div(r.zero_loss_fps, k.zero_loss_fps),
            cpu_ns_per_frame: div(r.cpu_ns_per_frame, k.cpu_ns_per_frame),
        });
    }
    out
}

/// The daemon's resident memory with `n` veth endpoints, idle and after traffic.
fn measure_memory(n: usize, opts: &BenchOptions) -> Result<MemoryResult> {
    let tag = format!("mvdp-mem-{}", std::process::id());
    let lan = Lan::build(&tag, n, 1)?;
    let metrics: SocketAddr = METRICS.parse().expect("address");
    // Enough UMEM frames for every endpoint's fill ring.
    let frames = (n * 32 + 4096).next_power_of_two().max(8192);
    let extra = format!("umem_frames = {frames}\n{}", worker_cores());
    let mut d = DaemonChild::start(
        &lan.host,
        &lan.config("veth", metrics, &extra),
        metrics,
        "warn",
    )?;
    d.wait_ready(Duration::from_secs(300))?;
    let idle = rss_kib(d.pid())?;
    let wire_mac = wire_mac(&lan)?;
    let dsts: Vec<MacAddr> = (0..n).map(Lan::container_mac).collect();
    let frames = traffic::frames(&dsts, wire_mac, 60);
    measure(&lan, "eth0", || {
        traffic::trafgen_max(
            &lan,
            &frames,
            Duration::from_secs_f64(opts.seconds.max(1.0)),
        )
    })?;
    let after = rss_kib(d.pid())?;
    let st = d.stop()?;
    if !st.success() {
        bail!("mvdp with {n} endpoints exited with {st}");
    }
    Ok(MemoryResult {
        endpoints: n,
        rss_idle_kib: idle,
        rss_after_traffic_kib: after,
    })
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

fn wire_mac(lan: &Lan) -> Result<MacAddr> {
    let path = "/sys/class/net/w0/address";
    // sysfs shows the mounting namespace's devices: ask inside the wire namespace instead.
    let out = Command::new("ip")
        .args(["netns", "exec", &lan.wire, "cat", path])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

use std::process::Command;

fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
