//! Configuration: serde structs, validated newtypes and `ConfigError`.
//!
//! [`Config::parse`] checks the TOML shape (unknown keys are errors), then every
//! value and every cross-reference, and resolves endpoint addressing the way
//! Docker does. What comes out is trusted by the rest of mvdp: nothing is opened
//! or attached before the whole config has passed.

mod addressing;
mod error;
mod net;
mod raw;
mod validate;

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::{ConfigError, Key, Location};
pub use net::{Ipv4Net, Ipv4Range, Ipv6Net, Ipv6Range, Net6ParseError, NetParseError};
pub use validate::{posts_fill_frames, umem_frames_for};

use crate::wire::MacAddr;

/// Default `parent.frame_size`: bytes per UMEM frame.
pub const DEFAULT_FRAME_SIZE: u32 = 2048;
/// Bytes of a UMEM frame before the packet data (the kernel's
/// `XDP_PACKET_HEADROOM`; mvdp asks for no headroom of its own).
pub const FRAME_HEADROOM: u32 = 256;
/// A network's MTU when the parent's is more than a UMEM frame carries.
pub const DEFAULT_MTU: u32 = 1500;
/// What a frame adds to the MTU on its way through the workers: an
/// Ethernet header, one 802.1Q tag, and the 4-byte tag the fast path's
/// punt device puts on the frames it hands them.
pub const L2_OVERHEAD: u32 = 18 + PUNT_TAG_LEN;
/// The tag the fast path puts on a frame it hands the workers through the
/// punt device (which must carry it on top of the workers' largest MTU).
pub const PUNT_TAG_LEN: u32 = 4;

/// The largest network `mtu` a UMEM frame of `frame_size` bytes carries
/// (with an Ethernet header, a VLAN tag and the punt tag): 1770 for 2048, 3818 for 4096.
/// The kernel refuses UMEM frames above the page size (even in huge
/// pages), so a larger frame takes several: see [`JUMBO_MTU`].
pub fn max_mtu_for(frame_size: u32) -> u32 {
    frame_size - FRAME_HEADROOM - L2_OVERHEAD
}

/// The largest network `mtu` the workers carry: frames longer than one
/// UMEM frame go through AF_XDP multi-buffer (`XDP_USE_SG`, Linux 6.6),
/// as chains of frames, when the parent's MTU calls for it. 9216 is the
/// common ceiling of jumbo-frame switches.
pub const JUMBO_MTU: u32 = 9216;

/// Whether the workers' sockets bind for multi-buffer frames: only when
/// the parent's MTU is more than one UMEM frame carries, so a parent
/// without jumbo frames runs exactly as before.
pub fn multi_buffer(frame_size: u32, parent_mtu: u32) -> bool {
    parent_mtu > max_mtu_for(frame_size)
}

/// The largest network `mtu` the workers carry on a parent of MTU
/// `parent_mtu`: one UMEM frame's, or with multi-buffer [`JUMBO_MTU`].
pub fn workers_mtu(frame_size: u32, parent_mtu: u32) -> u32 {
    if multi_buffer(frame_size, parent_mtu) {
        JUMBO_MTU
    } else {
        max_mtu_for(frame_size)
    }
}
/// Default `parent.umem_frames`: frames in the UMEM.
pub const DEFAULT_UMEM_FRAMES: u32 = 8192;
/// Default `workers.batch`: frames moved per ring operation.
pub const DEFAULT_BATCH: usize = 64;
/// Default `metrics.listen`.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9469";
/// Default `control.socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/mvdp/mvdp.sock";
/// Default `network.bcast_queue_len`: frames the flood queue holds.
pub const DEFAULT_BCAST_QUEUE_LEN: usize = 1000;
/// Default `endpoint.ifname`: the interface name inside the container.
pub const DEFAULT_IFNAME: &str = "eth0";
/// Where `ip netns` keeps named network namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// A validated mvdp configuration, addressing resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The NIC mvdp attaches to, and how.
    pub parent: ParentConfig,
    /// Which tiers carry the frames.
    pub dataplane: DataplaneConfig,
    /// The per-queue worker threads.
    pub workers: WorkersConfig,
    /// The Prometheus exporter.
    pub metrics: MetricsConfig,
    /// The control socket.
    pub control: ControlConfig,
    /// The networks (`[[network]]`), in file order; at least one.
    pub networks: Vec<NetworkConfig>,
    /// The endpoints (`[[endpoint]]`), in file order; each names a network above.
    pub endpoints: Vec<EndpointConfig>,
}

/// How the XDP program is attached to the parent NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native if the driver supports it, else generic (SKB) mode.
    #[default]
    Auto,
    /// Driver (native) mode only.
    Native,
    /// Generic (SKB) mode only.
    Skb,
}

/// How the AF_XDP sockets bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, else copy.
    #[default]
    Auto,
    /// Zero-copy only.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// Which RX queues of the parent get a socket and a worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Queues {
    /// Every RX queue the NIC has.
    #[default]
    All,
    /// These queue ids (non-empty, no repeats).
    List(Vec<u32>),
}

/// Which cores the workers are pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    /// mvdp picks.
    #[default]
    Auto,
    /// These core ids, one worker per queue (non-empty, no repeats).
    List(Vec<usize>),
}

/// `[parent]`: the NIC and its AF_XDP setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentConfig {
    /// Interface name of the NIC (a valid Linux interface name).
    pub interface: String,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// AF_XDP bind mode.
    pub bind: BindMode,
    /// RX queues to serve.
    pub queues: Queues,
    /// Bytes per UMEM frame: a power of two in 2048..=4096.
    pub frame_size: u32,
    /// Frames in the UMEM: a power of two in 64..=1048576.
    pub umem_frames: u32,
}

/// Whether known unicast takes the kernel (BPF) fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPath {
    /// tc programs move known unicast of veth endpoints in the kernel; the
    /// workers carry the rest.
    #[default]
    On,
    /// Every frame goes through the workers.
    Off,
}

/// `[dataplane]`: which tiers carry the frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataplaneConfig {
    /// The kernel fast path in front of the workers.
    pub fast_path: FastPath,
}

/// What a container's egress is checked against (`network.anti_spoof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AntiSpoof {
    /// The source MAC must be the endpoint's own.
    #[default]
    Mac,
    /// The source MAC, and for IPv4 and ARP the sender address too (or 0.0.0.0).
    MacIp,
}

/// How a network delivers IP multicast (`network.multicast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Multicast {
    /// Learn members from IGMP/MLD; a group beyond the link reaches only them.
    #[default]
    Snoop,
    /// Every group frame reaches every endpoint (the kernel macvlan without filters).
    Flood,
}

/// How an idle worker waits for frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Poll {
    /// Sleep in poll(2) until a socket or the control channel wakes it.
    #[default]
    Interrupt,
    /// Spin on the rings without sleeping: lowest latency, one core per worker at 100 %.
    Busy,
}

/// `[workers]`: the data plane threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkersConfig {
    /// Core pinning.
    pub cores: Cores,
    /// Frames per batch: 1..=1024.
    pub batch: usize,
    /// How an idle worker waits.
    pub poll: Poll,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            cores: Cores::Auto,
            batch: DEFAULT_BATCH,
            poll: Poll::Interrupt,
        }
    }
}

/// `[metrics]`: the Prometheus exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address the `/metrics` endpoint listens on.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: DEFAULT_METRICS_LISTEN.parse().expect("valid default"),
        }
    }
}

/// `[control]`: the daemon's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Path of the Unix socket.
    pub socket: PathBuf,
    /// Leave the endpoint interfaces (and the parent's unicast filter
    /// entries) in place on SIGTERM, for the next start to take over.
    pub keep_endpoints_on_exit: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            keep_endpoints_on_exit: false,
        }
    }
}

/// A network's macvlan mode, with the kernel's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Endpoints reach each other directly inside mvdp.
    #[default]
    Bridge,
    /// Endpoints never reach each other.
    Private,
    /// Endpoint-to-endpoint traffic goes out to the wire and back (hairpin switch).
    Vepa,
    /// One endpoint takes over the parent.
    Passthru,
    /// Endpoints receive only from their `allowed_sources` MACs.
    Source,
}

/// `[[network]]`: one macvlan network on the parent.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// Unique name, referred to by endpoints and metrics.
    pub name: String,
    /// Switching mode.
    pub mode: Mode,
    /// 802.1Q VLAN id on the wire (1..=4094), or `None` for untagged.
    pub vlan: Option<u16>,
    /// The subnet, host bits clear, prefix /30 or shorter.
    pub subnet: Ipv4Net,
    /// The gateway (default: the subnet's first host address).
    pub gateway: Ipv4Addr,
    /// The pool for endpoints without `ip`, inside `subnet`.
    pub ip_range: Option<Ipv4Net>,
    /// Addresses never given to an endpoint.
    pub aux_addresses: Vec<Ipv4Addr>,
    /// Address of a host-side interface that lets the host reach its containers.
    pub host_shim: Option<Ipv4Addr>,
    /// The IPv6 side of the addressing, when the network is dual stack.
    pub ipv6: Option<Ipv6Addressing>,
    /// Capacity of this network's broadcast/multicast flood queue, in frames.
    pub bcast_queue_len: usize,
    /// Whether its containers may send frames that carry an 802.1Q tag of
    /// their own (sent on under the network's tag). Off by default: that is
    /// double tagging, the classic way to hop into another VLAN.
    pub allow_inner_tags: bool,
    /// What its containers' egress is checked against.
    pub anti_spoof: AntiSpoof,
    /// How it delivers IP multicast.
    pub multicast: Multicast,
    /// The MTU of its containers' interfaces (68..=65535), or `None`: the
    /// parent's, read at start. Never above the parent's (checked at start).
    pub mtu: Option<u32>,
    /// Where its endpoints' addresses come from.
    pub ipam: Ipam,
}

/// Where a network's endpoint addresses come from (`network.ipam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipam {
    /// From the config: `ip`, or allocated from `ip_range`/`subnet`.
    #[default]
    Static,
    /// From the LAN's DHCP server: mvdp runs each endpoint's DHCP client.
    Dhcp,
}

/// A dual-stack network's IPv6 keys (`subnet6`, `gateway6`, `ip_range6`,
/// the IPv6 `aux_addresses`, `host_shim6`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Addressing {
    /// The subnet, host bits clear, prefix /120 or shorter.
    pub subnet: Ipv6Net,
    /// The gateway (default: the subnet's first address after the
    /// subnet-router anycast address, `::1`, as Docker has it).
    pub gateway: Ipv6Addr,
    /// The pool for endpoints without `ip6`, inside `subnet`.
    pub ip_range: Option<Ipv6Net>,
    /// IPv6 addresses never given to an endpoint.
    pub aux_addresses: Vec<Ipv6Addr>,
    /// Where each of `aux_addresses` stands in the network's one
    /// `aux_addresses` list (IPv4 and IPv6 together), for error keys.
    pub aux_positions: Vec<usize>,
    /// The host shim's IPv6 address (networks with `host_shim` only).
    pub host_shim: Option<Ipv6Addr>,
}

impl Ipv6Addressing {
    /// The pool addresses are allocated from: `ip_range6`, else `subnet6`.
    pub fn pool(&self) -> Ipv6Net {
        self.ip_range.unwrap_or(self.subnet)
    }
}

impl NetworkConfig {
    /// The pool addresses are allocated from: `ip_range`, else `subnet`.
    pub fn pool(&self) -> Ipv4Net {
        self.ip_range.unwrap_or(self.subnet)
    }
}

/// How an endpoint reaches its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointKind {
    /// A veth pair, one end moved into the container.
    #[default]
    Veth,
    /// A TAP device moved into the container, served through its fd.
    Tap,
}

/// The network namespace of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsRef {
    /// A namespace named by `ip netns`, at `/var/run/netns/NAME`.
    Named(String),
    /// A namespace file such as `/proc/PID/ns/net`.
    Path(PathBuf),
}

impl NetnsRef {
    /// The namespace file to open.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Named(name) => Path::new(NETNS_DIR).join(name),
            NetnsRef::Path(path) => path.clone(),
        }
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsRef::Named(name) => write!(f, "netns {name}"),
            NetnsRef::Path(path) => write!(f, "netns {}", path.display()),
        }
    }
}

/// `[[endpoint]]`: one container interface, addressing resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Unique name, used in metrics and the control socket.
    pub name: String,
    /// Name of the network it belongs to (always defined).
    pub network: String,
    /// veth or TAP.
    pub kind: EndpointKind,
    /// The container's network namespace.
    pub netns: NetnsRef,
    /// Interface name inside the container.
    pub ifname: String,
    /// Its IPv4 address: as written, or allocated; 0.0.0.0 on a DHCP
    /// network (the lease's address is known at run time only).
    pub ip: Ipv4Addr,
    /// Its IPv6 address on a dual-stack network: as written (`ip6`), or
    /// allocated; `None` on an IPv4-only network.
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC address: as written, or Docker's default for `ip`; on a DHCP
    /// network [`MacAddr::from_name`] of its name.
    pub mac: MacAddr,
    /// Source MACs it receives from (networks in `source` mode only).
    pub allowed_sources: Vec<MacAddr>,
    /// A limit on what the endpoint may send, if any.
    pub rate_limit: Option<RateLimit>,
    /// Whether mvdp adds the container's default route via the network's
    /// gateway (`default_route`, default true). A runtime that sets the
    /// container's routes itself (Docker) turns it off.
    pub default_route: bool,
    /// Whether the container end is handed to the runtime (`handoff`):
    /// left in mvdp's namespace under `ifname`, down, with its MAC and no
    /// address, for the runtime to move into the container and configure,
    /// as Docker does with a network driver's interface.
    pub handoff: bool,
}

/// `rate_limit = { pps = N, bytes_per_sec = N }`: token buckets on what an
/// endpoint sends; either may be left out (0: no limit of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Frames per second.
    pub pps: u64,
    /// Bytes per second.
    pub bytes_per_sec: u64,
}

/// An endpoint added at run time (`mvdp endpoint add`), in the config's
/// own keys and with the same meaning; it is validated together with the
/// config file's endpoints, after them. Values stay text, so an error names
/// the key as for the file.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// `name`.
    pub name: String,
    /// `network`.
    pub network: String,
    /// `kind`: "veth" (default) or "tap".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `netns`: a name under /var/run/netns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// `netns_path`: a namespace file such as /proc/PID/ns/net.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_path: Option<String>,
    /// `ifname` inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// `ip`; the next free address of the network when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `ip6`; on a dual-stack network, the next free IPv6 address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// `mac`; Docker's default for the address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `default_route`; true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<bool>,
    /// `handoff`; false when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<bool>,
}

/// A network added at run time (`network_add` on the control socket, as the
/// Docker driver does), in the config's own `[[network]]` keys and with the
/// same meaning; validated with the file's networks, after them. The keys a
/// network may not change at run time (`bcast_queue_len`) are not here.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// `name`.
    pub name: String,
    /// `mode`: bridge (default), private, vepa, passthru or source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `vlan`: the 802.1Q VID on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    /// `subnet`.
    pub subnet: String,
    /// `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// `ip_range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `aux_addresses`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aux_addresses: Vec<String>,
    /// `host_shim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_shim: Option<String>,
    /// `subnet6`: makes the network dual stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// `gateway6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// `ip_range6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<String>,
    /// `host_shim6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_shim6: Option<String>,
    /// `anti_spoof`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_spoof: Option<String>,
    /// `allow_inner_tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_inner_tags: Option<bool>,
    /// `ipam`: static (default) or dhcp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<String>,
    /// `mtu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// `multicast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast: Option<String>,
}

impl From<NetworkSpec> for raw::RawNetwork {
    fn from(s: NetworkSpec) -> raw::RawNetwork {
        raw::RawNetwork {
            name: s.name,
            mode: s.mode,
            vlan: s.vlan,
            subnet: s.subnet,
            gateway: s.gateway,
            ip_range: s.ip_range,
            aux_addresses: s.aux_addresses,
            host_shim: s.host_shim,
            subnet6: s.subnet6,
            gateway6: s.gateway6,
            ip_range6: s.ip_range6,
            host_shim6: s.host_shim6,
            bcast_queue_len: None,
            allow_inner_tags: s.allow_inner_tags,
            anti_spoof: s.anti_spoof,
            ipam: s.ipam,
            mtu: s.mtu,
            multicast: s.multicast,
        }
    }
}

impl From<EndpointSpec> for raw::RawEndpoint {
    fn from(s: EndpointSpec) -> raw::RawEndpoint {
        raw::RawEndpoint {
            name: s.name,
            network: s.network,
            kind: s.kind,
            netns: s.netns,
            netns_path: s.netns_path,
            ifname: s.ifname,
            ip: s.ip,
            ip6: s.ip6,
            mac: s.mac,
            allowed_sources: None,
            rate_limit: None,
            default_route: s.default_route,
            handoff: s.handoff,
        }
    }
}

impl Config {
    /// Parses and fully validates a config text; no I/O.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(text, &[], &[])
    }

    /// Parses a config text with `networks` and `endpoints` added at run
    /// time after the file's own (`network[N]` and `endpoint[N]` in errors
    /// count on from the file's last), and validates the whole: names,
    /// interface names, addresses and MACs are unique across both.
    pub fn parse_with(
        text: &str,
        networks: &[NetworkSpec],
        endpoints: &[EndpointSpec],
    ) -> Result<Config, ConfigError> {
        let mut raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
        raw.network
            .extend(networks.iter().cloned().map(raw::RawNetwork::from));
        raw.endpoint
            .extend(endpoints.iter().cloned().map(raw::RawEndpoint::from));
        validate::build(raw)
    }

    /// Reads `path` and parses it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Checks the config against this machine: every endpoint's network
    /// namespace must exist.
    pub fn check_host(&self) -> Result<(), ConfigError> {
        (0..self.endpoints.len()).try_for_each(|i| self.check_endpoint_host(i))
    }

    /// Checks every network's `mtu` against the parent's MTU (`None`: the
    /// parent is not there to ask, nothing to check): never above it.
    pub fn check_mtus(&self, parent_mtu: Option<u32>) -> Result<(), ConfigError> {
        let Some(parent_mtu) = parent_mtu else {
            return Ok(());
        };
        for (i, net) in self.networks.iter().enumerate() {
            match net.mtu {
                Some(mtu) if mtu > parent_mtu => {
                    return Err(ConfigError::Invalid {
                        key: Key::entry("network", i, Some(&net.name)).field("mtu"),
                        reason: format!(
                            "{mtu} is above the MTU of the parent {} ({parent_mtu}); a network's frames cross the parent",
                            self.parent.interface
                        ),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// That the workers of a running daemon, which carry networks up to
    /// MTU `max` (what they were bound for at start: see [`workers_mtu`]),
    /// carry every network that needs them, naming the key if not. Only a
    /// parent whose MTU went up since the start needs this.
    pub fn check_worker_mtus(&self, max: u32) -> Result<(), ConfigError> {
        validate::worker_mtus(&self.dataplane, &self.networks, &self.endpoints, max)
    }

    /// The MTU of `net`'s containers on a parent whose MTU is `parent_mtu`:
    /// its `mtu`, else the parent's if the workers carry it, else 1500
    /// (a parent above [`JUMBO_MTU`]).
    pub fn network_mtu(&self, net: &NetworkConfig, parent_mtu: u32) -> u32 {
        net.mtu.unwrap_or_else(|| {
            if parent_mtu <= workers_mtu(self.parent.frame_size, parent_mtu) {
                parent_mtu
            } else {
                DEFAULT_MTU.min(parent_mtu)
            }
        })
    }

    /// [`Config::check_host`] for endpoint `i` alone.
    pub fn check_endpoint_host(&self, i: usize) -> Result<(), ConfigError> {
        let ep = &self.endpoints[i];
        let path = ep.netns.path();
        if path.exists() {
            return Ok(());
        }
        let field = match ep.netns {
            NetnsRef::Named(_) => "netns",
            NetnsRef::Path(_) => "netns_path",
        };
        let key = Key::entry("endpoint", i, Some(&ep.name)).field(field);
        Err(ConfigError::NetnsMissing { key, path })
    }

    /// Leaves out the endpoints whose namespace is not there (their
    /// containers are gone) and returns their names.
    pub fn without_missing_netns(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        self.endpoints.retain(|ep| {
            let there = ep.netns.path().exists();
            if !there {
                gone.push(ep.name.clone());
            }
            there
        });
        gone
    }

    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// The endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointConfig> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// A human description of what would be built, for `mvdp check`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let p = &self.parent;
        let umem_mib = u64::from(p.frame_size) * u64::from(p.umem_frames) / (1024 * 1024);
        let _ = writeln!(
            s,
            "parent {}: xdp {}, bind {}, queues {}, UMEM {} frames x {} B ({} MiB)",
            p.interface, p.xdp_mode, p.bind, p.queues, p.umem_frames, p.frame_size, umem_mib
        );
        let _ = writeln!(s, "dataplane: fast_path {}", self.dataplane.fast_path);
        let _ = writeln!(
            s,
            "workers: cores {}, batch {}, poll {}",
            self.workers.cores, self.workers.batch, self.workers.poll
        );
        let _ = writeln!(s, "metrics: http://{}/metrics", self.metrics.listen);
        let _ = writeln!(s, "control: {}", self.control.socket.display());
        for net in &self.networks {
            let vlan = net
                .vlan
                .map_or("untagged".to_string(), |v| format!("vlan {v}"));
            match net.ipam {
                Ipam::Static => write!(
                    s,
                    "network {}: {} mode, {}, subnet {}, gateway {}, pool {}",
                    net.name,
                    net.mode,
                    vlan,
                    net.subnet,
                    net.gateway,
                    net.pool()
                ),
                Ipam::Dhcp => write!(
                    s,
                    "network {}: {} mode, {}, subnet {}, addresses from the LAN's DHCP server",
                    net.name, net.mode, vlan, net.subnet
                ),
            }
            .ok();
            if !net.aux_addresses.is_empty() {
                let aux: Vec<String> = net.aux_addresses.iter().map(|a| a.to_string()).collect();
                let _ = write!(s, ", aux {}", aux.join(" "));
            }
            if let Some(shim) = net.host_shim {
                let _ = write!(s, ", host shim {shim}");
            }
            if let Some(v6) = &net.ipv6 {
                let _ = write!(
                    s,
                    ", subnet6 {}, gateway6 {}, pool6 {}",
                    v6.subnet,
                    v6.gateway,
                    v6.pool()
                );
                for aux in &v6.aux_addresses {
                    let _ = write!(s, ", aux6 {aux}");
                }
                if let Some(shim) = v6.host_shim {
                    let _ = write!(s, ", host shim6 {shim}");
                }
            }
            if let Some(mtu) = net.mtu {
                let _ = write!(s, ", mtu {mtu}");
            }
            let _ = writeln!(
                s,
                ", multicast {}, flood queue {}",
                net.multicast, net.bcast_queue_len
            );
            let eps: Vec<&EndpointConfig> = self
                .endpoints
                .iter()
                .filter(|e| e.network == net.name)
                .collect();
            if eps.is_empty() {
                let _ = writeln!(s, "  (no endpoints)");
            }
            for ep in eps {
                let netns = match &ep.netns {
                    NetnsRef::Named(_) => format!("{} ({})", ep.netns, ep.netns.path().display()),
                    NetnsRef::Path(_) => ep.netns.to_string(),
                };
                let address = match net.ipam {
                    Ipam::Static => format!("{}/{}", ep.ip, net.subnet.prefix_len()),
                    Ipam::Dhcp => "address by DHCP".to_string(),
                };
                let _ = write!(
                    s,
                    "  endpoint {}: {} {} in {}, {address}, mac {}",
                    ep.name, ep.kind, ep.ifname, netns, ep.mac
                );
                if let Some((ip6, v6)) = ep.ip6.zip(net.ipv6.as_ref()) {
                    let _ = write!(s, ", {ip6}/{}", v6.subnet.prefix_len());
                }
                if !ep.allowed_sources.is_empty() {
                    let srcs: Vec<String> =
                        ep.allowed_sources.iter().map(|m| m.to_string()).collect();
                    let _ = write!(s, ", sources {}", srcs.join(" "));
                }
                s.push('\n');
            }
        }
        s
    }
}

/// Implements `FromStr` and `Display` for a keyword enum.
macro_rules! keyword_enum {
    ($ty:ident, $expected:literal, { $($word:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The accepted spellings, for error messages.
            pub const EXPECTED: &'static str = $expected;
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(format!("{s:?} is not {}", $expected)),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($ty::$variant => $word,)+
                })
            }
        }
    };
}

keyword_enum!(XdpMode, "one of auto, native, skb", {
    "auto" => Auto, "native" => Native, "skb" => Skb,
});
keyword_enum!(BindMode, "one of auto, zerocopy, copy", {
    "auto" => Auto, "zerocopy" => ZeroCopy, "copy" => Copy,
});
keyword_enum!(Mode, "one of bridge, private, vepa, passthru, source", {
    "bridge" => Bridge, "private" => Private, "vepa" => Vepa,
    "passthru" => Passthru, "source" => Source,
});
keyword_enum!(FastPath, "one of on, off", {
    "on" => On, "off" => Off,
});
keyword_enum!(Poll, "one of interrupt, busy", {
    "interrupt" => Interrupt, "busy" => Busy,
});
keyword_enum!(AntiSpoof, "one of mac, mac+ip", {
    "mac" => Mac, "mac+ip" => MacIp,
});
keyword_enum!(Ipam, "one of static, dhcp", {
    "static" => Static, "dhcp" => Dhcp,
});

keyword_enum!(Multicast, "one of snoop, flood", {
    "snoop" => Snoop, "flood" => Flood,
});
keyword_enum!(EndpointKind, "one of veth, tap", {
    "veth" => Veth, "tap" => Tap,
});

impl fmt::Display for Queues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Queues::All => f.write_str("all"),
            Queues::List(ids) => write!(f, "{ids:?}"),
        }
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cores::Auto => f.write_str("auto"),
            Cores::List(ids) => write!(f, "{ids:?}"),
        }
    }
}

#[cfg(test)]
mod tests;
