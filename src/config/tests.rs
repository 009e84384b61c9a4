//! Tests of `Config::parse`: defaults, every validation error by key, addressing.

use super::*;
use crate::switch::{ENDPOINT_SLOTS, MAX_ENDPOINTS, MAX_HOST_SHIMS};

const EXAMPLE: &str = include_str!("../../config/mvdp.example.toml");

const MINIMAL: &str = r#"
[parent]
interface = "eth0"

[[network]]
name = "lan"
subnet = "192.168.1.0/24"
"#;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// `MINIMAL` plus `extra` appended.
fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

/// Parses `text`, expecting an error about `key`; returns the error.
#[track_caller]
fn err_at(text: &str, key: &str) -> ConfigError {
    match Config::parse(text) {
        Ok(c) => panic!("parsed, expected an error at {key}: {c:#?}"),
        Err(e) => {
            assert_eq!(e.key(), Some(key), "wrong key in: {e}");
            assert!(
                e.to_string().contains(key.split('.').next().unwrap()),
                "message {e}"
            );
            e
        }
    }
}

#[track_caller]
fn ok(text: &str) -> Config {
    Config::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn endpoint(name: &str, extra: &str) -> String {
    format!("[[endpoint]]\nname = \"{name}\"\nnetwork = \"lan\"\nnetns = \"{name}\"\n{extra}\n")
}

#[test]
fn example_file_parses() {
    let c = ok(EXAMPLE);
    assert_eq!(c.networks.len(), 2);
    assert_eq!(c.networks[1].vlan, Some(50));
    assert_eq!(c.networks[1].gateway, ip("10.50.0.1"));
    let db = c.endpoint("db").unwrap();
    assert_eq!(db.ip, ip("192.168.1.128"));
    assert_eq!(db.mac, mac("02:42:c0:a8:01:80"));
    let vm = c.endpoint("vm").unwrap();
    assert_eq!(vm.kind, EndpointKind::Tap);
    assert_eq!(vm.ip, ip("192.168.1.129"));
    assert_eq!(vm.netns.path(), PathBuf::from("/proc/4242/ns/net"));
    assert_eq!(c.endpoint("sensor").unwrap().ip, ip("10.50.0.2"));
    let summary = c.summary();
    assert!(
        summary.contains("endpoint web: veth eth0 in netns web"),
        "{summary}"
    );
    assert!(summary.contains("192.168.1.129/24"), "{summary}");
}

#[test]
fn example_documents_every_key() {
    let keys = [
        "interface",
        "xdp_mode",
        "bind",
        "queues",
        "frame_size",
        "umem_frames",
        "cores",
        "batch",
        "listen",
        "socket",
        "name",
        "mode",
        "vlan",
        "subnet",
        "gateway",
        "ip_range",
        "aux_addresses",
        "host_shim",
        "bcast_queue_len",
        "allow_inner_tags",
        "anti_spoof",
        "mtu",
        "multicast",
        "network",
        "kind",
        "netns",
        "netns_path",
        "ifname",
        "ip",
        "mac",
        "allowed_sources",
        "rate_limit",
    ];
    for key in keys {
        assert!(
            EXAMPLE.contains(&format!("{key} =")),
            "{key} is not documented"
        );
    }
}

#[test]
fn defaults() {
    let c = ok(MINIMAL);
    assert_eq!(
        c.parent,
        ParentConfig {
            interface: "eth0".into(),
            xdp_mode: XdpMode::Auto,
            bind: BindMode::Auto,
            queues: Queues::All,
            frame_size: 2048,
            umem_frames: 8192,
        }
    );
    assert_eq!(
        c.workers,
        WorkersConfig {
            cores: Cores::Auto,
            batch: 64,
            poll: Poll::Interrupt,
        }
    );
    assert_eq!(c.dataplane.fast_path, FastPath::On);
    assert_eq!(
        c.metrics.listen,
        "127.0.0.1:9469".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.control.socket, PathBuf::from("/run/mvdp/mvdp.sock"));
    let n = &c.networks[0];
    assert_eq!(n.mode, Mode::Bridge);
    assert_eq!(n.vlan, None);
    assert_eq!(n.gateway, ip("192.168.1.1"));
    assert_eq!((n.ip_range, n.host_shim), (None, None));
    assert!(n.aux_addresses.is_empty());
    assert_eq!(n.bcast_queue_len, 1000);
    assert!(c.endpoints.is_empty());

    let c = ok(&with(&endpoint("web", "")));
    let e = &c.endpoints[0];
    assert_eq!(e.kind, EndpointKind::Veth);
    assert_eq!(e.ifname, "eth0");
    assert_eq!(e.netns, NetnsRef::Named("web".into()));
    assert_eq!(e.netns.path(), PathBuf::from("/var/run/netns/web"));
    assert_eq!(e.ip, ip("192.168.1.2"));
    assert_eq!(e.mac, MacAddr::docker_default(ip("192.168.1.2")));
    assert!(e.allowed_sources.is_empty());
    assert_eq!(c.network("lan").unwrap().name, "lan");
    assert!(c.network("wan").is_none());
}

#[test]
fn explicit_values() {
    let text = r#"
[parent]
interface = "enp3s0"
xdp_mode = "skb"
bind = "zerocopy"
queues = [0, 2]
frame_size = 4096
umem_frames = 4096
[dataplane]
fast_path = "off"
[workers]
cores = [1, 0]
batch = 1024
poll = "busy"
[metrics]
listen = "[::1]:9000"
[control]
socket = "/tmp/x.sock"
[[network]]
name = "lan"
mode = "source"
vlan = 4094
subnet = "10.0.0.0/8"
bcast_queue_len = 1
[[endpoint]]
name = "a"
network = "lan"
netns = "a"
allowed_sources = ["52:54:00:00:00:01"]
"#;
    let c = ok(text);
    assert_eq!(c.parent.xdp_mode, XdpMode::Skb);
    assert_eq!(c.parent.bind, BindMode::ZeroCopy);
    assert_eq!(c.parent.queues, Queues::List(vec![0, 2]));
    assert_eq!((c.parent.frame_size, c.parent.umem_frames), (4096, 4096));
    assert_eq!(c.workers.cores, Cores::List(vec![1, 0]));
    assert_eq!(c.workers.batch, 1024);
    assert_eq!(c.workers.poll, Poll::Busy);
    assert_eq!(c.dataplane.fast_path, FastPath::Off);
    assert_eq!(c.metrics.listen.port(), 9000);
    assert_eq!(c.networks[0].mode, Mode::Source);
    assert_eq!(c.networks[0].vlan, Some(4094));
    assert_eq!(
        c.endpoints[0].allowed_sources,
        vec![mac("52:54:00:00:00:01")]
    );
    assert_eq!(c.endpoints[0].ip, ip("10.0.0.2"));
}

// ---- TOML-level errors ----

#[test]
fn unknown_keys_are_named() {
    let e = err_at(
        &MINIMAL.replace("interface", "interface = \"x\"\nintrface"),
        "parent.intrface",
    );
    assert!(
        matches!(
            e,
            ConfigError::UnknownKey {
                at: Some(Location { line: 4, .. }),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 4"), "{e}");
    err_at(&with("[bogus]\nx = 1"), "bogus");
    err_at(
        &with("[[network]]\nname = \"b\"\nsubnet = \"10.0.0.0/24\"\nvlna = 3"),
        "network[1].vlna",
    );
    let e = err_at(
        &with(&endpoint("web", "adress = \"1.2.3.4\"")),
        "endpoint[0].adress",
    );
    assert!(
        e.to_string()
            .starts_with("endpoint[0] (web).adress: unknown key"),
        "{e}"
    );
    err_at(&with("[workers]\ncore = 1"), "workers.core");
    err_at(&with("[metrics]\nport = 1"), "metrics.port");
    err_at(&with("[control]\npath = \"/x\""), "control.path");
}

#[test]
fn missing_keys_are_named() {
    err_at(
        "[[network]]\nname = \"lan\"\nsubnet = \"192.168.1.0/24\"\n",
        "parent",
    );
    err_at(
        "[parent]\nxdp_mode = \"auto\"\n[[network]]\nname = \"lan\"\nsubnet = \"192.168.1.0/24\"\n",
        "parent.interface",
    );
    // Networks may all come at run time (the Docker driver's `network_add`).
    let c = Config::parse("[parent]\ninterface = \"eth0\"\n").expect("no network is valid");
    assert!(c.networks.is_empty() && c.endpoints.is_empty());
    err_at(&with("[[network]]\nname = \"b\""), "network[1].subnet");
    err_at(
        &with("[[endpoint]]\nname = \"web\"\nnetns = \"web\""),
        "endpoint[0].network",
    );
}

#[test]
fn wrong_types_and_syntax() {
    let e = err_at(&MINIMAL.replace("\"eth0\"", "3"), "parent.interface");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    err_at(&with("[parent.x]"), "parent.x");
    err_at(&with("[workers]\nbatch = \"many\""), "workers.batch");
    err_at(&with("[workers]\ncores = [1, \"x\"]"), "workers.cores[1]");
    let e = Config::parse("[parent\ninterface = 1").unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Syntax {
                at: Some(Location { line: 1, .. }),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 1"), "{e}");
}

// ---- values ----

#[test]
fn parent_values() {
    err_at(&MINIMAL.replace("\"eth0\"", "\"\""), "parent.interface");
    let e = err_at(
        &MINIMAL.replace("\"eth0\"", "\"a-very-long-ifname\""),
        "parent.interface",
    );
    assert!(matches!(e, ConfigError::InvalidIfname { .. }));
    let p = |line: &str| {
        MINIMAL.replace(
            "interface = \"eth0\"",
            &format!("interface = \"eth0\"\n{line}"),
        )
    };
    err_at(&p("xdp_mode = \"fast\""), "parent.xdp_mode");
    err_at(&p("bind = \"zero-copy\""), "parent.bind");
    err_at(&p("queues = \"some\""), "parent.queues");
    err_at(&p("queues = []"), "parent.queues");
    err_at(&p("queues = [0, -1]"), "parent.queues[1]");
    err_at(&p("queues = [1, 1]"), "parent.queues[1]");
    for bad in ["1024", "3000", "8192", "-2048"] {
        let e = err_at(&p(&format!("frame_size = {bad}")), "parent.frame_size");
        assert!(matches!(e, ConfigError::OutOfRange { .. }));
    }
    for bad in ["0", "1000", "32", "2097152"] {
        err_at(&p(&format!("umem_frames = {bad}")), "parent.umem_frames");
    }
}

#[test]
fn workers_metrics_control_values() {
    for bad in ["0", "1025", "-1"] {
        let e = err_at(&with(&format!("[workers]\nbatch = {bad}")), "workers.batch");
        assert!(matches!(e, ConfigError::OutOfRange { .. }));
    }
    ok(&with("[workers]\nbatch = 1"));
    err_at(&with("[workers]\ncores = \"all\""), "workers.cores");
    err_at(&with("[workers]\ncores = []"), "workers.cores");
    err_at(&with("[workers]\ncores = [0, 0]"), "workers.cores[1]");
    err_at(&with("[workers]\npoll = \"spin\""), "workers.poll");
    err_at(
        &with("[dataplane]\nfast_path = \"yes\""),
        "dataplane.fast_path",
    );
    err_at(
        &with("[dataplane]\nfastpath = \"on\""),
        "dataplane.fastpath",
    );
    err_at(&with("[metrics]\nlisten = \"localhost\""), "metrics.listen");
    err_at(&with("[control]\nsocket = \"\""), "control.socket");
}

fn net(extra: &str) -> String {
    format!("[parent]\ninterface = \"eth0\"\n[[network]]\nname = \"lan\"\nsubnet = \"192.168.1.0/24\"\n{extra}\n")
}

#[test]
fn network_mtu() {
    for bad in ["67", "65536", "-1"] {
        let e = err_at(&net(&format!("mtu = {bad}")), "network[0].mtu");
        assert!(e.to_string().contains("68..=65535"), "{e}");
    }
    assert_eq!(ok(&net("")).networks[0].mtu, None);
    assert_eq!(ok(&net("mtu = 1400")).networks[0].mtu, Some(1400));
    // The fast path carries any MTU; the workers up to 9216 (jumbo frames
    // as chains of UMEM frames), whatever the frame size.
    assert_eq!(ok(&net("mtu = 9000")).networks[0].mtu, Some(9000));
    assert_eq!(ok(&net("mtu = 65535")).networks[0].mtu, Some(65535));
    let off = net("mtu = 9217").replace(
        "[[network]]",
        "[dataplane]\nfast_path = \"off\"\n[[network]]",
    );
    let e = err_at(&off, "network[0].mtu");
    assert!(e.to_string().contains("at most 9216"), "{e}");
    ok(&off.replace("9217", "9216"));
    let four_k = off.replace(
        "interface = \"eth0\"",
        "interface = \"eth0\"\nframe_size = 4096",
    );
    ok(&four_k.replace("9217", "9000"));
    err_at(&four_k, "network[0].mtu");
    for policy in [
        "mode = \"source\"",
        "mode = \"passthru\"",
        "anti_spoof = \"mac+ip\"",
    ] {
        ok(&net(&format!("mtu = 9000\n{policy}")));
        let e = err_at(&net(&format!("mtu = 9600\n{policy}")), "network[0].mtu");
        assert!(e.to_string().contains("workers carry"), "{e}");
    }
    // TAP endpoints are always the workers'.
    let tap = net("mtu = 9600") + &endpoint("t", "kind = \"tap\"");
    let e = err_at(&tap, "endpoint[0].kind");
    assert!(e.to_string().contains("TAP"), "{e}");
    ok(&tap.replace("9600", "9000"));
}

#[test]
fn network_mtu_against_the_parent() {
    let c = ok(&net("mtu = 9000"));
    c.check_mtus(None).unwrap();
    c.check_mtus(Some(9000)).unwrap();
    let e = c.check_mtus(Some(1500)).unwrap_err();
    assert_eq!(e.key(), Some("network[0].mtu"));
    assert!(
        e.to_string()
            .contains("above the MTU of the parent eth0 (1500)"),
        "{e}"
    );
    // Unset: the parent's, if the workers carry it (with multi-buffer
    // above one UMEM frame), else 1500.
    let c = ok(&net(""));
    c.check_mtus(Some(1500)).unwrap();
    assert_eq!(c.network_mtu(&c.networks[0], 1500), 1500);
    assert_eq!(c.network_mtu(&c.networks[0], 1400), 1400);
    assert_eq!(c.network_mtu(&c.networks[0], 9000), 9000);
    assert_eq!(c.network_mtu(&c.networks[0], 9216), 9216);
    assert_eq!(c.network_mtu(&c.networks[0], 9217), 1500);
    assert!(!crate::config::multi_buffer(2048, 1770));
    assert!(crate::config::multi_buffer(2048, 1771));
    // A running daemon's workers carry what they were bound for at start.
    let off = ok(&net("mtu = 9000").replace(
        "[[network]]",
        "[dataplane]\nfast_path = \"off\"\n[[network]]",
    ));
    off.check_worker_mtus(9216).unwrap();
    let e = off.check_worker_mtus(1770).unwrap_err();
    assert_eq!(e.key(), Some("network[0].mtu"));
    assert!(e.to_string().contains("at most 1770"), "{e}");
    let tap = ok(&(net("mtu = 3000") + &endpoint("t", "kind = \"tap\"")));
    assert_eq!(
        tap.check_worker_mtus(1770).unwrap_err().key(),
        Some("endpoint[0].kind")
    );
    ok(&net("mtu = 9000")).check_worker_mtus(1770).unwrap();
    assert_eq!(crate::config::workers_mtu(2048, 1500), 1770);
    assert_eq!(crate::config::workers_mtu(4096, 9000), 9216);
    let jumbo = ok(&net("mtu = 9000"));
    assert_eq!(jumbo.network_mtu(&jumbo.networks[0], 9000), 9000);
}

#[test]
fn network_values() {
    err_at(&net("mode = \"macvtap\""), "network[0].mode");
    for bad in ["0", "4095", "-1"] {
        let e = err_at(&net(&format!("vlan = {bad}")), "network[0].vlan");
        assert!(matches!(e, ConfigError::OutOfRange { .. }));
    }
    let e = err_at(
        &MINIMAL.replace("192.168.1.0/24", "192.168.1.0"),
        "network[0].subnet",
    );
    assert!(matches!(e, ConfigError::InvalidValue { .. }));
    let e = err_at(
        &MINIMAL.replace("192.168.1.0/24", "192.168.1.7/24"),
        "network[0].subnet",
    );
    assert!(e.to_string().contains("192.168.1.0/24"), "{e}");
    err_at(
        &MINIMAL.replace("192.168.1.0/24", "192.168.1.0/31"),
        "network[0].subnet",
    );
    err_at(&net("gateway = \"192.168.1\""), "network[0].gateway");
    err_at(&net("bcast_queue_len = 0"), "network[0].bcast_queue_len");
    err_at(
        &net("allow_inner_tags = true"),
        "network[0].allow_inner_tags",
    );
    err_at(&net("anti_spoof = \"ip\""), "network[0].anti_spoof");
    err_at(&net("multicast = \"igmp\""), "network[0].multicast");
    assert_eq!(
        Config::parse(&net("multicast = \"flood\""))
            .unwrap()
            .networks[0]
            .multicast,
        Multicast::Flood
    );
    assert_eq!(
        Config::parse(&net("")).unwrap().networks[0].multicast,
        Multicast::Snoop
    );
    let c = Config::parse(&net("anti_spoof = \"mac+ip\"")).unwrap();
    assert_eq!(c.networks[0].anti_spoof, AntiSpoof::MacIp);
    assert_eq!(
        Config::parse(&net("")).unwrap().networks[0].anti_spoof,
        AntiSpoof::Mac
    );
    err_at(
        &net("aux_addresses = [\"192.168.1.9\", \"x\"]"),
        "network[0].aux_addresses[1]",
    );
    err_at(&net("host_shim = \"::1\""), "network[0].host_shim");
    err_at(&MINIMAL.replace("\"lan\"", "\"a b\""), "network[0].name");
    // A key written twice is a TOML error, still named.
    let e = err_at(&net("name = \"again\""), "network[0].name");
    assert!(e.to_string().contains("line 6"), "{e}");
}

#[test]
fn duplicate_names_and_vlans() {
    let two = |a: &str, b: &str| {
        format!(
            "[parent]\ninterface = \"eth0\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.0.0.0/24\"\n{a}\n\
             [[network]]\nname = \"lan2\"\nsubnet = \"10.0.1.0/24\"\n{b}\n"
        )
    };
    let e = err_at(
        &two("", "name = \"lan\"").replace("name = \"lan2\"\n", ""),
        "network[1].name",
    );
    assert!(
        matches!(e, ConfigError::DuplicateNetwork { first: 0, .. }),
        "{e:?}"
    );
    let e = err_at(&two("vlan = 5", "vlan = 5"), "network[1].vlan");
    assert!(matches!(e, ConfigError::DuplicateVlan { .. }), "{e:?}");
    err_at(&two("", ""), "network[1].vlan");
    ok(&two("vlan = 5", ""));

    let e = err_at(
        &with(&(endpoint("web", "") + &endpoint("web", "ifname = \"eth1\""))),
        "endpoint[1].name",
    );
    assert!(matches!(e, ConfigError::DuplicateEndpoint { first: 0, .. }));
}

#[test]
fn network_addresses() {
    let e = err_at(&net("gateway = \"192.168.2.1\""), "network[0].gateway");
    assert!(matches!(e, ConfigError::OutsideSubnet { .. }));
    let e = err_at(&net("gateway = \"192.168.1.255\""), "network[0].gateway");
    assert!(matches!(e, ConfigError::DuplicateIp { .. }));
    assert!(e.to_string().contains("broadcast"), "{e}");
    err_at(&net("gateway = \"192.168.1.0\""), "network[0].gateway");
    let e = err_at(&net("ip_range = \"192.168.0.0/23\""), "network[0].ip_range");
    assert!(matches!(e, ConfigError::RangeOutsideSubnet { .. }));
    err_at(&net("ip_range = \"10.0.0.0/28\""), "network[0].ip_range");
    err_at(
        &net("ip_range = \"192.168.1.129/25\""),
        "network[0].ip_range",
    );
    let e = err_at(&net("host_shim = \"10.0.0.1\""), "network[0].host_shim");
    assert!(matches!(e, ConfigError::OutsideSubnet { .. }));
    let e = err_at(&net("host_shim = \"192.168.1.1\""), "network[0].host_shim");
    assert!(e.to_string().contains("gateway"), "{e}");
    err_at(
        &net("aux_addresses = [\"192.168.1.5\", \"192.168.1.5\"]"),
        "network[0].aux_addresses[1]",
    );
    err_at(
        &net("aux_addresses = [\"10.1.1.1\"]"),
        "network[0].aux_addresses[0]",
    );
}

#[test]
fn endpoint_references_and_netns() {
    let e = err_at(
        &with(&endpoint("web", "").replace("\"lan\"", "\"wan\"")),
        "endpoint[0].network",
    );
    assert!(matches!(e, ConfigError::UnknownNetwork { .. }));
    assert!(e.to_string().contains("\"wan\""), "{e}");

    let both = endpoint("web", "netns_path = \"/proc/1/ns/net\"");
    let e = err_at(&with(&both), "endpoint[0].netns");
    assert!(matches!(e, ConfigError::NetnsChoice { both: true, .. }));
    let neither = endpoint("web", "").replace("netns = \"web\"\n", "");
    let e = err_at(&with(&neither), "endpoint[0].netns");
    assert!(matches!(e, ConfigError::NetnsChoice { both: false, .. }));
    err_at(
        &with(&endpoint("web", "").replace("netns = \"web\"", "netns = \"a/b\"")),
        "endpoint[0].netns",
    );
    let rel = endpoint("web", "netns_path = \"proc/1/ns/net\"").replace("netns = \"web\"\n", "");
    err_at(&with(&rel), "endpoint[0].netns_path");
    let ok_path =
        endpoint("web", "netns_path = \"/proc/1/ns/net\"").replace("netns = \"web\"\n", "");
    assert_eq!(
        ok(&with(&ok_path)).endpoints[0].netns,
        NetnsRef::Path("/proc/1/ns/net".into())
    );

    err_at(
        &with(&endpoint("web", "kind = \"macvtap\"")),
        "endpoint[0].kind",
    );
    err_at(&with(&endpoint("", "")), "endpoint[0].name");
}

#[test]
fn ifnames() {
    for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a\tb", "a:1", ".."] {
        let e = err_at(
            &with(&endpoint("web", &format!("ifname = {bad:?}"))),
            "endpoint[0].ifname",
        );
        assert!(
            matches!(e, ConfigError::InvalidIfname { .. }),
            "{bad:?}: {e:?}"
        );
    }
    ok(&with(&endpoint("web", "ifname = \"abcdefghijklmno\"")));
    // One name per namespace.
    let two = endpoint("a", "").replace("netns = \"a\"", "netns = \"ns\"")
        + &endpoint("b", "").replace("netns = \"b\"", "netns = \"ns\"");
    let e = err_at(&with(&two), "endpoint[1].ifname");
    assert!(matches!(e, ConfigError::DuplicateIfname { .. }), "{e:?}");
    ok(&with(&two.replacen(
        "[[endpoint]]\nname = \"b\"",
        "[[endpoint]]\nname = \"b\"\nifname = \"eth1\"",
        1,
    )));
}

#[test]
fn endpoint_macs() {
    let e = err_at(
        &with(&endpoint("web", "mac = \"01:00:5e:00:00:01\"")),
        "endpoint[0].mac",
    );
    assert_eq!(
        e.to_string(),
        "endpoint[0] (web).mac: 01:00:5e:00:00:01 is a multicast address"
    );
    err_at(
        &with(&endpoint("web", "mac = \"ff:ff:ff:ff:ff:ff\"")),
        "endpoint[0].mac",
    );
    let e = err_at(
        &with(&endpoint("web", "mac = \"00:00:00:00:00:00\"")),
        "endpoint[0].mac",
    );
    assert!(e.to_string().contains("zero"), "{e}");
    let e = err_at(
        &with(&endpoint("web", "mac = \"02:42\"")),
        "endpoint[0].mac",
    );
    assert!(matches!(e, ConfigError::InvalidValue { .. }));

    let dup = endpoint("a", "mac = \"02:00:00:00:00:01\"")
        + &endpoint("b", "mac = \"02:00:00:00:00:01\"");
    let e = err_at(&with(&dup), "endpoint[1].mac");
    assert!(matches!(e, ConfigError::DuplicateMac { .. }));
    // A written MAC that equals another endpoint's default MAC.
    let dup =
        endpoint("a", "ip = \"192.168.1.10\"") + &endpoint("b", "mac = \"02:42:c0:a8:01:0a\"");
    err_at(&with(&dup), "endpoint[1].mac");
}

#[test]
fn endpoint_ips() {
    let e = err_at(
        &with(&endpoint("web", "ip = \"10.0.0.5\"")),
        "endpoint[0].ip",
    );
    assert!(matches!(e, ConfigError::OutsideSubnet { .. }));
    err_at(
        &with(&endpoint("web", "ip = \"192.168.1.300\"")),
        "endpoint[0].ip",
    );
    for clash in ["192.168.1.0", "192.168.1.255", "192.168.1.1"] {
        let e = err_at(
            &with(&endpoint("web", &format!("ip = {clash:?}"))),
            "endpoint[0].ip",
        );
        assert!(
            matches!(e, ConfigError::DuplicateIp { .. }),
            "{clash}: {e:?}"
        );
    }
    let e = err_at(
        &(net("aux_addresses = [\"192.168.1.9\"]\nhost_shim = \"192.168.1.250\"")
            + &endpoint("a", "ip = \"192.168.1.9\"")),
        "endpoint[0].ip",
    );
    assert!(e.to_string().contains("aux_addresses[0]"), "{e}");
    let e = err_at(
        &(net("host_shim = \"192.168.1.250\"") + &endpoint("a", "ip = \"192.168.1.250\"")),
        "endpoint[0].ip",
    );
    assert!(e.to_string().contains("host shim"), "{e}");
    let dup = endpoint("a", "ip = \"192.168.1.7\"") + &endpoint("b", "ip = \"192.168.1.7\"");
    let e = err_at(&with(&dup), "endpoint[1].ip");
    assert!(e.to_string().contains("endpoint[0] (a)"), "{e}");
}

#[test]
fn passthru_and_source_modes() {
    let one = net("mode = \"passthru\"") + &endpoint("a", "");
    ok(&one);
    let e = err_at(&(one + &endpoint("b", "")), "endpoint[1].network");
    assert!(matches!(e, ConfigError::PassthruTaken { .. }));

    let e = err_at(
        &with(&endpoint("a", "allowed_sources = [\"52:54:00:00:00:01\"]")),
        "endpoint[0].allowed_sources",
    );
    assert!(matches!(
        e,
        ConfigError::SourcesNotAllowed {
            mode: Mode::Bridge,
            ..
        }
    ));
    let src = net("mode = \"source\"");
    err_at(
        &(src.clone() + &endpoint("a", "allowed_sources = [\"x\"]")),
        "endpoint[0].allowed_sources[0]",
    );
    err_at(
        &(src.clone()
            + &endpoint(
                "a",
                "allowed_sources = [\"52:54:00:00:00:01\", \"33:33:00:00:00:01\"]",
            )),
        "endpoint[0].allowed_sources[1]",
    );
    ok(&(src + &endpoint("a", "allowed_sources = []")));
}

// ---- addressing ----

fn ips(c: &Config) -> Vec<Ipv4Addr> {
    c.endpoints.iter().map(|e| e.ip).collect()
}

#[test]
fn statics_are_reserved_before_dynamic_allocation() {
    // b is dynamic but comes before static c, which already holds .2.
    let text =
        net("") + &endpoint("a", "") + &endpoint("b", "") + &endpoint("c", "ip = \"192.168.1.3\"");
    let c = ok(&text);
    assert_eq!(
        ips(&c),
        vec![ip("192.168.1.2"), ip("192.168.1.4"), ip("192.168.1.3")]
    );
    assert_eq!(c.endpoints[2].mac, mac("02:42:c0:a8:01:03"));
}

#[test]
fn allocation_skips_gateway_aux_and_shim() {
    let text = net("gateway = \"192.168.1.2\"\naux_addresses = [\"192.168.1.1\", \"192.168.1.4\"]\nhost_shim = \"192.168.1.3\"")
        + &endpoint("a", "")
        + &endpoint("b", "");
    assert_eq!(ips(&ok(&text)), vec![ip("192.168.1.5"), ip("192.168.1.6")]);
}

#[test]
fn allocation_uses_ip_range() {
    let text = net("ip_range = \"192.168.1.128/25\"")
        + &endpoint("a", "")
        + &endpoint("b", "ip = \"192.168.1.10\"")
        + &endpoint("c", "");
    // As in Docker, a range's own first address is usable.
    assert_eq!(
        ips(&ok(&text)),
        vec![ip("192.168.1.128"), ip("192.168.1.10"), ip("192.168.1.129")]
    );
    // A range at the subnet's top edge skips the broadcast address.
    let text = net("ip_range = \"192.168.1.254/31\"") + &endpoint("a", "") + &endpoint("b", "");
    let e = err_at(&text, "endpoint[1].ip");
    assert!(matches!(e, ConfigError::PoolExhausted { .. }), "{e:?}");
    assert!(e.to_string().contains("192.168.1.254/31"), "{e}");
}

#[test]
fn pool_exhaustion() {
    // A /29 has hosts .1-.6; the gateway takes .1.
    let mut text = MINIMAL.replace("192.168.1.0/24", "192.168.1.0/29");
    for name in ["a", "b", "c", "d", "e"] {
        text += &endpoint(name, "");
    }
    let c = ok(&text);
    assert_eq!(ips(&c).last(), Some(&ip("192.168.1.6")));
    text += &endpoint("f", "");
    let e = err_at(&text, "endpoint[5].ip");
    assert_eq!(
        e.to_string(),
        "endpoint[5] (f).ip: no free address left in 192.168.1.0/29 (network \"lan\")"
    );
}

#[test]
fn check_host_names_missing_netns() {
    let text = with(
        &(endpoint("here", "").replace("netns = \"here\"", "netns_path = \"/proc/self/ns/net\"")
            + &endpoint("gone", "")
                .replace("netns = \"gone\"", "netns = \"mvdp-test-no-such-ns\"")),
    );
    let c = ok(&text);
    let e = c.check_host().unwrap_err();
    assert_eq!(e.key(), Some("endpoint[1].netns"));
    assert!(
        e.to_string()
            .contains("/var/run/netns/mvdp-test-no-such-ns"),
        "{e}"
    );
}

#[test]
fn load_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/mvdp.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/mvdp.toml"), "{e}");
    assert_eq!(e.key(), None);
}

#[test]
fn one_passthru_network_at_most() {
    let two = "[parent]\ninterface = \"eth0\"\n\
               [[network]]\nname = \"a\"\nmode = \"passthru\"\nsubnet = \"10.1.0.0/24\"\n\
               [[network]]\nname = \"b\"\nmode = \"passthru\"\nvlan = 5\nsubnet = \"10.2.0.0/24\"\n";
    let e = err_at(two, "network[1].mode");
    assert!(e.to_string().contains("already passthru"), "{e}");
}

#[test]
fn host_shim_only_on_bridge_networks() {
    let text = "[parent]\ninterface = \"eth0\"\n\
                [[network]]\nname = \"p\"\nmode = \"private\"\nsubnet = \"10.1.0.0/24\"\nhost_shim = \"10.1.0.250\"\n";
    let e = err_at(text, "network[0].host_shim");
    assert!(e.to_string().contains("bridge"), "{e}");
    ok(&text.replace("mode = \"private\"", "mode = \"bridge\""));
}

#[test]
fn rate_limits_parse_and_are_checked() {
    let c = ok(&with(&endpoint(
        "a",
        "rate_limit = { pps = 100, bytes_per_sec = 5000 }",
    )));
    assert_eq!(
        c.endpoints[0].rate_limit,
        Some(RateLimit {
            pps: 100,
            bytes_per_sec: 5000
        })
    );
    let c = ok(&with(&endpoint(
        "a",
        "rate_limit = { bytes_per_sec = 5000 }",
    )));
    assert_eq!(c.endpoints[0].rate_limit.unwrap().pps, 0);
    err_at(
        &with(&endpoint("a", "rate_limit = { pps = -1 }")),
        "endpoint[0].rate_limit.pps",
    );
    err_at(
        &with(&endpoint("a", "rate_limit = {}")),
        "endpoint[0].rate_limit.pps",
    );
    err_at(
        &with(&endpoint("a", "rate_limit = { ppx = 3 }")),
        "endpoint[0].rate_limit.ppx",
    );
}

#[test]
fn capacity_is_4096_endpoints_plus_the_host_shims() {
    let endpoints = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!("[[endpoint]]\nname = \"e{i}\"\nnetwork = \"big\"\nnetns = \"n{i}\"\n")
            })
            .collect()
    };
    // `shims` networks with a host shim, the first of them "big".
    let config = |shims: usize, n: usize| {
        let mut s = "[parent]\ninterface = \"eth0\"\n".to_string();
        for k in 0..shims.max(1) {
            let name = if k == 0 {
                "big".into()
            } else {
                format!("net{k}")
            };
            s += &format!(
                "[[network]]\nname = \"{name}\"\nvlan = {}\nsubnet = \"10.{k}.0.0/16\"\n",
                k + 1
            );
            if k < shims {
                s += &format!("host_shim = \"10.{k}.255.250\"\n");
            }
        }
        s + &endpoints(n)
    };
    // 4096 container endpoints, and the host shims on top of them (in the
    // default UMEM: fast-path veth endpoints post no fill frames).
    Config::parse(&config(0, MAX_ENDPOINTS)).expect("4096 endpoints fit");
    Config::parse(&config(1, MAX_ENDPOINTS)).expect("4096 endpoints and a shim fit");
    Config::parse(&config(MAX_HOST_SHIMS, MAX_ENDPOINTS)).expect("and 64 shims");
    assert_eq!(MAX_ENDPOINTS + MAX_HOST_SHIMS, ENDPOINT_SLOTS);
    let e = err_at(&config(1, MAX_ENDPOINTS + 1), "endpoint");
    assert!(e.to_string().contains("at most 4096"), "{e}");
    let e = err_at(
        &config(MAX_HOST_SHIMS + 1, 1),
        &format!("network[{MAX_HOST_SHIMS}].host_shim"),
    );
    assert!(e.to_string().contains("at most 64"), "{e}");
}

#[test]
fn umem_frames_cover_the_endpoints_that_receive() {
    let text = |fast_path: &str, kind: &str, n: usize| {
        let eps: String = (0..n)
            .map(|i| {
                format!(
                    "[[endpoint]]\nname = \"e{i}\"\nnetwork = \"big\"\nkind = \"{kind}\"\nnetns = \"n{i}\"\n"
                )
            })
            .collect();
        format!(
            "[parent]\ninterface = \"eth0\"\numem_frames = 64\n[dataplane]\nfast_path = \"{fast_path}\"\n\
             [[network]]\nname = \"big\"\nsubnet = \"10.0.0.0/16\"\n{eps}"
        )
    };
    // 64 UMEM frames leave 16 to post: two receiving endpoints, not three.
    Config::parse(&text("off", "veth", 2)).expect("two endpoints in 64 frames");
    let e = err_at(&text("off", "veth", 3), "parent.umem_frames");
    assert!(e.to_string().contains("128 would do"), "{e}");
    let e = err_at(&text("on", "tap", 3), "parent.umem_frames");
    assert!(e.to_string().contains("128 would do"), "{e}");
    // The fast path takes veth endpoints' egress: their sockets post nothing.
    Config::parse(&text("on", "veth", 3)).expect("fast-path endpoints post no frames");
    // 4096 receiving endpoints need 128 Ki frames.
    assert_eq!(crate::config::umem_frames_for(MAX_ENDPOINTS), 131_072);
}

#[test]
fn handoff_endpoints_stay_in_mvdps_namespace_under_a_name_of_their_own() {
    let c = Config::parse(&with(
        "[[endpoint]]\nname = \"d1\"\nnetwork = \"lan\"\nhandoff = true\nifname = \"mvc0123\"\ndefault_route = false",
    ))
    .expect("a handoff endpoint");
    let e = &c.endpoints[0];
    assert!(e.handoff && !e.default_route);
    assert_eq!(e.netns, NetnsRef::Path("/proc/self/ns/net".into()));
    err_at(
        &with("[[endpoint]]\nname = \"d1\"\nnetwork = \"lan\"\nhandoff = true"),
        "endpoint[0].ifname",
    );
    err_at(
        &with("[[endpoint]]\nname = \"d1\"\nnetwork = \"lan\"\nhandoff = true\nifname = \"x\"\nnetns = \"web\""),
        "endpoint[0].handoff",
    );
    err_at(
        &with("[[endpoint]]\nname = \"d1\"\nnetwork = \"lan\"\nhandoff = true\nifname = \"x\"\nkind = \"tap\""),
        "endpoint[0].handoff",
    );
}

#[test]
fn runtime_networks_count_on_after_the_files() {
    let extra = crate::config::NetworkSpec {
        name: "dk1".into(),
        subnet: "10.9.0.0/24".into(),
        vlan: Some(9),
        mode: Some("bogus".into()),
        ..Default::default()
    };
    let e = Config::parse_with(MINIMAL, std::slice::from_ref(&extra), &[]).unwrap_err();
    assert_eq!(e.key(), Some("network[1].mode"), "{e}");
    let good = crate::config::NetworkSpec {
        mode: None,
        ..extra
    };
    let c =
        Config::parse_with(MINIMAL, std::slice::from_ref(&good), &[]).expect("a runtime network");
    assert_eq!(c.networks[1].vlan, Some(9));
    assert_eq!(c.networks[1].multicast, Multicast::Snoop);
    let flood = crate::config::NetworkSpec {
        multicast: Some("flood".into()),
        ..good.clone()
    };
    let c = Config::parse_with(MINIMAL, &[flood], &[]).unwrap();
    assert_eq!(c.networks[1].multicast, Multicast::Flood);
    let bad = crate::config::NetworkSpec {
        multicast: Some("igmp".into()),
        ..good
    };
    let e = Config::parse_with(MINIMAL, &[bad], &[]).unwrap_err();
    assert_eq!(e.key(), Some("network[1].multicast"), "{e}");
}

fn ip6(s: &str) -> std::net::Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn dual_stack_addressing() {
    let text = net("subnet6 = \"fd00:77::/64\"\nip_range6 = \"fd00:77::100/120\"\naux_addresses = [\"192.168.1.2\", \"fd00:77::100\"]\nhost_shim = \"192.168.1.250\"")
        + &endpoint("a", "ip6 = \"fd00:77::a\"")
        + &endpoint("b", "")
        + &endpoint("c", "");
    let c = ok(&text);
    let v6 = c.networks[0].ipv6.as_ref().expect("dual stack");
    assert_eq!(v6.gateway, ip6("fd00:77::1"));
    assert_eq!(v6.aux_addresses, [ip6("fd00:77::100")]);
    assert_eq!(c.networks[0].aux_addresses, [ip("192.168.1.2")]);
    assert_eq!(v6.host_shim, Some(ip6("fd00:77::ffff:ffff:ffff:ffff")));
    let got: Vec<_> = c.endpoints.iter().map(|e| e.ip6).collect();
    // The static one first; the others from the pool, skipping the aux address.
    assert_eq!(
        got,
        [
            Some(ip6("fd00:77::a")),
            Some(ip6("fd00:77::101")),
            Some(ip6("fd00:77::102"))
        ]
    );
    // An IPv4-only network gives no IPv6 address.
    assert_eq!(
        ok(&(MINIMAL.to_string() + &endpoint("x", ""))).endpoints[0].ip6,
        None
    );
    assert!(
        c.summary().contains("subnet6 fd00:77::/64"),
        "{}",
        c.summary()
    );
}

#[test]
fn dual_stack_errors_name_their_key() {
    let v6 = |extra: &str| net(&format!("subnet6 = \"fd00:77::/64\"\n{extra}"));
    for (text, key) in [
        (net("subnet6 = \"fd00:77::\""), "network[0].subnet6"),
        (net("subnet6 = \"192.168.1.0/24\""), "network[0].subnet6"),
        (net("subnet6 = \"fd00:77::1/64\""), "network[0].subnet6"),
        (net("subnet6 = \"fd00:77::/124\""), "network[0].subnet6"),
        (net("gateway6 = \"fd00:77::1\""), "network[0].gateway6"),
        (net("ip_range6 = \"fd00:77::/120\""), "network[0].ip_range6"),
        (
            net("aux_addresses = [\"fd00:77::9\"]"),
            "network[0].aux_addresses[0]",
        ),
        (v6("gateway6 = \"fd00:78::1\""), "network[0].gateway6"),
        (
            v6("aux_addresses = [\"192.168.1.2\", \"fd00:77::5\", \"fd00:77::5\"]"),
            "network[0].aux_addresses[2]",
        ),
        (
            v6("aux_addresses = [\"fd00:78::5\"]"),
            "network[0].aux_addresses[0]",
        ),
        (v6("gateway6 = \"fe80::1\""), "network[0].gateway6"),
        (v6("gateway6 = \"not-an-address\""), "network[0].gateway6"),
        (v6("ip_range6 = \"fd00:78::/120\""), "network[0].ip_range6"),
        (v6("host_shim6 = \"fd00:77::5\""), "network[0].host_shim6"),
        (
            v6("host_shim = \"192.168.1.250\"\nhost_shim6 = \"fd00:77::1\""),
            "network[0].host_shim6",
        ),
        (
            v6("") + &endpoint("a", "ip6 = \"fd00:78::5\""),
            "endpoint[0].ip6",
        ),
        (
            v6("") + &endpoint("a", "ip6 = \"fd00:77::1\""),
            "endpoint[0].ip6",
        ),
        (
            v6("")
                + &endpoint("a", "ip6 = \"fd00:77::7\"")
                + &endpoint("b", "ip6 = \"fd00:77::7\""),
            "endpoint[1].ip6",
        ),
        (
            net("") + &endpoint("a", "ip6 = \"fd00:77::7\""),
            "endpoint[0].ip6",
        ),
        (
            // ::0 is the subnet-router anycast address, ::1 the gateway.
            v6("ip_range6 = \"fd00:77::/126\"")
                + &endpoint("a", "")
                + &endpoint("b", "")
                + &endpoint("c", ""),
            "endpoint[2].ip6",
        ),
    ] {
        err_at(&text, key);
    }
}

#[test]
fn dhcp_networks_take_no_static_addresses() {
    // MINIMAL's network, by DHCP.
    let dhcp_net = with("ipam = \"dhcp\"");
    let dhcp_net = dhcp_net.as_str();
    let c = ok(&format!(
        "{dhcp_net}\n{}{}",
        endpoint("web", ""),
        endpoint("db", "mac = \"02:00:00:00:00:07\"")
    ));
    assert_eq!(c.networks[0].ipam, Ipam::Dhcp);
    let web = c.endpoint("web").unwrap();
    assert_eq!(web.ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(web.mac, MacAddr::from_name("web"));
    assert_eq!(c.endpoint("db").unwrap().mac, mac("02:00:00:00:00:07"));
    assert!(c.summary().contains("addresses from the LAN's DHCP server"));
    for (extra, key) in [
        ("gateway = \"192.168.1.1\"", "network[0].gateway"),
        ("ip_range = \"192.168.1.0/25\"", "network[0].ip_range"),
        (
            "aux_addresses = [\"192.168.1.2\"]",
            "network[0].aux_addresses",
        ),
    ] {
        let e = err_at(&format!("{dhcp_net}\n{extra}\n"), key);
        assert!(e.to_string().contains("DHCP server"), "{e}");
    }
    let e = err_at(
        &format!("{dhcp_net}\n{}", endpoint("web", "ip = \"192.168.1.9\"")),
        "endpoint[0].ip",
    );
    assert!(e.to_string().contains("ipam = \"dhcp\""), "{e}");
    let handoff = "[[endpoint]]\nname = \"d\"\nnetwork = \"lan\"\nifname = \"x\"\nhandoff = true\n";
    err_at(&format!("{dhcp_net}\n{handoff}"), "endpoint[0].handoff");
    err_at(&with("ipam = \"bootp\""), "network[0].ipam");
    // A host shim keeps its static address, even where a gateway would be.
    ok(&format!("{dhcp_net}\nhost_shim = \"192.168.1.1\"\n"));
}

#[test]
fn runtime_networks_take_ipam() {
    let net = NetworkSpec {
        name: "dk".into(),
        subnet: "10.9.0.0/24".into(),
        vlan: Some(9),
        ipam: Some("dhcp".into()),
        ..NetworkSpec::default()
    };
    let c = Config::parse_with(MINIMAL, &[net], &[]).unwrap();
    assert_eq!(c.network("dk").unwrap().ipam, Ipam::Dhcp);
}

#[test]
fn dhcp_networks_keep_static_ipv6() {
    let text = net("ipam = \"dhcp\"\nsubnet6 = \"fd00:77::/64\"")
        + &endpoint("a", "ip6 = \"fd00:77::9\"")
        + &endpoint("b", "");
    let c = ok(&text);
    assert_eq!(c.endpoints[0].ip6, Some(ip6("fd00:77::9")));
    assert_eq!(c.endpoints[1].ip6, Some(ip6("fd00:77::2")));
    err_at(
        &(net("ipam = \"dhcp\"") + &endpoint("a", "ip6 = \"fd00:77::9\"")),
        "endpoint[0].ip6",
    );
}
