//! Soak (issue 9): mixed traffic through one running daemon for a long time
//! — UDP and TCP (iperf3), unicast, broadcast and multicast, wire ↔
//! containers and container ↔ container, veth and TAP endpoints — while the
//! daemon's resident memory, its drops by reason and its UMEM frames in
//! flight are sampled every few seconds. Writes
//! `benches/results/soak-latest.csv` and `.png` and asserts that memory
//! stays flat and frames in flight stay within the UMEM.
//!
//! Ignored by `cargo test`; `make soak DURATION=10m` runs it (`DURATION`
//! as `90s`, `10m`, `1h` or seconds; the tier is `MVDP_TEST_FAST_PATH`,
//! default on).

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use plotters::prelude::*;

/// UMEM frames per worker in the soak's config.
const UMEM_FRAMES: u32 = 8192;
/// Datagrams/s of each numbered UDP stream.
const UDP_RATE: u64 = 1000;
/// How long memory may settle before it is judged.
const WARM_UP: Duration = Duration::from_secs(20);
/// How much the resident memory may grow, first quarter to last (medians).
const RSS_SLACK_KIB: u64 = 5 * 1024;
/// Each iperf3 run: seconds, and its rate cap (the soak checks endurance,
/// not throughput: a cap leaves CPU for everything else on 2 cores).
const IPERF_SECS: &str = "5";
const IPERF_RATE: &str = "200M";

/// `MVDP_SOAK_DURATION` (`make soak DURATION=...`), default 10 minutes.
fn duration() -> Duration {
    let text = std::env::var("MVDP_SOAK_DURATION").unwrap_or_else(|_| "10m".into());
    parse_duration(&text)
        .unwrap_or_else(|| panic!("MVDP_SOAK_DURATION={text:?}: use e.g. 90s, 10m, 1h or seconds"))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// One sample of the daemon.
#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    rss_kib: u64,
    umem_free: f64,
    in_flight: f64,
    delivered: f64,
    drops: Vec<f64>,
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Runs iperf3 between `server` and `client` in turns (alternating
/// direction) until `stop`; counts runs that completed and failed.
struct IperfLoop {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    ok: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
}

/// A child process killed (by its PID) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl IperfLoop {
    fn start(server_ns: &str, server_ip: Ipv4Addr, client_ns: &str, port: u16) -> IperfLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(AtomicU32::new(0));
        let (server_ns, client_ns) = (server_ns.to_string(), client_ns.to_string());
        let thread = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let ip = server_ip.to_string();
                let port = port.to_string();
                let mut reverse = false;
                while !stop.load(Ordering::Relaxed) {
                    let server = Command::new("ip")
                        .args(["netns", "exec", &server_ns, "iperf3", "-s", "-1"])
                        .args(["-B", &ip, "-p", &port])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .map(Proc)
                        .expect("spawn iperf3 -s (Debian package iperf3)");
                    let listening = wait_until(Duration::from_secs(5), || {
                        let out = Command::new("ip")
                            .args(["netns", "exec", &server_ns, "ss", "-Hltn"])
                            .output()
                            .expect("ss");
                        String::from_utf8_lossy(&out.stdout).contains(&format!("{ip}:{port}"))
                    });
                    let mut args = vec!["-c", &ip, "-p", &port, "-t", IPERF_SECS];
                    args.extend(["-b", IPERF_RATE, "--connect-timeout", "3000"]);
                    if reverse {
                        args.push("-R");
                    }
                    let done = listening
                        && Command::new("ip")
                            .args(["netns", "exec", &client_ns, "iperf3"])
                            .args(&args)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                    drop(server);
                    if done {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    reverse = !reverse;
                }
            })
        };
        IperfLoop {
            stop,
            thread: Some(thread),
            ok,
            failed,
        }
    }

    /// Stops after the current run; (completed, failed) runs.
    fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for IperfLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The transmit drops of `ifname` in `ns` (`/proc/net/dev`, which follows
/// the reader's network namespace).
fn tx_dropped(ns: &Netns, ifname: &str) -> u64 {
    let dev = ns.run(&["cat", "/proc/net/dev"]);
    dev.lines()
        .find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == ifname).then(|| rest.split_whitespace().nth(11)?.parse().ok())?
        })
        .unwrap_or(0)
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[test]
#[ignore = "long: run by `make soak DURATION=10m`"]
fn soak() {
    if !require_privileges() {
        return;
    }
    let total_time = duration();
    let every = (total_time / 60).clamp(Duration::from_secs(2), Duration::from_secs(5));
    let rig = Rig::new(4, 1);
    let (c1, c2, c3, c4) = (
        rig.container(1),
        rig.container(2),
        rig.container(3),
        rig.container(4),
    );
    let toml = rig.base_toml(&format!("umem_frames = {UMEM_FRAMES}"))
        + &rig.endpoint_toml(c1, "veth")
        + &rig.endpoint_toml(c2, "veth")
        + &rig.endpoint_toml(c3, "veth")
        + &rig.endpoint_toml(c4, "tap");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    for c in [c1, c2, c3, c4] {
        assert!(ping(&rig.wire, c.ip, 1), "wire -> {}\n{}", c.name, d.log());
    }
    let idle = settled(&d);
    let workers = idle
        .iter()
        .filter(|s| s.name == "mvdp_umem_free_frames")
        .count();
    assert!(workers > 0, "no mvdp_umem_free_frames gauge");
    let umem_total = f64::from(UMEM_FRAMES) * workers as f64;
    let idle_free = value(&idle, "mvdp_umem_free_frames", &[]);
    let mut reasons: Vec<String> = idle
        .iter()
        .filter(|s| s.name == "mvdp_drops_total")
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "reason"))
        .map(|(_, v)| v.clone())
        .collect();
    reasons.sort();

    // The traffic.
    pin_wire_neighbours(&rig);
    let wire = Target {
        name: "wire",
        ns: &rig.wire,
        ip: WIRE_IP,
    };
    let to_containers = SeqStream::start(
        &rig.wire,
        &[c1, c2, c3, c4].map(Target::container),
        UDP_RATE,
    );
    let c1_to_wire = SeqStream::start(&c1.ns, &[wire], UDP_RATE);
    let c4_to_wire = SeqStream::start(&c4.ns, &[wire], UDP_RATE);
    let c2_to_c3 = SeqStream::start(&c2.ns, &[Target::container(c3)], UDP_RATE);
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let group = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];
    let senders = [
        RawSender::start(
            &rig.wire,
            WIRE_IF,
            vec![
                eth_frame(BROADCAST, wire_mac, ETHERTYPE_TEST, &[1; 100]),
                eth_frame(group, wire_mac, ETHERTYPE_TEST, &[2; 100]),
            ],
            Some(400),
        ),
        RawSender::start(
            &c2.ns,
            c2.ifname(),
            vec![eth_frame(BROADCAST, c2.mac(), ETHERTYPE_TEST, &[3; 100])],
            Some(100),
        ),
        RawSender::start(
            &c3.ns,
            c3.ifname(),
            vec![eth_frame(group, c3.mac(), ETHERTYPE_TEST, &[4; 300])],
            Some(100),
        ),
        RawSender::start(
            &c4.ns,
            c4.ifname(),
            vec![eth_frame(BROADCAST, c4.mac(), ETHERTYPE_TEST, &[5; 60])],
            Some(100),
        ),
    ];
    let tcp = [
        IperfLoop::start(c1.ns.name(), c1.ip, rig.wire.name(), 5201),
        IperfLoop::start(c3.ns.name(), c3.ip, c2.ns.name(), 5202),
    ];

    // The samples, written as they come.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    std::fs::create_dir_all(&dir).expect("create benches/results");
    let csv_path = dir.join("soak-latest.csv");
    let png_path = dir.join("soak-latest.png");
    let mut csv = std::fs::File::create(&csv_path).expect("create the soak CSV");
    let mut header = String::from("t_s,rss_kib,umem_free,umem_in_flight,delivered_total");
    for r in &reasons {
        let _ = write!(header, ",drops_{r}");
    }
    writeln!(csv, "{header}").expect("write CSV");
    eprintln!(
        "soak: {total_time:?} of mixed traffic ({} tier), sampling every {every:?} into {}",
        tier(),
        csv_path.display()
    );
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        assert!(d.try_wait().is_none(), "mvdp exited\n{}", d.log());
        let m = parse_prometheus(&d.metrics());
        let free = value(&m, "mvdp_umem_free_frames", &[]);
        // The most frames in flight since the previous sample: the UMEM less
        // the fewest free frames each worker saw meanwhile.
        let least_free = value(&m, "mvdp_umem_free_frames_min", &[]);
        let s = Sample {
            t: start.elapsed().as_secs_f64(),
            rss_kib: rss_kib(d.pid()),
            umem_free: free,
            in_flight: umem_total - least_free,
            delivered: value(&m, "mvdp_frames_delivered_total", &[]),
            drops: reasons
                .iter()
                .map(|r| value(&m, "mvdp_drops_total", &[("reason", r)]))
                .collect(),
        };
        let mut row = format!(
            "{:.1},{},{},{},{}",
            s.t, s.rss_kib, s.umem_free, s.in_flight, s.delivered
        );
        for v in &s.drops {
            let _ = write!(row, ",{v}");
        }
        writeln!(csv, "{row}").expect("write CSV");
        assert_eq!(
            value(&m, "mvdp_worker_up", &[]),
            workers as f64,
            "a worker is down\n{}",
            d.log()
        );
        samples.push(s);
        if start.elapsed() >= total_time {
            break;
        }
        std::thread::sleep(every.min(total_time.saturating_sub(start.elapsed())));
    }
    drop(csv);

    // Traffic off; what it did.
    let tcp: Vec<(u32, u32)> = tcp.into_iter().map(IperfLoop::finish).collect();
    let raw: Vec<u64> = senders.into_iter().map(RawSender::finish).collect();
    let mut udp_lost = 0;
    for (what, s) in [
        ("wire -> containers", to_containers),
        ("c1 -> wire", c1_to_wire),
        ("c4 (tap) -> wire", c4_to_wire),
        ("c2 -> c3", c2_to_c3),
    ] {
        for r in s.finish() {
            eprintln!("soak: UDP {what}: {}", r.summary());
            udp_lost += r.lost();
        }
    }
    eprintln!(
        "soak: iperf3 runs (completed, failed): wire<->c1 {:?}, c2<->c3 {:?}; raw group frames sent {raw:?}",
        tcp[0], tcp[1]
    );
    // Losses before mvdp sees a frame (a container's full TAP or veth queue)
    // are the kernel's: its transmit drops, per container.
    for c in [c1, c2, c3, c4] {
        eprintln!(
            "soak: {} {}: kernel tx_dropped {}",
            c.name,
            c.ifname(),
            tx_dropped(&c.ns, c.ifname())
        );
    }
    // And the kernel's drops on the host side (the endpoints' host ends,
    // where XDP hands container egress to mvdp's sockets; the parent).
    for link in list_links(&rig.host) {
        let out = rig.host.exec(&["ethtool", "-S", &link]);
        let moved: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("drop") || l.contains("xdp") || l.contains("err"))
            .filter(|l| !l.ends_with(": 0"))
            .map(String::from)
            .collect();
        if !moved.is_empty() {
            eprintln!("soak: {link}: {}", moved.join(", "));
        }
    }
    let end = settled(&d);
    assert_accounting(&end);
    chart(&samples, &reasons, umem_total, &png_path);

    // The judgement.
    let judged: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= WARM_UP.as_secs_f64().min(total_time.as_secs_f64() / 4.0))
        .collect();
    let quarter = (judged.len() / 4).max(1);
    let rss: Vec<u64> = judged.iter().map(|s| s.rss_kib).collect();
    let first = median(&rss[..quarter]);
    let last = median(&rss[rss.len() - quarter..]);
    let max_in_flight = samples.iter().map(|s| s.in_flight).fold(0.0, f64::max);
    let final_drops: Vec<String> = reasons
        .iter()
        .zip(&samples.last().expect("samples").drops)
        .filter(|(_, v)| **v > 0.0)
        .map(|(r, v)| format!("{r} {v}"))
        .collect();
    eprintln!(
        "soak: {} samples over {:.0} s; RSS start {:.1} MiB (first sample), first-quarter median {:.1} MiB, \
         last-quarter median {:.1} MiB, max {:.1} MiB; UMEM frames in flight max {max_in_flight} of {umem_total}; \
         UDP datagrams lost {udp_lost}; drops: {}",
        samples.len(),
        start.elapsed().as_secs_f64(),
        samples[0].rss_kib as f64 / 1024.0,
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        if final_drops.is_empty() {
            "none".to_string()
        } else {
            final_drops.join(", ")
        }
    );
    eprintln!(
        "soak: wrote {} and {}",
        csv_path.display(),
        png_path.display()
    );
    assert!(
        last <= first + RSS_SLACK_KIB,
        "resident memory grew: first-quarter median {first} KiB, last-quarter median {last} KiB"
    );
    for s in &samples {
        assert!(
            (0.0..=umem_total).contains(&s.in_flight),
            "UMEM frames in flight {} at {:.0} s, outside 0..={umem_total}",
            s.in_flight,
            s.t
        );
    }
    // Every frame back in the pool once the traffic stopped.
    assert!(
        wait_until(Duration::from_secs(10), || {
            d.metric_sum("mvdp_umem_free_frames", &[]) == Some(idle_free)
        }),
        "free UMEM frames {:?} after the soak, {idle_free} before it",
        d.metric_sum("mvdp_umem_free_frames", &[])
    );
    assert!(tcp.iter().all(|(ok, _)| *ok > 0), "no iperf3 run completed");
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(!d.log().contains("panicked"), "{}", d.log());
    rig.assert_host_clean();
}

/// Registers DejaVu Sans as plotters' "sans-serif" (as `mvdp bench` does).
fn load_font() {
    let font = std::fs::read(mvdp::bench::report::CHART_FONT).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (Debian package fonts-dejavu-core)",
            mvdp::bench::report::CHART_FONT
        )
    });
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .unwrap_or_else(|_| panic!("not a usable font"));
}

/// One line of a chart: its legend, its colour, its (seconds, value) points.
type Line = (String, RGBColor, Vec<(f64, f64)>);

/// Three time series, stacked: resident memory, UMEM frames in flight (and
/// the UMEM's size), drops by reason (cumulative, the reasons that moved).
fn chart(samples: &[Sample], reasons: &[String], umem_total: f64, path: &Path) {
    load_font();
    let root = BitMapBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).expect("draw the soak chart");
    let (title, body) = root.split_vertically(40);
    title
        .draw(&Text::new(
            format!(
                "mvdp soak: {:.0} s of mixed traffic ({} tier), {} samples",
                samples.last().map_or(0.0, |s| s.t),
                tier(),
                samples.len()
            ),
            (20, 10),
            ("sans-serif", 22).into_font(),
        ))
        .expect("draw the soak chart");
    let panels = body.split_evenly((3, 1));
    let t_max = samples.last().map_or(1.0, |s| s.t).max(1.0);

    let series = |area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
                  caption: &str,
                  axis: &str,
                  lines: Vec<Line>| {
        let y_max = lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut c = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .expect("draw the soak chart");
        c.configure_mesh()
            .x_desc("seconds")
            .y_desc(axis)
            .draw()
            .expect("draw the soak chart");
        for (name, color, points) in lines {
            c.draw_series(LineSeries::new(points, color.stroke_width(2)))
                .expect("draw the soak chart")
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .expect("draw the soak chart");
    };
    let pts = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>();
    series(
        &panels[0],
        "daemon resident memory (VmRSS)",
        "MiB",
        vec![(
            "VmRSS".into(),
            RGBColor(31, 119, 180),
            pts(&|s| s.rss_kib as f64 / 1024.0),
        )],
    );
    series(
        &panels[1],
        "UMEM frames in flight (total - free; fill rings included)",
        "frames",
        vec![
            (
                "in flight".into(),
                RGBColor(44, 160, 44),
                pts(&|s| s.in_flight),
            ),
            (
                "UMEM size".into(),
                RGBColor(150, 150, 150),
                pts(&|_| umem_total),
            ),
        ],
    );
    let palette = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    let moved: Vec<Line> = reasons
        .iter()
        .enumerate()
        .filter(|(i, _)| samples.iter().any(|s| s.drops[*i] > 0.0))
        .enumerate()
        .map(|(k, (i, r))| (r.clone(), palette[k % palette.len()], pts(&|s| s.drops[i])))
        .collect();
    series(
        &panels[2],
        "drops by reason (cumulative mvdp_drops_total)",
        "frames",
        if moved.is_empty() {
            vec![("no drops".into(), RGBColor(127, 127, 127), pts(&|_| 0.0))]
        } else {
            moved
        },
    );
    root.present().expect("draw the soak chart");
}
