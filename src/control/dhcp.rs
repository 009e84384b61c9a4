//! The DHCP thread: runs the DHCP client ([`crate::dhcp::Client`]) of every
//! endpoint on an `ipam = "dhcp"` network.
//!
//! One thread (`mvdp-dhcp`) serves every client: it opens each endpoint's
//! packet socket inside the container's namespace on the container's
//! interface ([`DhcpSocket`]), so DHCP takes the data path the container's
//! own frames take (fast path or workers, veth or TAP); it sleeps in
//! poll(2) on those sockets until a frame or the next timer, puts leased
//! addresses on the container's interface over netlink (and the default
//! route, with `default_route`), and takes them off at expiry. The control
//! thread talks to it over channels and never waits on it, except for a
//! moment while an endpoint's lease is released before the endpoint goes.
//! It reports each lease's address back ([`DhcpEvent`]) so that the FDB
//! knows it (`anti_spoof = "mac+ip"`), and publishes every client's state
//! for `endpoint list` and the metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::Ipv4Net;
use crate::control::netlink;
use crate::dataplane::EventFd;
use crate::dhcp::client::Counts;
use crate::dhcp::message::{decode_frame, encode_frame};
use crate::dhcp::{Action, Client, MessageType, State};
use crate::io::dhcp::{poll_readable, DhcpSocket};
use crate::wire::MacAddr;

/// How long the thread sleeps at most between looks at its clients.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Wait before opening a packet socket again after a failure.
const REOPEN: Duration = Duration::from_secs(1);
/// How long stopping a client waits for the thread (a release is one send).
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What a client needs to know of its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpEndpoint {
    /// The endpoint's name (also the host name sent, option 12).
    pub name: String,
    /// Its network's name.
    pub network: String,
    /// Its MAC: chaddr, and the client id (option 61, type 1).
    pub mac: MacAddr,
    /// The container's namespace.
    pub netns_path: PathBuf,
    /// The interface inside the container.
    pub ifname: String,
    /// The network's subnet: leases outside it are refused.
    pub subnet: Ipv4Net,
    /// Whether the lease's router becomes the container's default route.
    pub default_route: bool,
    /// The address (and prefix length) the container's interface already
    /// holds from a lease, for an endpoint a restarted daemon took over:
    /// asked for again first (INIT-REBOOT).
    pub previous: Option<(Ipv4Addr, u8)>,
}

/// One client's state, as `endpoint list` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The endpoint's network.
    pub network: String,
    /// The endpoint's MAC.
    pub mac: MacAddr,
    /// Where the client stands.
    pub state: State,
    /// The leased address and prefix length, while it holds one.
    pub address: Option<(Ipv4Addr, u8)>,
    /// The server that granted it.
    pub server: Option<Ipv4Addr>,
    /// When it expires.
    pub expires: Option<Instant>,
    /// Messages counted.
    pub counts: Counts,
    /// The last failure of the socket, the netlink calls or a send, if any.
    pub error: Option<String>,
}

impl LeaseStatus {
    /// Whole seconds left on the lease (0 without one).
    pub fn seconds_left(&self, now: Instant) -> u64 {
        self.expires
            .map_or(0, |e| e.saturating_duration_since(now).as_secs())
    }
}

/// A lease's address, reported to the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpEvent {
    /// The endpoint.
    pub name: String,
    /// Its address now: `None` once a lease is lost.
    pub address: Option<Ipv4Addr>,
}

enum Command {
    Start(DhcpEndpoint),
    Stop {
        name: String,
        release: bool,
        done: Sender<()>,
    },
    Shutdown,
}

/// The handle the control thread holds. Dropping it stops the thread
/// (without releasing: [`Dhcp::stop`] does that).
pub struct Dhcp {
    commands: Sender<Command>,
    wake: Arc<EventFd>,
    events: Receiver<DhcpEvent>,
    /// Events of other endpoints read while a stopped one's were dropped.
    held: Mutex<Vec<DhcpEvent>>,
    status: Arc<Mutex<BTreeMap<String, LeaseStatus>>>,
    thread: Option<JoinHandle<()>>,
}

impl Dhcp {
    /// Starts the thread, with no clients yet.
    pub fn spawn() -> std::io::Result<Dhcp> {
        let (commands, rx) = crossbeam_channel::unbounded();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let wake = Arc::new(EventFd::new()?);
        let status = Arc::new(Mutex::new(BTreeMap::new()));
        let mut thread = Thread {
            commands: rx,
            wake: wake.clone(),
            events: events_tx,
            status: status.clone(),
            clients: BTreeMap::new(),
            seed: std::process::id()
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
        };
        let handle = std::thread::Builder::new()
            .name("mvdp-dhcp".into())
            .spawn(move || thread.run())?;
        Ok(Dhcp {
            commands,
            wake,
            events,
            held: Mutex::new(Vec::new()),
            status,
            thread: Some(handle),
        })
    }

    /// Starts `ep`'s client: its first DISCOVER goes out at once.
    pub fn start(&self, ep: DhcpEndpoint) {
        self.status.lock().expect("dhcp status lock").insert(
            ep.name.clone(),
            LeaseStatus {
                network: ep.network.clone(),
                mac: ep.mac,
                state: if ep.previous.is_some() {
                    State::Rebooting
                } else {
                    State::Init
                },
                address: None,
                server: None,
                expires: None,
                counts: Counts::default(),
                error: None,
            },
        );
        self.commands.send(Command::Start(ep)).ok();
        self.wake.wake();
    }

    /// Stops `name`'s client, first releasing its lease (DHCPRELEASE) if
    /// `release`; returns once the release is sent (or after [`STOP_WAIT`]).
    pub fn stop(&self, name: &str, release: bool) {
        let (done, wait) = crossbeam_channel::bounded(1);
        let name = name.to_string();
        self.commands
            .send(Command::Stop {
                name: name.clone(),
                release,
                done,
            })
            .ok();
        self.wake.wake();
        if wait.recv_timeout(STOP_WAIT).is_err() {
            log::warn!("endpoint {name}: the DHCP thread did not confirm the release in time");
        }
        // What the stopped client reported before it stopped is queued
        // already: dropped, so that an endpoint re-made under the same name
        // never takes its predecessor's address.
        let mut held = self.held.lock().expect("dhcp events lock");
        held.extend(self.events.try_iter());
        held.retain(|e| e.name != name);
        drop(held);
        self.status.lock().expect("dhcp status lock").remove(&name);
    }

    /// `name`'s client, if it has one.
    pub fn status(&self, name: &str) -> Option<LeaseStatus> {
        self.status
            .lock()
            .expect("dhcp status lock")
            .get(name)
            .cloned()
    }

    /// The lease changes reported since the last call.
    pub fn events(&self) -> Vec<DhcpEvent> {
        let mut events = std::mem::take(&mut *self.held.lock().expect("dhcp events lock"));
        events.extend(self.events.try_iter());
        events
    }

    /// A source of the DHCP families for `/metrics`, in Prometheus text.
    pub fn metrics(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let status = self.status.clone();
        move || render_metrics(&status.lock().expect("dhcp status lock"), Instant::now())
    }
}

impl Drop for Dhcp {
    fn drop(&mut self) {
        self.commands.send(Command::Shutdown).ok();
        self.wake.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The DHCP families, rendered by hand so that a removed endpoint's series
/// (gauges included) leave `/metrics` with it.
fn render_metrics(status: &BTreeMap<String, LeaseStatus>, now: Instant) -> String {
    let mut s = String::new();
    if status.is_empty() {
        return s;
    }
    let labels =
        |name: &str, st: &LeaseStatus| format!("endpoint=\"{name}\",network=\"{}\"", st.network);
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut s,
        "mvdp_dhcp_lease_state",
        "gauge",
        "DHCP client state of an endpoint on a dhcp network (one-hot over state).",
    );
    for (name, st) in status {
        for state in State::ALL {
            let v = u8::from(st.state == state);
            let _ = writeln!(
                s,
                "mvdp_dhcp_lease_state{{{},state=\"{}\"}} {v}",
                labels(name, st),
                state.as_str()
            );
        }
    }
    family(
        &mut s,
        "mvdp_dhcp_lease_seconds_remaining",
        "gauge",
        "Seconds until the endpoint's DHCP lease expires (0 without a lease).",
    );
    for (name, st) in status {
        let _ = writeln!(
            s,
            "mvdp_dhcp_lease_seconds_remaining{{{}}} {}",
            labels(name, st),
            st.seconds_left(now)
        );
    }
    family(
        &mut s,
        "mvdp_dhcp_messages_total",
        "counter",
        "DHCP messages an endpoint's client sent and received, by type.",
    );
    for (name, st) in status {
        for kind in MessageType::ALL {
            for (direction, counts) in
                [("sent", &st.counts.sent), ("received", &st.counts.received)]
            {
                let n = counts[kind as usize];
                if n > 0 {
                    let _ = writeln!(
                        s,
                        "mvdp_dhcp_messages_total{{{},type=\"{}\",direction=\"{direction}\"}} {n}",
                        labels(name, st),
                        kind.as_str()
                    );
                }
            }
        }
    }
    for (metric, help, pick) in [
        (
            "mvdp_dhcp_renewals_total",
            "DHCP leases an endpoint's client extended (renewing or rebinding).",
            (|c: &Counts| c.renewals) as fn(&Counts) -> u64,
        ),
        (
            "mvdp_dhcp_leases_lost_total",
            "DHCP leases an endpoint lost: expired, or refused by a NAK.",
            |c: &Counts| c.lost,
        ),
    ] {
        family(&mut s, metric, "counter", help);
        for (name, st) in status {
            let _ = writeln!(s, "{metric}{{{}}} {}", labels(name, st), pick(&st.counts));
        }
    }
    s
}

/// One endpoint's client on the thread.
struct Running {
    ep: DhcpEndpoint,
    client: Client,
    socket: Option<DhcpSocket>,
    reopen_at: Instant,
    /// The address on the container's interface now.
    configured: Option<Ipv4Addr>,
    error: Option<String>,
}

impl Running {
    fn fail(&mut self, what: String) {
        if self.error.as_deref() != Some(what.as_str()) {
            log::warn!("endpoint {}: DHCP: {what}", self.ep.name);
        }
        self.error = Some(what);
    }

    /// Carries out what the client asked for.
    fn act(&mut self, action: Action, events: &Sender<DhcpEvent>) {
        let name = self.ep.name.clone();
        match action {
            Action::Send(msg, to) => {
                let frame = encode_frame(&to, &msg);
                let sent = match &self.socket {
                    Some(sock) => sock.send(&frame),
                    None => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
                };
                match sent {
                    Ok(()) => log::debug!("endpoint {name}: DHCP {} sent", msg.kind.as_str()),
                    Err(e) => self.fail(format!(
                        "sending a DHCP{} on {}: {e}",
                        msg.kind.as_str().to_uppercase(),
                        self.ep.ifname
                    )),
                }
            }
            Action::Configure(lease) => {
                if self.configured == Some(lease.address) {
                    log::debug!(
                        "endpoint {name}: DHCP lease on {} renewed for {} s",
                        lease.address,
                        lease.duration.as_secs()
                    );
                    return;
                }
                let gateway = lease.router.filter(|_| self.ep.default_route);
                match netlink::add_lease_address(
                    &self.ep.netns_path,
                    &self.ep.ifname,
                    lease.address,
                    lease.prefix_len,
                    gateway,
                ) {
                    Ok(()) => {
                        log::info!(
                            "endpoint {name}: leased {}/{} from DHCP server {} for {} s{}",
                            lease.address,
                            lease.prefix_len,
                            lease.server,
                            lease.duration.as_secs(),
                            gateway.map_or(String::new(), |g| format!(", default route via {g}"))
                        );
                        self.configured = Some(lease.address);
                        self.error = None;
                        events
                            .send(DhcpEvent {
                                name,
                                address: Some(lease.address),
                            })
                            .ok();
                    }
                    Err(e) => self.fail(format!("putting the lease on the interface: {e}")),
                }
            }
            Action::Deconfigure(lease) => {
                log::warn!(
                    "endpoint {name}: DHCP lease on {} ended (expired or refused); address removed, asking again",
                    lease.address
                );
                if let Err(e) = netlink::del_lease_address(
                    &self.ep.netns_path,
                    &self.ep.ifname,
                    lease.address,
                    lease.prefix_len,
                ) {
                    self.fail(format!("removing the lost lease's address: {e}"));
                }
                self.configured = None;
                events
                    .send(DhcpEvent {
                        name,
                        address: None,
                    })
                    .ok();
            }
        }
    }
}

struct Thread {
    commands: Receiver<Command>,
    wake: Arc<EventFd>,
    events: Sender<DhcpEvent>,
    status: Arc<Mutex<BTreeMap<String, LeaseStatus>>>,
    clients: BTreeMap<String, Running>,
    seed: u32,
}

impl Thread {
    fn run(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            self.wake.drain();
            for cmd in self.commands.try_iter().collect::<Vec<_>>() {
                match cmd {
                    Command::Start(ep) => self.start(ep),
                    Command::Stop {
                        name,
                        release,
                        done,
                    } => {
                        if let Some(mut r) = self.clients.remove(&name) {
                            if release {
                                if let Some(a) = r.client.release(Instant::now()) {
                                    r.act(a, &self.events);
                                    log::info!("endpoint {name}: DHCP lease released");
                                }
                            }
                        }
                        done.send(()).ok();
                    }
                    Command::Shutdown => return,
                }
            }
            let now = Instant::now();
            for r in self.clients.values_mut() {
                if r.socket.is_none() && now >= r.reopen_at {
                    let ifname = r.ep.ifname.clone();
                    match netlink::in_netns(&r.ep.netns_path, || DhcpSocket::open(&ifname)) {
                        Ok(Ok(sock)) => r.socket = Some(sock),
                        Ok(Err(e)) | Err(e) => {
                            r.reopen_at = now + REOPEN;
                            r.fail(format!("opening a packet socket on {ifname}: {e}"));
                        }
                    }
                }
                if r.socket.is_some() {
                    for a in r.client.poll(now) {
                        r.act(a, &self.events);
                    }
                }
            }
            self.publish(now);
            self.wait(now, &mut buf);
        }
    }

    fn start(&mut self, ep: DhcpEndpoint) {
        let now = Instant::now();
        self.seed = self
            .seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let asking = ep.previous.map_or(String::new(), |(a, len)| {
            format!(", asking again for {a}/{len}, which it holds")
        });
        log::info!(
            "endpoint {}: DHCP client started on {} (MAC {}, client id 01:{}){asking}",
            ep.name,
            ep.ifname,
            ep.mac,
            ep.mac
        );
        let client = match ep.previous {
            Some((address, prefix_len)) => Client::rebooting(
                ep.mac, &ep.name, ep.subnet, self.seed, now, address, prefix_len,
            ),
            None => Client::new(ep.mac, &ep.name, ep.subnet, self.seed, now),
        };
        self.clients.insert(
            ep.name.clone(),
            Running {
                ep,
                client,
                socket: None,
                reopen_at: now,
                configured: None,
                error: None,
            },
        );
    }

    /// Sleeps until a frame, a command or the next timer, then hands every
    /// waiting frame to its client.
    fn wait(&mut self, now: Instant, buf: &mut [u8]) {
        let next = self
            .clients
            .values()
            .map(|r| match r.socket {
                Some(_) => r.client.next_wakeup(),
                None => r.reopen_at,
            })
            .min()
            .unwrap_or(now + MAX_SLEEP);
        let timeout = next.saturating_duration_since(now).min(MAX_SLEEP);
        let names: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, r)| r.socket.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let mut fds = vec![self.wake.fd()];
        fds.extend(
            names
                .iter()
                .filter_map(|n| self.clients[n].socket.as_ref().map(DhcpSocket::fd)),
        );
        let ready = match poll_readable(&fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                log::error!("DHCP thread: poll: {e}");
                std::thread::sleep(timeout);
                return;
            }
        };
        let now = Instant::now();
        for (name, _) in names.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
            let r = self.clients.get_mut(name).expect("listed");
            loop {
                let got = match r.socket.as_ref().map(|s| s.recv(buf)) {
                    Some(Ok(Some(n))) => n,
                    Some(Err(e)) => {
                        // The interface went (its container is going): the
                        // control thread removes the endpoint.
                        r.socket = None;
                        r.reopen_at = now + REOPEN;
                        r.fail(format!("receiving on {}: {e}", r.ep.ifname));
                        break;
                    }
                    _ => break,
                };
                if let Some((from, msg)) = decode_frame(&buf[..got]) {
                    for a in r.client.receive(&msg, from, now) {
                        r.act(a, &self.events);
                    }
                }
            }
        }
    }

    /// Publishes every client's state for `endpoint list` and the metrics.
    fn publish(&self, _now: Instant) {
        let mut status = self.status.lock().expect("dhcp status lock");
        for (name, r) in &self.clients {
            let Some(st) = status.get_mut(name) else {
                continue;
            };
            let lease = r.client.lease();
            st.state = r.client.state();
            st.address = lease.map(|l| (l.address, l.prefix_len));
            st.server = lease.map(|l| l.server);
            st.expires = lease.map(|l| l.expires());
            st.counts = *r.client.counts();
            st.error = r.error.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_one_hot_states_and_counts() {
        let now = Instant::now();
        let mut counts = Counts::default();
        counts.sent[MessageType::Discover as usize] = 2;
        counts.received[MessageType::Ack as usize] = 1;
        counts.renewals = 1;
        let mut status = BTreeMap::new();
        status.insert(
            "web".to_string(),
            LeaseStatus {
                network: "lan".into(),
                mac: MacAddr::from_name("web"),
                state: State::Bound,
                address: Some((Ipv4Addr::new(10, 0, 0, 5), 24)),
                server: Some(Ipv4Addr::new(10, 0, 0, 1)),
                expires: Some(now + Duration::from_secs(100)),
                counts,
                error: None,
            },
        );
        let text = render_metrics(&status, now);
        for line in [
            "mvdp_dhcp_lease_state{endpoint=\"web\",network=\"lan\",state=\"bound\"} 1",
            "mvdp_dhcp_lease_state{endpoint=\"web\",network=\"lan\",state=\"selecting\"} 0",
            "mvdp_dhcp_lease_seconds_remaining{endpoint=\"web\",network=\"lan\"} 100",
            "mvdp_dhcp_messages_total{endpoint=\"web\",network=\"lan\",type=\"discover\",direction=\"sent\"} 2",
            "mvdp_dhcp_messages_total{endpoint=\"web\",network=\"lan\",type=\"ack\",direction=\"received\"} 1",
            "mvdp_dhcp_renewals_total{endpoint=\"web\",network=\"lan\"} 1",
            "# TYPE mvdp_dhcp_leases_lost_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(render_metrics(&BTreeMap::new(), now), "");
    }

    #[test]
    fn a_stopped_clients_queued_events_are_dropped() {
        let (commands, rx) = crossbeam_channel::unbounded();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let dhcp = Dhcp {
            commands,
            wake: Arc::new(EventFd::new().unwrap()),
            events,
            held: Mutex::new(Vec::new()),
            status: Arc::new(Mutex::new(BTreeMap::new())),
            thread: None,
        };
        let ev = |name: &str, last| DhcpEvent {
            name: name.into(),
            address: Some(Ipv4Addr::new(10, 0, 0, last)),
        };
        events_tx.send(ev("web", 5)).unwrap();
        events_tx.send(ev("db", 6)).unwrap();
        // The thread's part: it confirms the stop.
        let answer = std::thread::spawn(move || {
            if let Ok(Command::Stop { done, .. }) = rx.recv() {
                done.send(()).ok();
            }
        });
        dhcp.stop("web", false);
        answer.join().unwrap();
        // A new client of the same name reports afterwards.
        events_tx.send(ev("web", 7)).unwrap();
        assert_eq!(dhcp.events(), [ev("db", 6), ev("web", 7)]);
        assert!(dhcp.events().is_empty());
    }
}
