//! The forwarding database: (VLAN, MAC) → endpoint, networks and their modes.
//!
//! Built and published by the control thread; workers only read snapshots.

use hashbrown::HashMap;

pub use crate::config::{Mode, RateLimit};
use crate::wire::MacAddr;

/// Container endpoints one daemon serves, from its config and its control
/// socket together.
pub const MAX_ENDPOINTS: usize = 4096;
/// Networks with a host shim (`host_shim`): each shim is an endpoint of its
/// own, on top of [`MAX_ENDPOINTS`].
pub const MAX_HOST_SHIMS: usize = 64;
/// Endpoint ids: every container endpoint plus every host shim. Each table
/// indexed by `EndpointId` (the workers' counters and ports, the rate
/// limits, the BPF maps: `MVDP_MAX_ENDPOINTS` in bpf/mvdp.h) holds this many.
pub const ENDPOINT_SLOTS: usize = MAX_ENDPOINTS + MAX_HOST_SHIMS;

/// Index of an endpoint in the FDB's endpoint table (and in per-worker port tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u16);

/// Index of a network in the FDB's network table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u16);

/// What the switch knows about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// The endpoint's name, for logs and metric labels.
    pub name: String,
    /// The container interface's MAC: frames to it are delivered, frames from it must carry it.
    pub mac: MacAddr,
    /// The network the endpoint belongs to.
    pub network: NetworkId,
    /// `source` networks: the source MACs it receives from.
    pub allowed_sources: Vec<MacAddr>,
    /// A limit on what it sends, if any.
    pub rate_limit: Option<RateLimit>,
    /// Its IPv4 address, for `anti_spoof = "mac+ip"` (none: not checked).
    pub ip: Option<std::net::Ipv4Addr>,
    /// Its IPv6 address on a dual-stack network, for `anti_spoof =
    /// "mac+ip"` (none: IPv6 not checked).
    pub ip6: Option<std::net::Ipv6Addr>,
}

impl EndpointEntry {
    /// An endpoint with no source list and no rate limit.
    pub fn new(name: impl Into<String>, mac: MacAddr, network: NetworkId) -> EndpointEntry {
        EndpointEntry {
            name: name.into(),
            mac,
            network,
            allowed_sources: Vec::new(),
            rate_limit: None,
            ip: None,
            ip6: None,
        }
    }
}

/// What the switch knows about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    /// The network's name, for logs and metric labels.
    pub name: String,
    /// The 802.1Q VID the network owns on the parent, or `None` for untagged.
    pub vlan: Option<u16>,
    /// The macvlan mode of every endpoint of the network.
    pub mode: Mode,
    /// The network's endpoints, in id order (filled in by [`Fdb::new`]).
    pub members: Vec<EndpointId>,
    /// The bound of its queue of group frames waiting to be flooded.
    pub flood_queue_len: usize,
    /// A network removed at run time: its id stays taken (ids are never
    /// reused while mvdp runs), but it owns no VLAN and has no endpoints.
    pub retired: bool,
    /// Its containers may send frames with an 802.1Q tag of their own.
    pub allow_inner_tags: bool,
    /// `anti_spoof = "mac+ip"`: IPv4 and ARP senders are checked too.
    pub anti_spoof_ip: bool,
    /// The longest frame its endpoints take, Ethernet header included and
    /// any 802.1Q tag of its own not counted: the network's MTU + 14.
    /// Longer frames are dropped as `too_long`, never cut short.
    pub max_frame: usize,
    /// `multicast = "snoop"`: IP multicast beyond the link goes to the
    /// group's members only (false: to every endpoint).
    pub snoop: bool,
}

impl NetworkEntry {
    /// A network with no members yet.
    pub fn new(name: impl Into<String>, vlan: Option<u16>, mode: Mode) -> NetworkEntry {
        NetworkEntry {
            name: name.into(),
            vlan,
            mode,
            members: Vec::new(),
            flood_queue_len: crate::config::DEFAULT_BCAST_QUEUE_LEN,
            retired: false,
            allow_inner_tags: false,
            anti_spoof_ip: false,
            max_frame: usize::MAX,
            snoop: false,
        }
    }
}

/// Why an FDB could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    /// Two endpoints on the same VLAN share a MAC.
    #[error("endpoints {first:?} and {second:?} share MAC {mac} on the same VLAN")]
    DuplicateMac {
        /// The MAC in question.
        mac: MacAddr,
        /// The endpoint that had it first.
        first: String,
        /// The endpoint that asked for it again.
        second: String,
    },
    /// Two networks own the same VLAN (or both are untagged).
    #[error("networks {first:?} and {second:?} both own {vlan} on the parent")]
    SharedVlan {
        /// "VLAN n" or "untagged frames".
        vlan: String,
        /// The network that had it first.
        first: String,
        /// The network that asked for it again.
        second: String,
    },
    /// An endpoint names a network that is not in the table.
    #[error("endpoint {0:?} refers to an unknown network")]
    UnknownNetwork(String),
    /// More endpoints than an `EndpointId` can index.
    #[error("too many endpoints (at most {max})", max = u16::MAX)]
    TooManyEndpoints,
}

/// Packs (VLAN, MAC) into one word: the MAC in the low 48 bits, the VID above.
#[inline]
fn key(vlan: Option<u16>, mac: MacAddr) -> u64 {
    mac.to_u64() | (u64::from(vlan.unwrap_or(0)) << 48)
}

/// An immutable forwarding database.
#[derive(Debug, Clone, Default)]
pub struct Fdb {
    /// (VLAN, MAC) → the endpoint and its network's mode, so the common
    /// verdict needs this one lookup.
    by_mac: HashMap<u64, (EndpointId, Mode)>,
    endpoints: Vec<Option<EndpointEntry>>,
    networks: Vec<NetworkEntry>,
    /// The network owning each VID on the parent (0 = untagged).
    by_vlan: HashMap<u16, NetworkId>,
}

impl Fdb {
    /// Builds an FDB from networks and endpoints; ids are table indices, and a
    /// `None` slot is an id that is not in use (a removed endpoint keeps the
    /// others' ids stable).
    pub fn new(
        mut networks: Vec<NetworkEntry>,
        endpoints: Vec<Option<EndpointEntry>>,
    ) -> Result<Fdb, FdbError> {
        if endpoints.len() > usize::from(u16::MAX) {
            return Err(FdbError::TooManyEndpoints);
        }
        let mut by_vlan = HashMap::new();
        for (i, net) in networks.iter().enumerate() {
            if net.retired {
                continue;
            }
            if let Some(prev) = by_vlan.insert(net.vlan.unwrap_or(0), NetworkId(i as u16)) {
                return Err(FdbError::SharedVlan {
                    vlan: net
                        .vlan
                        .map_or("untagged frames".into(), |v| format!("VLAN {v}")),
                    first: networks[usize::from(prev.0)].name.clone(),
                    second: net.name.clone(),
                });
            }
        }
        for net in &mut networks {
            net.members.clear();
        }
        let mut by_mac = HashMap::with_capacity(endpoints.len());
        for (i, ep) in endpoints.iter().enumerate() {
            let Some(ep) = ep else { continue };
            let id = EndpointId(i as u16);
            let net = networks
                .get_mut(usize::from(ep.network.0))
                .filter(|n| !n.retired)
                .ok_or_else(|| FdbError::UnknownNetwork(ep.name.clone()))?;
            if let Some((prev, _)) = by_mac.insert(key(net.vlan, ep.mac), (id, net.mode)) {
                return Err(FdbError::DuplicateMac {
                    mac: ep.mac,
                    first: endpoints[usize::from(prev.0)]
                        .as_ref()
                        .map(|e| e.name.clone())
                        .unwrap_or_default(),
                    second: ep.name.clone(),
                });
            }
            net.members.push(id);
        }
        Ok(Fdb {
            by_mac,
            endpoints,
            networks,
            by_vlan,
        })
    }

    /// The endpoint that owns `mac` on `vlan`, if any. One hash lookup.
    #[inline]
    pub fn lookup(&self, vlan: Option<u16>, mac: MacAddr) -> Option<EndpointId> {
        self.by_mac.get(&key(vlan, mac)).map(|&(id, _)| id)
    }

    /// Like [`Fdb::lookup`], with the mode of the endpoint's network.
    #[inline]
    pub fn lookup_with_mode(&self, vlan: Option<u16>, mac: MacAddr) -> Option<(EndpointId, Mode)> {
        self.by_mac.get(&key(vlan, mac)).copied()
    }

    /// The network that owns `vlan` (`None`: untagged frames) on the parent.
    #[inline]
    pub fn network_on(&self, vlan: Option<u16>) -> Option<NetworkId> {
        self.by_vlan.get(&vlan.unwrap_or(0)).copied()
    }

    /// The entry of an endpoint id, if that id is in use.
    #[inline]
    pub fn endpoint(&self, id: EndpointId) -> Option<&EndpointEntry> {
        self.endpoints
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
    }

    /// The entry of a network id handed out by this FDB.
    #[inline]
    pub fn network(&self, id: NetworkId) -> &NetworkEntry {
        &self.networks[usize::from(id.0)]
    }

    /// All endpoint slots, indexed by `EndpointId`.
    pub fn slots(&self) -> &[Option<EndpointEntry>] {
        &self.endpoints
    }

    /// The endpoints in use, with their ids.
    pub fn endpoints(&self) -> impl Iterator<Item = (EndpointId, &EndpointEntry)> {
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (EndpointId(i as u16), e)))
    }

    /// All networks, indexed by `NetworkId`.
    pub fn networks(&self) -> &[NetworkEntry] {
        &self.networks
    }

    /// Number of (VLAN, MAC) entries.
    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// True when no endpoint is known.
    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);

    #[test]
    fn bpf_maps_hold_every_endpoint_slot() {
        let header = include_str!("../../bpf/mvdp.h");
        let slots: usize = header
            .lines()
            .find_map(|l| l.strip_prefix("#define MVDP_MAX_ENDPOINTS"))
            .and_then(|v| v.trim().parse().ok())
            .expect("MVDP_MAX_ENDPOINTS in bpf/mvdp.h");
        assert_eq!(slots, ENDPOINT_SLOTS);
        assert!(ENDPOINT_SLOTS <= usize::from(u16::MAX));
    }

    #[test]
    fn a_retired_network_frees_its_vlan_and_takes_no_endpoints() {
        let mut old = NetworkEntry::new("old", Some(50), Mode::Bridge);
        old.retired = true;
        let new = NetworkEntry::new("new", Some(50), Mode::Private);
        let fdb = Fdb::new(
            vec![old.clone(), new.clone()],
            vec![Some(EndpointEntry::new("a", MAC, NetworkId(1)))],
        )
        .unwrap();
        assert_eq!(fdb.network_on(Some(50)), Some(NetworkId(1)));
        assert_eq!(
            fdb.lookup_with_mode(Some(50), MAC),
            Some((EndpointId(0), Mode::Private))
        );
        let err = Fdb::new(
            vec![old, new],
            vec![Some(EndpointEntry::new("a", MAC, NetworkId(0)))],
        )
        .unwrap_err();
        assert_eq!(err, FdbError::UnknownNetwork("a".into()));
    }
}
