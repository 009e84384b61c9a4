//! A checked view of an Ethernet II frame, optionally 802.1Q-tagged.
//!
//! The frame is validated once, in [`FrameHeader::parse`]; everything after
//! that reads plain fields. Parsing goes through `pnet_packet`'s views so the
//! offsets live in one well-tested place.

use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet_packet::vlan::VlanPacket;

use super::MacAddr;

/// Length of an untagged Ethernet header: dst, src, ethertype.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// The 802.1Q TPID.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad service tag (Q-in-Q's outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Mask of the VLAN id bits in a TCI.
const VID_MASK: u16 = 0x0fff;

/// Why a frame could not be parsed. Each maps to a drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than an Ethernet header.
    Runt,
    /// Claims an 802.1Q tag but ends inside it.
    TruncatedTag,
}

/// The fields of an Ethernet header the switch looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// 802.1Q VLAN id of the outer tag, if the frame is tagged (0 means priority-tagged).
    pub vlan: Option<u16>,
    /// The ethertype after any tag.
    pub ethertype: u16,
    /// Offset of the payload (after the header and any tag).
    pub payload_offset: usize,
}

impl FrameHeader {
    /// Checks the frame's length once and reads its header fields.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
        let eth = EthernetPacket::new(bytes).ok_or(FrameError::Runt)?;
        let dst = MacAddr(eth.get_destination().octets());
        let src = MacAddr(eth.get_source().octets());
        let outer: EtherType = eth.get_ethertype();
        if outer != EtherTypes::Vlan {
            return Ok(FrameHeader {
                dst,
                src,
                vlan: None,
                ethertype: outer.0,
                payload_offset: ETH_HEADER_LEN,
            });
        }
        // pnet's VLAN view starts after the TPID: 2 bytes of TCI, 2 of inner ethertype.
        let tag = VlanPacket::new(&bytes[ETH_HEADER_LEN..]).ok_or(FrameError::TruncatedTag)?;
        Ok(FrameHeader {
            dst,
            src,
            vlan: Some(tag.get_vlan_identifier() & VID_MASK),
            ethertype: tag.get_ethertype().0,
            payload_offset: ETH_HEADER_LEN + VLAN_TAG_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP request as captured on a LAN: broadcast, untagged.
    const ARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x42, 0x0a, 0x4d, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0x42, 0x0a, 0x4d, 0x00, 0x01, 10, 77, 0, 1, // sender
        0, 0, 0, 0, 0, 0, 10, 77, 0, 11, // target
    ];

    /// An IPv4 frame tagged with VID 50, PCP 5.
    const TAGGED: [u8; 22] = [
        0x02, 0x42, 0xc0, 0xa8, 0x01, 0x0a, // dst
        0x02, 0x42, 0xc0, 0xa8, 0x01, 0x0b, // src
        0x81, 0x00, 0xa0, 0x32, // TPID, TCI = PCP 5, VID 50
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn untagged() {
        let h = FrameHeader::parse(&ARP_REQUEST).unwrap();
        assert!(h.dst.is_broadcast());
        assert_eq!(h.src.to_string(), "02:42:0a:4d:00:01");
        assert_eq!(h.vlan, None);
        assert_eq!(h.ethertype, 0x0806);
        assert_eq!(h.payload_offset, 14);
    }

    #[test]
    fn tagged() {
        let h = FrameHeader::parse(&TAGGED).unwrap();
        assert_eq!(h.dst.to_string(), "02:42:c0:a8:01:0a");
        assert_eq!(h.vlan, Some(50));
        assert_eq!(h.ethertype, 0x0800);
        assert_eq!(h.payload_offset, 18);
    }

    #[test]
    fn minimal_header_without_payload() {
        let h = FrameHeader::parse(&ARP_REQUEST[..14]).unwrap();
        assert_eq!(h.ethertype, 0x0806);
    }

    #[test]
    fn runt() {
        for len in 0..14 {
            assert_eq!(
                FrameHeader::parse(&ARP_REQUEST[..len]),
                Err(FrameError::Runt),
                "len {len}"
            );
        }
    }

    #[test]
    fn truncated_tag() {
        for len in 14..18 {
            assert_eq!(
                FrameHeader::parse(&TAGGED[..len]),
                Err(FrameError::TruncatedTag),
                "len {len}"
            );
        }
        assert!(FrameHeader::parse(&TAGGED[..18]).is_ok());
    }
}
