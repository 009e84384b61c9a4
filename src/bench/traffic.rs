//! Frame traffic for the bench and the counters it is judged by.
//!
//! Generators: Debian's `trafgen` (unthrottled, for the maximum load; one
//! process per sending namespace, all on CPU 0), a paced AF_PACKET sender of
//! our own (for fixed rates and the zero-loss search: trafgen's `-b` sends
//! each second's quota in a burst and then sleeps), and the NIC-like XDP
//! generator of [`super::nicgen`] (maximum and paced). Counters: the sending
//! interfaces' TX packets and drops, the receiving interfaces' RX packets
//! (/proc/net/dev inside each namespace) and every thread's exact CPU time.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::nicgen::NicGen;
use crate::control::netns::in_netns;
use crate::io::packet;
use crate::sim::Lan;
use crate::wire::MacAddr;

/// The experimental ethertype of bench frames: container stacks count and drop them.
pub const ETHERTYPE_BENCH: u16 = 0x88b5;

/// The CPU generators run on (mvdp's worker gets the last one).
pub const GENERATOR_CPU: usize = 0;

/// One frame of `len` bytes (no FCS) from `src` to `dst`.
pub fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(60));
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETHERTYPE_BENCH.to_be_bytes());
    f.resize(len.max(60), 0);
    f
}

/// Which threads' CPU time counts: those working for the rig.
///
/// Kernel threads (ksoftirqd, kworkers: the receive path runs there when it
/// does not run in the sender's context), every process inside the rig's
/// network namespaces (the daemon, trafgen, ...), and this process. Other
/// processes on the machine (a compiler, someone else's tests) are left out,
/// so a shared machine does not inflate the figure; softirq work that
/// happens to interrupt one of them is lost with them (on a quiet machine
/// there is none).
#[derive(Debug, Clone, Default)]
pub struct CpuScope {
    /// Inode numbers of the rig's network namespaces.
    netns: std::collections::HashSet<u64>,
}

impl CpuScope {
    /// The scope of the namespaces `names` (under /var/run/netns).
    pub fn of<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<CpuScope> {
        use std::os::unix::fs::MetadataExt as _;
        let mut netns = std::collections::HashSet::new();
        for n in names {
            let path = Lan::path(n);
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("network namespace {}", path.display()))?;
            netns.insert(meta.ino());
        }
        Ok(CpuScope { netns })
    }

    /// Whether process `pid` (its /proc directory) works for the rig.
    fn includes(&self, proc_dir: &Path, pid: u32) -> bool {
        if pid == std::process::id() {
            return true;
        }
        let in_rig = std::fs::read_link(proc_dir.join("ns/net"))
            .ok()
            .and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                l.strip_prefix("net:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|ino| self.netns.contains(&ino));
        in_rig || is_kernel_thread(proc_dir)
    }
}

/// Whether /proc/PID/stat says PF_KTHREAD.
fn is_kernel_thread(proc_dir: &Path) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags ...
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// CPU time consumed by the threads in a [`CpuScope`], in nanoseconds.
///
/// Read from each thread's `schedstat` (the scheduler's exact run time)
/// rather than /proc/stat: its tick-sampled counters alias with a generator
/// that wakes on timer boundaries and can read zero for a busy second. This
/// kernel (no IRQ_TIME_ACCOUNTING) charges softirq work to the thread it
/// interrupts, so the receive path's cost is in there too. Threads are
/// compared one by one: one that started in the window counts whole, one
/// that ended in it is lost (the generator reports its own time instead).
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    by_tid: std::collections::HashMap<u64, u64>,
}

impl CpuTimes {
    /// Reads the run time of every thread in `scope` now.
    pub fn now(scope: &CpuScope) -> Result<CpuTimes> {
        let mut by_tid = std::collections::HashMap::new();
        for proc_entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if !scope.includes(&proc_entry.path(), pid) {
                continue;
            }
            let Ok(tasks) = std::fs::read_dir(proc_entry.path().join("task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else {
                    continue;
                };
                if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                    if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse().ok()) {
                        by_tid.insert(tid, ns);
                    }
                }
            }
        }
        Ok(CpuTimes { by_tid })
    }

    /// CPU time since `earlier`, in nanoseconds, all cores together.
    pub fn busy_ns_since(&self, earlier: &CpuTimes) -> u64 {
        self.by_tid
            .iter()
            .map(|(tid, &now)| now.saturating_sub(earlier.by_tid.get(tid).copied().unwrap_or(0)))
            .sum()
    }
}

/// What a generator did: how long it ran and the CPU time of its own
/// (short-lived) thread, which the machine-wide sum cannot see.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// Wall time.
    pub elapsed: Duration,
    /// CPU time of the generating thread, ns (0 for an external process).
    pub own_cpu_ns: u64,
    /// Frames the generator made, where it knows (the NIC-like generator).
    pub made: Option<u64>,
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to `cpu` (best effort: a machine with one CPU has only CPU 0).
pub fn pin_current(cpu: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

/// What one measurement saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Frames the sending interfaces took (their TX packets).
    pub offered: u64,
    /// Frames the sending interfaces dropped (their TX drops: the next
    /// ring was full), not counted as offered.
    pub refused: u64,
    /// Frames the receiving interfaces received.
    pub delivered: u64,
    /// Seconds the generator ran.
    pub secs: f64,
    /// Busy CPU time, all cores, nanoseconds.
    pub busy_ns: u64,
}

impl Sample {
    /// 1 - delivered/offered (0 when nothing was lost).
    pub fn loss(&self) -> f64 {
        if self.offered == 0 {
            return 0.0;
        }
        1.0 - (self.delivered.min(self.offered) as f64 / self.offered as f64)
    }

    /// Whether every frame made was taken and delivered.
    pub fn lossless(&self) -> bool {
        self.offered > 0 && self.refused == 0 && self.delivered >= self.offered
    }

    /// Offered frames per second.
    pub fn offered_fps(&self) -> f64 {
        self.offered as f64 / self.secs.max(1e-9)
    }

    /// Delivered frames per second.
    pub fn delivered_fps(&self) -> f64 {
        self.delivered as f64 / self.secs.max(1e-9)
    }

    /// CPU nanoseconds per delivered frame.
    pub fn cpu_ns_per_frame(&self) -> f64 {
        self.busy_ns as f64 / self.delivered.max(1) as f64
    }
}

/// An interface in a namespace.
#[derive(Debug, Clone)]
pub struct Port {
    /// Namespace name (under /var/run/netns).
    pub ns: String,
    /// Interface name.
    pub ifname: String,
}

impl Port {
    /// `ifname` in `ns`.
    pub fn new(ns: &str, ifname: &str) -> Port {
        Port {
            ns: ns.to_string(),
            ifname: ifname.to_string(),
        }
    }
}

/// Where frames of one test leave and arrive.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The interfaces the generator sends from.
    pub senders: Vec<Port>,
    /// The interfaces whose RX counts as delivered.
    pub receivers: Vec<Port>,
    /// Whose CPU time counts.
    pub cpu: CpuScope,
}

/// Packet counters of one interface, from /proc/net/dev in its namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStats {
    /// RX packets.
    pub rx_packets: u64,
    /// TX packets.
    pub tx_packets: u64,
    /// TX drops.
    pub tx_dropped: u64,
}

/// Reads `ifname`'s counters in namespace `ns`.
///
/// veth reports as its TX packets what its peer's NAPI took from the
/// peer's ring, and as TX drops what did not fit in that ring (skbs and
/// XDP frames, `xdp_xmit_errors`, alike).
pub fn link_stats(ns: &str, ifname: &str) -> Result<LinkStats> {
    let text = crate::sim::net_dev(ns)?;
    parse_net_dev(&text, ifname).with_context(|| format!("no interface {ifname} in netns {ns}"))
}

fn parse_net_dev(text: &str, ifname: &str) -> Option<LinkStats> {
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
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
        if f.len() >= 12 {
            return Some(LinkStats {
                rx_packets: f[1],
                tx_packets: f[9],
                tx_dropped: f[11],
            });
        }
    }
    None
}

/// The counters a measurement is judged by.
struct Counters {
    offered: u64,
    refused: u64,
    delivered: u64,
    cpu: CpuTimes,
}

fn counters(ports: &Ports) -> Result<Counters> {
    let (mut offered, mut refused, mut delivered) = (0, 0, 0);
    for p in &ports.senders {
        let s = link_stats(&p.ns, &p.ifname)?;
        offered += s.tx_packets;
        refused += s.tx_dropped;
    }
    for p in &ports.receivers {
        delivered += link_stats(&p.ns, &p.ifname)?.rx_packets;
    }
    Ok(Counters {
        offered,
        refused,
        delivered,
        cpu: CpuTimes::now(&ports.cpu)?,
    })
}

/// Runs `generate` and reports what the senders took and the receivers got.
pub fn measure(ports: &Ports, generate: impl FnOnce() -> Result<Generated>) -> Result<Sample> {
    let before = counters(ports)?;
    let generated = generate()?;
    let secs = generated.elapsed.as_secs_f64();
    // Let frames in flight land (rings, backlogs) before reading the counters.
    std::thread::sleep(Duration::from_millis(120));
    let after = counters(ports)?;
    let sample = Sample {
        offered: after.offered.saturating_sub(before.offered),
        refused: after.refused.saturating_sub(before.refused),
        delivered: after.delivered.saturating_sub(before.delivered),
        secs,
        busy_ns: after.cpu.busy_ns_since(&before.cpu) + generated.own_cpu_ns,
    };
    if let Some(made) = generated.made {
        // The NIC-like generator's own count must match what veth says it
        // took and refused (see nicgen.rs); say so when it does not.
        let seen = sample.offered + sample.refused;
        if made.abs_diff(seen) > made / 1000 + 64 {
            log::warn!(
                "NIC-like generator made {made} frames but the wire end counted {} taken + {} refused",
                sample.offered,
                sample.refused
            );
        }
    }
    Ok(sample)
}

/// One sending interface and the frames it sends, round robin.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Where the frames leave.
    pub port: Port,
    /// The frames.
    pub frames: Vec<Vec<u8>>,
}

/// trafgen unthrottled, one process per flow (all on CPU 0), for `duration`.
pub fn trafgen_max(flows: &[Flow], duration: Duration) -> Result<Generated> {
    let mut running = Vec::new();
    for (i, flow) in flows.iter().enumerate() {
        let conf = write_trafgen_conf(&flow.port.ns, i, &flow.frames)?;
        // Pushed before spawning, so a failure below still removes the file.
        running.push(TrafgenProcess { child: None, conf });
        let process = running.last_mut().expect("just pushed");
        process.child = Some(spawn_trafgen(&flow.port, &process.conf)?);
    }
    let start = Instant::now();
    std::thread::sleep(duration);
    // Dropping stops them all (their process groups) and removes the configs.
    drop(running);
    Ok(Generated {
        elapsed: start.elapsed(),
        own_cpu_ns: 0,
        made: None,
    })
}

/// A trafgen process group and its config file; dropping it stops and removes both.
struct TrafgenProcess {
    child: Option<Child>,
    conf: PathBuf,
}

impl Drop for TrafgenProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop_group(child);
        }
        let _ = std::fs::remove_file(&self.conf);
    }
}

fn write_trafgen_conf(ns: &str, i: usize, frames: &[Vec<u8>]) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{ns}-{}-{i}.trafgen", std::process::id()));
    let mut text = String::new();
    for f in frames {
        let bytes: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
        text += &format!("{{ {} }}\n", bytes.join(", "));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

fn spawn_trafgen(port: &Port, conf: &Path) -> Result<Child> {
    // setsid: trafgen forks workers; they live in our own process group, which
    // is what we signal to stop them all (never by name).
    Command::new("setsid")
        .args(["ip", "netns", "exec", &port.ns, "trafgen", "--dev"])
        .arg(&port.ifname)
        .arg("--conf")
        .arg(conf)
        // One process (trafgen pins it to CPU 0); leave global socket memory
        // and IRQ affinity alone; quiet.
        .args([
            "--cpus",
            "1",
            "--no-sock-mem",
            "--notouch-irq",
            "--no-cpu-stats",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting trafgen (Debian package netsniff-ng)")
}

fn stop_group(child: &mut Child) {
    let pgid = child.id() as i32;
    // SAFETY: kill(2) on the process group our own child leads (setsid made it a session leader).
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Sends every flow's frames round robin at `rate` frames/s in total (split
/// evenly over the flows) for `duration`, from one thread on CPU 0, paced in
/// 1 ms slots with `sendmmsg` batches; returns how long it ran.
///
/// Each flow's socket is opened inside its namespace (a socket stays in the
/// namespace it was opened in), so one thread can send for every container.
/// It sleeps between slots rather than spinning, so that its own CPU time
/// (which the CPU-per-frame figure includes) is the work of sending, not of
/// waiting.
pub fn paced(flows: &[Flow], rate: f64, duration: Duration) -> Result<Generated> {
    let mut socks = Vec::with_capacity(flows.len());
    for f in flows {
        let sock = in_netns(&Lan::path(&f.port.ns), || packet_tx_socket(&f.port.ifname))??;
        socks.push(sock);
    }
    // A fresh thread: its CPU time is reported whole, and the pinning stays with it.
    std::thread::scope(|s| {
        s.spawn(|| paced_here(flows, &socks, rate, duration))
            .join()
            .map_err(|_| anyhow::anyhow!("the paced sender panicked"))?
    })
}

fn paced_here(
    flows: &[Flow],
    socks: &[OwnedFd],
    rate: f64,
    duration: Duration,
) -> Result<Generated> {
    const SLOT: Duration = Duration::from_millis(1);
    const BATCH: usize = 64;
    // On CPU 0, where trafgen and the NIC-like generator run too: the
    // generator's cost lands on the same core for every system, and mvdp's
    // worker keeps its own.
    pin_current(GENERATOR_CPU);
    let cpu_start = thread_cpu_ns();
    let mut iovs: Vec<Vec<libc::iovec>> = flows
        .iter()
        .map(|f| {
            f.frames
                .iter()
                .map(|fr| libc::iovec {
                    iov_base: fr.as_ptr() as *mut libc::c_void,
                    iov_len: fr.len(),
                })
                .collect()
        })
        .collect();
    let per_slot = rate * SLOT.as_secs_f64() / flows.len().max(1) as f64;
    let mut owed = vec![0.0f64; flows.len()];
    let mut next = vec![0usize; flows.len()];
    let start = Instant::now();
    let mut slot_end = start;
    while start.elapsed() < duration {
        slot_end += SLOT;
        for (j, sock) in socks.iter().enumerate() {
            owed[j] += per_slot;
            let frames = &mut iovs[j];
            let count = frames.len();
            while owed[j] >= 1.0 {
                let n = (owed[j] as usize).min(BATCH);
                // SAFETY: mmsghdr is plain old data; all-zero is valid.
                let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
                for (k, m) in msgs.iter_mut().take(n).enumerate() {
                    m.msg_hdr.msg_iov = &mut frames[(next[j] + k) % count];
                    m.msg_hdr.msg_iovlen = 1;
                }
                // SAFETY: the first `n` headers point at live iovecs of live frames.
                let sent =
                    unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
                if sent <= 0 {
                    // The device queue is full: this is the generator's limit, not a loss.
                    break;
                }
                next[j] += sent as usize;
                owed[j] -= f64::from(sent);
            }
            if owed[j] > per_slot * 4.0 + BATCH as f64 {
                // Behind by more than a few slots: do not try to catch up in a burst.
                owed[j] = per_slot;
            }
        }
        // Sleep until the slot ends; an overshoot is made up in the next slot.
        if let Some(left) = slot_end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
    Ok(Generated {
        elapsed: start.elapsed(),
        own_cpu_ns: thread_cpu_ns() - cpu_start,
        made: None,
    })
}

fn packet_tx_socket(ifname: &str) -> Result<OwnedFd> {
    const PACKET_QDISC_BYPASS: libc::c_int = 20;
    // Protocol 0: send only.
    let sock = packet::socket(0).context("AF_PACKET socket")?;
    let name = std::ffi::CString::new(ifname)?;
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {ifname}");
    }
    // Best effort: without it the frames take the qdisc path, slower but the same.
    let _ = packet::setsockopt(&sock, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32);
    packet::bind(&sock, ifindex, 0).context("binding the generator's socket")?;
    Ok(sock)
}

/// How the NIC-like generator sends.
#[derive(Debug, Clone, Copy)]
pub enum NicLoad {
    /// As fast as it goes.
    Max,
    /// At this many frames/s.
    Paced(f64),
}

/// The NIC-like generator on `port` (the wire end) for `duration`, from a
/// fresh thread on CPU 0 inside the port's namespace.
pub fn nic(
    gen: &NicGen,
    port: &Port,
    template: &[u8],
    load: NicLoad,
    duration: Duration,
) -> Result<Generated> {
    in_netns(&Lan::path(&port.ns), || -> Result<Generated> {
        pin_current(GENERATOR_CPU);
        let cpu_start = thread_cpu_ns();
        let run = match load {
            NicLoad::Max => gen.run_for(&port.ifname, template, duration)?,
            NicLoad::Paced(rate) => gen.run_paced(&port.ifname, template, rate, duration)?,
        };
        Ok(Generated {
            elapsed: run.elapsed,
            own_cpu_ns: thread_cpu_ns() - cpu_start,
            made: Some(run.generated),
        })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_parse() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n    \
             w0:     100       2    0    0    0     0          0         0  8601600  143360    0   17    0     0       0          0\n";
        let s = parse_net_dev(text, "w0").expect("w0");
        assert_eq!((s.rx_packets, s.tx_packets, s.tx_dropped), (2, 143_360, 17));
        assert!(parse_net_dev(text, "eth0").is_none());
    }

    #[test]
    fn frames_are_padded_and_typed() {
        let f = frame(MacAddr([2, 0, 0, 0, 0, 2]), MacAddr([2, 0, 0, 0, 0, 1]), 14);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &ETHERTYPE_BENCH.to_be_bytes());
        assert_eq!(frame(MacAddr([0; 6]), MacAddr([0; 6]), 1514).len(), 1514);
    }
}
