//! From `RawConfig` to `Config`: every value checked under its own key.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use super::addressing::{ipv4_book, ipv6_book};
use super::raw::{RawConfig, RawEndpoint, RawNetwork, RawParent, RawWorkers, WordOrList};
use super::*;
use crate::switch::{MAX_ENDPOINTS, MAX_HOST_SHIMS};

pub(super) fn build(raw: RawConfig) -> Result<Config, ConfigError> {
    let parent = parent(raw.parent)?;
    let dataplane = DataplaneConfig {
        fast_path: keyword(
            &Key::root("dataplane").field("fast_path"),
            raw.dataplane.fast_path,
            FastPath::EXPECTED,
        )?,
    };
    let workers = workers(raw.workers)?;
    let metrics = MetricsConfig {
        listen: match raw.metrics.listen {
            Some(s) => parse(
                &Key::root("metrics").field("listen"),
                &s,
                "a socket address like 127.0.0.1:9469",
            )?,
            None => MetricsConfig::default().listen,
        },
    };
    let control = ControlConfig {
        socket: match raw.control.socket {
            Some(s) if s.is_empty() => {
                return Err(ConfigError::Invalid {
                    key: Key::root("control").field("socket"),
                    reason: "the socket path is empty".to_string(),
                })
            }
            Some(s) => PathBuf::from(s),
            None => ControlConfig::default().socket,
        },
        keep_endpoints_on_exit: raw.control.keep_endpoints_on_exit.unwrap_or(false),
    };

    // No network is fine: a node whose networks come from Docker
    // (`network_add`) starts with none.
    let mut networks: Vec<NetworkConfig> = Vec::with_capacity(raw.network.len());
    for (i, rn) in raw.network.into_iter().enumerate() {
        let key = Key::entry("network", i, Some(&rn.name));
        let net = network(rn, &key)?;
        if let Some(first) = networks.iter().position(|n| n.name == net.name) {
            return Err(ConfigError::DuplicateNetwork {
                key: key.field("name"),
                name: net.name,
                first,
            });
        }
        if let Some(first) = networks.iter().position(|n| n.vlan == net.vlan) {
            return Err(ConfigError::DuplicateVlan {
                key: key.field("vlan"),
                vlan: net.vlan,
                other: format!("network[{first}] ({})", networks[first].name),
            });
        }
        if net.mode == Mode::Passthru {
            if let Some(first) = networks.iter().position(|n| n.mode == Mode::Passthru) {
                return Err(ConfigError::Invalid {
                    key: key.field("mode"),
                    reason: format!(
                        "network[{first}] ({}) is already passthru: one endpoint takes over the parent, so there can be one passthru network",
                        networks[first].name
                    ),
                });
            }
        }
        if net.host_shim.is_some() && net.mode != Mode::Bridge {
            return Err(ConfigError::Invalid {
                key: key.field("host_shim"),
                reason: format!(
                    "a host shim talks to the containers directly, which only a bridge network does (this one is {})",
                    net.mode
                ),
            });
        }
        networks.push(net);
    }

    let endpoints = endpoints(raw.endpoint, &networks)?;
    worker_mtus(&dataplane, &networks, &endpoints, JUMBO_MTU)?;
    capacity(&parent, &dataplane, &networks, &endpoints)?;
    Ok(Config {
        parent,
        dataplane,
        workers,
        metrics,
        control,
        networks,
        endpoints,
    })
}

/// Where the workers carry every frame of a network, they must carry its
/// MTU (at most `max`; the fast path carries any): with `fast_path = "off"`,
/// on a passthru or source network, with `anti_spoof = "mac+ip"`. TAP
/// endpoints are always the workers': none on a network whose `mtu` is
/// more.
pub(super) fn worker_mtus(
    dataplane: &DataplaneConfig,
    networks: &[NetworkConfig],
    endpoints: &[EndpointConfig],
    max: u32,
) -> Result<(), ConfigError> {
    for (i, net) in networks.iter().enumerate() {
        let workers_only = if dataplane.fast_path == FastPath::Off {
            Some("with fast_path = \"off\" they carry every frame")
        } else if matches!(net.mode, Mode::Passthru | Mode::Source) {
            Some("they carry every frame of a passthru or source network")
        } else if net.anti_spoof == AntiSpoof::MacIp {
            Some("they check every frame the containers of an anti_spoof = \"mac+ip\" network send")
        } else {
            None
        };
        match (net.mtu, workers_only) {
            (Some(mtu), Some(why)) if mtu > max => {
                return Err(ConfigError::Invalid {
                    key: Key::entry("network", i, Some(&net.name)).field("mtu"),
                    reason: format!(
                        "{mtu} is more than the workers carry (at most {max}), and {why}"
                    ),
                });
            }
            _ => {}
        }
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let mtu = networks
            .iter()
            .find(|n| n.name == ep.network)
            .and_then(|n| n.mtu);
        match mtu {
            Some(mtu) if mtu > max && ep.kind == EndpointKind::Tap => {
                return Err(ConfigError::Invalid {
                    key: Key::entry("endpoint", i, Some(&ep.name)).field("kind"),
                    reason: format!(
                        "a TAP endpoint goes through the workers, which carry at most MTU {max}, \
                         and network {:?} has mtu {mtu}; use a veth endpoint (the fast path \
                         carries it) or a smaller mtu",
                        ep.network
                    ),
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// The limits of one daemon: at most [`MAX_ENDPOINTS`] container
/// endpoints, and on top of them at most [`MAX_HOST_SHIMS`] host shims (one
/// per network that has one), so that every endpoint id fits the tables
/// sized [`crate::switch::ENDPOINT_SLOTS`]; and the UMEM's posted frames,
/// for the endpoints whose sockets receive (see [`posts_fill_frames`]),
/// host shims counted as the endpoints they are.
fn capacity(
    parent: &ParentConfig,
    dataplane: &DataplaneConfig,
    networks: &[NetworkConfig],
    configured: &[EndpointConfig],
) -> Result<(), ConfigError> {
    let endpoints = configured.len();
    if endpoints > MAX_ENDPOINTS {
        return Err(ConfigError::Invalid {
            key: Key::root("endpoint"),
            reason: format!(
                "{endpoints} endpoints; one mvdp serves at most {MAX_ENDPOINTS} (host shims not counted)"
            ),
        });
    }
    let shims = networks.iter().filter(|n| n.host_shim.is_some()).count();
    if shims > MAX_HOST_SHIMS {
        let (i, net) = networks
            .iter()
            .enumerate()
            .filter(|(_, n)| n.host_shim.is_some())
            .nth(MAX_HOST_SHIMS)
            .expect("counted");
        return Err(ConfigError::Invalid {
            key: Key::entry("network", i, Some(&net.name)).field("host_shim"),
            reason: format!(
                "network {} would be host shim number {}; one mvdp serves at most {MAX_HOST_SHIMS}",
                net.name,
                MAX_HOST_SHIMS + 1
            ),
        });
    }
    let total = shims
        + configured
            .iter()
            .filter(|ep| {
                let mode = networks
                    .iter()
                    .find(|n| n.name == ep.network)
                    .map(|n| n.mode);
                posts_fill_frames(dataplane.fast_path, ep.kind, mode)
            })
            .count();
    let frames = parent.umem_frames as usize;
    if !umem_holds(frames, total) {
        let need = umem_frames_for(total);
        return Err(ConfigError::Invalid {
            key: Key::root("parent").field("umem_frames"),
            reason: format!(
                "{frames} frames are too few for {total} endpoints that receive through the workers (each needs {MIN_POSTED_PER_ENDPOINT} posted frames per worker); {need} would do"
            ),
        });
    }
    Ok(())
}

/// Whether an endpoint's sockets keep frames posted on their fill rings:
/// all but the veth endpoints the fast path takes (bridge, VEPA and private
/// networks), whose container egress the kernel moves and whose sockets
/// only transmit. Each posting socket is one more share of the UMEM; should
/// the kernel refuse the fast path at start, those endpoints post too, at
/// the least share, and a UMEM sized for fewer runs short (counted in
/// `mvdp_umem_exhausted_total`).
pub fn posts_fill_frames(fast_path: FastPath, kind: EndpointKind, mode: Option<Mode>) -> bool {
    !(fast_path == FastPath::On
        && kind == EndpointKind::Veth
        && matches!(mode, Some(Mode::Bridge | Mode::Vepa | Mode::Private)))
}

/// Whether a UMEM of `frames` frames can keep every one of `endpoints`
/// endpoints (host shims included) posted.
fn umem_holds(frames: usize, endpoints: usize) -> bool {
    frames.saturating_sub(min_parent_share(frames)) >= MIN_POSTED_PER_ENDPOINT * endpoints
}

/// The smallest `[parent] umem_frames` (a power of two) that holds
/// `endpoints` endpoints, host shims included.
pub fn umem_frames_for(endpoints: usize) -> usize {
    let mut need = 64usize;
    while !umem_holds(need, endpoints) {
        need *= 2;
    }
    need
}

/// Frames each endpoint keeps posted on its fill ring, at the least.
pub(crate) const MIN_POSTED_PER_ENDPOINT: usize = 8;

/// Of a UMEM of `frames`, what the endpoints may not post: the half kept for
/// frames in flight plus the parent's (and punt device's) fill share.
pub(crate) fn min_parent_share(frames: usize) -> usize {
    frames / 2 + (frames / 4).min(2048)
}

fn parent(raw: RawParent) -> Result<ParentConfig, ConfigError> {
    let key = Key::root("parent");
    check_ifname(&key.field("interface"), &raw.interface)?;
    let queues = match raw.queues {
        None => Queues::All,
        Some(WordOrList::Word(w)) if w == "all" => Queues::All,
        Some(WordOrList::Word(w)) => {
            return Err(ConfigError::InvalidValue {
                key: key.field("queues"),
                value: w,
                expected: "\"all\" or a list of RX queue ids",
            })
        }
        Some(WordOrList::List(ids)) => Queues::List(id_list(
            &key.field("queues"),
            &ids,
            u32::MAX.into(),
            "a queue id (0..=4294967295)",
        )?),
    };
    Ok(ParentConfig {
        xdp_mode: keyword(&key.field("xdp_mode"), raw.xdp_mode, XdpMode::EXPECTED)?,
        bind: keyword(&key.field("bind"), raw.bind, BindMode::EXPECTED)?,
        queues,
        frame_size: power_of_two(
            &key.field("frame_size"),
            raw.frame_size,
            DEFAULT_FRAME_SIZE,
            2048..=4096,
            "a power of two from 2048 to 4096",
        )?,
        umem_frames: power_of_two(
            &key.field("umem_frames"),
            raw.umem_frames,
            DEFAULT_UMEM_FRAMES,
            64..=1 << 20,
            "a power of two from 64 to 1048576",
        )?,
        interface: raw.interface,
    })
}

fn workers(raw: RawWorkers) -> Result<WorkersConfig, ConfigError> {
    let key = Key::root("workers");
    let cores = match raw.cores {
        None => Cores::Auto,
        Some(WordOrList::Word(w)) if w == "auto" => Cores::Auto,
        Some(WordOrList::Word(w)) => {
            return Err(ConfigError::InvalidValue {
                key: key.field("cores"),
                value: w,
                expected: "\"auto\" or a list of core ids",
            })
        }
        Some(WordOrList::List(ids)) => {
            let ids = id_list(&key.field("cores"), &ids, 65535, "a core id (0..=65535)")?;
            Cores::List(ids.into_iter().map(|id| id as usize).collect())
        }
    };
    let batch = ranged(
        &key.field("batch"),
        raw.batch,
        DEFAULT_BATCH as i64,
        1..=1024,
        "1..=1024",
    )?;
    Ok(WorkersConfig {
        cores,
        batch: batch as usize,
        poll: keyword(&key.field("poll"), raw.poll, Poll::EXPECTED)?,
    })
}

fn network(raw: RawNetwork, key: &Key) -> Result<NetworkConfig, ConfigError> {
    check_name(&key.field("name"), &raw.name)?;
    let mode = keyword(&key.field("mode"), raw.mode, Mode::EXPECTED)?;
    let vlan = match raw.vlan {
        None => None,
        Some(v) => Some(ranged(
            &key.field("vlan"),
            Some(v),
            0,
            1..=4094,
            "a VLAN id in 1..=4094",
        )? as u16),
    };

    let ipam = keyword(&key.field("ipam"), raw.ipam, Ipam::EXPECTED)?;
    if ipam == Ipam::Dhcp {
        // The DHCP server gives the address and the router.
        let static_only = [
            ("gateway", raw.gateway.is_some()),
            ("ip_range", raw.ip_range.is_some()),
            ("aux_addresses", !raw.aux_addresses.is_empty()),
        ];
        if let Some((field, _)) = static_only.iter().find(|(_, set)| *set) {
            return Err(ConfigError::Invalid {
                key: key.field(field),
                reason: format!(
                    "with ipam = \"dhcp\" the LAN's DHCP server gives the endpoints their addresses and gateway; remove {field}"
                ),
            });
        }
    }
    let subnet = cidr(&key.field("subnet"), &raw.subnet)?;
    if subnet.prefix_len() > 30 {
        return Err(ConfigError::Invalid {
            key: key.field("subnet"),
            reason: format!("{subnet} is too small for endpoints (use a prefix of /30 or shorter)"),
        });
    }
    let gateway = match raw.gateway {
        Some(s) => ipv4(&key.field("gateway"), &s)?,
        // Docker's default: the subnet's first host address.
        None => subnet.hosts().next().expect("a /30 or larger has hosts"),
    };
    let ip_range = match raw.ip_range {
        None => None,
        Some(s) => {
            let range = cidr(&key.field("ip_range"), &s)?;
            if !subnet.contains_net(&range) {
                return Err(ConfigError::RangeOutsideSubnet {
                    key: key.field("ip_range"),
                    range: range.to_string(),
                    subnet: subnet.to_string(),
                });
            }
            Some(range)
        }
    };
    let aux_key = key.field("aux_addresses");
    let mut aux_addresses = Vec::new();
    let mut aux_addresses6 = Vec::new();
    let mut aux_positions6 = Vec::new();
    for (i, s) in raw.aux_addresses.iter().enumerate() {
        match parse(&aux_key.index(i), s, "an IPv4 or IPv6 address")? {
            IpAddr::V4(ip) => aux_addresses.push(ip),
            IpAddr::V6(ip) if raw.subnet6.is_some() => {
                aux_addresses6.push(ip);
                aux_positions6.push(i);
            }
            IpAddr::V6(_) => {
                return Err(ConfigError::Invalid {
                    key: aux_key.index(i),
                    reason: format!("{s} is an IPv6 address, but the network has no subnet6"),
                })
            }
        }
    }
    let host_shim = match raw.host_shim {
        Some(s) => Some(ipv4(&key.field("host_shim"), &s)?),
        None => None,
    };
    let v6_keys = Ipv6Keys {
        subnet6: raw.subnet6,
        gateway6: raw.gateway6,
        ip_range6: raw.ip_range6,
        host_shim6: raw.host_shim6,
    };
    let ipv6 = ipv6_addressing(
        v6_keys,
        key,
        (aux_addresses6, aux_positions6),
        host_shim.is_some(),
    )?;
    let bcast_queue_len = ranged(
        &key.field("bcast_queue_len"),
        raw.bcast_queue_len,
        DEFAULT_BCAST_QUEUE_LEN as i64,
        1..=1_000_000,
        "1..=1000000",
    )? as usize;
    let allow_inner_tags = raw.allow_inner_tags.unwrap_or(false);
    if allow_inner_tags && vlan.is_none() {
        return Err(ConfigError::Invalid {
            key: key.field("allow_inner_tags"),
            reason: "only a VLAN network (`vlan = N`) can carry its containers' own tags; on an untagged network a tag would land on another network".into(),
        });
    }

    let net = NetworkConfig {
        name: raw.name,
        mode,
        vlan,
        subnet,
        gateway,
        ip_range,
        aux_addresses,
        host_shim,
        ipv6,
        bcast_queue_len,
        allow_inner_tags,
        anti_spoof: keyword(
            &key.field("anti_spoof"),
            raw.anti_spoof,
            AntiSpoof::EXPECTED,
        )?,
        ipam,
        mtu: match raw.mtu {
            None => None,
            Some(m) => {
                Some(ranged(&key.field("mtu"), Some(m), 0, 68..=65535, "68..=65535")? as u32)
            }
        },
        multicast: keyword(&key.field("multicast"), raw.multicast, Multicast::EXPECTED)?,
    };
    // Checks gateway, aux addresses and shim: inside the subnet, no clashes.
    ipv4_book(&net, key)?;
    if let Some(v6) = &net.ipv6 {
        ipv6_book(&net, v6, key)?;
    }
    Ok(net)
}

/// A network's IPv6 keys as written.
struct Ipv6Keys {
    subnet6: Option<String>,
    gateway6: Option<String>,
    ip_range6: Option<String>,
    host_shim6: Option<String>,
}

/// The IPv6 keys of a network: all absent, or `subnet6` and what goes with it.
fn ipv6_addressing(
    raw: Ipv6Keys,
    key: &Key,
    (aux_addresses, aux_positions): (Vec<Ipv6Addr>, Vec<usize>),
    has_shim: bool,
) -> Result<Option<Ipv6Addressing>, ConfigError> {
    let Some(text) = &raw.subnet6 else {
        for (field, value) in [
            ("gateway6", &raw.gateway6),
            ("ip_range6", &raw.ip_range6),
            ("host_shim6", &raw.host_shim6),
        ] {
            if value.is_some() {
                return Err(ConfigError::Invalid {
                    key: key.field(field),
                    reason: "the network has no subnet6 (set subnet6 to make it dual stack)".into(),
                });
            }
        }
        return Ok(None);
    };
    let subnet = cidr6(&key.field("subnet6"), text)?;
    if subnet.prefix_len() > 120 {
        return Err(ConfigError::Invalid {
            key: key.field("subnet6"),
            reason: format!(
                "{subnet} is too small for endpoints (use a prefix of /120 or shorter)"
            ),
        });
    }
    let gateway = match &raw.gateway6 {
        Some(s) => ipv6(&key.field("gateway6"), s)?,
        // Docker's default: the first address after the subnet-router anycast.
        None => subnet.addresses().nth(1).expect("a /120 has 256 addresses"),
    };
    let ip_range = match &raw.ip_range6 {
        None => None,
        Some(s) => {
            let range = cidr6(&key.field("ip_range6"), s)?;
            if !subnet.contains_net(&range) {
                return Err(ConfigError::RangeOutsideSubnet {
                    key: key.field("ip_range6"),
                    range: range.to_string(),
                    subnet: subnet.to_string(),
                });
            }
            Some(range)
        }
    };
    let host_shim = match &raw.host_shim6 {
        Some(_) if !has_shim => {
            return Err(ConfigError::Invalid {
                key: key.field("host_shim6"),
                reason: "the network has no host_shim (the shim's IPv4 address comes first)".into(),
            })
        }
        Some(s) => Some(ipv6(&key.field("host_shim6"), s)?),
        // The subnet's last address: SLAAC and allocation from the bottom
        // both stay clear of it.
        None if has_shim => Some(subnet.last()),
        None => None,
    };
    for (field, ip) in [("gateway6", Some(gateway)), ("host_shim6", host_shim)] {
        if let Some(ip) = ip.filter(|ip| is_special_ipv6(*ip)) {
            return Err(ConfigError::Invalid {
                key: key.field(field),
                reason: format!("{ip} is not a unicast address a host can hold"),
            });
        }
    }
    Ok(Some(Ipv6Addressing {
        subnet,
        gateway,
        ip_range,
        aux_addresses,
        aux_positions,
        host_shim,
    }))
}

/// Multicast, loopback, unspecified or link-local: never a network's
/// configured address (link-local ones every interface makes for itself).
fn is_special_ipv6(ip: Ipv6Addr) -> bool {
    ip.is_multicast()
        || ip.is_loopback()
        || ip.is_unspecified()
        || (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// An endpoint whose fields are checked, before addressing.
struct Pending {
    key: Key,
    net: usize,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    mac: Option<MacAddr>,
    config: EndpointConfig,
}

fn endpoints(
    raw: Vec<RawEndpoint>,
    networks: &[NetworkConfig],
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let mut pending: Vec<Pending> = Vec::with_capacity(raw.len());
    // Indexes into `pending`, so that thousands of endpoints check in linear time.
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(raw.len());
    let mut by_ifname: HashMap<(PathBuf, String), usize> = HashMap::with_capacity(raw.len());
    for (i, re) in raw.into_iter().enumerate() {
        let key = Key::entry("endpoint", i, Some(&re.name));
        let p = endpoint(re, &key, networks)?;
        if let Some(&first) = by_name.get(&p.config.name) {
            return Err(ConfigError::DuplicateEndpoint {
                key: key.field("name"),
                name: p.config.name,
                first,
            });
        }
        let place = (p.config.netns.path(), p.config.ifname.clone());
        if let Some(&q) = by_ifname.get(&place) {
            return Err(ConfigError::DuplicateIfname {
                key: key.field("ifname"),
                ifname: p.config.ifname,
                netns: p.config.netns.to_string(),
                other: pending[q].key.to_string(),
            });
        }
        by_name.insert(p.config.name.clone(), pending.len());
        by_ifname.insert(place, pending.len());
        let net = &networks[p.net];
        if net.mode == Mode::Passthru {
            if let Some(q) = pending.iter().find(|q| q.net == p.net) {
                return Err(ConfigError::PassthruTaken {
                    key: key.field("network"),
                    network: net.name.clone(),
                    first: q.config.name.clone(),
                });
            }
        }
        pending.push(p);
    }

    // Addressing: per network, statics reserved first, then the rest in file order.
    let mut books = networks
        .iter()
        .enumerate()
        .map(|(i, n)| ipv4_book(n, &Key::entry("network", i, Some(&n.name))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut books6 = networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let key = Key::entry("network", i, Some(&n.name));
            n.ipv6.as_ref().map(|v6| ipv6_book(n, v6, &key)).transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    // DHCP networks: no address before the lease (0.0.0.0 here).
    for p in pending.iter_mut() {
        if let Some(ip) = p.ip.filter(|_| networks[p.net].ipam == Ipam::Static) {
            books[p.net].reserve(p.key.field("ip"), ip, format!("endpoint {}", p.key))?;
            p.config.ip = ip;
        }
        if let Some(ip6) = p.ip6 {
            let Some(book) = books6[p.net].as_mut() else {
                return Err(ConfigError::Invalid {
                    key: p.key.field("ip6"),
                    reason: format!("network {:?} has no subnet6", networks[p.net].name),
                });
            };
            book.reserve(p.key.field("ip6"), ip6, format!("endpoint {}", p.key))?;
            p.config.ip6 = Some(ip6);
        }
    }
    for p in pending.iter_mut() {
        if p.ip.is_none() && networks[p.net].ipam == Ipam::Static {
            p.config.ip =
                books[p.net].allocate(p.key.field("ip"), format!("endpoint {}", p.key))?;
        }
        if let (None, Some(book)) = (p.ip6, books6[p.net].as_mut()) {
            p.config.ip6 = Some(book.allocate(p.key.field("ip6"), format!("endpoint {}", p.key))?);
        }
    }

    // MACs: as written, or Docker's default for the address (from the name
    // on a DHCP network); unique across all networks.
    let mut macs: HashMap<MacAddr, String> = HashMap::new();
    for p in pending.iter_mut() {
        let (mac, holder) = match p.mac {
            Some(mac) => (mac, format!("endpoint {}", p.key)),
            None if networks[p.net].ipam == Ipam::Dhcp => (
                MacAddr::from_name(&p.config.name),
                format!("endpoint {} (default MAC for its name)", p.key),
            ),
            None => (
                MacAddr::docker_default(p.config.ip),
                format!("endpoint {} (default MAC for {})", p.key, p.config.ip),
            ),
        };
        if let Some(other) = macs.get(&mac) {
            return Err(ConfigError::DuplicateMac {
                key: p.key.field("mac"),
                mac,
                other: other.clone(),
            });
        }
        macs.insert(mac, holder);
        p.config.mac = mac;
    }
    Ok(pending.into_iter().map(|p| p.config).collect())
}

fn endpoint(
    raw: RawEndpoint,
    key: &Key,
    networks: &[NetworkConfig],
) -> Result<Pending, ConfigError> {
    check_name(&key.field("name"), &raw.name)?;
    let net = networks
        .iter()
        .position(|n| n.name == raw.network)
        .ok_or_else(|| ConfigError::UnknownNetwork {
            key: key.field("network"),
            network: raw.network.clone(),
            defined: networks
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let kind = keyword(&key.field("kind"), raw.kind, EndpointKind::EXPECTED)?;
    let handoff = raw.handoff.unwrap_or(false);
    if handoff && networks[net].ipam == Ipam::Dhcp {
        return Err(ConfigError::Invalid {
            key: key.field("handoff"),
            reason: format!(
                "network {} has ipam = \"dhcp\", and mvdp runs the DHCP client inside the container's namespace, which a handed-off interface is not in yet",
                networks[net].name
            ),
        });
    }
    if handoff && kind != EndpointKind::Veth {
        return Err(ConfigError::InvalidValue {
            key: key.field("handoff"),
            value: "true".into(),
            expected: "false for a TAP endpoint (only a veth end can be handed to the runtime)",
        });
    }
    let netns = match (raw.netns, raw.netns_path) {
        // The runtime moves the container end; until then it is in mvdp's.
        (None, None) if handoff => NetnsRef::Path(PathBuf::from("/proc/self/ns/net")),
        (Some(_), _) | (_, Some(_)) if handoff => {
            return Err(ConfigError::InvalidValue {
                key: key.field("handoff"),
                value: "true".into(),
                expected: "false when netns or netns_path is given (a handed-off interface is moved by the runtime)",
            })
        }
        (Some(name), None) => {
            let nkey = key.field("netns");
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\0')
            {
                return Err(ConfigError::InvalidValue {
                    key: nkey,
                    value: name,
                    expected: "a namespace name (non-empty, no '/'); use netns_path for a path",
                });
            }
            NetnsRef::Named(name)
        }
        (None, Some(path)) => {
            if !path.starts_with('/') || path.contains('\0') {
                return Err(ConfigError::InvalidValue {
                    key: key.field("netns_path"),
                    value: path,
                    expected: "an absolute path such as /proc/PID/ns/net",
                });
            }
            NetnsRef::Path(PathBuf::from(path))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::NetnsChoice {
                key: key.field("netns"),
                both: true,
            })
        }
        (None, None) => {
            return Err(ConfigError::NetnsChoice {
                key: key.field("netns"),
                both: false,
            })
        }
    };
    // A handed-off end waits in mvdp's namespace, where `eth0` is the host's.
    if handoff && raw.ifname.is_none() {
        return Err(ConfigError::MissingKey {
            key: key.field("ifname"),
        });
    }
    let ifname = raw.ifname.unwrap_or_else(|| DEFAULT_IFNAME.to_string());
    check_ifname(&key.field("ifname"), &ifname)?;
    let ip = match raw.ip {
        Some(_) if networks[net].ipam == Ipam::Dhcp => {
            return Err(ConfigError::Invalid {
                key: key.field("ip"),
                reason: format!(
                    "network {} has ipam = \"dhcp\": the LAN's DHCP server gives the address; remove ip",
                    networks[net].name
                ),
            })
        }
        Some(s) => Some(ipv4(&key.field("ip"), &s)?),
        None => None,
    };
    let ip6 = match raw.ip6 {
        Some(s) => Some(ipv6(&key.field("ip6"), &s)?),
        None => None,
    };
    let mac = match raw.mac {
        Some(s) => Some(unicast_mac(&key.field("mac"), &s)?),
        None => None,
    };
    let allowed_sources = match raw.allowed_sources {
        None => Vec::new(),
        Some(list) => {
            let skey = key.field("allowed_sources");
            if networks[net].mode != Mode::Source {
                return Err(ConfigError::SourcesNotAllowed {
                    key: skey,
                    network: networks[net].name.clone(),
                    mode: networks[net].mode,
                });
            }
            list.iter()
                .enumerate()
                .map(|(i, s)| unicast_mac(&skey.index(i), s))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) => {
            let rkey = key.field("rate_limit");
            let positive = |field: &str, v: Option<i64>| -> Result<u64, ConfigError> {
                match v {
                    None => Ok(0),
                    Some(n) if n > 0 => Ok(n as u64),
                    Some(n) => Err(ConfigError::OutOfRange {
                        key: rkey.field(field),
                        value: n,
                        expected: "a positive number",
                    }),
                }
            };
            let pps = positive("pps", r.pps)?;
            let bytes_per_sec = positive("bytes_per_sec", r.bytes_per_sec)?;
            if pps == 0 && bytes_per_sec == 0 {
                return Err(ConfigError::MissingKey {
                    key: rkey.field("pps"),
                });
            }
            Some(RateLimit { pps, bytes_per_sec })
        }
    };
    Ok(Pending {
        key: key.clone(),
        net,
        ip,
        ip6,
        mac,
        config: EndpointConfig {
            name: raw.name,
            network: raw.network,
            kind,
            netns,
            ifname,
            ip: Ipv4Addr::UNSPECIFIED,
            ip6: None,
            mac: MacAddr::default(),
            allowed_sources,
            rate_limit,
            default_route: raw.default_route.unwrap_or(true),
            handoff,
        },
    })
}

/// Parses a keyword enum, or takes its default when the key is absent.
fn keyword<T>(key: &Key, value: Option<String>, expected: &'static str) -> Result<T, ConfigError>
where
    T: FromStr + Default,
{
    match value {
        None => Ok(T::default()),
        Some(s) => parse(key, &s, expected),
    }
}

fn parse<T: FromStr>(key: &Key, value: &str, expected: &'static str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::InvalidValue {
        key: key.clone(),
        value: value.to_string(),
        expected,
    })
}

fn ipv4(key: &Key, value: &str) -> Result<Ipv4Addr, ConfigError> {
    parse(key, value, "an IPv4 address")
}

/// A CIDR with its host bits clear.
fn cidr(key: &Key, value: &str) -> Result<Ipv4Net, ConfigError> {
    let net: Ipv4Net = parse(key, value, "an IPv4 CIDR like 192.168.1.0/24")?;
    if !net.is_normalized() {
        return Err(ConfigError::Invalid {
            key: key.clone(),
            reason: format!("{net} has host bits set (did you mean {}?)", net.trunc()),
        });
    }
    Ok(net)
}

fn ipv6(key: &Key, value: &str) -> Result<Ipv6Addr, ConfigError> {
    parse(key, value, "an IPv6 address")
}

/// An IPv6 CIDR with its host bits clear.
fn cidr6(key: &Key, value: &str) -> Result<Ipv6Net, ConfigError> {
    let net: Ipv6Net = parse(key, value, "an IPv6 CIDR like fd00:77::/64")?;
    if !net.is_normalized() {
        return Err(ConfigError::Invalid {
            key: key.clone(),
            reason: format!(
                "{net} has host bits set (did you mean {}/{}?)",
                net.network(),
                net.prefix_len()
            ),
        });
    }
    Ok(net)
}

/// A MAC an endpoint may own: not multicast/broadcast, not all-zero.
fn unicast_mac(key: &Key, value: &str) -> Result<MacAddr, ConfigError> {
    let mac: MacAddr = parse(key, value, "a MAC address like 02:42:c0:a8:01:0a")?;
    let reason = if mac.is_multicast() {
        "a multicast address"
    } else if mac.is_zero() {
        "the zero address"
    } else {
        return Ok(mac);
    };
    Err(ConfigError::BadMac {
        key: key.clone(),
        mac,
        reason,
    })
}

fn ranged(
    key: &Key,
    value: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    expected: &'static str,
) -> Result<i64, ConfigError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::OutOfRange {
            key: key.clone(),
            value: v,
            expected,
        })
    }
}

fn power_of_two(
    key: &Key,
    value: Option<i64>,
    default: u32,
    range: std::ops::RangeInclusive<i64>,
    expected: &'static str,
) -> Result<u32, ConfigError> {
    let v = value.unwrap_or(default.into());
    if range.contains(&v) && (v as u64).is_power_of_two() {
        Ok(v as u32)
    } else {
        Err(ConfigError::OutOfRange {
            key: key.clone(),
            value: v,
            expected,
        })
    }
}

/// A non-empty list of distinct ids in 0..=max.
fn id_list(
    key: &Key,
    ids: &[i64],
    max: i64,
    expected: &'static str,
) -> Result<Vec<u32>, ConfigError> {
    if ids.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.clone(),
            reason: "the list is empty".to_string(),
        });
    }
    let mut out: Vec<u32> = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        let id = ranged(&key.index(i), Some(id), 0, 0..=max, expected)? as u32;
        if out.contains(&id) {
            return Err(ConfigError::Invalid {
                key: key.index(i),
                reason: format!("{id} is listed twice"),
            });
        }
        out.push(id);
    }
    Ok(out)
}

/// The kernel's rules for interface names (`dev_valid_name`).
fn check_ifname(key: &Key, name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 15 {
        "longer than 15 bytes"
    } else if name == "." || name == ".." {
        "reserved name"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains(':') {
        "contains ':'"
    } else if name.chars().any(|c| c.is_whitespace() || c == '\0') {
        "contains whitespace"
    } else {
        return Ok(());
    };
    Err(ConfigError::InvalidIfname {
        key: key.clone(),
        name: name.to_string(),
        reason,
    })
}

/// Network and endpoint names: they appear in metrics labels and interface
/// names, so keep them short and plain.
fn check_name(key: &Key, name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 64 {
        "longer than 64 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        "use letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(ConfigError::InvalidName {
        key: key.clone(),
        name: name.to_string(),
        reason,
    })
}
