//! `mvdp-cni` called as a runtime calls it: environment plus stdin, the
//! result or CNI error read from stdout. Every spec error path, and ADD,
//! CHECK, DEL and GC against a real `mvdp run` with `host-local` IPAM.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The plugin under test.
const MVDP_CNI: &str = env!("CARGO_BIN_EXE_mvdp-cni");
/// Where Debian's containernetworking-plugins put `host-local`.
const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// Runs mvdp-cni with `CNI_COMMAND=command`, exactly the `CNI_*` variables
/// in `vars` (plus PATH), and `conf` on stdin: (exit code, stdout as JSON or Null).
fn cni(command: &str, vars: &[(&str, &str)], conf: &Value) -> (i32, Value) {
    use std::io::Write;
    let mut child = Command::new(MVDP_CNI)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mvdp-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("mvdp-cni printed no JSON ({e}): {text}"))
    };
    (out.status.code().unwrap_or(-1), json)
}

/// Asserts a CNI error with `code` whose msg or details mention `word`.
#[track_caller]
fn assert_error(out: &(i32, Value), code: u64, word: &str) {
    let (exit, json) = out;
    assert_ne!(*exit, 0, "expected error {code}, got success: {json}");
    assert_eq!(json["code"], code, "{json}");
    let text = format!("{} {}", json["msg"], json["details"]);
    assert!(
        text.contains(word),
        "error does not mention {word:?}: {json}"
    );
    assert!(json["cniVersion"].is_string(), "{json}");
}

/// A network config for mvdp network `master` on `socket`.
fn conf(version: &str, master: &str, socket: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": "cninet",
        "type": "mvdp-cni",
        "master": master,
        "socket": socket,
    })
}

/// The environment of an ADD/DEL/CHECK for container `id` in `netns`.
fn attach_env<'a>(id: &'a str, netns: &'a str, args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args),
        ("CNI_PATH", DEBIAN_CNI_DIR),
    ]
}

#[test]
fn version_lists_every_supported_version() {
    for asked in ["0.3.1", "1.0.0"] {
        let (exit, json) = cni("VERSION", &[], &json!({ "cniVersion": asked }));
        assert_eq!(exit, 0, "{json}");
        assert_eq!(json["cniVersion"], asked);
        let versions: Vec<&str> = json["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
            assert!(versions.contains(&v), "{v} missing: {json}");
        }
    }
}

#[test]
fn install_copies_the_plugin_whole() {
    let dir = std::env::temp_dir().join(unique("cni-install-"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mvdp-cni"), b"an older plugin").unwrap();
    let out = Command::new(MVDP_CNI)
        .arg("install")
        .arg(&dir)
        .output()
        .unwrap();
    let installed = std::fs::read(dir.join("mvdp-cni"));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        installed.unwrap() == std::fs::read(MVDP_CNI).unwrap(),
        "installed copy differs"
    );
    assert_eq!(left, ["mvdp-cni"], "temp file left");
    let usage = Command::new(MVDP_CNI).arg("install").output().unwrap();
    assert_eq!(usage.status.code(), Some(64));
}

#[test]
fn bad_environment_and_config_are_spec_errors() {
    let sock = Path::new("/nonexistent/mvdp.sock");
    let good = conf("1.0.0", "lan", sock);
    let env = attach_env("abc123", "/proc/self/ns/net", "");
    // No CNI_COMMAND; an unknown one; ADD without CNI_NETNS; a bad container id.
    let (exit, json) = {
        let out = Command::new(MVDP_CNI)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_error(&(exit, json), 4, "CNI_COMMAND");
    assert_error(&cni("FROB", &env, &good), 4, "FROB");
    assert_error(
        &cni(
            "ADD",
            &[("CNI_CONTAINERID", "abc"), ("CNI_IFNAME", "eth0")],
            &good,
        ),
        4,
        "CNI_NETNS",
    );
    assert_error(
        &cni(
            "ADD",
            &attach_env("-bad id", "/proc/self/ns/net", ""),
            &good,
        ),
        4,
        "CNI_CONTAINERID",
    );
    assert_error(
        &cni("ADD", &attach_env("abc", "/proc/self/ns/net", "IP"), &good),
        4,
        "CNI_ARGS",
    );
    // Malformed stdin, an unsupported version, missing or bad keys.
    {
        use std::io::Write;
        let mut child = Command::new(MVDP_CNI)
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"{\"cniVersion\":")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_error(&(out.status.code().unwrap(), json), 6, "JSON");
    }
    assert_error(&cni("ADD", &env, &conf("2.0.0", "lan", sock)), 1, "2.0.0");
    let mut no_master = good.clone();
    no_master.as_object_mut().unwrap().remove("master");
    assert_error(&cni("ADD", &env, &no_master), 7, "master");
    let mut bad_kind = good.clone();
    bad_kind["kind"] = "macvtap".into();
    assert_error(&cni("ADD", &env, &bad_kind), 7, "kind");
    let mut v6 = good.clone();
    v6["runtimeConfig"] = json!({"ips": ["fd00::5/64", "fd00::6/64"]});
    // Checked before the daemon is asked (which is down here).
    assert_error(&cni("ADD", &env, &v6), 2, "one address per family");
    assert_error(&cni("ADD", &env, &good), 100, "mvdp.sock");
    // The error is written in the config's version.
    let (_, json) = cni("ADD", &env, &conf("0.4.0", "lan", sock));
    assert_eq!(json["cniVersion"], "0.4.0");
}

#[test]
fn daemon_down() {
    let sock = std::env::temp_dir().join(unique("cni-nosock-"));
    let c = conf("1.0.0", "lan", &sock);
    // ADD and CHECK cannot work: plugin error 100 naming the socket.
    let env = attach_env("abc123", "/proc/self/ns/net", "");
    assert_error(&cni("ADD", &env, &c), 100, &sock.display().to_string());
    let mut with_prev = c.clone();
    with_prev["prevResult"] = json!({"cniVersion":"1.0.0","ips":[]});
    assert_error(&cni("CHECK", &env, &with_prev), 100, "does not answer");
    // DEL of a container whose namespace is gone succeeds (mvdp drops such
    // endpoints itself when it comes back); with the namespace still there
    // the endpoint may still exist: try again later.
    let gone = attach_env("abc123", "/nonexistent/netns", "");
    assert_eq!(cni("DEL", &gone, &c), (0, Value::Null));
    let no_netns = [("CNI_CONTAINERID", "abc123"), ("CNI_IFNAME", "eth0")];
    assert_eq!(cni("DEL", &no_netns, &c), (0, Value::Null));
    assert_error(&cni("DEL", &env, &c), 11, "does not answer");
    // STATUS says the plugin is not available.
    assert_error(&cni("STATUS", &[], &c), 50, "does not answer");
}

/// A rig with a running daemon whose `lan` network (10.77.0.0/24, bridge,
/// untagged) is empty, plus a host-local data dir of the test's own.
struct Live {
    host_local_dir: PathBuf,
    daemon: Daemon,
    rig: Rig,
}

impl Live {
    fn start(containers: usize) -> Live {
        Live::start_with(containers, "")
    }

    /// [`Live::start`] with `network_keys` added to the `lan` network.
    fn start_with(containers: usize, network_keys: &str) -> Live {
        let rig = Rig::with_prefix("cni", containers, 1);
        let mut daemon = Daemon::start(&rig, &(rig.base_toml("") + network_keys));
        daemon.wait_ready(Duration::from_secs(20));
        let host_local_dir = std::env::temp_dir().join(unique("cni-ipam-"));
        Live {
            host_local_dir,
            daemon,
            rig,
        }
    }

    /// A 1.0.0 config on the `lan` network with host-local IPAM over .100-.199.
    fn conf(&self, version: &str) -> Value {
        let mut c = conf(version, NETWORK, &self.rig.control_socket);
        c["ipam"] = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": SUBNET, "gateway": WIRE_IP.to_string(),
                          "rangeStart": "10.77.0.100", "rangeEnd": "10.77.0.199" }]],
            "dataDir": self.host_local_dir,
        });
        c
    }

    fn netns(&self, i: usize) -> String {
        self.rig.container(i).ns.path().display().to_string()
    }

    fn lease(&self, ip: &str) -> PathBuf {
        self.host_local_dir.join("cninet").join(ip)
    }

    fn endpoint(&self, ip: &str) -> Option<Value> {
        endpoint_list(&self.rig).into_iter().find(|e| e["ip"] == ip)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.host_local_dir);
    }
}

#[test]
fn add_check_del_against_a_running_daemon() {
    if !require_privileges() {
        return;
    }
    let live = Live::start(2);
    let c = live.conf("1.0.0");
    let ns1 = live.netns(1);
    let id = "cnitest0123456789abcdef";
    let args = "IgnoreUnknown=1;IP=10.77.0.150;MAC=02:aa:bb:cc:dd:01";
    let env = attach_env(id, &ns1, args);

    // Unknown network, and mode/vlan that disagree with mvdp's network.
    let mut other = c.clone();
    other["master"] = "nope".into();
    assert_error(&cni("ADD", &env, &other), 7, "master");
    let mut mode = c.clone();
    mode["mode"] = "vepa".into();
    assert_error(&cni("ADD", &env, &mode), 7, "mode");
    let mut vlan = c.clone();
    vlan["vlan"] = 50.into();
    assert_error(&cni("ADD", &env, &vlan), 7, "vlan");
    assert!(
        !live.lease("10.77.0.150").exists(),
        "a refused ADD took a lease"
    );

    // ADD: host-local leases the address asked for in CNI_ARGS, mvdp makes
    // the endpoint with the MAC asked for; the MTU is set.
    let mut add_conf = c.clone();
    add_conf["mtu"] = 1400.into();
    let (exit, result) = cni("ADD", &env, &add_conf);
    assert_eq!(exit, 0, "ADD: {result}\n{}", live.daemon.log());
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["ips"][0]["address"], "10.77.0.150/24", "{result}");
    assert_eq!(result["ips"][0]["gateway"], WIRE_IP.to_string());
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(result["routes"][0]["gw"], WIRE_IP.to_string());
    assert!(result["ips"][0].get("version").is_none(), "{result}");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][0]["mac"], "02:aa:bb:cc:dd:01");
    assert_eq!(result["interfaces"][0]["sandbox"], ns1.as_str());
    assert!(live.lease("10.77.0.150").exists(), "no host-local lease");
    let ep = live
        .endpoint("10.77.0.150")
        .expect("endpoint in endpoint_list");
    assert_eq!(ep["mac"], "02:aa:bb:cc:dd:01");
    assert_eq!(ep["network"], NETWORK);
    let c1 = &live.rig.container(1).ns;
    let link = c1.ip(&["-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(link.contains("02:aa:bb:cc:dd:01"), "{link}");
    assert!(
        ping(
            &live.rig.wire,
            "10.77.0.150".parse::<std::net::Ipv4Addr>().unwrap(),
            3
        ),
        "wire cannot reach the CNI endpoint\n{}",
        live.daemon.log()
    );

    // A second ADD of the same attachment is refused, and leaves the first alone.
    let again = cni("ADD", &env, &add_conf);
    assert_error(&again, 103, "eth0");
    assert!(live.endpoint("10.77.0.150").is_some());
    assert!(
        live.lease("10.77.0.150").exists(),
        "a refused ADD released the first's lease"
    );

    // Address in use: mvdp refuses a second endpoint with the address (no
    // IPAM here, so the address goes straight to mvdp).
    let ns2 = live.netns(2);
    let no_ipam = conf("1.0.0", NETWORK, &live.rig.control_socket);
    let taken = cni(
        "ADD",
        &attach_env("cnitestother", &ns2, "IP=10.77.0.150"),
        &no_ipam,
    );
    assert_error(&taken, 102, "10.77.0.150");
    // Without IPAM and without IP=, mvdp allocates.
    let (exit, auto) = cni("ADD", &attach_env("cnitestauto", &ns2, ""), &no_ipam);
    assert_eq!(exit, 0, "{auto}");
    let auto_ip = auto["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(auto_ip.ends_with("/24"), "{auto}");

    // CHECK with the previous result; with a wrong address it fails.
    let mut check = c.clone();
    check["prevResult"] = result.clone();
    let out = cni("CHECK", &env, &check);
    assert_eq!(out, (0, Value::Null), "CHECK");
    let mut wrong = check.clone();
    wrong["prevResult"]["ips"][0]["address"] = "10.77.0.151/24".into();
    assert_error(&cni("CHECK", &env, &wrong), 105, "10.77.0.151");
    // CHECK is not defined before 0.4.0.
    let mut old = live.conf("0.3.1");
    old["prevResult"] = result.clone();
    assert_error(&cni("CHECK", &env, &old), 1, "0.3.1");

    // DEL (from another process, with prevResult, as podman does) removes
    // the endpoint and the lease; a second DEL succeeds; CHECK then fails.
    let mut del = c.clone();
    del["prevResult"] = result.clone();
    assert_eq!(cni("DEL", &env, &del), (0, Value::Null));
    assert!(
        live.endpoint("10.77.0.150").is_none(),
        "endpoint left after DEL"
    );
    assert!(!live.lease("10.77.0.150").exists(), "lease left after DEL");
    assert!(
        c1.ip_output(&["link", "show", "eth0"]).status.code() != Some(0),
        "eth0 left in the container"
    );
    assert_eq!(cni("DEL", &env, &del), (0, Value::Null), "second DEL");
    assert_error(&cni("CHECK", &env, &check), 3, "cnitest0123456789abcdef");

    // DEL without IPAM of the allocated one.
    let auto_env = attach_env("cnitestauto", &ns2, "");
    assert_eq!(cni("DEL", &auto_env, &no_ipam), (0, Value::Null));
    let bare = auto_ip.split('/').next().unwrap();
    assert!(live.endpoint(bare).is_none());
}

#[test]
fn results_follow_the_requested_version_and_tap_works() {
    if !require_privileges() {
        return;
    }
    let live = Live::start(1);
    let c = live.conf("0.4.0");
    let ns1 = live.netns(1);
    let env = attach_env("cniold", &ns1, "");
    let (exit, result) = cni("ADD", &env, &c);
    assert_eq!(exit, 0, "{result}\n{}", live.daemon.log());
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(result["ips"][0]["version"], "4", "{result}");
    let addr = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        addr.starts_with("10.77.0.1"),
        "outside the IPAM range: {result}"
    );
    // The endpoint went behind the runtime's back (here: `mvdp endpoint
    // del`): DEL still succeeds and still releases the lease.
    let bare = addr.split('/').next().unwrap();
    let ep = live.endpoint(bare).expect("endpoint");
    let (code, _, err) = mvdp_ctl(
        &live.rig,
        &["endpoint", "del", ep["name"].as_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(live.lease(bare).exists());
    assert_eq!(cni("DEL", &env, &c), (0, Value::Null));
    assert!(!live.lease(bare).exists(), "DEL did not release the lease");
}

#[test]
fn gc_removes_attachments_the_runtime_no_longer_has() {
    if !require_privileges() {
        return;
    }
    let live = Live::start(3);
    let c = conf("1.1.0", NETWORK, &live.rig.control_socket);
    let (ns1, ns2) = (live.netns(1), live.netns(2));
    let keep = attach_env("cnikeep", &ns1, "IP=10.77.0.61");
    let stale = attach_env("cnistale", &ns2, "IP=10.77.0.62");
    assert_eq!(cni("ADD", &keep, &c).0, 0);
    assert_eq!(cni("ADD", &stale, &c).0, 0);
    // Another CNI network's endpoint on the same mvdp network is not ours to collect.
    let mut other_net = c.clone();
    other_net["name"] = "othernet".into();
    let ns3 = live.netns(3);
    let other = attach_env("cniothernet", &ns3, "IP=10.77.0.63");
    let (exit, out) = cni("ADD", &other, &other_net);
    assert_eq!(exit, 0, "{out}");

    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "cnikeep", "ifname": "eth0" }]);
    let (exit, out) = cni("GC", &[("CNI_PATH", DEBIAN_CNI_DIR)], &gc);
    assert_eq!(exit, 0, "GC: {out}");
    assert!(
        live.endpoint("10.77.0.61").is_some(),
        "GC removed a valid attachment"
    );
    assert!(
        live.endpoint("10.77.0.62").is_none(),
        "GC left a stale attachment"
    );
    assert!(
        live.endpoint("10.77.0.63").is_some(),
        "GC removed another network's"
    );
    let mut no_list = c.clone();
    no_list
        .as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    assert_error(&cni("GC", &[], &no_list), 7, "valid-attachments");
}

/// A dual-stack mvdp network: host-local with an IPv4 and an IPv6 range
/// gives the container both, the result lists both with their gateways and
/// default routes (IPv6's "version" "6" in an old result), CHECK compares
/// both, DEL releases both leases. Without IPAM, static addresses of both
/// families work; on an IPv4-only network an IPv6 address is refused,
/// naming subnet6, and its lease is given back.
#[test]
fn dual_stack_attachments() {
    if !require_privileges() {
        return;
    }
    let live = Live::start_with(2, "subnet6 = \"fd00:77::/64\"\ngateway6 = \"fd00:77::1\"\n");
    let mut c = live.conf("1.0.0");
    c["ipam"]["ranges"]
        .as_array_mut()
        .unwrap()
        .push(json!([{ "subnet": "fd00:77::/64", "gateway": "fd00:77::1",
                       "rangeStart": "fd00:77::100", "rangeEnd": "fd00:77::1ff" }]));
    let ns1 = live.netns(1);
    let env = attach_env("cnidual0123", &ns1, "");
    let (exit, result) = cni("ADD", &env, &c);
    assert_eq!(exit, 0, "ADD: {result}\n{}", live.daemon.log());
    let ips: Vec<&str> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 2, "{result}");
    let (v4, v6) = (ips[0].split('/').next().unwrap(), ips[1]);
    assert!(
        v6.starts_with("fd00:77::1") && v6.ends_with("/64"),
        "{result}"
    );
    let v6 = v6.split('/').next().unwrap().to_string();
    assert_eq!(result["ips"][1]["gateway"], "fd00:77::1");
    assert_eq!(result["routes"][1]["dst"], "::/0");
    assert!(
        live.lease(v4).exists() && live.lease(&v6).exists(),
        "host-local leases"
    );
    let ep = live.endpoint(v4).expect("the endpoint");
    assert_eq!(ep["ip6"], v6.as_str(), "{ep}");
    let c1 = &live.rig.container(1).ns;
    let addrs = c1.ip(&["-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(addrs.contains(&format!("{v6}/64")), "{addrs}");
    // CHECK compares the IPv6 address too.
    let mut check = c.clone();
    check["prevResult"] = result.clone();
    assert_eq!(cni("CHECK", &env, &check), (0, Value::Null));
    let mut wrong = check.clone();
    wrong["prevResult"]["ips"][1]["address"] = "fd00:77::99/64".into();
    assert_error(&cni("CHECK", &env, &wrong), 105, "fd00:77::99");
    // An old result names each address's family.
    let old = live.conf("0.4.0");
    let mut old_add = old.clone();
    old_add["ipam"] = c["ipam"].clone();
    let ns2 = live.netns(2);
    let env2 = attach_env("cnidualold", &ns2, "");
    let (exit, old_result) = cni("ADD", &env2, &old_add);
    assert_eq!(exit, 0, "{old_result}");
    assert_eq!(old_result["ips"][0]["version"], "4");
    assert_eq!(old_result["ips"][1]["version"], "6");
    assert_eq!(cni("DEL", &env2, &old_add), (0, Value::Null));
    // DEL gives both leases back.
    let mut del = c.clone();
    del["prevResult"] = result.clone();
    assert_eq!(cni("DEL", &env, &del), (0, Value::Null));
    assert!(
        !live.lease(v4).exists() && !live.lease(&v6).exists(),
        "leases left"
    );
    // Static addresses of both families, no IPAM.
    let no_ipam = conf("1.0.0", NETWORK, &live.rig.control_socket);
    let env_static = attach_env("cnidualstatic", &ns1, "IP=10.77.0.160,fd00:77::160");
    let (exit, r) = cni("ADD", &env_static, &no_ipam);
    assert_eq!(exit, 0, "{r}");
    assert_eq!(r["ips"][0]["address"], "10.77.0.160/24");
    assert_eq!(r["ips"][1]["address"], "fd00:77::160/64");
    assert!(
        ping(
            &live.rig.wire,
            "10.77.0.160".parse::<std::net::Ipv4Addr>().unwrap(),
            2
        ),
        "wire -> the static attachment"
    );
    assert_eq!(cni("DEL", &env_static, &no_ipam), (0, Value::Null));
}

/// On an IPv4-only mvdp network, an IPv6 address from IPAM is refused,
/// naming subnet6, and the IPAM plugin's leases are given back.
#[test]
fn ipv6_on_an_ipv4_network_is_refused_and_its_lease_released() {
    if !require_privileges() {
        return;
    }
    let live = Live::start(1);
    let mut c = live.conf("1.0.0");
    c["ipam"]["ranges"].as_array_mut().unwrap().push(
        json!([{ "subnet": "fd00:77::/64", "rangeStart": "fd00:77::100",
                       "rangeEnd": "fd00:77::1ff" }]),
    );
    let ns1 = live.netns(1);
    let env = attach_env("cniv6only", &ns1, "");
    let out = cni("ADD", &env, &c);
    assert_error(&out, 7, "subnet6");
    let dir = live.host_local_dir.join("cninet");
    let leases: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains('.') || n.contains(':'))
                .filter(|n| !n.starts_with("last_reserved_ip"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    assert!(endpoint_list(&live.rig).is_empty());
}
