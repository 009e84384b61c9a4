//! Traffic for the bench: Debian's trafgen (the reference generator, used
//! unthrottled for the maximum load) and a paced AF_PACKET sender of our own
//! (for fixed rates: trafgen's `-b` sends each second's quota in a burst and
//! then sleeps, which a zero-loss search cannot use). Plus the counters both
//! are judged by: the wire end's TX, the containers' RX and /proc/stat.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::control::netns::in_netns;
use crate::io::packet;
use crate::sim::{link_packets, Lan};
use crate::wire::MacAddr;

/// The experimental ethertype of bench frames: container stacks count and drop them.
pub const ETHERTYPE_BENCH: u16 = 0x88b5;

/// One frame per container MAC, `len` bytes (no FCS), from `src`.
pub fn frames(dsts: &[MacAddr], src: MacAddr, len: usize) -> Vec<Vec<u8>> {
    dsts.iter()
        .map(|d| {
            let mut f = Vec::with_capacity(len);
            f.extend_from_slice(&d.0);
            f.extend_from_slice(&src.0);
            f.extend_from_slice(&ETHERTYPE_BENCH.to_be_bytes());
            f.resize(len.max(60), 0);
            f
        })
        .collect()
}

/// CPU time consumed by every thread on the machine, in nanoseconds.
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
    /// Reads the run time of every thread now.
    pub fn now() -> Result<CpuTimes> {
        let mut by_tid = std::collections::HashMap::new();
        for proc_entry in std::fs::read_dir("/proc")?.flatten() {
            let name = proc_entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
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
}

fn thread_cpu_ns() -> u64 {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one measurement saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Frames the wire end sent.
    pub offered: u64,
    /// Frames the containers' interfaces received.
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

/// The counters a measurement is judged by.
struct Counters {
    offered: u64,
    delivered: u64,
    cpu: CpuTimes,
}

fn counters(lan: &Lan, container_if: &str) -> Result<Counters> {
    let (_, offered) = link_packets(&lan.wire, "w0")?;
    let mut delivered = 0;
    for c in &lan.containers {
        delivered += link_packets(c, container_if)?.0;
    }
    Ok(Counters {
        offered,
        delivered,
        cpu: CpuTimes::now()?,
    })
}

/// Runs `generate` and reports what the wire sent and the containers received.
pub fn measure(
    lan: &Lan,
    container_if: &str,
    generate: impl FnOnce() -> Result<Generated>,
) -> Result<Sample> {
    let before = counters(lan, container_if)?;
    let generated = generate()?;
    let secs = generated.elapsed.as_secs_f64();
    // Let frames in flight land (rings, backlogs) before reading the counters.
    std::thread::sleep(Duration::from_millis(150));
    let after = counters(lan, container_if)?;
    Ok(Sample {
        offered: after.offered - before.offered,
        delivered: after.delivered - before.delivered,
        secs,
        busy_ns: after.cpu.busy_ns_since(&before.cpu) + generated.own_cpu_ns,
    })
}

/// trafgen unthrottled on `w0` for `duration`; returns how long it ran.
pub fn trafgen_max(lan: &Lan, frames: &[Vec<u8>], duration: Duration) -> Result<Generated> {
    let conf = write_trafgen_conf(&lan.wire, frames)?;
    let mut child = spawn_trafgen(&lan.wire, &conf)?;
    let start = Instant::now();
    std::thread::sleep(duration);
    stop_group(&mut child);
    let ran = start.elapsed();
    let _ = std::fs::remove_file(&conf);
    Ok(Generated {
        elapsed: ran,
        own_cpu_ns: 0,
    })
}

fn write_trafgen_conf(wire: &str, frames: &[Vec<u8>]) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{wire}-{}.trafgen", std::process::id()));
    let mut text = String::new();
    for f in frames {
        let bytes: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
        text += &format!("{{ {} }}\n", bytes.join(", "));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

fn spawn_trafgen(wire: &str, conf: &std::path::Path) -> Result<Child> {
    // setsid: trafgen forks workers; they live in our own process group, which
    // is what we signal to stop them all (never by name).
    Command::new("setsid")
        .args([
            "ip", "netns", "exec", wire, "trafgen", "--dev", "w0", "--conf",
        ])
        .arg(conf)
        // One process; leave global socket memory and IRQ affinity alone; quiet.
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
        .context("starting trafgen (install netsniff-ng)")
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

/// Sends `frames` round robin out of `w0` at `rate` frames/s for `duration`,
/// paced in 1 ms slots with `sendmmsg` batches; returns how long it ran.
///
/// It sleeps between slots rather than spinning, so that its own CPU time
/// (which the CPU-per-frame figure includes) is the work of sending, not of
/// waiting.
pub fn paced(lan: &Lan, frames: &[Vec<u8>], rate: f64, duration: Duration) -> Result<Generated> {
    in_netns(&Lan::path(&lan.wire), || {
        paced_here("w0", frames, rate, duration)
    })?
}

fn paced_here(
    ifname: &str,
    frames: &[Vec<u8>],
    rate: f64,
    duration: Duration,
) -> Result<Generated> {
    const SLOT: Duration = Duration::from_millis(1);
    const BATCH: usize = 64;
    // On CPU 0, where trafgen runs too: the generator's cost lands on the
    // same core for every system, and mvdp's worker keeps its own.
    core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let cpu_start = thread_cpu_ns();
    let sock = packet_tx_socket(ifname)?;
    let mut iovs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    let start = Instant::now();
    let mut next = 0usize;
    let mut owed = 0.0f64;
    let mut slot_end = start;
    let per_slot = rate * SLOT.as_secs_f64();
    while start.elapsed() < duration {
        slot_end += SLOT;
        owed += per_slot;
        while owed >= 1.0 {
            let n = (owed as usize).min(BATCH);
            // SAFETY: mmsghdr is plain old data; all-zero is valid.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for m in msgs.iter_mut().take(n) {
                m.msg_hdr.msg_iov = &mut iovs[next % frames.len()];
                m.msg_hdr.msg_iovlen = 1;
                next += 1;
            }
            // SAFETY: the first `n` headers point at live iovecs of live frames.
            let sent = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            if sent <= 0 {
                // The device queue is full: this is the generator's limit, not a loss.
                next -= n;
                break;
            }
            next -= n - sent as usize;
            owed -= sent as f64;
        }
        // Sleep until the slot ends; an overshoot is made up in the next slot.
        if let Some(left) = slot_end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        if owed > per_slot * 4.0 + BATCH as f64 {
            // Behind by more than a few slots: do not try to catch up in a burst.
            owed = per_slot;
        }
    }
    Ok(Generated {
        elapsed: start.elapsed(),
        own_cpu_ns: thread_cpu_ns() - cpu_start,
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
