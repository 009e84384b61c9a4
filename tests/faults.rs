//! Faults under load (issue 9): while a steady numbered UDP stream runs from
//! the wire to the containers, something goes wrong — a container's
//! namespace is deleted, the parent's link flaps or disappears, the UMEM
//! runs dry, SIGTERM arrives, a container floods — and each test checks
//! what must hold: the others lose nothing, the workers survive, the
//! shortage is counted, the exit is clean and leaves nothing behind, a
//! neighbour is not starved. Run with the fast path on and off (`make
//! test`); figures are printed (`-- --nocapture`).

mod common;

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

/// Datagrams/s to each receiver of the steady stream.
const RATE: u64 = 3000;

/// The faults run one at a time, even under `--test-threads=2` (`make
/// test`): a flood or a burst at full speed would take the CPU, and worker
/// core 0, from a neighbour test whose stream must lose nothing.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn start(rig: &Rig, toml: &str) -> Daemon {
    let mut d = Daemon::start(rig, toml);
    d.wait_ready(Duration::from_secs(20));
    d
}

/// The steady stream from the wire host to `cs`, flowing before it returns.
fn stream_to(rig: &Rig, cs: &[&Container], d: &Daemon) -> SeqStream {
    stream_at(rig, cs, d, RATE)
}

/// [`stream_to`] at `rate` datagrams/s to each.
fn stream_at(rig: &Rig, cs: &[&Container], d: &Daemon, rate: u64) -> SeqStream {
    pin_wire_neighbours(rig);
    let t: Vec<Target<'_>> = cs.iter().map(|c| Target::container(c)).collect();
    let s = SeqStream::start(&rig.wire, &t, rate);
    assert!(
        s.wait_more(200, Duration::from_secs(10)),
        "the stream does not flow ({:?})\n{}",
        s.counts(),
        d.log()
    );
    s
}

/// Asserts a receiver lost nothing, got nothing twice and everything in order.
fn whole(r: &Received, during: &str) {
    assert!(r.sent > 500, "{}: the stream hardly ran", r.summary());
    assert_eq!(
        r.lost(),
        0,
        "{} {during}; missing {:?}",
        r.summary(),
        r.missing_ranges(5)
    );
    assert_eq!(r.duplicates(), 0, "{} {during}", r.summary());
    assert!(r.in_order(), "{} {during}", r.summary());
}

/// No XDP or tc program on the parent, nothing mvdp created in the host
/// namespace or the containers, no endpoint MAC in the parent's unicast
/// filter, and the control socket gone.
fn assert_nothing_left(rig: &Rig) {
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "XDP program left on {PARENT_IF}"
    );
    assert_eq!(
        tcx_programs(&rig.host, PARENT_IF),
        Vec::<String>::new(),
        "tc programs left on {PARENT_IF}"
    );
    rig.assert_host_clean();
    for c in &rig.containers {
        assert_eq!(list_links(&c.ns), ["lo"], "links left in {}", c.name);
    }
    let fdb = String::from_utf8_lossy(
        &rig.host
            .exec(&["bridge", "fdb", "show", "dev", PARENT_IF])
            .stdout,
    )
    .to_string();
    assert!(
        !fdb.contains("02:42:0a:4d"),
        "endpoint MACs left in {PARENT_IF}'s unicast filter:\n{fdb}"
    );
    assert!(
        !rig.control_socket.exists(),
        "control socket {} left",
        rig.control_socket.display()
    );
}

fn assert_no_panic(d: &Daemon) {
    let log = d.log();
    assert!(!log.contains("panicked"), "mvdp panicked:\n{log}");
}

/// a. A container's network namespace is deleted under load: its endpoint
/// goes (endpoint list, FDB, its metric series), the others lose nothing.
#[test]
fn deleted_container_namespace_costs_the_others_nothing() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let mut rig = Rig::new(3, 1);
    let mut d = start(&rig, &rig.config_toml("veth", ""));
    assert!(ping(&rig.wire, rig.container(2).ip, 1), "wire -> c2");
    let stream = stream_to(&rig, &[rig.container(1), rig.container(3)], &d);

    let gone = rig.containers.remove(1); // c2
    assert_eq!(gone.name, "c2");
    let deleted = Instant::now();
    drop(gone); // `ip netns del`: the container end of its veth goes with it
    assert!(
        wait_until(Duration::from_secs(10), || d.metric("mvdp_fdb_entries")
            == Some(2.0)),
        "mvdp did not notice c2's namespace went\n{}",
        d.log()
    );
    let noticed = deleted.elapsed();
    let names: Vec<String> = endpoint_list(&rig)
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(names, ["c1", "c3"], "endpoint list after c2 went");
    assert!(
        stream.wait_more(2 * RATE as u32, Duration::from_secs(10)),
        "the stream stalled after c2 went"
    );
    let results = stream.finish();
    eprintln!("c2 removed {noticed:?} after its namespace was deleted");
    for r in &results {
        eprintln!("  {}", r.summary());
        whole(r, "while c2's namespace was deleted");
    }
    assert!(d.try_wait().is_none(), "mvdp exited\n{}", d.log());
    // Its series leave /metrics (they are not exported frozen forever).
    assert!(
        wait_until(Duration::from_secs(5), || !d
            .metrics()
            .contains("endpoint=\"c2\"")),
        "c2's series are still exported after it was removed:\n{}",
        d.metrics()
            .lines()
            .filter(|l| l.contains("endpoint=\"c2\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        d.log().contains("endpoint c2"),
        "the removal is not logged\n{}",
        d.log()
    );
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}

/// b. The parent's link goes down and comes back up under load: the
/// workers survive and traffic resumes. Prints the time from `link up` to
/// the first datagram delivered again.
#[test]
fn parent_link_down_and_up_workers_survive_traffic_resumes() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let rig = Rig::new(2, 1);
    let mut d = start(&rig, &rig.config_toml("veth", ""));
    let (c1, c2) = (rig.container(1), rig.container(2));
    let xdp_before = xdp_attached(&rig.host, PARENT_IF);
    let tcx_before = tcx_programs(&rig.host, PARENT_IF);
    let stream = stream_to(&rig, &[c1, c2], &d);

    rig.host.ip(&["link", "set", PARENT_IF, "down"]);
    // Hold it down until the stream has certainly stopped arriving.
    let stalled = wait_until(Duration::from_secs(5), || {
        let before = stream.counts();
        std::thread::sleep(Duration::from_millis(100));
        stream.counts() == before
    });
    assert!(stalled, "frames still arrive with {PARENT_IF} down");
    assert_eq!(
        d.metric("mvdp_worker_up{queue=\"0\"}"),
        Some(1.0),
        "the worker died with the link down\n{}",
        d.log()
    );
    let up = Instant::now();
    rig.host.ip(&["link", "set", PARENT_IF, "up"]);
    assert!(
        stream.wait_more(RATE as u32, Duration::from_secs(15)),
        "traffic did not resume after {PARENT_IF} came back up ({:?})\n{}",
        stream.counts(),
        d.log()
    );
    let results = stream.finish();
    let mut resumed = Vec::new();
    for r in &results {
        let first = r
            .first_after(up)
            .unwrap_or_else(|| panic!("{}: nothing after link up", r.name));
        resumed.push(first.duration_since(up));
        eprintln!(
            "  {}; first frame {:.1} ms after `link up`, longest gap {:.1} ms",
            r.summary(),
            first.duration_since(up).as_secs_f64() * 1e3,
            r.longest_gap().as_secs_f64() * 1e3
        );
    }
    let worst = resumed.iter().max().copied().unwrap_or_default();
    eprintln!(
        "link flap ({} tier): traffic resumed {:.1} ms after `ip link set {PARENT_IF} up` (worst receiver)",
        tier(),
        worst.as_secs_f64() * 1e3
    );
    assert_eq!(d.metric("mvdp_worker_up{queue=\"0\"}"), Some(1.0));
    assert!(d.try_wait().is_none(), "mvdp exited\n{}", d.log());
    assert_eq!(xdp_attached(&rig.host, PARENT_IF), xdp_before, "XDP state");
    assert_eq!(
        tcx_programs(&rig.host, PARENT_IF),
        tcx_before,
        "tc programs on {PARENT_IF} after the flap"
    );
    for c in [c1, c2] {
        assert!(
            ping(&rig.wire, c.ip, 2),
            "wire -> {} after the flap",
            c.name
        );
        assert!(ping(&c.ns, WIRE_IP, 1), "{} -> wire after the flap", c.name);
    }
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}

/// c. The parent is deleted under load: mvdp says so in one line naming it
/// and exits with status 69 (EX_UNAVAILABLE) without a panic; the kernel
/// took its sockets and programs along, the endpoints stay (as after a
/// crash), and once the parent is back the next start takes them over and
/// a stop then leaves nothing behind.
#[test]
fn deleted_parent_is_named_and_the_next_start_takes_over() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let rig = Rig::new(2, 1);
    let toml = rig.config_toml("veth", "");
    let mut d = start(&rig, &toml);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let stream = stream_to(&rig, &[c1, c2], &d);

    rig.host.ip(&["link", "del", PARENT_IF]); // takes the wire end along
    let deleted = Instant::now();
    let status = d.wait_exit(Duration::from_secs(5));
    let took = deleted.elapsed();
    drop(stream.finish());
    let log = d.log();
    let status = status
        .unwrap_or_else(|| panic!("mvdp still runs {took:?} after its parent was deleted\n{log}"));
    eprintln!("parent deleted: mvdp exited with {status} after {took:?}");
    assert_no_panic(&d);
    assert_eq!(status.code(), Some(69), "{log}");
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(PARENT_IF) && l.contains("vanished"))
        .collect();
    assert_eq!(named.len(), 1, "not one line naming the parent:\n{log}");
    // Nothing attached anywhere: the parent's programs went with it, the
    // endpoints' with mvdp's link fds.
    for link in list_links(&rig.host) {
        assert_eq!(
            tcx_programs(&rig.host, &link),
            Vec::<String>::new(),
            "tc programs left on {link}"
        );
        assert!(!xdp_attached(&rig.host, &link), "XDP left on {link}");
    }

    // The parent comes back: the next start takes the endpoints over.
    recreate_parent(&rig);
    let mut d = start(&rig, &toml);
    for c in [c1, c2] {
        assert!(ping(&rig.wire, c.ip, 2), "wire -> {}\n{}", c.name, d.log());
        let mut links = list_links(&c.ns);
        links.sort();
        assert_eq!(links, ["eth0", "lo"], "{}", c.name);
    }
    assert!(
        d.log().contains("taken over from an earlier mvdp"),
        "{}",
        d.log()
    );
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}

/// The rig's parent link as [`Rig::new`] makes it: `p0` ↔ `w0` with their
/// addresses, TX checksum offload off on the wire end, both up.
fn recreate_parent(rig: &Rig) {
    let q = rig.queues.to_string();
    #[rustfmt::skip]
    rig.host.ip(&[
        "link", "add", PARENT_IF, "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
        "peer", "name", WIRE_IF, "netns", rig.wire.name(), "numtxqueues", &q, "numrxqueues", &q,
    ]);
    rig.wire.run(&["ethtool", "-K", WIRE_IF, "tx", "off"]);
    let wire_ip = format!("{WIRE_IP}/{PREFIX_LEN}");
    let host_ip = format!("{HOST_IP}/{PREFIX_LEN}");
    rig.wire.ip(&["addr", "add", &wire_ip, "dev", WIRE_IF]);
    rig.host.ip(&["addr", "add", &host_ip, "dev", PARENT_IF]);
    rig.wire.ip(&["link", "set", WIRE_IF, "up"]);
    rig.host.ip(&["link", "set", PARENT_IF, "up"]);
}

/// Datagrams/s to each container that a 64-frame UMEM carries (at [`RATE`]
/// its 8-frame fill ring runs empty now and then).
const SMALL_UMEM_RATE: u64 = 1000;

/// d. A tiny UMEM (64 frames) and a burst of broadcasts from a TAP
/// container: every frame read from a TAP takes a free UMEM frame and each
/// broadcast a copy for its neighbour, more than the pool holds. The
/// shortage is counted (`mvdp_umem_exhausted_total`), and traffic recovers:
/// the shortage ends with the burst and every frame is back in the pool.
#[test]
fn umem_exhaustion_is_counted_and_traffic_recovers() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let toml = rig.base_toml("umem_frames = 64")
        + &rig.endpoint_toml(c1, "tap")
        + &rig.endpoint_toml(c2, "tap");
    let mut d = start(&rig, &toml);
    let free = |d: &Daemon| d.metric_sum("mvdp_umem_free_frames", &[]).unwrap_or(-1.0);
    let _ = settled(&d);
    let idle_free = free(&d);
    // What a 64-frame UMEM carries without loss, before the burst (and
    // after it, below): 1 s of the stream at a third of its usual rate.
    let before = stream_at(&rig, &[c1, c2], &d, SMALL_UMEM_RATE);
    assert!(before.wait_more(SMALL_UMEM_RATE as u32, Duration::from_secs(10)));
    for r in before.finish() {
        eprintln!("  before the burst: {}", r.summary());
    }
    let stream = stream_to(&rig, &[c1, c2], &d);

    let bcast = eth_frame(BROADCAST, c1.mac(), ETHERTYPE_TEST, &[0xb5; 200]);
    let burst = Instant::now();
    let sent = blast(&c1.ns, c1.ifname(), &bcast, 100_000);
    let burst_time = burst.elapsed();
    let exhausted = || {
        d.metric_sum("mvdp_umem_exhausted_total", &[])
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || exhausted() > 0.0),
        "{sent} broadcasts in {burst_time:?} with a 64-frame UMEM: no shortage counted\n{}",
        d.metrics()
    );
    // The stream through the burst: reported, not judged (the burst shares
    // the worker and the UMEM with it).
    assert!(
        stream.wait_more(RATE as u32 / 2, Duration::from_secs(10)),
        "traffic did not recover after the burst\n{}",
        d.log()
    );
    let m = parse_prometheus(&d.metrics());
    let from_c1 = value(&m, "mvdp_endpoint_rx_packets_total", &[("endpoint", "c1")]);
    eprintln!(
        "UMEM exhaustion ({} tier): c1 sent {sent} broadcasts in {:.0} ms, mvdp read {from_c1}; \
         mvdp_umem_exhausted_total {}, flood copies dropped {}, drops{{umem_exhausted}} {}",
        tier(),
        burst_time.as_secs_f64() * 1e3,
        exhausted(),
        value(&m, "mvdp_flood_copy_drops_total", &[]),
        value(&m, "mvdp_drops_total", &[("reason", "umem_exhausted")])
    );
    for r in stream.finish() {
        eprintln!("  across the burst: {}", r.summary());
    }
    assert_accounting(&settled(&d));
    // Recovered: a fresh stream loses nothing, the containers answer.
    // Recovered: the shortage is over (no more counted) and a fresh stream
    // gets through as before the burst. Not judged frame-exact: with 8
    // frames on the parent's fill ring (fast path on), a worker descheduled
    // for a few ms on a busy 2-core machine loses frames, burst or not (up
    // to 2 % seen before the burst); 5 % allows for that.
    let exhausted_after = exhausted();
    let after = stream_at(&rig, &[c1, c2], &d, SMALL_UMEM_RATE);
    assert!(after.wait_more(SMALL_UMEM_RATE as u32, Duration::from_secs(10)));
    for r in after.finish() {
        eprintln!("  after the burst: {}", r.summary());
        assert!(
            f64::from(r.lost()) <= f64::from(r.sent) * 0.05,
            "{} after the UMEM ran dry",
            r.summary()
        );
        assert_eq!(r.duplicates(), 0);
        assert!(r.in_order());
    }
    assert_eq!(
        exhausted(),
        exhausted_after,
        "the UMEM still runs dry after the burst"
    );
    for c in [c1, c2] {
        assert!(
            ping(&rig.wire, c.ip, 2),
            "wire -> {} after the burst",
            c.name
        );
    }
    // Every frame back in the pool once idle.
    assert!(
        wait_until(Duration::from_secs(10), || free(&d) == idle_free),
        "free UMEM frames {} after the burst, {idle_free} before it",
        free(&d)
    );
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}

/// e. SIGTERM under load (veth and TAP endpoints, a stream to each): mvdp
/// exits 0 within 2 s and leaves nothing attached or created.
#[test]
fn sigterm_under_load_exits_0_within_2s_and_leaves_nothing() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let rig = Rig::new(3, 1);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let toml = rig.base_toml("")
        + &rig.endpoint_toml(c1, "veth")
        + &rig.endpoint_toml(c2, "veth")
        + &rig.endpoint_toml(c3, "tap");
    let mut d = start(&rig, &toml);
    let stream = stream_to(&rig, &[c1, c2, c3], &d);
    // More load: broadcasts from a container, through the workers.
    let c1_bcast = eth_frame(BROADCAST, c1.mac(), ETHERTYPE_TEST, &[0xe5; 100]);
    let chatter = RawSender::start(&c1.ns, c1.ifname(), vec![c1_bcast], Some(2000));
    assert!(stream.wait_more(500, Duration::from_secs(5)));

    d.signal(libc::SIGTERM);
    let sent = Instant::now();
    let status = d.wait_exit(Duration::from_secs(2));
    let took = sent.elapsed();
    chatter.finish();
    drop(stream.finish());
    let status = status.unwrap_or_else(|| {
        panic!(
            "mvdp still running {:?} after SIGTERM under load\n{}",
            took,
            d.log()
        )
    });
    eprintln!(
        "SIGTERM under load ({} tier): exited {status} after {took:?}",
        tier()
    );
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}

/// One ping run: per-probe round trips (ms) and the counts.
struct PingRun {
    sent: u32,
    received: u32,
    rtts: Vec<f64>,
}

impl PingRun {
    fn loss(&self) -> f64 {
        1.0 - f64::from(self.received) / f64::from(self.sent.max(1))
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v = self.rtts.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn line(&self) -> String {
        format!(
            "{}/{} answered ({:.1} % lost), rtt p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.received,
            self.sent,
            self.loss() * 100.0,
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0)
        )
    }
}

/// `ping -c count -i interval` from `ns` to `ip`, each probe waited for 1 s.
fn ping_run(ns: &Netns, ip: Ipv4Addr, count: u32, interval: &str) -> PingRun {
    let out = ns.exec(&[
        "ping",
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        interval,
        "-W",
        "1",
        &ip.to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rtts: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    let sent = text
        .lines()
        .find_map(|l| l.split(" packets transmitted").next()?.trim().parse().ok())
        .unwrap_or(count);
    PingRun {
        sent,
        received: rtts.len() as u32,
        rtts,
    }
}

/// Most of a neighbour's pings a flood may cost: 2 % (6 of 300). The flood
/// may slow the neighbour, not starve it. The worker serves every port in
/// each pass, a batch at most from each, so a probe waits behind at most a
/// batch of the flood per pass; with the fast path the neighbour's unicast
/// never meets the workers at all. A probe can be lost only when its reply
/// finds the neighbour's TX ring full of flood copies, or on a machine busy
/// enough to stall the worker: 2 % leaves room for that, while a starved
/// neighbour loses most of its probes. Measured: none lost on either tier
/// (p99 0.1 ms with the fast path, 3.7 ms through the workers).
const FLOOD_PING_LOSS: f64 = 0.02;

/// f. A container floods broadcasts and unknown unicast at full speed while
/// its neighbour pings the wire host: the neighbour keeps its latency
/// within bounds and loses at most [`FLOOD_PING_LOSS`] of its probes.
#[test]
fn flooding_container_does_not_starve_its_neighbour() {
    if !require_privileges() {
        return;
    }
    let _serial = one_at_a_time();
    let rig = Rig::new(3, 1);
    let mut d = start(&rig, &rig.config_toml("veth", ""));
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let stream = stream_to(&rig, &[c3], &d);
    let idle = ping_run(&c2.ns, WIRE_IP, 100, "0.01");
    eprintln!("c2 -> wire, idle:    {}", idle.line());

    let bcast = eth_frame(BROADCAST, c1.mac(), ETHERTYPE_TEST, &[0xf1; 46]);
    let unknown = eth_frame(
        [0x02, 0x99, 0, 0, 0, 1],
        c1.mac(),
        ETHERTYPE_TEST,
        &[0xf2; 46],
    );
    let before = parse_prometheus(&d.metrics());
    let flood = RawSender::start(&c1.ns, c1.ifname(), vec![bcast, unknown], None);
    let started = Instant::now();
    let flooded = ping_run(&c2.ns, WIRE_IP, 300, "0.01");
    let flood_secs = started.elapsed().as_secs_f64();
    let flood_frames = flood.finish();
    let after = parse_prometheus(&d.metrics());
    let from_c1 = value(
        &after,
        "mvdp_endpoint_rx_packets_total",
        &[("endpoint", "c1")],
    ) - value(
        &before,
        "mvdp_endpoint_rx_packets_total",
        &[("endpoint", "c1")],
    );
    eprintln!(
        "flood ({} tier): c1 sent {flood_frames} frames in {flood_secs:.1} s ({:.0} kfps), mvdp took {from_c1} of them",
        tier(),
        flood_frames as f64 / flood_secs / 1e3
    );
    eprintln!("c2 -> wire, flooded: {}", flooded.line());
    let r = stream.finish();
    for r in &r {
        eprintln!("  wire -> c3 stream during the flood: {}", r.summary());
    }
    assert_eq!(idle.loss(), 0.0, "c2 lost pings with no flood");
    assert!(
        flooded.loss() <= FLOOD_PING_LOSS,
        "the flood starved c2: {}",
        flooded.line()
    );
    assert!(d.try_wait().is_none(), "mvdp exited\n{}", d.log());
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert_no_panic(&d);
    assert_nothing_left(&rig);
}
