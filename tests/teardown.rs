//! Start and stop the data plane many times with traffic flowing, and find
//! nothing left over and nothing growing (issue 9, item 5).
//!
//! One rig with a veth endpoint (`c1`), a TAP endpoint (`c2`) and a second
//! veth (`c3`), so every run has endpoints of both kinds; the runs alternate
//! between the kernel fast path on and off, so both tiers' teardown is
//! exercised (this file chooses its tiers itself, like tests/modes.rs). The
//! wire sends unicast to every endpoint and broadcast the whole time, daemon
//! or not, so each start and each stop happens under traffic; during each
//! run the containers also blast frames to the wire and to each other.
//!
//! Asserted, per run: mvdp gets ready, carries frames from both sides and
//! exits 0 on SIGTERM (or SIGINT, every other run of a tier); afterwards the host namespace holds exactly the links
//! it held before (`ip -o link`) and no AF_XDP or packet socket (its
//! `/proc/net/protocols`), the
//! containers only `lo`, `p0` has no XDP and no tcx program. Across the loop: the test process has as many open
//! descriptors and threads at the end as at the start; every BPF program,
//! map and link a daemon held (its `/proc/PID/fdinfo`) is gone from
//! `bpftool prog|map|link show` after it stopped; per tier, the daemons'
//! peak RSS (`VmHWM`) and descriptor counts do not trend upward (the median
//! of the last ten runs within 1.2× of the first ten; no more descriptors
//! than the first ten had).
//!
//! `MVDP_TEARDOWN_RUNS` (default 100) sets the number of runs.

mod common;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::packet::{bound_packet_socket, send_frame, sockaddr_ll, SocketOpts};
use common::*;

/// Runs when `MVDP_TEARDOWN_RUNS` is not set.
const DEFAULT_RUNS: usize = 100;
/// Runs at each end of the loop whose medians are compared.
const WINDOW: usize = 10;
/// Largest allowed ratio of the last window's median peak RSS to the first's.
const RSS_GROWTH: f64 = 1.2;
/// Frames each container blasts per destination per run.
const BLAST: usize = 200;
/// The wire's background traffic: this many frames, then a pause.
const WIRE_BATCH: usize = 10;
const WIRE_PAUSE: Duration = Duration::from_millis(2);
/// The endpoints, by kind: both kinds in every run.
const KINDS: [&str; 3] = ["veth", "tap", "veth"];

/// What one run measured of its daemon while it was carrying traffic.
#[derive(Debug, Clone)]
struct RunStats {
    tier: &'static str,
    /// Peak resident set (`VmHWM`), kB.
    hwm_kb: u64,
    /// Open descriptors.
    fds: usize,
    /// From start to ready, and from SIGTERM to exit.
    ready: Duration,
    stop: Duration,
}

/// BPF objects a process holds, by kind, from `/proc/PID/fdinfo`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct BpfIds {
    progs: BTreeSet<u64>,
    maps: BTreeSet<u64>,
    links: BTreeSet<u64>,
}

impl BpfIds {
    /// Every `prog_id`, `map_id` and `link_id` among `pid`'s descriptors.
    fn of(pid: i32) -> BpfIds {
        let mut ids = BpfIds::default();
        let dir = format!("/proc/{pid}/fdinfo");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}"));
        for entry in entries.flatten() {
            // A descriptor may close between the listing and the read.
            let Ok(info) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            for line in info.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let Ok(id) = value.trim().parse::<u64>() else {
                    continue;
                };
                match key.trim() {
                    "prog_id" => ids.progs.insert(id),
                    "map_id" => ids.maps.insert(id),
                    "link_id" => ids.links.insert(id),
                    _ => false,
                };
            }
        }
        ids
    }

    fn extend(&mut self, other: &BpfIds) {
        self.progs.extend(&other.progs);
        self.maps.extend(&other.maps);
        self.links.extend(&other.links);
    }
}

/// IDs of every BPF object of `kind` (`prog`, `map`, `link`) on the machine,
/// with their names: `bpftool -j KIND show`.
fn bpftool_ids(kind: &str) -> Vec<(u64, String)> {
    let out = std::process::Command::new("bpftool")
        .args(["-j", kind, "show"])
        .output()
        .unwrap_or_else(|e| panic!("run bpftool (Debian package bpftool): {e}"));
    assert!(
        out.status.success(),
        "bpftool -j {kind} show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool -j {kind} show: not JSON: {e}"));
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    let id = o["id"].as_u64()?;
                    let name = o["name"].as_str().unwrap_or("").to_string();
                    Some((id, name))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Open descriptors of process `pid` ("self" for this one).
fn fd_count(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
}

/// Threads of this process.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .expect("read /proc/self/task")
}

/// `VmHWM` of `pid`, kB.
fn peak_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// The wire's traffic for the whole loop: unicast to each endpoint and a
/// broadcast in turn, [`WIRE_BATCH`] frames per [`WIRE_PAUSE`], whether a
/// daemon runs or not.
struct WireTraffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl WireTraffic {
    fn start(rig: &Rig) -> WireTraffic {
        let wire_mac = link_mac(&rig.wire, WIRE_IF);
        let frames: Vec<Vec<u8>> = rig
            .containers
            .iter()
            .map(Container::mac)
            .chain([BROADCAST])
            .map(|dst| eth_frame(dst, wire_mac, ETHERTYPE_TEST, b"mvdp-teardown"))
            .collect();
        let (sock, index) = rig.wire.in_ns(|| {
            let sock = bound_packet_socket(WIRE_IF, 0, SocketOpts::default());
            let name = std::ffi::CString::new(WIRE_IF).expect("no NUL");
            // SAFETY: a valid NUL-terminated string.
            (sock, unsafe { libc::if_nametoindex(name.as_ptr()) })
        });
        assert!(index != 0, "no {WIRE_IF}");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || wire_loop(&sock, index as i32, &frames, &stop, &sent))
        };
        WireTraffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    }
}

impl Drop for WireTraffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wire_loop(sock: &OwnedFd, index: i32, frames: &[Vec<u8>], stop: &AtomicBool, sent: &AtomicU64) {
    let mut addr = sockaddr_ll(index, 0);
    addr.sll_halen = 6;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..WIRE_BATCH {
            let frame = &frames[i % frames.len()];
            i += 1;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            if send_frame(sock, &addr, frame) {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(WIRE_PAUSE);
    }
}

/// Runs from `MVDP_TEARDOWN_RUNS`, else [`DEFAULT_RUNS`].
fn runs() -> usize {
    match std::env::var("MVDP_TEARDOWN_RUNS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n| n >= 2 * WINDOW)
            .unwrap_or_else(|| {
                panic!(
                    "MVDP_TEARDOWN_RUNS={v:?}: a count of at least {}",
                    2 * WINDOW
                )
            }),
        Err(_) => DEFAULT_RUNS,
    }
}

/// The config for `tier`: the rig's containers as [`KINDS`] endpoints.
fn config(rig: &Rig, tier: &str) -> String {
    let mut toml = rig.base_toml(&format!("[dataplane]\nfast_path = \"{tier}\""));
    for (c, kind) in rig.containers.iter().zip(KINDS) {
        toml.push_str(&rig.endpoint_toml(c, kind));
    }
    toml
}

/// Everything mvdp made is gone: the host namespace's links are `before`,
/// the containers hold only `lo`, `p0` has no XDP and no tcx program.
fn assert_clean(rig: &Rig, before: &[String], run: usize) {
    let mut links = list_links(&rig.host);
    links.sort();
    assert_eq!(links, before, "run {run}: links of the host namespace");
    for c in &rig.containers {
        assert_eq!(
            list_links(&c.ns),
            ["lo"],
            "run {run}: links left in {}",
            c.name
        );
    }
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "run {run}: XDP left on {PARENT_IF}"
    );
    assert_eq!(
        tcx_programs(&rig.host, PARENT_IF),
        Vec::<String>::new(),
        "run {run}: tcx programs left on {PARENT_IF}"
    );
    // The kernel may release a closed socket's last parts in deferred work.
    for protocol in ["XDP", "PACKET"] {
        let mut left = 0;
        assert!(
            wait_until(Duration::from_secs(5), || {
                left = sockets(&rig.host, protocol);
                left == 0
            }),
            "run {run}: {left} {protocol} sockets left in the host namespace"
        );
    }
}

/// How many sockets of `protocol` (`XDP`, `PACKET`) exist in `ns`: the
/// `sockets` column of its `/proc/net/protocols`.
fn sockets(ns: &Netns, protocol: &str) -> u64 {
    let table = ns
        .in_ns(|| std::fs::read_to_string("/proc/thread-self/net/protocols"))
        .expect("read /proc/thread-self/net/protocols");
    table
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(protocol)).then(|| cols.nth(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {protocol} line in /proc/net/protocols:\n{table}"))
}

/// One run: start, carry traffic both ways, measure, stop.
fn one_run(rig: &Rig, tier: &'static str, run: usize, held: &mut BpfIds) -> RunStats {
    let started = Instant::now();
    let mut d = Daemon::start(rig, &config(rig, tier));
    d.wait_ready(Duration::from_secs(20));
    let ready = started.elapsed();
    for c in &rig.containers {
        assert!(
            wait_until(Duration::from_secs(5), || link_exists(&c.ns, c.ifname())),
            "run {run} ({tier}): mvdp ready but {} has no {}\n{}",
            c.name,
            c.ifname(),
            d.log()
        );
    }
    // The containers blast the wire and their next sibling.
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let n = rig.containers.len();
    for (i, c) in rig.containers.iter().enumerate() {
        let sibling = rig.containers[(i + 1) % n].mac();
        for dst in [wire_mac, sibling] {
            let frame = eth_frame(dst, c.mac(), ETHERTYPE_TEST, b"mvdp-teardown");
            blast(&c.ns, c.ifname(), &frame, BLAST);
        }
    }
    let received = |source: &str| {
        d.metric(&format!(
            "mvdp_frames_received_total{{source=\"{source}\"}}"
        ))
        .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || received("wire") > 0.0
            && received("endpoint") > 0.0),
        "run {run} ({tier}): mvdp carried no traffic (wire {}, endpoints {})\n{}",
        received("wire"),
        received("endpoint"),
        d.log()
    );
    let pid = d.pid();
    let stats_hwm = peak_rss_kb(pid);
    let fds = fd_count(&pid.to_string());
    held.extend(&BpfIds::of(pid));
    // What assert_clean looks for afterwards is there now.
    assert!(
        sockets(&rig.host, "XDP") > 0,
        "run {run} ({tier}): no AF_XDP socket in the host namespace"
    );

    // SIGTERM (a service manager) in half the runs of each tier, SIGINT
    // (Ctrl-C) in the others: both stop mvdp the same way.
    let sigint = run % 4 >= 2;
    let stopping = Instant::now();
    let status = if sigint {
        d.signal(libc::SIGINT);
        d.wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| d.stop())
    } else {
        d.stop()
    };
    let stop = stopping.elapsed();
    let signal = if sigint { "SIGINT" } else { "SIGTERM" };
    assert!(
        status.success(),
        "run {run} ({tier}): mvdp exited with {status} on {signal}\n{}",
        d.log()
    );
    RunStats {
        tier,
        hwm_kb: stats_hwm,
        fds,
        ready,
        stop,
    }
}

#[test]
fn start_stop_under_traffic_leaves_nothing() {
    if !require_privileges() {
        return;
    }
    let runs = runs();
    let rig = Rig::new(KINDS.len(), 1);
    let mut links_before = list_links(&rig.host);
    links_before.sort();
    // The baseline of the test process: the rig exists, nothing runs.
    let fds_before = fd_count("self");
    let threads_before = thread_count();
    let wire = WireTraffic::start(&rig);

    let began = Instant::now();
    let mut held = BpfIds::default();
    let mut stats = Vec::with_capacity(runs);
    for run in 0..runs {
        let tier = if run % 2 == 0 { "on" } else { "off" };
        stats.push(one_run(&rig, tier, run, &mut held));
        assert_clean(&rig, &links_before, run);
    }
    let elapsed = began.elapsed();
    let wire_sent = wire.sent();
    wire.stop();

    // BPF: nothing a daemon held outlives it.
    assert!(
        !held.progs.is_empty() && !held.maps.is_empty(),
        "the daemons held no BPF programs or maps: {held:?}"
    );
    for (kind, ids) in [
        ("prog", &held.progs),
        ("map", &held.maps),
        ("link", &held.links),
    ] {
        let left: Vec<(u64, String)> = bpftool_ids(kind)
            .into_iter()
            .filter(|(id, _)| ids.contains(id))
            .collect();
        assert!(
            left.is_empty(),
            "BPF {kind}s of stopped daemons still loaded (id, name): {left:?}"
        );
    }
    // The test process: no descriptor or thread more than before the loop.
    assert_eq!(
        fd_count("self"),
        fds_before,
        "open descriptors of the test process"
    );
    assert_eq!(
        thread_count(),
        threads_before,
        "threads of the test process"
    );

    // The daemons: no upward trend in peak memory or descriptors, per tier.
    for tier in ["on", "off"] {
        let mine: Vec<&RunStats> = stats.iter().filter(|s| s.tier == tier).collect();
        let hwm: Vec<u64> = mine.iter().map(|s| s.hwm_kb).collect();
        let (first, last) = (&hwm[..WINDOW], &hwm[hwm.len() - WINDOW..]);
        let (m_first, m_last) = (median(first), median(last));
        let fds: Vec<usize> = mine.iter().map(|s| s.fds).collect();
        let fds_first = *fds[..WINDOW].iter().max().expect("a window");
        let fds_last = *fds[fds.len() - WINDOW..].iter().max().expect("a window");
        println!(
            "fast path {tier}: {} runs; peak RSS median {m_first} kB (first {WINDOW}) -> {m_last} kB \
             (last {WINDOW}); descriptors {fds_first} -> {fds_last}",
            mine.len()
        );
        assert!(
            m_last as f64 <= RSS_GROWTH * m_first as f64,
            "fast path {tier}: peak RSS grew: median {m_first} kB -> {m_last} kB\nall: {hwm:?}"
        );
        assert!(
            fds_last <= fds_first,
            "fast path {tier}: daemon descriptors grew: {fds_first} -> {fds_last}\nall: {fds:?}"
        );
    }
    let mut ready: Vec<u64> = stats.iter().map(|s| s.ready.as_millis() as u64).collect();
    let mut stop: Vec<u64> = stats.iter().map(|s| s.stop.as_millis() as u64).collect();
    ready.sort_unstable();
    stop.sort_unstable();
    println!(
        "{runs} runs in {elapsed:.1?}; start to ready median {} ms (max {}), stop median {} ms \
         (max {}); the wire sent {wire_sent} frames; BPF objects held and released: {} programs, \
         {} maps, {} links",
        median(&ready),
        ready[ready.len() - 1],
        median(&stop),
        stop[stop.len() - 1],
        held.progs.len(),
        held.maps.len(),
        held.links.len()
    );
}
