//! The control socket (issue 8): endpoints added and removed at run time
//! with `mvdp endpoint`, `mvdp status`, bad requests refused without a
//! change, runtime endpoints kept across a restart, one daemon per socket.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

/// `mvdp endpoint add --name NAME --network NETWORK --netns NETNS ARGS...`.
fn add(rig: &Rig, name: &str, network: &str, netns: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "endpoint",
        "add",
        "--name",
        name,
        "--network",
        network,
        "--netns",
        netns,
    ];
    all.extend_from_slice(args);
    mvdp_ctl(rig, &all)
}

fn start(rig: &Rig, toml: &str) -> Daemon {
    let mut d = Daemon::start(rig, toml);
    d.wait_ready(Duration::from_secs(20));
    d
}

fn names(rig: &Rig) -> Vec<String> {
    let mut n: Vec<String> = endpoint_list(rig)
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// Stops `stream` (to c1) and asserts it ran (more than `min` datagrams)
/// and c1 got every datagram, in order, `during` what the test did.
fn stream_kept_whole(stream: UdpStream, min: u32, during: &str) {
    let (sent, received, ordered) = stream.finish();
    assert!(sent > min, "the stream hardly ran ({sent} datagrams)");
    assert_eq!(received, sent, "c1 lost datagrams {during}");
    assert!(ordered, "c1 saw its datagrams out of order {during}");
}

fn add_and_remove_under_traffic(kind: &str) {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let mut d = start(&rig, &(rig.base_toml("") + &rig.endpoint_toml(c1, "veth")));
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());
    let stream = UdpStream::start(&rig.wire, c1, 2000);

    let ip = c2.ip.to_string();
    let (code, out, err) = add(
        &rig,
        "c2",
        "lan",
        c2.ns.name(),
        &["--ifname", c2.ifname(), "--ip", &ip, "--kind", kind],
    );
    assert_eq!(code, 0, "endpoint add: {err}\n{}", d.log());
    assert!(out.contains("endpoint c2 added"), "{out}");
    let entry = endpoint_list(&rig)
        .into_iter()
        .find(|e| e["name"] == "c2")
        .expect("c2 in endpoint list");
    assert_eq!(entry["ip"], ip.as_str());
    assert_eq!(entry["kind"], kind);
    assert_eq!(entry["origin"], "runtime");
    assert!(ping(&rig.wire, c2.ip, 2), "wire -> added c2\n{}", d.log());
    tcp_transfer(&c2.ns, c2.ip, &c1.ns, 4 * MIB).expect("TCP c1 -> added c2, 4 MiB");
    let table = mvdp_ctl(&rig, &["endpoint", "list"]).1;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("c2 ") && l.contains(&ip)),
        "the table does not show c2:\n{table}"
    );
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.trim_end().ends_with(" DROPS")),
        "the table has no DROPS column:\n{table}"
    );

    let (code, _, err) = mvdp_ctl(&rig, &["endpoint", "del", "c2"]);
    assert_eq!(code, 0, "endpoint del: {err}\n{}", d.log());
    assert_eq!(names(&rig), ["c1"]);
    assert!(
        !link_exists(&c2.ns, c2.ifname()),
        "c2's interface is still in its namespace"
    );
    stream_kept_whole(stream, 1000, "while c2 came and went");
    assert!(d.stop().success(), "{}", d.log());
    rig.assert_host_clean();
}

#[test]
fn veth_endpoint_added_and_removed_under_traffic() {
    add_and_remove_under_traffic("veth");
}

#[test]
fn tap_endpoint_added_and_removed_under_traffic() {
    add_and_remove_under_traffic("tap");
}

/// Sends `line` raw over the control socket and returns the answer line.
fn raw_request(rig: &Rig, line: &str) -> serde_json::Value {
    let mut conn = UnixStream::connect(&rig.control_socket).expect("connect");
    conn.write_all(line.as_bytes()).unwrap();
    conn.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&conn).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?}: {e}"))
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let toml = rig.base_toml("") + &rig.endpoint_toml(c1, "veth");
    let mut d = start(&rig, &toml);
    let c1_ip = c1.ip.to_string();
    // (what, result, expected exit code, words the error must contain)
    let cases = [
        (
            "unknown endpoint",
            mvdp_ctl(&rig, &["endpoint", "del", "nosuch"]),
            1,
            "no endpoint named \"nosuch\"",
        ),
        (
            "a file endpoint",
            mvdp_ctl(&rig, &["endpoint", "del", "c1"]),
            1,
            "remove it there and send SIGHUP",
        ),
        (
            "duplicate name",
            add(&rig, "c1", "lan", c2.ns.name(), &[]),
            1,
            "exists already",
        ),
        (
            "address in use",
            add(&rig, "c2", "lan", c2.ns.name(), &["--ip", &c1_ip]),
            78,
            ".ip",
        ),
        (
            "unknown network",
            add(&rig, "c2", "nonet", c2.ns.name(), &[]),
            78,
            ".network",
        ),
        (
            "bad MAC",
            add(&rig, "c2", "lan", c2.ns.name(), &["--mac", "02:xx"]),
            78,
            ".mac",
        ),
        (
            "missing namespace",
            add(&rig, "c2", "lan", "mvdp-no-such-ns", &[]),
            78,
            ".netns",
        ),
        (
            "same interface twice",
            add(&rig, "c3", "lan", c1.ns.name(), &["--ifname", c1.ifname()]),
            78,
            ".ifname",
        ),
    ];
    for (what, (code, _, err), want_code, want) in &cases {
        assert_eq!(code, want_code, "{what}: exit {code}: {err}");
        assert!(
            err.contains(want),
            "{what}: the error does not say {want:?}: {err}"
        );
    }
    let malformed = raw_request(&rig, "{\"op\":\"endpoint_add\",");
    assert_eq!(malformed["ok"], false);
    assert_eq!(malformed["error"]["code"], "malformed", "{malformed}");
    let unknown = raw_request(&rig, "{\"op\":\"format_disk\"}");
    assert_eq!(unknown["error"]["code"], "malformed", "{unknown}");

    // A client that is not root: the socket is 0600 root, so it cannot even connect.
    let mode = std::fs::metadata(&rig.control_socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            MVDP,
            "status",
            "--socket",
        ])
        .arg(&rig.control_socket)
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(1), "a non-root client got through");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing changed: one endpoint, its traffic flows, no interface appeared.
    assert_eq!(names(&rig), ["c1"]);
    assert_eq!(d.metric("mvdp_fdb_entries"), Some(1.0));
    for c in [c2, c3] {
        assert_eq!(list_links(&c.ns), ["lo"], "{} got an interface", c.name);
    }
    assert!(ping(&rig.wire, c1.ip, 1), "c1 after the refused requests");
    // A good request still works afterwards, with the next free address.
    let (code, out, err) = add(&rig, "c2", "lan", c2.ns.name(), &["--ifname", c2.ifname()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10.77.0."), "{out}");
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn status_reports_the_running_daemon() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let toml = rig.config_toml("veth", "");
    let mut d = start(&rig, &toml);
    let (code, out, err) = mvdp_ctl(&rig, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["parent"], PARENT_IF);
    assert_eq!(st["pid"], d.pid());
    assert_eq!(st["endpoints"], 2);
    assert_eq!(st["workers"][0]["alive"], true, "{st}");
    assert_eq!(st["config_changed"], false);
    assert_eq!(
        st["fast_path"],
        tier() == "on",
        "status disagrees with the tier: {st}"
    );
    // The file changes on disk: status says so until a SIGHUP applies it.
    std::fs::write(d.config_path(), format!("{toml}\n# edited\n")).unwrap();
    let (_, out, _) = mvdp_ctl(&rig, &["status"]);
    assert!(out.contains("changed on disk"), "{out}");
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || !mvdp_ctl(&rig, &["status"])
            .1
            .contains("changed on disk")),
        "status still says changed after SIGHUP"
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn runtime_endpoints_survive_a_restart_and_one_daemon_holds_the_socket() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let toml = rig.base_toml("") + &rig.endpoint_toml(c1, "veth");
    let mut d = start(&rig, &toml);
    let (code, _, err) = add(&rig, "c2", "lan", c2.ns.name(), &["--ifname", c2.ifname()]);
    assert_eq!(code, 0, "{err}");
    let before = endpoint_list(&rig);

    // A second daemon on the same socket is refused before it touches anything.
    let cfg = TempConfig::new(&toml.replace(&rig.metrics_addr.to_string(), "127.0.0.1:1"));
    let out = mvdp_command()
        .args(["run", "--config"])
        .arg(cfg.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held by a running mvdp"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        endpoint_list(&rig),
        before,
        "the refused daemon changed something"
    );

    assert!(d.stop().success(), "{}", d.log());
    assert!(
        !rig.control_socket.exists(),
        "the socket outlived the daemon"
    );
    // A stale socket file (a killed daemon's) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&rig.control_socket).unwrap());
    let mut d = start(&rig, &toml);
    let after = endpoint_list(&rig);
    let pick = |l: &[serde_json::Value]| -> Vec<(String, String, String, String)> {
        l.iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap().to_string();
                (s("name"), s("ip"), s("mac"), s("origin"))
            })
            .collect()
    };
    assert_eq!(
        pick(&after),
        pick(&before),
        "c2 did not come back as it was"
    );
    let c2_ip: Ipv4Addr = after.iter().find(|e| e["name"] == "c2").unwrap()["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ping(&rig.wire, c2_ip, 2),
        "wire -> c2 ({c2_ip}) after the restart\n{}",
        d.log()
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// `mvdp top` as a person uses it: in a terminal (tmux), with traffic
/// flowing to c1, its line shows a non-zero rate; `q` quits.
#[test]
fn top_shows_live_rates_and_quits_on_q() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 1);
    let c1 = rig.container(1);
    let mut d = start(&rig, &rig.config_toml("veth", ""));
    let stream = UdpStream::start(&rig.wire, c1, 2000);
    let server = unique("mvdp-top-");
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &server])
            .args(args)
            .output()
            .expect("tmux (Debian package tmux)")
    };
    let cmd = format!("{MVDP} top --socket {}", rig.control_socket.display());
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "150",
        "-y",
        "30",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // c1's row: name, network, path, rx frames/s, rx bits/s, tx frames/s, tx bits/s.
    let c1_tx_rate = || -> Option<String> {
        let pane =
            String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "top"]).stdout).to_string();
        let row = pane
            .lines()
            .find(|l| l.trim_start_matches('│').starts_with("c1 "))?;
        let cells: Vec<&str> = row.trim_matches('│').split_whitespace().collect();
        cells.get(5).map(|s| s.to_string())
    };
    let mut seen = None;
    let shown = wait_until(Duration::from_secs(10), || {
        seen = c1_tx_rate();
        seen.as_deref().is_some_and(|r| r != "0")
    });
    let pane =
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "top"]).stdout).to_string();
    assert!(shown, "c1's TX rate in top stayed {seen:?}:\n{pane}");
    assert!(pane.contains("RX FRAMES/S"), "{pane}");
    assert!(pane.contains("DROPS/S"), "{pane}");
    tmux(&["send-keys", "-t", "top", "q"]);
    let quit = wait_until(Duration::from_secs(5), || {
        !tmux(&["has-session", "-t", "top"]).status.success()
    });
    if !quit {
        tmux(&["kill-server"]);
    }
    assert!(quit, "top did not quit on q");
    stream.finish();
    assert!(d.stop().success(), "{}", d.log());
}

/// How long `mvdp endpoint add` takes from the request to the first frame
/// the new container gets (the wire's ping reaching it and its reply
/// coming back), over 20 adds; printed as median and worst (a figure, not
/// a goal: speed lives in the bench).
#[test]
fn endpoint_add_time_to_first_frame() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let mut d = start(&rig, &(rig.base_toml("") + &rig.endpoint_toml(c1, "veth")));
    let ip = c2.ip.to_string();
    let mut times = Vec::new();
    for round in 0..20 {
        let t = std::time::Instant::now();
        let (code, _, err) = add(
            &rig,
            "c2",
            "lan",
            c2.ns.name(),
            &["--ifname", c2.ifname(), "--ip", &ip],
        );
        assert_eq!(code, 0, "round {round}: {err}\n{}", d.log());
        assert!(
            wait_until(Duration::from_secs(10), || ping(&rig.wire, c2.ip, 1)),
            "round {round}: the added c2 never answered\n{}",
            d.log()
        );
        times.push(t.elapsed());
        let (code, _, err) = mvdp_ctl(&rig, &["endpoint", "del", "c2"]);
        assert_eq!(code, 0, "round {round}: {err}");
    }
    times.sort();
    eprintln!(
        "endpoint add, request to first frame delivered: median {:.0} ms, worst {:.0} ms ({} adds, {})",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
        times.len(),
        if tier() == "on" { "fast path" } else { "workers" }
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// c's `[[endpoint]]` on the `iot` network (VLAN 50, 10.78.0.0/24) at `ip`.
fn iot_endpoint(rig: &Rig, c: &Container, ip: &str) -> String {
    rig.endpoint_toml(c, "veth")
        .replace(&format!("network = \"{NETWORK}\""), "network = \"iot\"")
        .replace(&format!("ip = \"{}\"", c.ip), &format!("ip = \"{ip}\""))
}

/// SIGHUP applies exactly what changed in the file: a network and its two
/// endpoints appear, an endpoint goes, a rate limit starts to bite; a key
/// that needs a restart is named in the log and keeps its value; the
/// endpoint nothing touched keeps every datagram of a stream, in order.
#[test]
fn sighup_applies_exactly_what_changed() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(4, 1);
    let (c1, c2, c3, c4) = (
        rig.container(1),
        rig.container(2),
        rig.container(3),
        rig.container(4),
    );
    let before =
        rig.base_toml("") + &rig.endpoint_toml(c1, "veth") + &rig.endpoint_toml(c2, "veth");
    let mut d = start(&rig, &before);
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());
    assert!(ping(&rig.wire, c2.ip, 2), "wire -> c2\n{}", d.log());
    let stream = UdpStream::start(&rig.wire, c1, 2000);

    // c2 goes; c3 and c4 come on a new VLAN network; c1's egress is limited;
    // the lan's flood queue and [workers] change, which takes a restart.
    let after = rig.base_toml("[workers]\nbatch = 16").replace(
        "mode = \"bridge\"",
        "mode = \"bridge\"\nbcast_queue_len = 64",
    ) + &rig.endpoint_toml(c1, "veth")
        + "rate_limit = { pps = 50 }\n"
        + "\n[[network]]\nname = \"iot\"\nvlan = 50\nsubnet = \"10.78.0.0/24\"\n"
        + &iot_endpoint(&rig, c3, "10.78.0.13")
        + &iot_endpoint(&rig, c4, "10.78.0.14");
    std::fs::write(d.config_path(), &after).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .contains("SIGHUP: reloaded")),
        "no reload logged\n{}",
        d.log()
    );
    let log = d.log();
    let done = log
        .lines()
        .find(|l| l.contains("SIGHUP: reloaded"))
        .unwrap()
        .to_string();
    for step in [
        "remove endpoint c2",
        "add network iot",
        "add endpoint c3",
        "add endpoint c4",
        "update endpoint c1",
    ] {
        assert!(
            done.contains(step),
            "{step:?} not among the steps done: {done}"
        );
    }
    assert!(
        !done.contains("remove endpoint c1"),
        "c1 was re-made: {done}"
    );
    for key in ["[workers] changed", "network lan: bcast_queue_len changed"] {
        assert!(
            log.contains(key) && log.contains("takes effect at a restart"),
            "{key:?} not named in the log\n{log}"
        );
    }

    assert_eq!(names(&rig), ["c1", "c3", "c4"]);
    assert!(
        !link_exists(&c2.ns, c2.ifname()),
        "c2's interface is still in its namespace"
    );
    // The new network switches between its endpoints, and not into the old one.
    let c4_ip: Ipv4Addr = "10.78.0.14".parse().unwrap();
    assert!(
        ping(&c3.ns, c4_ip, 2),
        "c3 -> c4 on the added network\n{}",
        d.log()
    );
    let listed = endpoint_list(&rig);
    let c3_entry = listed.iter().find(|e| e["name"] == "c3").unwrap();
    assert_eq!(c3_entry["network"], "iot");
    // The rate limit bites now: most of a burst from c1 is limited.
    let limited = || {
        d.metric("mvdp_drops_total{reason=\"rate_limited\"}")
            .unwrap_or(0.0)
    };
    assert_eq!(limited(), 0.0, "frames were limited before any burst");
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let frame = eth_frame(wire_mac, c1.mac(), ETHERTYPE_TEST, b"mvdp-reload-burst");
    // What mvdp took from c1: the kernel may drop some of a burst before
    // mvdp sees it (its rings full); those are neither passed nor limited.
    let c1_rx = format!("mvdp_endpoint_rx_packets_total{{endpoint=\"c1\",network=\"{NETWORK}\"}}");
    let took = |d: &Daemon| d.metric(&c1_rx).unwrap_or(0.0);
    let before = took(&d);
    let start = std::time::Instant::now();
    let sent = blast(&c1.ns, c1.ifname(), &frame, 2000);
    // 50 frames/s over the burst's time, plus the bucket's burst allowance
    // (at least 64 frames) and some slack: at most that much may pass, of
    // a burst well beyond it (how much of the burst mvdp takes depends on
    // the machine's load: the rest the kernel drops before mvdp sees it).
    let allowed = (50.0 * (start.elapsed().as_secs_f64() + 0.6)) as usize + 64;
    let passed = |d: &Daemon| took(d) - before - limited();
    assert!(
        wait_until(Duration::from_secs(3), || took(&d) - before
            > allowed as f64 + 100.0
            && passed(&d) <= allowed as f64),
        "a 50 pps limit let a {sent}-frame burst through: mvdp took {}, limited {}, allowed {allowed}",
        took(&d) - before,
        limited()
    );

    stream_kept_whole(stream, 500, "across the reload");
    assert!(d.stop().success(), "{}", d.log());
    rig.assert_host_clean();
}

/// Endpoints added one by one at run time share the UMEM's fill budget
/// with those from the start: with a small UMEM and the workers taking
/// every endpoint's frames, sixteen added endpoints leave the parent's
/// socket frames to receive with, and every endpoint still answers.
#[test]
fn endpoints_added_at_run_time_share_the_fill_budget() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(16, 1);
    let toml = rig.base_toml("umem_frames = 4096").replacen(
        "fast_path = \"on\"",
        "fast_path = \"off\"",
        1,
    ) + &rig.endpoint_toml(rig.container(1), "veth");
    let mut d = start(&rig, &toml);
    for i in 2..=16 {
        let c = rig.container(i);
        let ip = c.ip.to_string();
        let (code, _, err) = add(
            &rig,
            &c.name,
            NETWORK,
            c.ns.name(),
            &["--ifname", c.ifname(), "--ip", &ip],
        );
        assert_eq!(code, 0, "endpoint add {}: {err}\n{}", c.name, d.log());
    }
    for i in [1, 8, 16] {
        let c = rig.container(i);
        assert!(
            ping(&rig.wire, c.ip, 2),
            "wire -> {} with 16 endpoints\n{}",
            c.name,
            d.log()
        );
    }
    let exhausted = d
        .metric_sum("mvdp_umem_exhausted_total", &[])
        .unwrap_or(0.0);
    assert_eq!(exhausted, 0.0, "the UMEM ran out with 16 endpoints");
    let free = d.metric_sum("mvdp_umem_free_frames", &[]).unwrap_or(0.0);
    // 4096 frames: 1024 on the parent's fill ring, the endpoints' shares
    // (256 for the first few, down to 64) and the rest free for copies.
    assert!(
        free >= 256.0,
        "only {free} UMEM frames free with 16 endpoints posted"
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// `mvdp network add/list/del` as an operator (or the Docker driver) uses
/// them: a runtime network carries traffic, refuses
/// removal while it has an endpoint, survives a restart, and goes.
#[test]
fn networks_added_at_run_time() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 1);
    let c1 = rig.container(1);
    // The file's network is tagged; the untagged LAN comes at run time.
    let toml = rig.base_toml("").replace(
        "\n[[network]]\nname = \"lan\"",
        "\n[[network]]\nname = \"filelan\"\nvlan = 9",
    );
    let mut d = start(&rig, &toml);
    let net = |args: &[&str]| mvdp_ctl(&rig, &[&["network"][..], args].concat());
    let (code, out, err) = net(&["add", "--name", "lan", "--subnet", "10.77.0.0/24"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("network lan added: 10.77.0.0/24 via 10.77.0.1"),
        "{out}"
    );
    // One untagged network per parent: a second is refused, naming the key.
    let (code, _, err) = net(&["add", "--name", "dup", "--subnet", "10.78.0.0/24"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("(dup).vlan"), "{err}");
    let list = net(&["list"]).1;
    assert!(
        list.lines()
            .any(|l| l.starts_with("lan ") && l.contains("runtime")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("filelan ") && l.contains("config")),
        "{list}"
    );

    let (code, _, err) = add(&rig, "c1", "lan", c1.ns.name(), &["--ip", "10.77.0.11"]);
    assert_eq!(code, 0, "{err}");
    let c1_ip = Ipv4Addr::new(10, 77, 0, 11);
    assert!(
        ping(&rig.wire, c1_ip, 2),
        "wire -> c1 on the runtime network"
    );
    let (code, _, err) = net(&["del", "lan"]);
    assert_ne!(code, 0);
    assert!(err.contains("still has endpoints (c1)"), "{err}");
    let (code, _, err) = net(&["del", "filelan"]);
    assert_ne!(code, 0);
    assert!(err.contains("comes from"), "{err}");

    // Both come back after a restart.
    assert!(d.stop().success(), "{}", d.log());
    let mut d = start(&rig, &toml);
    assert!(
        ping(&rig.wire, c1_ip, 2),
        "wire -> c1 after a restart\n{}",
        d.log()
    );
    let (code, _, err) = mvdp_ctl(&rig, &["endpoint", "del", "c1"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = net(&["del", "lan"]);
    assert_eq!(code, 0, "{err}");
    let list = net(&["list"]).1;
    assert!(!list.lines().any(|l| l.starts_with("lan ")), "{list}");
    assert!(d.stop().success(), "{}", d.log());
}
