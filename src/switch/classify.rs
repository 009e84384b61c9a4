//! Classification: one frame in, one verdict out.

use super::fdb::{EndpointId, Fdb, NetworkId};
use crate::wire::{FrameError, FrameHeader};

/// Why a frame was dropped. Every drop is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a truncated 802.1Q tag.
    Malformed = 0,
    /// Unicast from the wire to a MAC no endpoint owns, or a group frame nobody may receive.
    NoEndpoint,
    /// An endpoint sent a frame whose source MAC is not its own.
    SpoofedSource,
    /// The destination's TX ring (or TAP queue) had no room.
    TxFull,
    /// The broadcast/multicast queue toward the workers was full.
    FloodQueueFull,
    /// The destination endpoint is being removed or has vanished.
    EndpointGone,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::NoEndpoint,
        DropReason::SpoofedSource,
        DropReason::TxFull,
        DropReason::FloodQueueFull,
        DropReason::EndpointGone,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::TxFull => "tx_full",
            DropReason::FloodQueueFull => "flood_queue_full",
            DropReason::EndpointGone => "endpoint_gone",
        }
    }
}

impl From<FrameError> for DropReason {
    fn from(_: FrameError) -> Self {
        DropReason::Malformed
    }
}

/// Who receives copies of a group frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodGroup {
    /// From the wire: every endpoint on that VLAN (`None` = untagged).
    Wire(Option<u16>),
    /// From an endpoint: the other endpoints of its network that it may reach directly.
    Network(NetworkId),
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to one endpoint.
    Endpoint(EndpointId),
    /// Send out of the parent NIC.
    Wire,
    /// Copy to every member of the group except the sender, and out of the parent if `wire`.
    Flood {
        /// Who gets copies.
        group: FloodGroup,
        /// Whether the frame also leaves through the parent.
        wire: bool,
    },
    /// Drop and count.
    Drop(DropReason),
}

/// Classifies a frame that arrived from the wire (the parent NIC).
#[inline]
pub fn classify_ingress(fdb: &Fdb, frame: &[u8]) -> Verdict {
    let hdr = match FrameHeader::parse(frame) {
        Ok(h) => h,
        Err(e) => return Verdict::Drop(e.into()),
    };
    if hdr.dst.is_multicast() {
        if fdb.wire_group(hdr.vlan).is_empty() {
            return Verdict::Drop(DropReason::NoEndpoint);
        }
        return Verdict::Flood {
            group: FloodGroup::Wire(hdr.vlan),
            wire: false,
        };
    }
    match fdb.lookup(hdr.vlan, hdr.dst) {
        Some(id) => Verdict::Endpoint(id),
        None => Verdict::Drop(DropReason::NoEndpoint),
    }
}

/// Classifies a frame that endpoint `from` sent (container egress).
#[inline]
pub fn classify_egress(fdb: &Fdb, from: EndpointId, frame: &[u8]) -> Verdict {
    let hdr = match FrameHeader::parse(frame) {
        Ok(h) => h,
        Err(e) => return Verdict::Drop(e.into()),
    };
    let Some(me) = fdb.endpoint(from) else {
        return Verdict::Drop(DropReason::EndpointGone);
    };
    if hdr.src != me.mac {
        return Verdict::Drop(DropReason::SpoofedSource);
    }
    let net = fdb.network(me.network);
    if hdr.dst.is_multicast() {
        return Verdict::Flood {
            group: FloodGroup::Network(me.network),
            wire: true,
        };
    }
    if net.local_switch {
        if let Some(to) = fdb.lookup(net.vlan, hdr.dst) {
            if to != from && fdb.endpoint(to).is_some_and(|e| e.network == me.network) {
                return Verdict::Endpoint(to);
            }
        }
    }
    Verdict::Wire
}

/// The endpoints that receive copies of a group frame, the sender excluded by the caller.
#[inline]
pub fn flood_members(fdb: &Fdb, group: FloodGroup) -> &[EndpointId] {
    match group {
        FloodGroup::Wire(vlan) => fdb.wire_group(vlan),
        FloodGroup::Network(net) => {
            let n = fdb.network(net);
            if n.local_switch {
                &n.members
            } else {
                &[]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::fdb::{EndpointEntry, FdbError, NetworkEntry};
    use crate::wire::MacAddr;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0x42, 10, 77, 0, last])
    }

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    /// Two networks: "lan" (bridge: a, b) and "iso" (not bridge: c, d).
    fn fdb() -> Fdb {
        let nets = vec![
            NetworkEntry {
                name: "lan".into(),
                vlan: None,
                local_switch: true,
                members: vec![],
            },
            NetworkEntry {
                name: "iso".into(),
                vlan: Some(50),
                local_switch: false,
                members: vec![],
            },
        ];
        let eps = [(11, 0), (12, 0), (13, 1), (14, 1)]
            .iter()
            .map(|&(last, net)| {
                Some(EndpointEntry {
                    name: format!("e{last}"),
                    mac: mac(last),
                    network: NetworkId(net),
                })
            })
            .collect();
        Fdb::new(nets, eps).unwrap()
    }

    const WIRE_HOST: MacAddr = MacAddr([0x02, 0x42, 10, 77, 0, 1]);

    #[test]
    fn wire_unicast_goes_to_its_endpoint_only() {
        let fdb = fdb();
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), WIRE_HOST)),
            Verdict::Endpoint(EndpointId(1))
        );
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(99), WIRE_HOST)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        // e13 lives on VLAN 50: untagged frames to it do not reach it.
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(13), WIRE_HOST)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
    }

    #[test]
    fn wire_broadcast_floods_its_vlan() {
        let fdb = fdb();
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, WIRE_HOST));
        assert_eq!(
            v,
            Verdict::Flood {
                group: FloodGroup::Wire(None),
                wire: false
            }
        );
        assert_eq!(
            flood_members(&fdb, FloodGroup::Wire(None)),
            &[EndpointId(0), EndpointId(1)]
        );
        assert_eq!(
            flood_members(&fdb, FloodGroup::Wire(Some(50))),
            &[EndpointId(2), EndpointId(3)]
        );
        assert!(flood_members(&fdb, FloodGroup::Wire(Some(7))).is_empty());
    }

    #[test]
    fn runts_are_malformed() {
        let fdb = fdb();
        assert_eq!(
            classify_ingress(&fdb, &[0xff; 13]),
            Verdict::Drop(DropReason::Malformed)
        );
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &[0x02; 5]),
            Verdict::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn egress_spoofed_source_is_dropped() {
        let fdb = fdb();
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &frame(WIRE_HOST, mac(12))),
            Verdict::Drop(DropReason::SpoofedSource)
        );
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &frame(MacAddr::BROADCAST, WIRE_HOST)),
            Verdict::Drop(DropReason::SpoofedSource)
        );
    }

    #[test]
    fn egress_bridge_switches_locally_else_wire() {
        let fdb = fdb();
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &frame(mac(12), mac(11))),
            Verdict::Endpoint(EndpointId(1))
        );
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &frame(WIRE_HOST, mac(11))),
            Verdict::Wire
        );
        // A frame to itself never loops back locally.
        assert_eq!(
            classify_egress(&fdb, EndpointId(0), &frame(mac(11), mac(11))),
            Verdict::Wire
        );
        // Not a bridge network: to the wire.
        assert_eq!(
            classify_egress(&fdb, EndpointId(2), &frame(mac(14), mac(13))),
            Verdict::Wire
        );
    }

    #[test]
    fn egress_group_frames_flood_network_and_wire() {
        let fdb = fdb();
        let v = classify_egress(&fdb, EndpointId(1), &frame(MacAddr::BROADCAST, mac(12)));
        assert_eq!(
            v,
            Verdict::Flood {
                group: FloodGroup::Network(NetworkId(0)),
                wire: true
            }
        );
        assert!(flood_members(&fdb, FloodGroup::Network(NetworkId(1))).is_empty());
    }

    #[test]
    fn duplicate_mac_on_same_vlan_is_refused() {
        let nets = vec![NetworkEntry {
            name: "lan".into(),
            vlan: None,
            local_switch: true,
            members: vec![],
        }];
        let eps = vec![
            Some(EndpointEntry {
                name: "a".into(),
                mac: mac(1),
                network: NetworkId(0),
            }),
            None,
            Some(EndpointEntry {
                name: "b".into(),
                mac: mac(1),
                network: NetworkId(0),
            }),
        ];
        assert!(matches!(
            Fdb::new(nets, eps),
            Err(FdbError::DuplicateMac { .. })
        ));
    }
}
