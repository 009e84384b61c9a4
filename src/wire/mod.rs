//! Typed views over frame bytes: MAC addresses, Ethernet and 802.1Q
//! headers, IP multicast groups and membership messages.

mod frame;
pub mod ipv6;
mod mac;
pub mod mcast;

pub use frame::{
    FrameError, FrameHeader, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HEADER_LEN, VLAN_TAG_LEN,
};
pub use mac::{MacAddr, MacParseError};
