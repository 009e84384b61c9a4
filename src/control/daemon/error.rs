//! Why the daemon could not start, or a step of a change failed.

use std::io;

use crate::control::netlink::NetlinkError;
use crate::io::fastpath::FastPathError;
use crate::io::xdp::XdpError;
use crate::io::xsk::XskError;
use crate::switch::FdbError;

/// A failure of the daemon: at start, or in one step of a change. Messages
/// name the config key, endpoint or network and the value involved.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `parent.queues` names a queue the device cannot serve.
    #[error(
        "parent.queues: {parent} has {rx} RX and {tx} TX queues; queue {queue} cannot be served"
    )]
    QueueUnserved {
        /// The parent interface.
        parent: String,
        /// Its RX queues.
        rx: u32,
        /// Its TX queues.
        tx: u32,
        /// The queue asked for.
        queue: u32,
    },
    /// The parent interface is not there.
    #[error("parent.interface: {0} vanished")]
    ParentGone(String),
    /// More endpoints than the counter arrays and maps hold.
    #[error("endpoint {name}: this build serves at most {max} endpoints (host shims included)")]
    TooManyEndpoints {
        /// The endpoint that did not fit.
        name: String,
        /// The limit.
        max: usize,
    },
    /// The UMEM cannot keep every endpoint's fill ring posted.
    #[error("parent.umem_frames: {frames} frames are too few for {endpoints} endpoints (each needs {per_port} posted frames); raise it")]
    UmemTooSmall {
        /// `parent.umem_frames`.
        frames: u32,
        /// Endpoints asked for.
        endpoints: usize,
        /// Frames each needs posted.
        per_port: usize,
    },
    /// A step on one endpoint failed; it left nothing behind.
    #[error("endpoint {name}: {source}")]
    Endpoint {
        /// The endpoint.
        name: String,
        /// What failed.
        #[source]
        source: Box<DaemonError>,
    },
    /// A step on one network failed; it left nothing behind.
    #[error("network {name}: {source}")]
    Network {
        /// The network.
        name: String,
        /// What failed.
        #[source]
        source: Box<DaemonError>,
    },
    /// An endpoint's network is not running (it failed, or waits for a restart).
    /// An endpoint of an untagged network asked for the parent's own MAC.
    #[error("endpoint {name}: mac {mac} is the parent {parent}'s own, which on untagged frames is the host's; only an endpoint of a VLAN network (a passthru one, as the kernel's passthru macvlan does) may take it")]
    ParentMac {
        /// The endpoint.
        name: String,
        /// The MAC it asked for.
        mac: crate::wire::MacAddr,
        /// The parent interface.
        parent: String,
    },
    #[error("its network {0} is not running")]
    NetworkNotRunning(String),
    /// Steps of a change failed; the others were applied.
    #[error("{}", .0.join("; "))]
    Steps(Vec<String>),
    /// Netlink refused a request.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// An XDP program could not be loaded, attached or updated.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// An AF_XDP socket or UMEM could not be made.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// The fast path's programs or maps refused a change.
    #[error(transparent)]
    FastPath(#[from] FastPathError),
    /// The forwarding database is inconsistent (a shared MAC or VLAN).
    #[error(transparent)]
    Fdb(#[from] FdbError),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The metrics exporter could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Shutting down left something behind.
    #[error("shutdown: {}", .0.join("; "))]
    Shutdown(Vec<String>),
}

impl DaemonError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonError {
        let what = what.into();
        move |source| DaemonError::Io { what, source }
    }

    /// Names the endpoint this failure belongs to.
    pub fn endpoint(self, name: &str) -> DaemonError {
        DaemonError::Endpoint {
            name: name.to_string(),
            source: Box::new(self),
        }
    }

    /// Names the network this failure belongs to.
    pub fn network(self, name: &str) -> DaemonError {
        DaemonError::Network {
            name: name.to_string(),
            source: Box::new(self),
        }
    }
}
