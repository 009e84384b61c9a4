//! The control socket: a Unix stream socket (`[control] socket`, mode 0600,
//! root only) over which `mvdp endpoint …`, `mvdp status` and `mvdp top`
//! talk to the running daemon.
//!
//! Protocol: the client writes one request as a JSON object on one line,
//! the daemon answers with one JSON object on one line and closes the
//! connection. Requests carry `"op"`:
//!
//! ```text
//! {"op":"endpoint_add","endpoint":{"name":"web","network":"lan","netns":"web","ip":"192.168.1.10"}}
//! {"op":"endpoint_del","name":"web"}
//! {"op":"endpoint_list"}
//! {"op":"network_add","network":{"name":"dk0123456789","subnet":"192.168.1.0/24","gateway":"192.168.1.1","mode":"bridge"}}
//! {"op":"network_del","name":"dk0123456789"}
//! {"op":"network_list"}
//! {"op":"status"}
//! ```
//!
//! `endpoint_add` on an `ipam = "dhcp"` network answers once the endpoint
//! holds its lease (its `dhcp` object says `bound`), or fails after 10 s
//! with the endpoint removed again (`failed`, naming endpoint and network).
//!
//! Answers are `{"ok":true,"result":…}` or
//! `{"ok":false,"error":{"code":"invalid","key":"endpoint[3].ip","message":"…"}}`
//! with `code` one of `invalid` (the request names a bad value: `key` says
//! which), `not_found`, `conflict`, `malformed` (not a request),
//! `forbidden` (the peer is not root) and `failed` (the daemon could not do
//! it; nothing changed).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::config::{EndpointSpec, NetworkSpec};

/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Create an endpoint, as if it were in the config file.
    EndpointAdd {
        /// Its keys, as in the config's `[[endpoint]]`.
        endpoint: EndpointSpec,
    },
    /// Remove an endpoint added at run time.
    EndpointDel {
        /// Its name.
        name: String,
    },
    /// Every endpoint, with its counters.
    EndpointList {},
    /// Create a network, as if it were in the config file.
    NetworkAdd {
        /// Its keys, as in the config's `[[network]]`.
        network: NetworkSpec,
    },
    /// Remove a network added at run time; it must have no endpoints left.
    NetworkDel {
        /// Its name.
        name: String,
    },
    /// Every network, with the keys a client must agree with (mvdp-cni
    /// checks a CNI config's `mode` and `vlan` against them).
    NetworkList {},
    /// The daemon's state.
    Status {},
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A value in the request is invalid (`key` names it).
    Invalid,
    /// No such endpoint or network.
    NotFound,
    /// The name or the thing asked for is taken.
    Conflict,
    /// Not a request.
    Malformed,
    /// The peer may not use the socket.
    Forbidden,
    /// The daemon could not carry it out; nothing changed.
    Failed,
}

/// A failed request's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// The config key at fault, for `invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// An error without a key.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            key: None,
            message: message.into(),
        }
    }
}

/// The answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

/// One endpoint as `endpoint list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Its name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// "veth" or "tap".
    pub kind: String,
    /// The container's namespace, as configured.
    pub netns: String,
    /// The interface inside the container.
    pub ifname: String,
    /// The interface on mvdp's side (the veth host end).
    pub host_ifname: String,
    /// Its IPv4 address.
    pub ip: String,
    /// Its IPv6 address, on a dual-stack network. Absent from older
    /// daemons' answers and on IPv4-only networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// Its MAC address.
    pub mac: String,
    /// "config" (the file) or "runtime" (`endpoint add`).
    pub origin: String,
    /// Which tier carries its unicast: "fast" or "workers".
    pub path: String,
    /// Frames received from the container.
    pub rx_packets: u64,
    /// Bytes received from the container.
    pub rx_bytes: u64,
    /// Frames delivered to the container.
    pub tx_packets: u64,
    /// Bytes delivered to the container.
    pub tx_bytes: u64,
    /// Frames it sent, or that were addressed to it, that were dropped
    /// (both tiers). Absent from older daemons' answers: read as 0.
    #[serde(default)]
    pub drops: u64,
    /// The multicast groups (by group MAC) it joined, as snooped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// On an `ipam = "dhcp"` network: its DHCP client's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpInfo>,
}

/// An endpoint's DHCP client, as `endpoint list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpInfo {
    /// init, selecting, requesting, bound, renewing, rebinding or rebooting.
    pub state: String,
    /// The leased address with its prefix length ("10.0.0.5/24"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The server that granted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Seconds until the lease expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
    /// DHCPDISCOVERs sent so far.
    #[serde(default)]
    pub discovers_sent: u64,
    /// The client's last failure (socket, netlink, send), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EndpointInfo {
    /// Its addresses for people: the IPv4 one, then the IPv6 one if any.
    pub fn addresses(&self) -> String {
        match &self.ip6 {
            Some(ip6) => format!("{} {ip6}", self.ip),
            None => self.ip.clone(),
        }
    }
}

/// One network as `network_list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Its name.
    pub name: String,
    /// "bridge", "private", "vepa", "passthru" or "source".
    pub mode: String,
    /// Its 802.1Q VLAN id on the wire, absent if untagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Its subnet, e.g. "192.168.1.0/24".
    pub subnet: String,
    /// Its gateway.
    pub gateway: String,
    /// Its IPv6 subnet and gateway, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// Its IPv6 gateway, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// "config" (the file) or "runtime" (`network_add`).
    #[serde(default)]
    pub origin: String,
    /// How many endpoints it has (host shim included).
    #[serde(default)]
    pub endpoints: usize,
}

impl NetworkInfo {
    /// The prefix length of `subnet` (32 if it has none).
    pub fn prefix_len(&self) -> u8 {
        self.subnet
            .split_once('/')
            .and_then(|(_, l)| l.parse().ok())
            .unwrap_or(32)
    }
}

/// One worker as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The parent's RX queue it serves.
    pub queue: u32,
    /// Whether its thread runs.
    pub alive: bool,
}

/// The daemon's state as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// mvdp's version.
    pub version: String,
    /// The daemon's PID.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// The parent interface.
    pub parent: String,
    /// The XDP program's attach mode on the parent ("native", "skb"), or
    /// "none" while the fast path serves every endpoint.
    pub xdp: String,
    /// How the AF_XDP sockets are bound ("zero-copy", "copy").
    pub bind: String,
    /// Whether the kernel fast path is on.
    pub fast_path: bool,
    /// The workers.
    pub workers: Vec<WorkerInfo>,
    /// How many endpoints run (host shims included).
    pub endpoints: usize,
    /// The config file it runs.
    pub config_file: String,
    /// Whether the file now differs from what was loaded (a SIGHUP applies it).
    pub config_changed: bool,
    /// Frames dropped since start, by reason (both tiers).
    #[serde(default)]
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// A request from a client, with the way back.
pub struct Call {
    /// What the client asked.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Sender<Result<serde_json::Value, ApiError>>,
}

/// The listening control socket; dropping it stops the listener and removes
/// the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another daemon answers on the path.
    #[error("control.socket: {} is held by a running mvdp; stop it first, or give this one another [control] socket", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket could not be created.
    #[error("control.socket: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ControlServer {
    /// Creates the socket at `path` (its directory too, mode 0755), mode
    /// 0600, and serves it from a thread: each request goes to `calls` and
    /// its answer back to the client. A stale socket file (nobody answers)
    /// is replaced; a live one is refused.
    pub fn bind(path: &Path, calls: Sender<Call>) -> Result<ControlServer, ControlError> {
        let io = |op, source| ControlError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| io("set the mode of the directory of", e))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse {
                    path: path.to_path_buf(),
                });
            }
            log::info!("replacing the stale control socket {}", path.display());
            std::fs::remove_file(path).map_err(|e| io("remove the stale socket", e))?;
        }
        // Created 0600 from the start: no moment where others may connect.
        // SAFETY: umask(2) only swaps the process's file mode mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(|e| io("listen on", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io("configure", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mvdp-control".into())
            .spawn(move || serve(listener, calls, flag))
            .map_err(|e| io("start the thread of", e))?;
        log::info!("control socket on {}", path.display());
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, calls: Sender<Call>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = answer(conn, &calls) {
                    log::debug!("control: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                log::warn!("control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Reads one request from `conn`, has the daemon carry it out, writes the answer.
fn answer(conn: UnixStream, calls: &Sender<Call>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let outcome = match peer_uid(&conn) {
        Some(0) => read_request(&conn).and_then(|request| {
            let (tx, rx) = bounded(1);
            calls
                .send(Call { request, reply: tx })
                .map_err(|_| ApiError::new(ErrorCode::Failed, "the daemon is shutting down"))?;
            rx.recv_timeout(ANSWER_TIMEOUT).unwrap_or_else(|_| {
                Err(ApiError::new(
                    ErrorCode::Failed,
                    "the daemon did not answer in time",
                ))
            })
        }),
        uid => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "only root may use the control socket (peer uid {})",
                uid.map_or("unknown".into(), |u| u.to_string())
            ),
        )),
    };
    let answer = match outcome {
        Ok(result) => Answer {
            ok: true,
            result: Some(result),
            error: None,
        },
        Err(e) => Answer {
            ok: false,
            result: None,
            error: Some(e),
        },
    };
    let mut line = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
    line.push('\n');
    (&conn).write_all(line.as_bytes())
}

fn read_request(conn: &UnixStream) -> Result<Request, ApiError> {
    let mut line = String::new();
    BufReader::new(conn.take(MAX_REQUEST))
        .read_line(&mut line)
        .map_err(|e| ApiError::new(ErrorCode::Malformed, format!("reading the request: {e}")))?;
    parse_request(&line)
}

/// Decodes one request line (the daemon's side of the protocol; fuzzed).
pub fn parse_request(line: &str) -> Result<Request, ApiError> {
    if line.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::Malformed, "empty request"));
    }
    serde_json::from_str(line.trim())
        .map_err(|e| ApiError::new(ErrorCode::Malformed, format!("not a request: {e}")))
}

/// The connecting process's uid (SO_PEERCRED).
fn peer_uid(conn: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot reach mvdp at {}: {source} (is `mvdp run` running, with this [control] socket?)", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The exchange broke off or the answer was not understood.
    #[error("control socket {}: {reason}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The daemon refused the request.
    #[error("{0}")]
    Refused(ApiError),
}

/// Sends `request` to the daemon at `path` and returns its result.
pub fn call(path: &Path, request: &Request) -> Result<serde_json::Value, ClientError> {
    let protocol = |reason: String| ClientError::Protocol {
        path: path.to_path_buf(),
        reason,
    };
    let mut conn = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    conn.set_read_timeout(Some(ANSWER_TIMEOUT + Duration::from_secs(5)))
        .map_err(|e| protocol(e.to_string()))?;
    let mut line = serde_json::to_string(request).map_err(|e| protocol(e.to_string()))?;
    line.push('\n');
    conn.write_all(line.as_bytes())
        .map_err(|e| protocol(format!("sending: {e}")))?;
    let mut text = String::new();
    BufReader::new(&conn)
        .read_line(&mut text)
        .map_err(|e| protocol(format!("reading the answer: {e}")))?;
    let answer: Answer =
        serde_json::from_str(&text).map_err(|e| protocol(format!("bad answer {text:?}: {e}")))?;
    match (answer.ok, answer.result, answer.error) {
        (true, Some(result), _) => Ok(result),
        (false, _, Some(error)) => Err(ClientError::Refused(error)),
        _ => Err(protocol(format!("bad answer {text:?}"))),
    }
}

/// Receives the calls the control socket takes.
pub fn channel() -> (Sender<Call>, Receiver<Call>) {
    crossbeam_channel::unbounded()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(
            r#"{"op":"endpoint_add","endpoint":{"name":"web","network":"lan","netns":"web","ip":"192.168.1.10"}}"#,
        )
        .unwrap();
        let Request::EndpointAdd { endpoint } = r else {
            panic!("not an add: {r:?}")
        };
        assert_eq!(endpoint.name, "web");
        assert_eq!(endpoint.ip.as_deref(), Some("192.168.1.10"));
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"endpoint_del","name":"web"}"#).unwrap(),
            Request::EndpointDel { name: "web".into() }
        );
        for bad in [
            r#"{"op":"reboot"}"#,
            r#"{"op":"endpoint_del"}"#,
            r#"{"op":"endpoint_list","extra":1}"#,
            r#"{"op":"endpoint_add","endpoint":{"name":"a","network":"n","colour":"red"}}"#,
        ] {
            assert!(
                serde_json::from_str::<Request>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    /// An older daemon's endpoint list has no `drops`: it still parses.
    #[test]
    fn endpoint_info_without_drops_reads_as_zero() {
        let old = r#"{"name":"web","network":"lan","kind":"veth","netns":"web",
            "ifname":"eth0","host_ifname":"mv0","ip":"192.168.1.10",
            "mac":"02:42:c0:a8:01:0a","origin":"config","path":"fast",
            "rx_packets":3,"rx_bytes":300,"tx_packets":4,"tx_bytes":400}"#;
        let info: EndpointInfo = serde_json::from_str(old).unwrap();
        assert_eq!((info.rx_packets, info.drops), (3, 0));
        let back: EndpointInfo = serde_json::from_str(
            &serde_json::to_string(&EndpointInfo { drops: 7, ..info }).unwrap(),
        )
        .unwrap();
        assert_eq!(back.drops, 7);
    }

    #[test]
    fn errors_carry_code_and_key() {
        let e = ApiError {
            code: ErrorCode::Invalid,
            key: Some("endpoint[3].ip".into()),
            message: "endpoint[3] (web).ip: in use".into(),
        };
        let text = serde_json::to_string(&Answer {
            ok: false,
            result: None,
            error: Some(e.clone()),
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"ok":false,"error":{"code":"invalid","key":"endpoint[3].ip","message":"endpoint[3] (web).ip: in use"}}"#
        );
        let back: Answer = serde_json::from_str(&text).unwrap();
        assert_eq!(back.error, Some(e));
    }
}
