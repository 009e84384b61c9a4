//! What the daemon should run, and the requests that change it.
//!
//! The desired state is the config file plus the networks and endpoints
//! added at run time over the control socket. Those are kept, endpoints with
//! the address and MAC they were given, in a state file beside the socket
//! (`<socket>.state.json`), so that a restarted daemon brings them back.
//! Every change — start, SIGHUP, `network add/del`, `endpoint add/del`, a
//! container that vanished — becomes a new desired config, validated as a
//! whole exactly as `mvdp check` validates the file, and is applied by
//! [`Daemon::reconcile`], which adds, re-creates or removes only what differs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, EndpointSpec, NetworkSpec};
use crate::control::api::{ApiError, Call, ErrorCode, NetworkInfo, Request};
use crate::control::daemon::Daemon;

/// Names of host shims, which the daemon adds itself.
const SHIM_MARK: &str = "host-shim@";

/// How long `endpoint add` on a DHCP network waits for the lease before
/// it fails (and the endpoint is removed again).
pub const LEASE_WAIT: Duration = Duration::from_secs(10);

/// An `endpoint add` on a DHCP network whose answer waits for the lease.
struct PendingLease {
    name: String,
    reply: crossbeam_channel::Sender<Result<serde_json::Value, ApiError>>,
    deadline: Instant,
}

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    /// Networks added at run time, in the order they were added.
    #[serde(default)]
    networks: Vec<NetworkSpec>,
    /// Endpoints added at run time, in the order they were added.
    endpoints: Vec<EndpointSpec>,
}

/// The desired state and the way to change it.
pub struct Service {
    config_path: PathBuf,
    /// The config file's text as last applied (at start or SIGHUP).
    file_text: String,
    /// Networks added at run time.
    networks: Vec<NetworkSpec>,
    /// Endpoints added at run time, each with its `ip` and `mac` pinned.
    runtime: Vec<EndpointSpec>,
    state_path: PathBuf,
    started: Instant,
    /// Adds that wait for their DHCP lease.
    pending: Vec<PendingLease>,
}

/// The state file of the daemon whose control socket is `socket`.
pub fn state_path(socket: &Path) -> PathBuf {
    let mut name = socket.file_name().unwrap_or_default().to_os_string();
    name.push(".state.json");
    socket.with_file_name(name)
}

fn invalid(e: &ConfigError) -> ApiError {
    ApiError {
        code: ErrorCode::Invalid,
        key: e.key().map(str::to_string),
        message: e.to_string(),
    }
}

fn exists(what: &str, name: &str) -> ApiError {
    ApiError {
        code: ErrorCode::Conflict,
        key: Some("name".into()),
        message: format!("{what} {name:?} exists already"),
    }
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Failed, e.to_string())
}

impl Service {
    /// Reads the config file and the state file and returns the config to
    /// start with. A runtime endpoint the file no longer admits (its
    /// network gone, its namespace gone, its address now taken) is dropped
    /// with a warning naming the reason; the file itself must be valid.
    pub fn load(config_path: &Path) -> Result<(Service, Config), ConfigError> {
        let file_text =
            std::fs::read_to_string(config_path).map_err(|source| ConfigError::Read {
                path: config_path.to_path_buf(),
                source,
            })?;
        let base = Config::parse(&file_text)?;
        base.check_host()?;
        check_mtus(&base)?;
        let state_path = state_path(&base.control.socket);
        let saved = match std::fs::read_to_string(&state_path) {
            Ok(text) => match serde_json::from_str::<StateFile>(&text) {
                Ok(s) => s,
                Err(e) => {
                    log::error!(
                        "{}: {e}; starting without the networks and endpoints added at run time",
                        state_path.display()
                    );
                    StateFile::default()
                }
            },
            Err(_) => StateFile::default(),
        };
        let mut svc = Service {
            config_path: config_path.to_path_buf(),
            file_text,
            networks: Vec::new(),
            runtime: Vec::new(),
            state_path,
            started: Instant::now(),
            pending: Vec::new(),
        };
        let saved_len = saved.networks.len() + saved.endpoints.len();
        for spec in saved.networks {
            let mut candidate = svc.networks.clone();
            candidate.push(spec.clone());
            match Config::parse_with(&svc.file_text, &candidate, &[]) {
                Ok(_) => svc.networks.push(spec),
                Err(e) => log::warn!(
                    "network {} (added at run time) is not restored: {e}",
                    spec.name
                ),
            }
        }
        for spec in saved.endpoints {
            let mut candidate = svc.runtime.clone();
            candidate.push(spec.clone());
            match svc.desired(&candidate) {
                Ok(_) => svc.runtime.push(spec),
                Err(e) => log::warn!(
                    "endpoint {} (added at run time) is not restored: {e}",
                    spec.name
                ),
            }
        }
        let config = svc.desired(&svc.runtime)?;
        if svc.networks.len() + svc.runtime.len() != saved_len {
            svc.save();
        }
        Ok((svc, config))
    }

    /// The config file plus `runtime`, validated, namespaces checked.
    fn desired(&self, runtime: &[EndpointSpec]) -> Result<Config, ConfigError> {
        let config = Config::parse_with(&self.file_text, &self.networks, runtime)?;
        config.check_host()?;
        Ok(config)
    }

    /// The desired config for a change at run time: `text` plus `runtime`,
    /// validated. An endpoint whose container is gone is left out with a
    /// warning (a vanished container must not block the others' changes),
    /// except `adding`, the one the request is about: its namespace must be
    /// there.
    fn desired_now(
        text: &str,
        networks: &[NetworkSpec],
        runtime: &[EndpointSpec],
        adding: Option<&str>,
        daemon: &Daemon,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::parse_with(text, networks, runtime)?;
        check_mtus(&config)?;
        config.check_worker_mtus(daemon.workers_mtu())?;
        if let Some(i) = adding.and_then(|n| config.endpoints.iter().position(|e| e.name == n)) {
            config.check_endpoint_host(i)?;
        }
        for name in config.without_missing_netns() {
            log::warn!("endpoint {name}: its namespace is gone; left out until it is back");
        }
        Ok(config)
    }

    /// Re-reads the config file (SIGHUP) and applies it with the runtime
    /// endpoints; on any error the running state stays as it was.
    pub fn reload(&mut self, daemon: &mut Daemon) -> anyhow::Result<Vec<String>> {
        let text =
            std::fs::read_to_string(&self.config_path).map_err(|source| ConfigError::Read {
                path: self.config_path.clone(),
                source,
            })?;
        let config = Self::desired_now(&text, &self.networks, &self.runtime, None, daemon)?;
        let changed = daemon.reconcile(&config)?;
        self.file_text = text;
        Ok(changed)
    }

    /// Takes one call off the control socket and answers it, except an
    /// `endpoint add` on a DHCP network: its answer waits, without holding
    /// up the control thread, until the lease comes or [`LEASE_WAIT`]
    /// passes ([`Service::poll_leases`]).
    pub fn take_call(&mut self, daemon: &mut Daemon, call: Call) {
        let adding = match &call.request {
            Request::EndpointAdd { endpoint } => Some(endpoint.name.clone()),
            _ => None,
        };
        let answer = self.handle(daemon, call.request);
        if let (Ok(_), Some(name)) = (&answer, adding) {
            if daemon.lease(&name).is_some_and(|l| !l.state.holds_lease()) {
                self.pending.push(PendingLease {
                    name,
                    reply: call.reply,
                    deadline: Instant::now() + LEASE_WAIT,
                });
                return;
            }
        }
        call.reply.send(answer).ok();
    }

    /// Answers the adds whose lease came, and fails those whose time is up:
    /// such an endpoint is removed again, so that a failed add leaves
    /// nothing behind (its caller may try again).
    pub fn poll_leases(&mut self, daemon: &mut Daemon) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        for p in std::mem::take(&mut self.pending) {
            let answer = match daemon.lease(&p.name) {
                Some(l) if l.state.holds_lease() => self
                    .list(daemon)
                    .into_iter()
                    .find(|i| i.name == p.name)
                    .ok_or_else(|| failed(format!("endpoint {} vanished", p.name)))
                    .and_then(|info| serde_json::to_value(info).map_err(failed)),
                Some(_) if now < p.deadline => {
                    self.pending.push(p);
                    continue;
                }
                Some(l) => {
                    let discovers = l.counts.sent[crate::dhcp::MessageType::Discover as usize];
                    let why = match &l.error {
                        Some(e) => format!("; last error: {e}"),
                        None => String::new(),
                    };
                    let message = format!(
                        "endpoint {}: no DHCP server answered on network {} within {} s ({discovers} DHCPDISCOVERs sent from {}, client state {}{why}); the endpoint was removed",
                        p.name,
                        l.network,
                        LEASE_WAIT.as_secs(),
                        l.mac,
                        l.state.as_str()
                    );
                    log::error!("{message}");
                    if let Err(e) = self.remove(daemon, &p.name) {
                        log::error!("endpoint {}: removing it again: {e}", p.name);
                    }
                    Err(failed(message))
                }
                None => Err(failed(format!(
                    "endpoint {} was removed while it waited for its DHCP lease",
                    p.name
                ))),
            };
            p.reply.send(answer).ok();
        }
    }

    /// Carries out one control request.
    pub fn handle(
        &mut self,
        daemon: &mut Daemon,
        request: Request,
    ) -> Result<serde_json::Value, ApiError> {
        let json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(failed);
        match request {
            Request::EndpointAdd { endpoint } => {
                let info = self.add(daemon, endpoint)?;
                json(serde_json::to_value(info))
            }
            Request::EndpointDel { name } => {
                self.remove(daemon, &name)?;
                Ok(serde_json::json!({ "removed": name }))
            }
            Request::EndpointList {} => json(serde_json::to_value(self.list(daemon))),
            Request::NetworkAdd { network } => {
                let name = network.name.clone();
                self.add_network(daemon, network)?;
                let info = self
                    .networks_info(daemon)?
                    .into_iter()
                    .find(|n| n.name == name);
                json(serde_json::to_value(info))
            }
            Request::NetworkDel { name } => {
                self.remove_network(daemon, &name)?;
                Ok(serde_json::json!({ "removed": name }))
            }
            Request::NetworkList {} => json(serde_json::to_value(self.networks_info(daemon)?)),
            Request::Status {} => {
                let mut st = daemon.status();
                st.uptime_seconds = self.started.elapsed().as_secs();
                st.config_file = self.config_path.display().to_string();
                st.config_changed = std::fs::read_to_string(&self.config_path)
                    .map_or(true, |t| t != self.file_text);
                json(serde_json::to_value(st))
            }
        }
    }

    /// Every running endpoint, marked by where it comes from.
    pub fn list(&self, daemon: &Daemon) -> Vec<crate::control::api::EndpointInfo> {
        let mut infos = daemon.endpoint_infos();
        let runtime: std::collections::HashSet<&str> =
            self.runtime.iter().map(|s| s.name.as_str()).collect();
        for info in &mut infos {
            if runtime.contains(info.name.as_str()) {
                info.origin = "runtime".into();
            } else if info.name.starts_with(SHIM_MARK) {
                info.origin = "host-shim".into();
            }
        }
        infos
    }

    fn add(
        &mut self,
        daemon: &mut Daemon,
        mut spec: EndpointSpec,
    ) -> Result<crate::control::api::EndpointInfo, ApiError> {
        // Running endpoints only: the daemon's config keeps removed ones' entries.
        if daemon.endpoint_infos().iter().any(|i| i.name == spec.name) {
            return Err(exists("endpoint", &spec.name));
        }
        let mut runtime = self.runtime.clone();
        runtime.push(spec.clone());
        let config = Self::desired_now(
            &self.file_text,
            &self.networks,
            &runtime,
            Some(&spec.name),
            daemon,
        )
        .map_err(|e| invalid(&e))?;
        // Pinned, so that a later change elsewhere never moves this one.
        let made = config.endpoint(&spec.name).expect("validated");
        // On a DHCP network the address is the lease's, never pinned.
        let dhcp = config
            .network(&made.network)
            .is_some_and(|n| n.ipam == crate::config::Ipam::Dhcp);
        if !dhcp {
            spec.ip = Some(made.ip.to_string());
        }
        spec.ip6 = made.ip6.map(|ip| ip.to_string());
        spec.mac = Some(made.mac.to_string());
        *runtime.last_mut().expect("pushed") = spec.clone();
        daemon
            .reconcile(&config)
            .map_err(|e| failed(format!("{e:#}")))?;
        let info = self
            .list(daemon)
            .into_iter()
            .find(|i| i.name == spec.name)
            .ok_or_else(|| {
                failed(format!(
                    "endpoint {} was not created; see the log",
                    spec.name
                ))
            })?;
        self.runtime = runtime;
        self.save();
        log::info!("endpoint {} added over the control socket", spec.name);
        Ok(info)
    }

    fn remove(&mut self, daemon: &mut Daemon, name: &str) -> Result<(), ApiError> {
        let Some(pos) = self.runtime.iter().position(|s| s.name == name) else {
            return Err(if daemon.endpoint_infos().iter().any(|i| i.name == name) {
                ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "endpoint {name} comes from {}; remove it there and send SIGHUP",
                        self.config_path.display()
                    ),
                )
            } else {
                ApiError::new(ErrorCode::NotFound, format!("no endpoint named {name:?}"))
            });
        };
        let mut runtime = self.runtime.clone();
        runtime.remove(pos);
        let config = Self::desired_now(&self.file_text, &self.networks, &runtime, None, daemon)
            .map_err(|e| invalid(&e))?;
        self.commit(daemon, &config, self.networks.clone(), runtime)?;
        log::info!("endpoint {name} removed over the control socket");
        Ok(())
    }

    /// Every network the daemon runs, marked by where it comes from.
    pub fn networks_info(&self, daemon: &Daemon) -> Result<Vec<NetworkInfo>, ApiError> {
        let config = Config::parse_with(&self.file_text, &self.networks, &self.runtime)
            .map_err(|e| invalid(&e))?;
        let endpoints = self.list(daemon);
        Ok(config
            .networks
            .iter()
            .map(|n| NetworkInfo {
                name: n.name.clone(),
                mode: n.mode.to_string(),
                vlan: n.vlan,
                subnet: n.subnet.to_string(),
                gateway: n.gateway.to_string(),
                subnet6: n.ipv6.as_ref().map(|v6| v6.subnet.to_string()),
                gateway6: n.ipv6.as_ref().map(|v6| v6.gateway.to_string()),
                origin: if self.networks.iter().any(|s| s.name == n.name) {
                    "runtime"
                } else {
                    "config"
                }
                .into(),
                endpoints: endpoints.iter().filter(|e| e.network == n.name).count(),
            })
            .collect())
    }

    fn add_network(&mut self, daemon: &mut Daemon, spec: NetworkSpec) -> Result<(), ApiError> {
        let running =
            Config::parse_with(&self.file_text, &self.networks, &[]).map_err(|e| invalid(&e))?;
        if running.networks.iter().any(|n| n.name == spec.name) {
            return Err(exists("network", &spec.name));
        }
        let mut networks = self.networks.clone();
        networks.push(spec.clone());
        let config = Self::desired_now(&self.file_text, &networks, &self.runtime, None, daemon)
            .map_err(|e| invalid(&e))?;
        self.commit(daemon, &config, networks, self.runtime.clone())?;
        log::info!("network {} added over the control socket", spec.name);
        Ok(())
    }

    fn remove_network(&mut self, daemon: &mut Daemon, name: &str) -> Result<(), ApiError> {
        let Some(pos) = self.networks.iter().position(|s| s.name == name) else {
            let from_file = Config::parse(&self.file_text)
                .is_ok_and(|c| c.networks.iter().any(|n| n.name == name));
            return Err(if from_file {
                ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "network {name} comes from {}; remove it there and send SIGHUP",
                        self.config_path.display()
                    ),
                )
            } else {
                ApiError::new(ErrorCode::NotFound, format!("no network named {name:?}"))
            });
        };
        let users: Vec<&str> = self
            .runtime
            .iter()
            .filter(|e| e.network == name)
            .map(|e| e.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "network {name} still has endpoints ({}); remove them first",
                    users.join(", ")
                ),
            ));
        }
        let mut networks = self.networks.clone();
        networks.remove(pos);
        let config = Self::desired_now(&self.file_text, &networks, &self.runtime, None, daemon)
            .map_err(|e| invalid(&e))?;
        self.commit(daemon, &config, networks, self.runtime.clone())?;
        log::info!("network {name} removed over the control socket");
        Ok(())
    }

    /// Applies `config` and, once the daemon runs it, makes `networks` and
    /// `runtime` the state (saved).
    fn commit(
        &mut self,
        daemon: &mut Daemon,
        config: &Config,
        networks: Vec<NetworkSpec>,
        runtime: Vec<EndpointSpec>,
    ) -> Result<(), ApiError> {
        daemon
            .reconcile(config)
            .map_err(|e| failed(format!("{e:#}")))?;
        self.networks = networks;
        self.runtime = runtime;
        self.save();
        Ok(())
    }

    /// Forgets runtime endpoints the daemon removed because their container vanished.
    pub fn forget(&mut self, names: &[String]) {
        let before = self.runtime.len();
        self.runtime.retain(|s| !names.contains(&s.name));
        if self.runtime.len() != before {
            self.save();
        }
    }

    /// Writes the state file (atomically, mode 0600). A failure is logged:
    /// the running daemon is right, only a restart would miss the change.
    fn save(&self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(&StateFile {
            networks: self.networks.clone(),
            endpoints: self.runtime.clone(),
        })
        .expect("serializable");
        if let Some(dir) = self.state_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self.state_path.with_extension("json.tmp");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.state_path));
        if let Err(e) = written {
            log::error!(
                "cannot write {}: {e}; endpoints added at run time will not survive a restart",
                self.state_path.display()
            );
        }
    }
}

/// [`Config::check_mtus`] against the parent's MTU now, if the parent is there.
pub fn check_mtus(config: &Config) -> Result<(), ConfigError> {
    let parent_mtu = crate::control::netlink::link_mtu(&config.parent.interface)
        .ok()
        .flatten();
    config.check_mtus(parent_mtu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_sits_beside_the_socket() {
        assert_eq!(
            state_path(Path::new("/run/mvdp/mvdp.sock")),
            PathBuf::from("/run/mvdp/mvdp.sock.state.json")
        );
    }
}
