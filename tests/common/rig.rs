//! `Rig`: host, wire and container namespaces joined by a veth "parent NIC".
//!
//! ```text
//!   wire ns                     host ns (mvdp runs here)      c1..cN ns
//!   w0 10.77.0.1/24  <──veth──>  p0 10.77.0.254/24            (endpoints,
//!   (tx csum offload off)        (parent NIC, `queues` queues) 10.77.0.11..)
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

use super::netns::Netns;
use super::unique;

/// The parent NIC's name inside the host namespace.
pub const PARENT_IF: &str = "p0";
/// The wire end of the veth pair, inside the wire namespace.
pub const WIRE_IF: &str = "w0";
/// The wire host's address (on `w0`); also the network's gateway.
pub const WIRE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The host's own address on `p0`: traffic to it must still reach the host
/// stack while mvdp is attached.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);
/// The rig's LAN.
pub const SUBNET: &str = "10.77.0.0/24";
/// Prefix length of [`SUBNET`].
pub const PREFIX_LEN: u8 = 24;
/// The mvdp network name used by [`Rig::config_toml`].
pub const NETWORK: &str = "lan";

/// One container namespace and the endpoint mvdp is to give it.
#[derive(Debug)]
pub struct Container {
    /// Endpoint name in the config: `c1`, `c2`, ...
    pub name: String,
    /// The container's network namespace.
    pub ns: Netns,
    /// The endpoint's address: 10.77.0.11 for c1, .12 for c2, ...
    pub ip: Ipv4Addr,
}

impl Container {
    /// The MAC mvdp derives by default (as Docker does): `02:42` + the IPv4
    /// address.
    pub fn mac(&self) -> [u8; 6] {
        let o = self.ip.octets();
        [0x02, 0x42, o[0], o[1], o[2], o[3]]
    }

    /// The interface name mvdp gives the endpoint inside the container.
    pub fn ifname(&self) -> &'static str {
        "eth0"
    }
}

/// The namespaces and links of one test. Drop deletes every namespace (which
/// takes `p0`/`w0` and anything mvdp created inside them along). Declare a
/// [`super::Daemon`] *after* its rig so the daemon stops first.
#[derive(Debug)]
pub struct Rig {
    /// Unique prefix of every name in this rig.
    pub id: String,
    /// Where mvdp runs; holds the parent NIC [`PARENT_IF`].
    pub host: Netns,
    /// The LAN's other side; holds [`WIRE_IF`] with [`WIRE_IP`].
    pub wire: Netns,
    /// `c1..cN`.
    pub containers: Vec<Container>,
    /// RX/TX queue count of both veth ends.
    pub queues: u32,
    /// Free address for mvdp's metrics exporter inside the host namespace.
    pub metrics_addr: SocketAddr,
    /// A control socket path unique to this rig (so parallel daemons do not
    /// fight over `/run/mvdp/mvdp.sock`).
    pub control_socket: PathBuf,
}

impl Rig {
    /// Builds the rig: namespaces `host`, `wire`, `c1..c<containers>` (IPv6
    /// off, `lo` up), veth `p0` (host) ↔ `w0` (wire) with `queues` RX/TX
    /// queues on both ends, addresses, and TX checksum offload off on `w0`.
    /// Panics (after cleaning up what it made) if any step fails.
    pub fn new(containers: usize, queues: u32) -> Rig {
        Rig::named("mvdp-", containers, queues)
    }

    /// [`Rig::new`] with namespace names starting with `prefix` (via
    /// [`unique`]), so a suite's names never collide with another's.
    pub fn named(prefix: &str, containers: usize, queues: u32) -> Rig {
        assert!(queues >= 1, "a veth needs at least one queue");
        assert!(
            containers <= 200,
            "endpoint addresses run 10.77.0.11..=.210"
        );
        let id = unique(prefix);
        // Built as locals first: if a step panics, what exists is dropped.
        let host = Netns::new(&format!("{id}-host"));
        let wire = Netns::new(&format!("{id}-wire"));
        let containers: Vec<Container> = (1..=containers)
            .map(|i| Container {
                name: format!("c{i}"),
                ns: Netns::new(&format!("{id}-c{i}")),
                ip: Ipv4Addr::new(10, 77, 0, 10 + i as u8),
            })
            .collect();
        for ns in [&host, &wire]
            .into_iter()
            .chain(containers.iter().map(|c| &c.ns))
        {
            prepare_namespace(ns);
        }

        let q = queues.to_string();
        #[rustfmt::skip]
        host.ip(&[
            "link", "add", PARENT_IF, "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
            "peer", "name", WIRE_IF, "netns", wire.name(), "numtxqueues", &q, "numrxqueues", &q,
        ]);
        // A real wire carries finished checksums; a veth would leave them
        // partial and AF_XDP would forward them that way (DESIGN.md).
        wire.run(&["ethtool", "-K", WIRE_IF, "tx", "off"]);
        wire.ip(&[
            "addr",
            "add",
            &format!("{WIRE_IP}/{PREFIX_LEN}"),
            "dev",
            WIRE_IF,
        ]);
        host.ip(&[
            "addr",
            "add",
            &format!("{HOST_IP}/{PREFIX_LEN}"),
            "dev",
            PARENT_IF,
        ]);
        wire.ip(&["link", "set", WIRE_IF, "up"]);
        host.ip(&["link", "set", PARENT_IF, "up"]);

        let metrics_addr = host.in_ns(|| {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind a metrics port probe");
            probe.local_addr().expect("probe address")
        });
        let control_socket = std::env::temp_dir().join(format!("{id}.sock"));
        Rig {
            id,
            host,
            wire,
            containers,
            queues,
            metrics_addr,
            control_socket,
        }
    }

    /// Names of every namespace of this rig (host, wire, containers).
    pub fn namespace_names(&self) -> Vec<String> {
        [&self.host, &self.wire]
            .into_iter()
            .chain(self.containers.iter().map(|c| &c.ns))
            .map(|ns| ns.name().to_string())
            .collect()
    }

    /// Container `i`, 1-based like its name (`rig.container(1)` is `c1`).
    pub fn container(&self, i: usize) -> &Container {
        assert!(
            (1..=self.containers.len()).contains(&i),
            "no container c{i} in this rig"
        );
        &self.containers[i - 1]
    }

    /// A full mvdp config for this rig: [`Rig::base_toml`] plus one
    /// `[[endpoint]]` of `kind` (`"veth"` or `"tap"`) per container.
    pub fn config_toml(&self, kind: &str, extra: &str) -> String {
        let mut toml = self.base_toml(extra);
        for c in &self.containers {
            toml.push_str(&self.endpoint_toml(c, kind));
        }
        toml
    }

    /// The config without endpoints: `[parent] interface = "p0"`, then
    /// `extra` verbatim, then `[dataplane]` (unless `extra` has one),
    /// `[metrics]`, `[control]` and the `lan` network.
    ///
    /// `extra` is placed right after the `[parent]` keys, so bare
    /// `key = value` lines extend `[parent]` (e.g. `xdp_mode = "skb"`), and it
    /// may open other tables (`[workers]`, more `[[network]]`s, ...), but not
    /// `[metrics]` or `[control]`, which come after it.
    ///
    /// `[dataplane] fast_path` is [`tier`]'s: the whole suite runs once with
    /// the kernel fast path and once without (`make test`).
    pub fn base_toml(&self, extra: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# mvdp config generated by tests/common for rig {}",
            self.id
        );
        let _ = writeln!(t, "[parent]\ninterface = \"{PARENT_IF}\"");
        if !extra.is_empty() {
            let _ = writeln!(t, "{}", extra.trim_end());
        }
        if !extra.contains("[dataplane]") {
            let _ = writeln!(t, "\n[dataplane]\nfast_path = \"{}\"", tier());
        }
        let _ = writeln!(t, "\n[metrics]\nlisten = \"{}\"", self.metrics_addr);
        let _ = writeln!(
            t,
            "\n[control]\nsocket = \"{}\"",
            self.control_socket.display()
        );
        let _ = writeln!(
            t,
            "\n[[network]]\nname = \"{NETWORK}\"\nmode = \"bridge\"\n\
             subnet = \"{SUBNET}\"\ngateway = \"{WIRE_IP}\""
        );
        t
    }

    /// One `[[endpoint]]` table for container `c` on the `lan` network.
    pub fn endpoint_toml(&self, c: &Container, kind: &str) -> String {
        assert!(
            kind == "veth" || kind == "tap",
            "endpoint kind is veth or tap, not {kind:?}"
        );
        format!(
            "\n[[endpoint]]\nname = \"{}\"\nnetwork = \"{NETWORK}\"\nkind = \"{kind}\"\n\
             netns = \"{}\"\nifname = \"{}\"\nip = \"{}\"\n",
            c.name,
            c.ns.name(),
            c.ifname(),
            c.ip
        )
    }
}

impl Rig {
    /// Asserts the host namespace holds only `lo` and the parent again:
    /// nothing mvdp made is left after it stopped.
    pub fn assert_host_clean(&self) {
        let mut left = super::list_links(&self.host);
        left.sort();
        assert_eq!(left, ["lo", PARENT_IF], "links left in the host namespace");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Namespaces go with their fields; a daemon that did not remove its
        // control socket must not leave it behind either.
        let _ = std::fs::remove_file(&self.control_socket);
        for suffix in [".state.json", ".unicast"] {
            let mut file = self.control_socket.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

/// IPv6 off (no router/neighbour solicitations polluting counters) and `lo`
/// up. Runs before any link is created so new links inherit `default`.
fn prepare_namespace(ns: &Netns) {
    ns.set_sysctl("net/ipv6/conf/all/disable_ipv6", "1");
    ns.set_sysctl("net/ipv6/conf/default/disable_ipv6", "1");
    ns.ip(&["link", "set", "lo", "up"]);
}

/// The data plane tier the suite runs against: `MVDP_TEST_FAST_PATH` ("on"
/// or "off"), "on" (mvdp's default) when unset.
pub fn tier() -> &'static str {
    match std::env::var("MVDP_TEST_FAST_PATH").as_deref() {
        Ok("off") => "off",
        Ok("on") | Err(_) => "on",
        Ok(other) => panic!("MVDP_TEST_FAST_PATH={other:?}: use on or off"),
    }
}
