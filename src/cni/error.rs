//! CNI errors: the spec's codes, and mvdp-cni's own from 100 on.

use serde::Serialize;

/// The spec's and mvdp-cni's error codes.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (`msg` names it).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables, like CNI_COMMAND.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure, e.g. reading stdin or entering the container's namespace.
    pub const IO: u32 = 5;
    /// Failed to decode content (stdin is not JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network config (`msg` names the key).
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a transient condition (DEL while the daemon is down).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The plugin is not available (STATUS: the daemon does not answer).
    pub const NOT_AVAILABLE: u32 = 50;
    /// The mvdp daemon does not answer on its control socket.
    pub const DAEMON_UNREACHABLE: u32 = 100;
    /// The daemon answered with an error not covered below.
    pub const DAEMON_FAILED: u32 = 101;
    /// The address (IP or MAC) is used by another endpoint on the network.
    pub const ADDRESS_IN_USE: u32 = 102;
    /// An endpoint for this container and interface exists already.
    pub const ENDPOINT_EXISTS: u32 = 103;
    /// The IPAM plugin could not be found or run, or said something unreadable.
    pub const IPAM_FAILED: u32 = 104;
    /// CHECK: the endpoint differs from the previous result.
    pub const CHECK_MISMATCH: u32 = 105;
}

/// A CNI error as it goes to stdout: `{"cniVersion","code","msg","details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("CNI error {code}: {msg} ({details})")]
pub struct CniError {
    /// One of [`code`].
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details: the value at fault, the OS error, the daemon's words.
    pub details: String,
}

impl CniError {
    /// An error with `code`, `msg` and `details`.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The JSON the runtime reads, stamped with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}
