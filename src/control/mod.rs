//! The control plane: netlink, endpoint lifecycle, FDB publishing, shutdown.

pub mod daemon;
pub mod ethtool;
pub mod netlink;
pub mod netns;
pub mod punt;
pub mod signals;
