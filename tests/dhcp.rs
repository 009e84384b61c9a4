//! DHCP from the LAN (`ipam = "dhcp"`) against a real server: Debian's
//! dnsmasq in the rig's wire namespace serves a range with short T1/T2.
//! Endpoints get leases (dnsmasq's lease file and the containers agree),
//! renew, release on removal; with dnsmasq gone, a new endpoint's add fails
//! with an error that names it, and the others keep passing traffic.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    endpoint_list, mvdp_ctl, ping, require, require_command, tier, unique, wait_until, Daemon,
    Needs, Rig, WIRE_IF, WIRE_IP,
};

/// dnsmasq's T1 and T2 (option 58/59), far below its 120 s minimum lease.
const T1_SECS: u32 = 4;
const T2_SECS: u32 = 8;
/// The host shim's address (outside dnsmasq's range).
const SHIM_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);
/// The range dnsmasq hands out.
const RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 150));

/// mvdp's MAC for an endpoint on a DHCP network: 06: + FNV-1a of its name
/// (`MacAddr::from_name`, written out again to pin it from outside).
fn mac_for(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!(
        "06:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[3], b[4], b[5], b[6], b[7]
    )
}

/// dnsmasq running in the wire namespace, its files in a directory of its
/// own; Drop ends it (by PID) and removes the directory.
struct Dnsmasq {
    child: Option<Child>,
    dir: PathBuf,
    wire: String,
    /// The addresses it hands out.
    range: (Ipv4Addr, Ipv4Addr),
}

impl Dnsmasq {
    fn start(rig: &Rig) -> Dnsmasq {
        let dir = std::env::temp_dir().join(unique("mvdp-dnsmasq-"));
        std::fs::create_dir_all(&dir).expect("dnsmasq dir");
        let mut d = Dnsmasq {
            child: None,
            dir,
            wire: rig.wire.name().to_string(),
            range: RANGE,
        };
        d.spawn();
        d
    }

    /// Starts dnsmasq on the directory's lease file (again, after `stop`).
    fn spawn(&mut self) {
        let starts = self.log().matches("DHCP, IP range").count();
        let path = |f: &str| self.dir.join(f).display().to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.wire, "dnsmasq"])
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--bind-interfaces",
                &format!("--interface={WIRE_IF}"),
                "--except-interface=lo",
                &format!(
                    "--dhcp-range={},{},255.255.255.0,2m",
                    self.range.0, self.range.1
                ),
                &format!("--dhcp-option=option:router,{WIRE_IP}"),
                &format!("--dhcp-option=option:T1,{T1_SECS}"),
                &format!("--dhcp-option=option:T2,{T2_SECS}"),
                "--dhcp-authoritative",
                "--no-ping",
                "--log-dhcp",
                &format!("--log-facility={}", path("log")),
                &format!("--dhcp-leasefile={}", path("leases")),
                &format!("--pid-file={}", path("pid")),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dnsmasq");
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(5), || self
                .log()
                .matches("DHCP, IP range")
                .count()
                > starts),
            "dnsmasq did not come up:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The lease file: MAC → (expiry, address, client id).
    fn leases(&self) -> HashMap<String, (u64, Ipv4Addr, String)> {
        leases_in(&self.dir.join("leases"))
    }

    /// Waits for `name`'s lease to leave the lease file (a DHCPRELEASE).
    fn assert_released(&self, name: &str, why: &str) {
        assert!(
            wait_until(Duration::from_secs(5), || !self
                .leases()
                .contains_key(&mac_for(name))),
            "{name}'s lease still in the file after {why}: {:?}\n{}",
            self.leases(),
            self.log()
        );
    }

    /// Ends dnsmasq (SIGTERM by PID) and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the PID of the child this test spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- dnsmasq log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn leases_in(file: &Path) -> HashMap<String, (u64, Ipv4Addr, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.get(1)?.to_string(),
                (
                    f[0].parse().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(4)?.to_string(),
                ),
            ))
        })
        .collect()
}

/// The config: the rig's parent, a dhcp network with `network_keys`
/// (TOML lines), endpoint c1 from the file.
fn config(rig: &Rig, network_keys: &str) -> String {
    let c1 = rig.container(1);
    format!(
        "[parent]\ninterface = \"p0\"\n\n[dataplane]\nfast_path = \"{}\"\n\n\
         [metrics]\nlisten = \"{}\"\n\n[control]\nsocket = \"{}\"\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.77.0.0/24\"\nipam = \"dhcp\"\n{}\n\n\
         [[endpoint]]\nname = \"c1\"\nnetwork = \"lan\"\nnetns = \"{}\"\n",
        tier(),
        rig.metrics_addr,
        rig.control_socket.display(),
        network_keys,
        c1.ns.name()
    )
}

/// Waits until endpoint `name` is bound; panics with both logs if not.
fn wait_bound(rig: &Rig, d: &Daemon, dnsmasq: &Dnsmasq, name: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || entry(rig, name)
            .is_some_and(|e| e["dhcp"]["state"] == "bound")),
        "{name} never bound: {:?}\n{}\n{}",
        entry(rig, name),
        dnsmasq.log(),
        d.log()
    );
}

/// Waits until `name` renewed its lease (`mvdp_dhcp_renewals_total`), by T2.
fn wait_renewed(d: &Daemon, dnsmasq: &Dnsmasq, name: &str) {
    let renewals = format!(r#"mvdp_dhcp_renewals_total{{endpoint="{name}",network="lan"}}"#);
    assert!(
        wait_until(Duration::from_secs(T2_SECS as u64 + 4), || d
            .metric(&renewals)
            .is_some_and(|n| n >= 1.0)),
        "{name} never renewed\n{}\n{}",
        dnsmasq.log(),
        d.log()
    );
}

/// The `mvdp_dhcp_*` names config/grafana-dashboard.json queries.
fn dashboard_dhcp_families() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/grafana-dashboard.json");
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    text.match_indices("mvdp_dhcp_")
        .map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            name
        })
        .collect()
}

/// `name`'s entry in `endpoint list --json`.
fn entry(rig: &Rig, name: &str) -> Option<serde_json::Value> {
    endpoint_list(rig).into_iter().find(|e| e["name"] == name)
}

/// The IPv4 addresses on `eth0` of container `i` (`ip -j addr`), with prefix.
fn container_addrs(rig: &Rig, i: usize) -> Vec<String> {
    let out = rig
        .container(i)
        .ns
        .run(&["ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
    v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// The default route's gateway in container `i` (`ip -j route`).
fn default_gateway(rig: &Rig, i: usize) -> Option<String> {
    let out = rig
        .container(i)
        .ns
        .run(&["ip", "-j", "-4", "route", "show", "default"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j route");
    v[0]["gateway"].as_str().map(str::to_string)
}

#[test]
fn dh_leases_renew_release_and_fail_clearly() {
    if !require(Needs::RootAndXdp) || !require_command("dnsmasq", "dnsmasq-base") {
        return;
    }
    let started = Instant::now();
    let rig = Rig::with_prefix("dh", 3, 1);
    let mut dnsmasq = Dnsmasq::start(&rig);
    let mut d = Daemon::start(&rig, &config(&rig, "anti_spoof = \"mac+ip\""));
    d.wait_ready(Duration::from_secs(20));

    // c1 (from the file) binds without holding up the start; c2's add
    // answers once it holds its lease.
    wait_bound(&rig, &d, &dnsmasq, "c1");
    let c2_ns = rig.container(2).ns.name().to_string();
    let (code, out, err) = mvdp_ctl(
        &rig,
        &[
            "endpoint",
            "add",
            "--name",
            "c2",
            "--network",
            "lan",
            "--netns",
            &c2_ns,
            // A TAP endpoint: its DHCP goes through the workers alone.
            "--kind",
            "tap",
        ],
    );
    assert_eq!(code, 0, "endpoint add c2: {out}{err}\n{}", d.log());
    let c2 = entry(&rig, "c2").expect("c2 listed");
    assert_eq!(c2["dhcp"]["state"], "bound", "{c2}");
    assert!(
        out.contains(c2["ip"].as_str().unwrap()),
        "add output names the lease: {out}"
    );

    let mut first_expiry = HashMap::new();
    for (i, name) in [(1, "c1"), (2, "c2")] {
        let e = entry(&rig, name).unwrap();
        let ip: Ipv4Addr = e["ip"].as_str().unwrap().parse().expect("leased ip");
        assert!(
            ip >= RANGE.0 && ip <= RANGE.1,
            "{name}: {ip} outside dnsmasq's range"
        );
        assert_eq!(e["mac"], mac_for(name).as_str());
        assert_eq!(e["dhcp"]["server"], WIRE_IP.to_string());
        let left = e["dhcp"]["expires_in_seconds"].as_u64().unwrap();
        assert!((100..=120).contains(&left), "{name}: {left} s left of 120");
        // dnsmasq's lease file: this MAC, this address, client id 01:<MAC>.
        let leases = dnsmasq.leases();
        let (expiry, leased, client_id) = leases
            .get(&mac_for(name))
            .unwrap_or_else(|| panic!("{name} not in the lease file: {leases:?}"));
        assert_eq!(*leased, ip);
        assert_eq!(client_id, &format!("01:{}", mac_for(name)));
        first_expiry.insert(name, *expiry);
        // Inside the container: the address with dnsmasq's /24, the route.
        assert_eq!(container_addrs(&rig, i), vec![format!("{ip}/24")]);
        assert_eq!(default_gateway(&rig, i), Some(WIRE_IP.to_string()));
    }
    let c2_ip: Ipv4Addr = entry(&rig, "c2").unwrap()["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ping(&rig.container(1).ns, WIRE_IP, 3), "c1 → wire");
    assert!(ping(&rig.container(1).ns, c2_ip, 3), "c1 → c2");

    // Renewal at T1: unicast REQUEST from the bound address, dnsmasq ACKs,
    // its lease file moves the expiry on, mvdp counts it.
    wait_renewed(&d, &dnsmasq, "c1");
    let c1_ip = entry(&rig, "c1").unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_string();
    let log = dnsmasq.log();
    let renew_line = format!("DHCPREQUEST({WIRE_IF}) {c1_ip} {}", mac_for("c1"));
    assert!(
        log.matches(&renew_line).count() >= 2,
        "no renewal REQUEST from {c1_ip} in dnsmasq's log:\n{log}"
    );
    assert!(
        wait_until(Duration::from_secs(3), || dnsmasq
            .leases()
            .get(&mac_for("c1"))
            .is_some_and(|l| l.0 > first_expiry["c1"])),
        "lease file expiry did not move: {:?} vs {}",
        dnsmasq.leases(),
        first_expiry["c1"]
    );
    assert_eq!(
        d.metric(r#"mvdp_dhcp_lease_state{endpoint="c1",network="lan",state="bound"}"#)
            .or(d.metric(r#"mvdp_dhcp_lease_state{endpoint="c1",network="lan",state="renewing"}"#)),
        Some(1.0)
    );
    let acks =
        r#"mvdp_dhcp_messages_total{endpoint="c1",network="lan",type="ack",direction="received"}"#;
    assert!(d.metric(acks).unwrap_or(0.0) >= 2.0, "{}", d.metrics());

    // Removal releases: the lease leaves dnsmasq's file.
    let (code, _, err) = mvdp_ctl(&rig, &["endpoint", "del", "c2"]);
    assert_eq!(code, 0, "endpoint del c2: {err}");
    dnsmasq.assert_released("c2", "endpoint del");
    assert!(dnsmasq
        .log()
        .contains(&format!("DHCPRELEASE({WIRE_IF}) {c2_ip}")));

    // No server: c3's add fails by name within the wait; c1 keeps working.
    dnsmasq.stop();
    let c3_ns = rig.container(3).ns.name().to_string();
    let t = Instant::now();
    let (code, out, err) = mvdp_ctl(
        &rig,
        &[
            "endpoint",
            "add",
            "--name",
            "c3",
            "--network",
            "lan",
            "--netns",
            &c3_ns,
        ],
    );
    let waited = t.elapsed();
    assert_ne!(code, 0, "c3 added without a DHCP server: {out}");
    for needle in [
        "endpoint c3",
        "no DHCP server answered",
        "network lan",
        "DHCPDISCOVER",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(waited < Duration::from_secs(14), "add took {waited:?}");
    assert!(
        entry(&rig, "c3").is_none(),
        "a failed add leaves no endpoint"
    );
    assert!(
        ping(&rig.container(1).ns, WIRE_IP, 3),
        "c1 → wire without dnsmasq"
    );
    let c1 = entry(&rig, "c1").unwrap();
    assert!(
        ["bound", "renewing", "rebinding"].contains(&c1["dhcp"]["state"].as_str().unwrap()),
        "c1 lost its lease with the server gone: {c1}"
    );
    assert_eq!(container_addrs(&rig, 1), vec![format!("{c1_ip}/24")]);

    // Shutdown releases what is left: the server back, c1's lease leaves.
    dnsmasq.spawn();
    assert!(dnsmasq.leases().contains_key(&mac_for("c1")));
    d.stop();
    dnsmasq.assert_released("c1", "mvdp's shutdown");
    rig.assert_host_clean();
    eprintln!(
        "dh_leases_renew_release_and_fail_clearly: {:?}",
        started.elapsed()
    );
}

/// A server that comes after mvdp: the start is not held up, the endpoint
/// keeps asking and binds when it comes. With the default `anti_spoof =
/// "mac"` the fast path (when on) carries the container's unicast itself:
/// the unicast renewal to the server and its answer take the kernel path,
/// and the lease still renews. A host shim on the network reaches the
/// container at its leased address.
#[test]
fn dh_late_server_and_renewal_through_the_fast_path() {
    if !require(Needs::RootAndXdp) || !require_command("dnsmasq", "dnsmasq-base") {
        return;
    }
    let rig = Rig::with_prefix("dhf", 1, 1);
    // No server yet: the daemon starts all the same, c1 keeps asking.
    let mut d = Daemon::start(&rig, &config(&rig, &format!("host_shim = \"{SHIM_IP}\"")));
    d.wait_ready(Duration::from_secs(20));
    let c1 = entry(&rig, "c1").expect("c1 runs without a lease");
    assert_eq!(c1["dhcp"]["state"], "selecting", "{c1}");
    assert_eq!(c1["ip"], "", "{c1}");
    // The server comes: a retransmitted DISCOVER finds it.
    let dnsmasq = Dnsmasq::start(&rig);
    wait_bound(&rig, &d, &dnsmasq, "c1");
    let discovers =
        r#"mvdp_dhcp_messages_total{endpoint="c1",network="lan",type="discover",direction="sent"}"#;
    assert!(d.metric(discovers).unwrap_or(0.0) >= 2.0, "{}", d.metrics());
    wait_renewed(&d, &dnsmasq, "c1");
    assert_eq!(
        d.metric(r#"mvdp_dhcp_messages_total{endpoint="c1",network="lan",type="nak",direction="received"}"#),
        None,
        "no NAK"
    );
    assert!(ping(&rig.container(1).ns, WIRE_IP, 3), "c1 → wire");
    // The host shim reaches the container at its lease.
    let c1_ip: Ipv4Addr = entry(&rig, "c1").unwrap()["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let route = rig.host.ip(&["route", "show", &format!("{c1_ip}/32")]);
    assert!(
        route.contains("mvshim-lan"),
        "no shim route to {c1_ip}: {route:?}"
    );
    assert!(
        ping(&rig.host, c1_ip, 2),
        "host → c1's lease {c1_ip} through the shim"
    );
    // The dashboard's DHCP panels ask for exactly the DHCP families exported
    // (tests/dashboard.rs leaves them out: its rig has no DHCP network).
    let exported: BTreeSet<String> = d
        .metrics()
        .lines()
        .filter(|l| l.starts_with("mvdp_dhcp_"))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    assert_eq!(dashboard_dhcp_families(), exported);
    // The hand-rendered DHCP families pass `promtool check metrics` too.
    if require_command("promtool", "prometheus") {
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn promtool");
        let text = d.metrics();
        assert!(
            text.contains("# TYPE mvdp_dhcp_lease_state gauge"),
            "{text}"
        );
        std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = promtool.wait_with_output().unwrap();
        let complaints = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && complaints.trim().is_empty(),
            "promtool check metrics:\n{complaints}"
        );
    }
    d.stop();
    rig.assert_host_clean();
}

/// A daemon restarted with its endpoints kept (`keep_endpoints_on_exit`)
/// asks for the address the container still holds (INIT-REBOOT: a
/// broadcast REQUEST, no DISCOVER), and the container keeps it, the one
/// address on its interface. When the server refuses it (a NAK: the
/// address is no longer in its range), the address comes off and the
/// container gets a new lease, alone on the interface again.
#[test]
fn dh_a_restart_asks_again_for_the_address_the_container_holds() {
    if !require(Needs::RootAndXdp) || !require_command("dnsmasq", "dnsmasq-base") {
        return;
    }
    let rig = Rig::with_prefix("dhr", 1, 1);
    let toml =
        config(&rig, "").replace("[control]\n", "[control]\nkeep_endpoints_on_exit = true\n");
    let mut dnsmasq = Dnsmasq::start(&rig);
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    wait_bound(&rig, &d, &dnsmasq, "c1");
    let held = container_addrs(&rig, 1);
    assert_eq!(held.len(), 1, "{held:?}");
    let held_ip: Ipv4Addr = held[0].split('/').next().unwrap().parse().unwrap();
    assert!(d.stop().success(), "{}", d.log());
    assert_eq!(container_addrs(&rig, 1), held, "kept over the restart");

    let mac = mac_for("c1");
    let discovers = |log: &str| {
        log.matches(&format!("DHCPDISCOVER({WIRE_IF}) {mac}"))
            .count()
            + log
                .matches(&format!("DHCPDISCOVER({WIRE_IF}) {held_ip} {mac}"))
                .count()
    };
    let before = dnsmasq.log();
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    wait_bound(&rig, &d, &dnsmasq, "c1");
    let after = dnsmasq.log();
    let new = &after[before.len()..];
    assert!(
        new.contains(&format!("DHCPREQUEST({WIRE_IF}) {held_ip} {mac}"))
            && new.contains(&format!("DHCPACK({WIRE_IF}) {held_ip} {mac}")),
        "no INIT-REBOOT request for {held_ip}:\n{new}"
    );
    assert_eq!(discovers(new), 0, "a DISCOVER after the restart:\n{new}");
    assert_eq!(container_addrs(&rig, 1), held);
    assert_eq!(entry(&rig, "c1").unwrap()["ip"], held_ip.to_string());
    assert!(ping(&rig.container(1).ns, WIRE_IP, 2), "c1 → wire");
    assert!(d.stop().success(), "{}", d.log());

    // The server moves its range: the held address is refused. (This
    // start keeps nothing on exit.)
    dnsmasq.stop();
    let _ = std::fs::remove_file(dnsmasq.dir.join("leases"));
    dnsmasq.range = (Ipv4Addr::new(10, 77, 0, 200), Ipv4Addr::new(10, 77, 0, 210));
    dnsmasq.spawn();
    let before = dnsmasq.log();
    let mut d = Daemon::start(&rig, &config(&rig, ""));
    d.wait_ready(Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(15), || {
            let addrs = container_addrs(&rig, 1);
            addrs.len() == 1 && addrs[0] != held[0] && addrs[0].starts_with("10.77.0.2")
        }),
        "c1 has {:?}, not one new lease\n{}\n{}",
        container_addrs(&rig, 1),
        &dnsmasq.log()[before.len()..],
        d.log()
    );
    wait_bound(&rig, &d, &dnsmasq, "c1");
    let new = dnsmasq.log()[before.len()..].to_string();
    assert!(
        new.contains(&format!("DHCPNAK({WIRE_IF}) {held_ip} {mac}")),
        "{new}"
    );
    let lost = r#"mvdp_dhcp_leases_lost_total{endpoint="c1",network="lan"}"#;
    assert_eq!(d.metric(lost), Some(1.0), "{}", d.metrics());
    assert!(
        ping(&rig.container(1).ns, WIRE_IP, 2),
        "c1 → wire on its new lease"
    );
    assert!(d.stop().success(), "{}", d.log());
    drop(dnsmasq);
    rig.assert_host_clean();
}
