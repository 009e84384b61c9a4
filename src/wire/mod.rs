//! Typed views over frame bytes: MAC addresses, Ethernet and 802.1Q headers.

mod frame;
mod mac;

pub use frame::{
    FrameError, FrameHeader, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HEADER_LEN, VLAN_TAG_LEN,
};
pub use mac::{MacAddr, MacParseError};
