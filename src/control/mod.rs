//! The control plane: netlink, endpoint lifecycle, FDB publishing, shutdown.

pub mod api;
pub mod client;
pub mod daemon;
pub mod dhcp;
pub mod ethtool;
pub mod netlink;
pub mod netns;
pub mod punt;
pub mod service;
pub mod signals;
pub mod top;
