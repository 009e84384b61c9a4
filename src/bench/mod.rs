//! `mvdp bench`: mvdp against the kernel's macvlan on the same rig, in one run,
//! measuring what users feel.
//!
//! The rig is the simulated LAN of [`crate::sim`]: a wire namespace (a host
//! on the LAN), a veth standing in for the parent NIC, N containers. The wire
//! is made NIC-like: the wire end sends MTU-sized frames (`tso off gso off`)
//! and both ends have GRO on, so the parent has NAPI and receives frames the
//! way a NIC driver hands them over.
//!
//! For each run the systems take turns (the order rotates from run to run so
//! that drift hits all alike): the kernel's macvlan in bridge mode (the
//! baseline), mvdp with its fast path, mvdp with every frame through the
//! workers, mvdp with TAP endpoints, and (for latency) mvdp with busy-polling
//! workers. Each system, once set up, goes through the parts:
//!
//! - frames, every direction: wire → containers with the NIC-like XDP
//!   generator ([`nicgen`]) and with trafgen (skbs), containers → wire,
//!   container ↔ container: delivered frames/s at maximum load, the highest
//!   zero-loss rate (bisection with a paced sender) and CPU time per
//!   delivered frame at a fixed rate;
//! - TCP bulk (iperf3) both ways between the wire host and a container;
//! - UDP request/response latency (sockperf) from the wire host to a
//!   container, idle and with a CPU hog on the worker's core.
//!
//! Every figure is a median over the runs; each ratio against the kernel is
//! the median of the per-run ratios (each run compared with the kernel
//! measured in that same run), and the per-run samples are in the JSON.

mod apps;
pub mod nicgen;
pub mod report;
pub mod results;
pub mod scale;
mod traffic;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sim::{ip, DaemonChild, Lan};
use crate::wire::MacAddr;
use apps::{LatencyRun, TcpRun};
use nicgen::NicGen;
use results::{
    BenchResults, Direction, FrameResult, Goal, LatencyResult, Load, MemoryResult, Part, Ratio,
    System, TcpDirection, TcpResult,
};
use traffic::{measure, CpuScope, Flow, NicLoad, Port, Ports, Sample, GENERATOR_CPU};

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
    /// Parts to run.
    pub parts: Vec<Part>,
    /// Seconds per iperf3 run.
    pub tcp_seconds: u32,
    /// The MTU of the wire and the parent, so of every container.
    pub mtu: u32,
    /// Seconds per sockperf run.
    pub latency_seconds: u32,
    /// Endpoint counts for the memory figures (empty: skip).
    pub memory_endpoints: Vec<usize>,
    /// Where the JSON and PNG go.
    pub out: PathBuf,
    /// The command line, recorded with the results.
    pub command: String,
}

impl BenchOptions {
    /// The full run (about 20 minutes on 2 cores).
    pub fn full() -> BenchOptions {
        BenchOptions {
            containers: 4,
            runs: 5,
            seconds: 2.0,
            search_seconds: 0.5,
            search_steps: 6,
            frame_lens: vec![60],
            fixed_rate: 200_000.0,
            systems: System::ALL.to_vec(),
            parts: Part::ALL.to_vec(),
            tcp_seconds: 4,
            mtu: 1500,
            latency_seconds: 2,
            memory_endpoints: vec![4, 256],
            out: PathBuf::from("benches/results"),
            command: String::new(),
        }
    }

    /// `--quick`: every system, direction and part, with short runs (about
    /// three minutes); for checking that everything works, not for numbers.
    pub fn quick() -> BenchOptions {
        BenchOptions {
            runs: 2,
            seconds: 0.3,
            search_seconds: 0.15,
            search_steps: 3,
            fixed_rate: 100_000.0,
            tcp_seconds: 1,
            latency_seconds: 1,
            memory_endpoints: vec![4],
            ..BenchOptions::full()
        }
    }
}

const METRICS: &str = "127.0.0.1:9470";

/// The lowest rate the zero-loss search tries, frames/s.
const MIN_SEARCH_RATE: f64 = 5_000.0;

/// How the rig's wire is set up; recorded with the results.
const RIG: &str = "NIC-like wire: the wire end w0 sends MTU-sized frames (ethtool -K w0 tso off gso off, \
    TX checksums finished) and has GRO on, the parent p0 has GRO on (so it has NAPI, as a NIC driver does); \
    a real LAN carries MTU-sized frames, which is what TCP is measured on";

/// The generators and how frames are counted; recorded with the results.
const GENERATOR: &str = "wire → containers: mvdp's NIC-like generator (bpf/gen.c under BPF_PROG_RUN with \
    live frames: XDP frames enter the parent as from a NIC driver; max load and paced in 1 ms slots) and \
    trafgen (skbs; paced figures with mvdp's AF_PACKET sender); containers → wire and container ↔ container: \
    trafgen in every container at max load, mvdp's paced AF_PACKET sender (one socket per container) for \
    the zero-loss search and the fixed rate. Offered = TX packets of the sending interfaces (for veth: what \
    the peer took into its ring); frames the next ring refused (TX drops, XDP xmit errors) are reported \
    apart and fail a zero-loss step; delivered = RX packets of the receiving interfaces";

/// How CPU time is counted; recorded with the results.
const CPU_ACCOUNTING: &str = "CPU ns per delivered frame at the fixed rate: the scheduler's exact run time \
    (schedstat) of every thread working for the rig (kernel threads such as ksoftirqd, every process in the \
    rig's namespaces: the daemon, trafgen, ...; and the bench's own generator threads, softirq work they run \
    included), all cores together, divided by the frames delivered; other processes on the machine are left out";

/// Where processes run; recorded with the results.
fn placement(worker: Option<usize>) -> String {
    match worker {
        Some(w) => format!(
            "generators, iperf3 and sockperf (both ends) on CPU {GENERATOR_CPU}; mvdp's worker on CPU {w}; \
             the latency CPU hog on CPU {w} (for the kernel's macvlan too)"
        ),
        None => "one CPU: everything on CPU 0".to_string(),
    }
}

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

impl Setup<'_> {
    /// Stops the daemon, failing if it did not exit cleanly.
    fn finish(mut self, system: System) -> Result<()> {
        if let Setup::Mvdp(d) = &mut self {
            let st = d.stop()?;
            if !st.success() {
                bail!("{} exited with {st}", system.label());
            }
        }
        Ok(())
    }
}

fn set_up<'a>(lan: &'a Lan, system: System) -> Result<Setup<'a>> {
    let (kind, fast_path, poll) = match system {
        System::KernelMacvlan => {
            let setup = Setup::Kernel(lan);
            for (i, ns) in lan.containers.iter().enumerate() {
                let name = format!("mvb{i}");
                let mac = Lan::container_mac(i).to_string();
                let addr = format!("{}/16", Lan::container_ip(i));
                ip(&[
                    "-n", &lan.host, "link", "add", "link", "p0", "name", &name, "type", "macvlan",
                    "mode", "bridge",
                ])?;
                ip(&[
                    "-n", &lan.host, "link", "set", &name, "address", &mac, "netns", ns,
                ])?;
                ip(&["-n", ns, "link", "set", &name, "name", "eth0"])?;
                ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
                ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            }
            return Ok(setup);
        }
        System::MvdpFastPath => ("veth", "on", "interrupt"),
        System::MvdpWorkers => ("veth", "off", "interrupt"),
        System::MvdpTap => ("tap", "on", "interrupt"),
        System::MvdpBusyPoll => ("veth", "off", "busy"),
    };
    let metrics: SocketAddr = METRICS.parse().expect("address");
    let extra = format!(
        "[dataplane]\nfast_path = \"{fast_path}\"\n\n[workers]\n{}poll = \"{poll}\"\n",
        worker_cores_line()
    );
    let mut d = DaemonChild::start(
        &lan.host,
        &lan.config(kind, metrics, &extra),
        metrics,
        "warn",
    )?;
    d.wait_ready(Duration::from_secs(60))?;
    Ok(Setup::Mvdp(d))
}

/// The core for mvdp's worker: the last CPU, as an operator would place it,
/// instead of `auto` putting it on the generators' core (CPU 0). `None` on
/// a machine with one CPU.
fn worker_core() -> Option<usize> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (n > 1).then(|| n - 1)
}

/// `cores = [N]` for the `[workers]` table, or nothing on one CPU.
fn worker_cores_line() -> String {
    worker_core()
        .map(|c| format!("cores = [{c}]\n"))
        .unwrap_or_default()
}

/// Runs `ethtool ARGS` in namespace `ns`, failing with its output.
fn ethtool(ns: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool"])
        .args(args)
        .output()
        .context("running ethtool (Debian package ethtool)")?;
    if !out.status.success() {
        bail!(
            "ethtool {} in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Makes the rig's wire NIC-like (see [`RIG`]).
fn nic_like_wire(lan: &Lan) -> Result<()> {
    ethtool(
        &lan.wire,
        &[
            "-K", "w0", "tx", "off", "tso", "off", "gso", "off", "gro", "on",
        ],
    )?;
    // NAPI on the parent: without it veth refuses XDP frames sent to it.
    ethtool(&lan.host, &["-K", "p0", "gro", "on"])
}

/// The container that container `i` of `n` sends to in the container ↔
/// container test: its pair (c1 ↔ c2, c3 ↔ c4, ...; an odd last one sends
/// to the one before).
fn c2c_peer(i: usize, n: usize) -> usize {
    if i % 2 == 1 {
        i - 1
    } else if i + 1 < n {
        i + 1
    } else {
        i.saturating_sub(1)
    }
}

/// Loads the NIC-like generator and parks it on an idle veth pair in the
/// wire namespace (see [`NicGen::keep_in_dispatcher`]); the pair goes with
/// the namespace.
fn nic_generator(lan: &Lan, dsts: &[MacAddr]) -> Result<NicGen> {
    let mut gen = NicGen::load(dsts)?;
    ip(&[
        "-n", &lan.wire, "link", "add", "gen0", "type", "veth", "peer", "name", "gen1",
    ])?;
    crate::control::netns::in_netns(&Lan::path(&lan.wire), || gen.keep_in_dispatcher("gen0"))??;
    Ok(gen)
}

/// Raw per-run samples of one system, direction and frame size (index = run).
#[derive(Default, Clone)]
struct RawFrames {
    max: Vec<Option<Sample>>,
    zero_loss_fps: Vec<Option<f64>>,
    fixed: Vec<Option<Sample>>,
}

/// Everything measured, per run, before medians.
#[derive(Default)]
struct Raw {
    frames: HashMap<(usize, Direction, usize), RawFrames>,
    tcp: HashMap<(usize, TcpDirection), Vec<Option<TcpRun>>>,
    latency: HashMap<(usize, Load), Vec<Option<LatencyRun>>>,
}

fn put<T>(v: &mut Vec<Option<T>>, run: usize, runs: usize, x: T) {
    if v.len() < runs {
        v.resize_with(runs, || None);
    }
    v[run] = Some(x);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The rig and what every measurement on it shares.
struct Bench<'a> {
    lan: &'a Lan,
    opts: &'a BenchOptions,
    gen: NicGen,
    wire_mac: MacAddr,
    cpu: CpuScope,
    t0: Instant,
}

impl Bench<'_> {
    fn progress(&self, msg: &str) {
        eprintln!("[{:6.1}s] {msg}", self.t0.elapsed().as_secs_f64());
    }

    fn containers(&self) -> usize {
        self.lan.containers.len()
    }

    fn container_port(&self, i: usize) -> Port {
        Port::new(&self.lan.containers[i], "eth0")
    }

    fn wire_port(&self) -> Port {
        Port::new(&self.lan.wire, "w0")
    }

    /// Who sends and who receives in `dir`, and the socket generators' flows.
    fn plan(&self, dir: Direction, len: usize) -> (Ports, Vec<Flow>) {
        let n = self.containers();
        let containers: Vec<Port> = (0..n).map(|i| self.container_port(i)).collect();
        match dir {
            Direction::WireToContainersNic | Direction::WireToContainersSkb => {
                let frames = (0..n)
                    .map(|i| traffic::frame(Lan::container_mac(i), self.wire_mac, len))
                    .collect();
                let ports = Ports {
                    senders: vec![self.wire_port()],
                    receivers: containers,
                    cpu: self.cpu.clone(),
                };
                (
                    ports,
                    vec![Flow {
                        port: self.wire_port(),
                        frames,
                    }],
                )
            }
            Direction::ContainersToWire => {
                let flows = (0..n)
                    .map(|i| Flow {
                        port: self.container_port(i),
                        frames: vec![traffic::frame(self.wire_mac, Lan::container_mac(i), len)],
                    })
                    .collect();
                let ports = Ports {
                    senders: containers,
                    receivers: vec![self.wire_port()],
                    cpu: self.cpu.clone(),
                };
                (ports, flows)
            }
            Direction::ContainerToContainer => {
                let flows = (0..n)
                    .map(|i| Flow {
                        port: self.container_port(i),
                        frames: vec![traffic::frame(
                            Lan::container_mac(c2c_peer(i, n)),
                            Lan::container_mac(i),
                            len,
                        )],
                    })
                    .collect();
                let ports = Ports {
                    senders: containers.clone(),
                    receivers: containers,
                    cpu: self.cpu.clone(),
                };
                (ports, flows)
            }
        }
    }

    /// One measurement in `dir`: `rate` None is the maximum load.
    fn frames_once(
        &self,
        dir: Direction,
        ports: &Ports,
        flows: &[Flow],
        rate: Option<f64>,
        secs: f64,
    ) -> Result<Sample> {
        let d = Duration::from_secs_f64(secs);
        measure(ports, || match (dir, rate) {
            (Direction::WireToContainersNic, None) => traffic::nic(
                &self.gen,
                &ports.senders[0],
                &flows[0].frames[0],
                NicLoad::Max,
                d,
            ),
            (Direction::WireToContainersNic, Some(r)) => traffic::nic(
                &self.gen,
                &ports.senders[0],
                &flows[0].frames[0],
                NicLoad::Paced(r),
                d,
            ),
            (_, None) => traffic::trafgen_max(flows, d),
            (_, Some(r)) => traffic::paced(flows, r, d),
        })
    }

    /// The highest paced rate that loses nothing, by bisection below `ceiling`.
    ///
    /// The steps go on past `search_steps` while no rate has been lossless
    /// yet (halving each time), down to [`MIN_SEARCH_RATE`]: a short search
    /// still finds a rate, and 0 means lossy even at a trickle.
    fn zero_loss_search(
        &self,
        dir: Direction,
        ports: &Ports,
        flows: &[Flow],
        ceiling: f64,
    ) -> Result<f64> {
        let (mut lo, mut hi) = (0.0f64, ceiling.max(4.0 * MIN_SEARCH_RATE));
        let mut best = 0.0f64;
        for step in 0.. {
            if step >= self.opts.search_steps && (best > 0.0 || hi < 2.0 * MIN_SEARCH_RATE) {
                break;
            }
            let rate = (lo + hi) / 2.0;
            let s = self.frames_once(dir, ports, flows, Some(rate), self.opts.search_seconds)?;
            log::debug!(
                "zero-loss search {}: {rate:.0} fps asked, {:.0} offered, {} refused, {} of {} delivered",
                dir.short(),
                s.offered_fps(),
                s.refused,
                s.delivered,
                s.offered
            );
            if s.lossless() {
                lo = rate;
                best = best.max(s.offered_fps());
            } else {
                hi = rate;
            }
        }
        Ok(best)
    }

    /// The three frame figures of one system in one direction at one size.
    fn frames(
        &self,
        raw: &mut Raw,
        si: usize,
        run: usize,
        dir: Direction,
        len: usize,
    ) -> Result<()> {
        let system = self.opts.systems[si];
        let (ports, flows) = self.plan(dir, len);
        let max = self.frames_once(dir, &ports, &flows, None, self.opts.seconds)?;
        // What the generator managed, taken or not: the search's ceiling.
        let ceiling = (max.offered + max.refused) as f64 / max.secs.max(1e-9);
        let zl = self.zero_loss_search(dir, &ports, &flows, ceiling)?;
        let fixed = self.frames_once(
            dir,
            &ports,
            &flows,
            Some(self.opts.fixed_rate),
            self.opts.seconds,
        )?;
        self.progress(&format!(
            "run {}/{} {:<14} {:<20} {:>4} B: max {:.0} of {:.0} fps offered ({:.1}% loss, {} refused); zero-loss {:.0} fps; {:.0} ns CPU/frame at {:.0} fps",
            run + 1,
            self.opts.runs,
            system.label(),
            dir.short(),
            len + 4,
            max.delivered_fps(),
            max.offered_fps(),
            max.loss() * 100.0,
            max.refused,
            zl,
            fixed.cpu_ns_per_frame(),
            self.opts.fixed_rate
        ));
        let runs = self.opts.runs;
        let r = raw.frames.entry((si, dir, len)).or_default();
        put(&mut r.max, run, runs, max);
        put(&mut r.zero_loss_fps, run, runs, zl);
        put(&mut r.fixed, run, runs, fixed);
        Ok(())
    }

    fn tcp(&self, raw: &mut Raw, si: usize, run: usize) -> Result<()> {
        let system = self.opts.systems[si];
        for dir in TcpDirection::ALL {
            let r = apps::iperf3(
                &self.lan.wire,
                &self.lan.containers[0],
                Lan::container_ip(0),
                dir == TcpDirection::ContainerToWire,
                self.opts.tcp_seconds,
                GENERATOR_CPU,
            )
            .with_context(|| format!("TCP {} with {}", dir.label(), system.label()))?;
            self.progress(&format!(
                "run {}/{} {:<14} TCP {:<17}: {:.2} Gbit/s, {} retransmits",
                run + 1,
                self.opts.runs,
                system.label(),
                dir.label(),
                r.gbps,
                r.retransmits
            ));
            put(
                raw.tcp.entry((si, dir)).or_default(),
                run,
                self.opts.runs,
                r,
            );
        }
        Ok(())
    }

    fn latency(&self, raw: &mut Raw, si: usize, run: usize) -> Result<()> {
        let system = self.opts.systems[si];
        for load in Load::ALL {
            let hog = match load {
                Load::Idle => None,
                Load::BusyCore => Some(apps::cpu_hog(worker_core().unwrap_or(GENERATOR_CPU))?),
            };
            let r = apps::sockperf(
                &self.lan.wire,
                &self.lan.containers[0],
                Lan::container_ip(0),
                self.opts.latency_seconds,
                GENERATOR_CPU,
            )
            .with_context(|| format!("latency ({}) with {}", load.label(), system.label()))?;
            drop(hog);
            self.progress(&format!(
                "run {}/{} {:<14} latency {:<9}: RTT p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs ({} round trips)",
                run + 1,
                self.opts.runs,
                system.label(),
                load.label(),
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.observations
            ));
            put(
                raw.latency.entry((si, load)).or_default(),
                run,
                self.opts.runs,
                r,
            );
        }
        Ok(())
    }
}

/// Runs the benchmark, prints progress, returns the results (the caller
/// prints the table and writes the files).
pub fn run(opts: &BenchOptions) -> Result<BenchResults> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the bench builds network namespaces and attaches XDP: run it as root");
    }
    let mut tools = vec!["ip", "ethtool"];
    if opts.parts.iter().any(|p| p.direction().is_some()) || !opts.memory_endpoints.is_empty() {
        tools.push("trafgen");
    }
    if opts.parts.contains(&Part::Tcp) {
        tools.push("iperf3");
    }
    if opts.parts.contains(&Part::Latency) {
        tools.push("sockperf");
    }
    apps::check_tools(&tools)?;
    let t0 = Instant::now();
    let started_at = utc_now();
    let mut raw = Raw::default();
    let runs_any = opts.runs > 0 && !opts.parts.is_empty() && !opts.systems.is_empty();
    if runs_any {
        let tag = format!("mvdp-bench-{}", std::process::id());
        eprintln!(
            "[{:6.1}s] building the rig: {} containers in namespaces {tag}-*",
            t0.elapsed().as_secs_f64(),
            opts.containers
        );
        if opts.parts.contains(&Part::C2c) && opts.containers < 2 {
            eprintln!(
                "[{:6.1}s] container ↔ container needs two containers: skipped",
                t0.elapsed().as_secs_f64()
            );
        }
        let lan = Lan::build(&tag, opts.containers, 1)?;
        nic_like_wire(&lan)?;
        if opts.mtu != 1500 {
            // Before any system's containers: kernel macvlans take the
            // parent's MTU, mvdp's networks default to it.
            let mtu = opts.mtu.to_string();
            ip(&["-n", &lan.wire, "link", "set", "w0", "mtu", &mtu])?;
            ip(&["-n", &lan.host, "link", "set", "p0", "mtu", &mtu])?;
        }
        let dsts: Vec<MacAddr> = (0..opts.containers).map(Lan::container_mac).collect();
        let bench = Bench {
            lan: &lan,
            opts,
            gen: nic_generator(&lan, &dsts)?,
            wire_mac: wire_mac(&lan)?,
            cpu: CpuScope::of(lan.all())?,
            t0,
        };
        for run in 0..opts.runs {
            for k in 0..opts.systems.len() {
                let si = (k + run) % opts.systems.len();
                let system = opts.systems[si];
                let parts: Vec<Part> = opts
                    .parts
                    .iter()
                    .copied()
                    .filter(|p| system.runs(*p))
                    .filter(|p| *p != Part::C2c || opts.containers > 1)
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let setup = set_up(&lan, system)
                    .with_context(|| format!("setting up {}", system.label()))?;
                for part in parts {
                    match part {
                        Part::Tcp => bench.tcp(&mut raw, si, run)?,
                        Part::Latency => bench.latency(&mut raw, si, run)?,
                        frames => {
                            let dir = frames.direction().expect("a frame part");
                            for &len in &opts.frame_lens {
                                bench.frames(&mut raw, si, run, dir, len).with_context(|| {
                                    format!("{} with {}", dir.label(), system.label())
                                })?;
                            }
                        }
                    }
                }
                setup.finish(system)?;
            }
        }
    }

    let (frames, tcp, latency) = summarise(opts, &raw);
    let ratios = ratios(opts, &raw);

    let mut memory = Vec::new();
    for &n in &opts.memory_endpoints {
        eprintln!(
            "[{:6.1}s] memory: mvdp with {n} endpoints",
            t0.elapsed().as_secs_f64()
        );
        memory.push(measure_memory(n, opts)?);
    }

    let out = BenchResults {
        command: opts.command.clone(),
        started_at,
        kernel: kernel_release(),
        cpus: online_cpus(),
        containers: opts.containers,
        runs: opts.runs,
        seconds: opts.seconds,
        tcp_seconds: opts.tcp_seconds,
        latency_seconds: opts.latency_seconds,
        mtu: opts.mtu,
        rig: RIG.into(),
        generator: GENERATOR.into(),
        placement: placement(worker_core()),
        cpu_accounting: CPU_ACCOUNTING.into(),
        frames,
        tcp,
        latency,
        ratios,
        memory,
    };
    eprintln!("[{:6.1}s] done", t0.elapsed().as_secs_f64());
    Ok(out)
}

/// Medians of every figure, with the per-run samples.
fn summarise(
    opts: &BenchOptions,
    raw: &Raw,
) -> (Vec<FrameResult>, Vec<TcpResult>, Vec<LatencyResult>) {
    let mut frames = Vec::new();
    let mut tcp = Vec::new();
    let mut latency = Vec::new();
    for (si, &system) in opts.systems.iter().enumerate() {
        for dir in Direction::ALL {
            for &len in &opts.frame_lens {
                let Some(r) = raw.frames.get(&(si, dir, len)) else {
                    continue;
                };
                let max: Vec<Sample> = r.max.iter().flatten().copied().collect();
                let fixed: Vec<Sample> = r.fixed.iter().flatten().copied().collect();
                let zl: Vec<f64> = r.zero_loss_fps.iter().flatten().copied().collect();
                let m = |f: fn(&Sample) -> f64, v: &[Sample]| median(v.iter().map(f).collect());
                frames.push(FrameResult {
                    system,
                    direction: dir,
                    frame_len: len,
                    max_offered_frames: m(|s| s.offered as f64, &max) as u64,
                    max_refused_frames: m(|s| s.refused as f64, &max) as u64,
                    max_delivered_frames: m(|s| s.delivered as f64, &max) as u64,
                    max_loss_ratio: m(Sample::loss, &max),
                    max_offered_fps: m(Sample::offered_fps, &max),
                    max_delivered_fps: m(Sample::delivered_fps, &max),
                    zero_loss_fps: median(zl.clone()),
                    fixed_rate_fps: opts.fixed_rate,
                    fixed_delivered_frames: m(|s| s.delivered as f64, &fixed) as u64,
                    fixed_loss_ratio: m(Sample::loss, &fixed),
                    cpu_ns_per_frame: m(Sample::cpu_ns_per_frame, &fixed),
                    samples_max_delivered_fps: max.iter().map(Sample::delivered_fps).collect(),
                    samples_zero_loss_fps: zl,
                    samples_cpu_ns_per_frame: fixed.iter().map(Sample::cpu_ns_per_frame).collect(),
                });
            }
        }
        for dir in TcpDirection::ALL {
            let Some(v) = raw.tcp.get(&(si, dir)) else {
                continue;
            };
            let runs: Vec<TcpRun> = v.iter().flatten().copied().collect();
            tcp.push(TcpResult {
                system,
                direction: dir,
                gbps: median(runs.iter().map(|r| r.gbps).collect()),
                retransmits: median(runs.iter().map(|r| r.retransmits as f64).collect()) as u64,
                samples_gbps: runs.iter().map(|r| r.gbps).collect(),
            });
        }
        for load in Load::ALL {
            let Some(v) = raw.latency.get(&(si, load)) else {
                continue;
            };
            let runs: Vec<LatencyRun> = v.iter().flatten().copied().collect();
            let col = |f: fn(&LatencyRun) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
            latency.push(LatencyResult {
                system,
                load,
                p50_us: median(col(|r| r.p50_us)),
                p99_us: median(col(|r| r.p99_us)),
                p999_us: median(col(|r| r.p999_us)),
                samples_p50_us: col(|r| r.p50_us),
                samples_p99_us: col(|r| r.p99_us),
                samples_p999_us: col(|r| r.p999_us),
            });
        }
    }
    (frames, tcp, latency)
}

/// The goal of issue 7 for one figure of one system, if it has one.
///
/// The goals are for 64-byte frames from the NIC-like generator and for
/// containers → wire, TCP both ways and latency; the fast path must match
/// the kernel's macvlan, the workers stay within a bound of it.
fn goal(system: System, key: &str) -> Option<Goal> {
    let frames = |suffix: &str| {
        ["wire_to_containers_nic/60/", "containers_to_wire/60/"]
            .iter()
            .any(|p| key == format!("{p}{suffix}"))
    };
    match system {
        System::MvdpFastPath => {
            if frames("max_delivered_fps") || frames("zero_loss_fps") {
                Some(Goal::at_least(1.0))
            } else if frames("cpu_ns_per_frame") {
                Some(Goal::at_most(1.0))
            } else if key.starts_with("tcp/") {
                Some(Goal::at_least(1.0))
            } else if key == "latency/idle/p99_us" || key == "latency/busy_core/p99_us" {
                Some(Goal::at_most(1.0))
            } else {
                None
            }
        }
        System::MvdpWorkers => {
            if frames("cpu_ns_per_frame") {
                Some(Goal::at_most(1.5))
            } else if frames("zero_loss_fps") {
                Some(Goal::at_least(0.8))
            } else if key == "latency/idle/p50_us" {
                Some(Goal::at_most(1.5))
            } else if key.starts_with("tcp/") {
                Some(Goal::at_least(0.8))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Serde's name of an enum value (`Direction::ContainersToWire` → "containers_to_wire").
fn snake<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Every mvdp figure against the kernel's, per run, then the median.
fn ratios(opts: &BenchOptions, raw: &Raw) -> Vec<Ratio> {
    let Some(ki) = opts
        .systems
        .iter()
        .position(|s| *s == System::KernelMacvlan)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |system: System,
                    key: String,
                    row: String,
                    figure: &str,
                    mine: Vec<Option<f64>>,
                    kernel: Vec<Option<f64>>| {
        let samples: Vec<f64> = mine
            .iter()
            .zip(&kernel)
            .filter_map(|(m, k)| match (m, k) {
                (Some(m), Some(k)) if *k > 0.0 => Some(m / k),
                _ => None,
            })
            .collect();
        if mine.iter().all(Option::is_none) {
            return;
        }
        let ratio = median(samples.clone());
        let goal = goal(system, &key);
        out.push(Ratio {
            system,
            met: goal.and_then(|g| g.met(ratio)),
            key,
            row,
            figure: figure.to_string(),
            ratio,
            samples,
            goal,
        });
    };
    for (si, &system) in opts.systems.iter().enumerate() {
        if si == ki {
            continue;
        }
        for dir in Direction::ALL {
            for &len in &opts.frame_lens {
                let (Some(m), Some(k)) = (
                    raw.frames.get(&(si, dir, len)),
                    raw.frames.get(&(ki, dir, len)),
                ) else {
                    continue;
                };
                let row = format!("{}, {} B", dir.short(), len + 4);
                let base = format!("{}/{len}", snake(dir));
                let s = |v: &[Option<Sample>], f: fn(&Sample) -> f64| -> Vec<Option<f64>> {
                    v.iter().map(|x| x.as_ref().map(f)).collect()
                };
                push(
                    system,
                    format!("{base}/max_delivered_fps"),
                    row.clone(),
                    "delivered",
                    s(&m.max, Sample::delivered_fps),
                    s(&k.max, Sample::delivered_fps),
                );
                push(
                    system,
                    format!("{base}/zero_loss_fps"),
                    row.clone(),
                    "zero-loss",
                    m.zero_loss_fps.clone(),
                    k.zero_loss_fps.clone(),
                );
                push(
                    system,
                    format!("{base}/cpu_ns_per_frame"),
                    row,
                    "CPU/frame",
                    s(&m.fixed, Sample::cpu_ns_per_frame),
                    s(&k.fixed, Sample::cpu_ns_per_frame),
                );
            }
        }
        for dir in TcpDirection::ALL {
            let (Some(m), Some(k)) = (raw.tcp.get(&(si, dir)), raw.tcp.get(&(ki, dir))) else {
                continue;
            };
            let g = |v: &[Option<TcpRun>]| v.iter().map(|r| r.map(|r| r.gbps)).collect();
            push(
                system,
                format!("tcp/{}/gbps", snake(dir)),
                "TCP Gbit/s".into(),
                dir.label(),
                g(m),
                g(k),
            );
        }
        for load in Load::ALL {
            let (Some(m), Some(k)) = (raw.latency.get(&(si, load)), raw.latency.get(&(ki, load)))
            else {
                continue;
            };
            let row = format!("latency, {}", load.label());
            type Pick = fn(&LatencyRun) -> f64;
            let picks: [(&str, &str, Pick); 3] = [
                ("p50_us", "p50", |r| r.p50_us),
                ("p99_us", "p99", |r| r.p99_us),
                ("p999_us", "p99.9", |r| r.p999_us),
            ];
            for (name, figure, f) in picks {
                let g = |v: &[Option<LatencyRun>]| v.iter().map(|r| r.as_ref().map(f)).collect();
                push(
                    system,
                    format!("latency/{}/{name}", snake(load)),
                    row.clone(),
                    figure,
                    g(m),
                    g(k),
                );
            }
        }
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
    let extra = format!(
        "umem_frames = {frames}\n\n[workers]\n{}",
        worker_cores_line()
    );
    let mut d = DaemonChild::start(
        &lan.host,
        &lan.config("veth", metrics, &extra),
        metrics,
        "warn",
    )?;
    d.wait_ready(Duration::from_secs(300))?;
    let idle = rss_kib(d.pid())?;
    let wire_mac = wire_mac(&lan)?;
    let flow = Flow {
        port: Port::new(&lan.wire, "w0"),
        frames: (0..n)
            .map(|i| traffic::frame(Lan::container_mac(i), wire_mac, 60))
            .collect(),
    };
    let ports = Ports {
        senders: vec![flow.port.clone()],
        receivers: Vec::new(),
        cpu: CpuScope::default(),
    };
    measure(&ports, || {
        traffic::trafgen_max(
            std::slice::from_ref(&flow),
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

/// The kernel's release, as results record it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Online CPUs.
fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_follow_the_issue() {
        let fp = System::MvdpFastPath;
        let w = System::MvdpWorkers;
        assert_eq!(
            goal(fp, "wire_to_containers_nic/60/max_delivered_fps"),
            Some(Goal::at_least(1.0))
        );
        assert_eq!(
            goal(fp, "containers_to_wire/60/cpu_ns_per_frame"),
            Some(Goal::at_most(1.0))
        );
        assert_eq!(goal(fp, "wire_to_containers_skb/60/zero_loss_fps"), None);
        assert_eq!(goal(fp, "wire_to_containers_nic/1514/zero_loss_fps"), None);
        assert_eq!(
            goal(fp, "tcp/container_to_wire/gbps"),
            Some(Goal::at_least(1.0))
        );
        assert_eq!(
            goal(fp, "latency/busy_core/p99_us"),
            Some(Goal::at_most(1.0))
        );
        assert_eq!(goal(fp, "latency/idle/p50_us"), None);
        assert_eq!(
            goal(w, "containers_to_wire/60/cpu_ns_per_frame"),
            Some(Goal::at_most(1.5))
        );
        assert_eq!(
            goal(w, "wire_to_containers_nic/60/zero_loss_fps"),
            Some(Goal::at_least(0.8))
        );
        assert_eq!(goal(w, "wire_to_containers_nic/60/max_delivered_fps"), None);
        assert_eq!(goal(w, "latency/idle/p50_us"), Some(Goal::at_most(1.5)));
        assert_eq!(
            goal(w, "tcp/wire_to_container/gbps"),
            Some(Goal::at_least(0.8))
        );
        assert_eq!(goal(System::MvdpTap, "tcp/wire_to_container/gbps"), None);
    }

    #[test]
    fn ratios_are_medians_of_per_run_ratios() {
        let opts = BenchOptions {
            systems: vec![System::KernelMacvlan, System::MvdpWorkers],
            runs: 3,
            ..BenchOptions::quick()
        };
        let mut raw = Raw::default();
        let tcp = |g: f64| {
            Some(TcpRun {
                gbps: g,
                retransmits: 0,
            })
        };
        raw.tcp.insert(
            (0, TcpDirection::WireToContainer),
            vec![tcp(10.0), tcp(2.0), tcp(4.0)],
        );
        raw.tcp.insert(
            (1, TcpDirection::WireToContainer),
            vec![tcp(5.0), tcp(2.0), None],
        );
        let r = ratios(&opts, &raw);
        assert_eq!(r.len(), 1);
        // Per run: 0.5, 1.0 (the third run has no figure): median 0.75.
        assert_eq!(r[0].samples, vec![0.5, 1.0]);
        assert_eq!(r[0].ratio, 0.75);
        assert_eq!(r[0].key, "tcp/wire_to_container/gbps");
        assert_eq!(r[0].goal, Some(Goal::at_least(0.8)));
        assert_eq!(r[0].met, Some(false));
    }

    #[test]
    fn c2c_pairs() {
        assert_eq!(
            (0..4).map(|i| c2c_peer(i, 4)).collect::<Vec<_>>(),
            [1, 0, 3, 2]
        );
        assert_eq!(
            (0..3).map(|i| c2c_peer(i, 3)).collect::<Vec<_>>(),
            [1, 0, 1]
        );
    }
}
