//! The node daemon: builds the data plane from a validated config, runs it
//! until SIGTERM/SIGINT, and tears down everything it created.
//!
//! Two tiers carry the frames. The workers (AF_XDP) are the complete
//! implementation; in front of them, unless `[dataplane] fast_path = "off"`
//! or the kernel refuses it, the tc fast path (`bpf/fastpath.c`) moves the
//! known unicast of veth endpoints in the kernel and hands the workers the
//! rest through the punt device. The parent's XDP program is attached only
//! while some frame from the wire needs the workers' AF_XDP socket: an
//! endpoint the fast path does not serve, or a network whose reflected group
//! frames are its sender's alone (private, passthru, source).
//!
//! Start-up order keeps the host safe: UMEMs and parent sockets first, then
//! the fast path and the XDP program (both pass everything until endpoint
//! MACs are added), then the endpoints, and only then their MACs in the
//! maps. Teardown runs in reverse from `Drop`, so a failure half-way leaves
//! nothing behind.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::config::{
    BindMode, Config, Cores, EndpointConfig, EndpointKind, FastPath as FastPathMode, Mode,
    NetnsRef, Queues, XdpMode,
};
use crate::control::netlink::{self, EndpointLinkSpec, LinkKind};
use crate::control::punt::PuntDevice;
use crate::dataplane::{
    Command, EndpointIo, Event, GroupFrame, Worker, WorkerConfig, WorkerHandle,
};
use crate::io::fastpath::{FastEndpoint, FastPath};
use crate::io::packet::GroupListener;
use crate::io::tap::TapPort;
use crate::io::xdp::{AttachMode, XdpPort, XdpProgram};
use crate::io::xsk::{create_umem, Bind, RingSizes, XskSocket};
use crate::metrics::{Exporter, Source, WorkerStats};
use crate::switch::{
    classify_ingress, flood_targets, DropReason, EndpointEntry, EndpointId, Fdb, NetworkEntry,
    NetworkId, Verdict,
};

/// Capacity of each worker's queue for group frames with a single receiver.
const EXPRESS_QUEUE_LEN: usize = 4096;
/// Frame buffers the workers hand back to the group listener for reuse.
const RECYCLED_BUFFERS: usize = 4096;
/// Group frames the listener takes in one go before waking the workers.
const LISTENER_BATCH: usize = 64;
/// Entries in every AF_XDP ring (RX, TX, fill, completion).
const RING: u32 = 2048;
/// Fewest frames kept posted on an endpoint socket's fill ring.
const MIN_PORT_FILL: usize = 8;

/// One endpoint mvdp created.
struct Endpoint {
    id: EndpointId,
    name: String,
    kind: EndpointKind,
    host_ifname: String,
    netns_path: PathBuf,
    /// The XDP program on a veth's host end that steers container egress into our sockets.
    port_prog: Option<XdpPort>,
    /// The TAP fd (closing it deletes the device).
    tap: Option<TapPort>,
    /// Its entry in the fast path's maps, while the fast path is on.
    fast: Option<FastEndpoint>,
}

/// A running data plane. Dropping it tears everything down.
pub struct Daemon {
    config: Config,
    workers: Vec<WorkerHandle>,
    stats: Vec<Arc<WorkerStats>>,
    /// The parent's program; shared with the exporter, which reads its counters at scrape time.
    xdp: Arc<Mutex<Option<XdpProgram>>>,
    /// The kernel fast path, when on; shared with the exporter (its counters).
    fast: Arc<Mutex<Option<FastPath>>>,
    /// Where the fast path hands frames to the workers, while it is on.
    punt: Option<PuntDevice>,
    endpoints: Vec<Option<Endpoint>>,
    fdb: Arc<RwLock<Arc<Fdb>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    exporter: Option<Arc<Exporter>>,
    /// Worker reports (a dead endpoint device).
    events: Receiver<Event>,
    events_tx: Sender<Event>,
    /// Bumped on every FDB publication, so the group listener refreshes its snapshot.
    fdb_generation: Arc<AtomicU64>,
    /// MACs mvdp added to the parent's unicast filter (removed at teardown).
    unicast_addresses: Vec<crate::wire::MacAddr>,
    /// How the parent accepts the endpoints' MACs ([`MacFilter`] as u8; 0 = not yet).
    mac_filter: Arc<std::sync::atomic::AtomicU8>,
    /// What endpoints and a late XDP program are built from.
    plumbing: Plumbing,
    torn_down: bool,
}

/// What start-up set up that later steps build on: an endpoint added at
/// run time, or the XDP program attached late for one the workers serve.
#[derive(Default)]
struct Plumbing {
    /// One UMEM per worker, in worker order.
    umems: Vec<xsk_rs::Umem>,
    /// The parent's socket per RX queue: (queue, fd), for the XSKMAP.
    parent_fds: Vec<(u32, std::os::fd::RawFd)>,
    /// How XDP programs attach.
    mode: AttachMode,
    /// How AF_XDP sockets bind.
    bind: Option<Bind>,
    /// How the parent's sockets did bind: "zero-copy" or "copy".
    bound: &'static str,
}

/// How many RX and TX queues an interface has (ETHTOOL_GCHANNELS), if the driver says.
fn queue_counts(ifname: &str) -> Option<(u32, u32)> {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined,
    // rx_count, tx_count, other_count, combined_count.
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    let mut ifr = crate::control::ethtool::ifreq_for(ifname).ok()?;
    ifr.ifr_ifru.ifru_data = ch.as_mut_ptr().cast();
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return None;
    }
    // SAFETY: `ifr` names the interface and points at `ch`, a live
    // ethtool_channels-sized buffer the kernel fills during the call.
    let rc = unsafe { libc::ioctl(sock, libc::SIOCETHTOOL, &mut ifr) };
    // SAFETY: closing the socket we opened above.
    unsafe { libc::close(sock) };
    if rc < 0 {
        return None;
    }
    Some((ch[5] + ch[8], ch[6] + ch[8]))
}

fn networks_of(config: &Config) -> Vec<NetworkEntry> {
    config
        .networks
        .iter()
        .map(|n| NetworkEntry::new(n.name.clone(), n.vlan, n.mode))
        .collect()
}

fn entry_of(config: &Config, i: usize) -> EndpointEntry {
    let ep = &config.endpoints[i];
    let net = config
        .networks
        .iter()
        .position(|n| n.name == ep.network)
        .expect("validated network");
    EndpointEntry {
        name: ep.name.clone(),
        mac: ep.mac,
        network: NetworkId(net as u16),
        allowed_sources: ep.allowed_sources.clone(),
        rate_limit: ep.rate_limit,
    }
}

/// The VID an endpoint's MAC is keyed under in the XDP map (0: untagged).
fn vid_of(config: &Config, network: &str) -> u16 {
    config.network(network).and_then(|n| n.vlan).unwrap_or(0)
}

/// How the parent accepts frames for the endpoints' MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum MacFilter {
    /// The MACs are in the NIC's unicast filter.
    Unicast = 1,
    /// The driver has no unicast filter: the kernel made the NIC promiscuous.
    Promiscuous = 2,
}

impl MacFilter {
    fn as_str(self) -> &'static str {
        match self {
            MacFilter::Unicast => "unicast_filter",
            MacFilter::Promiscuous => "promiscuous",
        }
    }
}

/// Endpoint names of host shims: `@` cannot appear in a configured name.
const SHIM_MARK: &str = "host-shim@";

fn is_shim(ep: &EndpointConfig) -> bool {
    ep.name.starts_with(SHIM_MARK)
}

/// Adds, for every network with `host_shim`, an endpoint in mvdp's own
/// namespace: a veth whose far end (`mvshim-<network>`) is the host's
/// interface on that network, as the well-known macvlan workaround does by
/// hand. The host reaches its containers through it, and they reach the host.
fn add_host_shims(config: &mut Config) {
    let shims: Vec<EndpointConfig> = config
        .networks
        .iter()
        .filter_map(|n| {
            let ip = n.host_shim?;
            let mut ifname = format!("mvshim-{}", n.name);
            ifname.truncate(15);
            Some(EndpointConfig {
                name: format!("{SHIM_MARK}{}", n.name),
                network: n.name.clone(),
                kind: EndpointKind::Veth,
                netns: NetnsRef::Path(PathBuf::from("/proc/self/ns/net")),
                ifname,
                ip,
                mac: crate::wire::MacAddr::docker_default(ip),
                allowed_sources: Vec::new(),
                rate_limit: None,
            })
        })
        .collect();
    config.endpoints.extend(shims);
}

/// The host-side interface name of endpoint `id`: `mv<id>-<name>`, cut to IFNAMSIZ.
fn host_ifname(id: usize, name: &str) -> String {
    let mut s = format!("mv{id}-{name}");
    s.truncate(15);
    s
}

impl Daemon {
    /// Builds and starts the data plane. `metrics` is the listener for `/metrics` (bound by the caller).
    pub fn start(mut config: Config, metrics: Option<TcpListener>) -> Result<Daemon> {
        let parent = config.parent.interface.clone();
        let counts = queue_counts(&parent);
        let queues: Vec<u32> = match &config.parent.queues {
            Queues::All => (0..counts.map_or(1, |c| c.0.max(1))).collect(),
            Queues::List(l) => l.clone(),
        };
        // Copy-mode AF_XDP transmits on the socket's queue id: a queue the
        // device cannot transmit on would swallow every frame sent there.
        if let Some((rx, tx)) = counts {
            if let Some(q) = queues.iter().find(|&&q| q >= rx.max(1) || q >= tx.max(1)) {
                bail!("parent.queues: {parent} has {rx} RX and {tx} TX queues; queue {q} cannot be served");
            }
        }
        if config.endpoints.len() > crate::metrics::MAX_ENDPOINTS {
            bail!(
                "endpoint: {} endpoints configured; this build serves at most {}",
                config.endpoints.len(),
                crate::metrics::MAX_ENDPOINTS
            );
        }
        let cores = match &config.workers.cores {
            Cores::Auto => core_affinity::get_core_ids().unwrap_or_default(),
            Cores::List(l) => l.iter().map(|&id| core_affinity::CoreId { id }).collect(),
        };
        let bind = match config.parent.bind {
            BindMode::Auto => Bind::Auto,
            BindMode::ZeroCopy => Bind::ZeroCopy,
            BindMode::Copy => Bind::Copy,
        };
        add_host_shims(&mut config);
        let n_endpoints = config.endpoints.len();
        let fdb = Arc::new(Fdb::new(networks_of(&config), Vec::new())?);
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let mut d = Daemon {
            workers: Vec::new(),
            stats: Vec::new(),
            xdp: Arc::new(Mutex::new(None)),
            fast: Arc::new(Mutex::new(None)),
            punt: None,
            endpoints: Vec::new(),
            fdb: Arc::new(RwLock::new(fdb.clone())),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            exporter: None,
            events: events_rx,
            events_tx,
            fdb_generation: Arc::new(AtomicU64::new(0)),
            unicast_addresses: Vec::new(),
            mac_filter: Arc::new(std::sync::atomic::AtomicU8::new(0)),
            plumbing: Plumbing::default(),
            torn_down: false,
            config,
        };

        // Parent sockets and workers, one per queue.
        let frames = d.config.parent.umem_frames;
        let rings = RingSizes { rx: RING, tx: RING };
        let mut umems = Vec::new();
        let mut parent_fds = Vec::new();
        let mut bound = "copy";
        // Group frames from the wire: one bounded queue per network
        // (`bcast_queue_len`), served by the worker the network falls to
        // (network k: worker k mod n), so a network's group frames stay in
        // order and networks spread over the workers; plus an express queue
        // per worker for frames with a single receiver, which cost what a
        // unicast frame does. Buffers go back to the listener for reuse.
        let n_workers = queues.len();
        let mut flood_txs = Vec::new();
        let mut worker_floods: Vec<Vec<Receiver<GroupFrame>>> = vec![Vec::new(); n_workers];
        for (k, n) in d.config.networks.iter().enumerate() {
            let (tx, rx) = bounded(n.bcast_queue_len.max(1));
            flood_txs.push(tx);
            worker_floods[k % n_workers].push(rx);
        }
        let mut express_txs = Vec::new();
        for floods in &mut worker_floods {
            let (tx, rx) = bounded(EXPRESS_QUEUE_LEN);
            express_txs.push(tx);
            floods.push(rx);
        }
        let (recycle_tx, recycle_rx) = bounded(RECYCLED_BUFFERS);
        let events_tx = d.events_tx.clone();
        // The punt device's sockets share the parent's fill budget.
        let fill_sharers = if d.config.dataplane.fast_path == FastPathMode::On {
            2
        } else {
            1
        };
        for (i, &q) in queues.iter().enumerate() {
            let umem = create_umem(frames, d.config.parent.frame_size, RING)
                .context("creating the UMEM")?;
            let sock = XskSocket::bind(&umem.umem, &parent, q, bind, rings)?;
            log::info!(
                "{parent} queue {q}: AF_XDP socket bound ({})",
                if sock.zerocopy {
                    "zero-copy"
                } else {
                    "copy mode"
                }
            );
            bound = if sock.zerocopy { "zero-copy" } else { "copy" };
            parent_fds.push((q, sock.fd()));
            umems.push(umem.umem.clone());
            let stats = Arc::new(WorkerStats::new(q.to_string()));
            let (tx, rx) = crossbeam_channel::unbounded();
            // Half the UMEM may sit posted on fill rings, the rest carries frames
            // in flight and flood copies: the parent (and with the fast path,
            // the punt device) get up to half of that half, the endpoints share
            // what is left.
            let parent_fill = (frames as usize / 4).min(RING as usize) / fill_sharers;
            let per_port =
                ((frames as usize / 2 - parent_fill * fill_sharers) / n_endpoints.max(1)).min(256);
            if per_port < MIN_PORT_FILL {
                bail!(
                    "parent.umem_frames: {frames} frames are too few for {n_endpoints} endpoints \
                     (each needs {MIN_PORT_FILL} posted frames); raise it"
                );
            }
            let cfg = WorkerConfig {
                queue: q,
                core: if cores.is_empty() {
                    None
                } else {
                    Some(cores[i % cores.len()])
                },
                parent_fill,
                punt_fill: parent_fill,
                port_fill: per_port,
                tx_ring: RING as usize,
                umem,
                parent: sock,
                fdb: fdb.clone(),
                batch: d.config.workers.batch,
                commands: rx,
                floods: std::mem::take(&mut worker_floods[i]),
                flood_caps: d
                    .config
                    .networks
                    .iter()
                    .map(|n| n.bcast_queue_len.max(1))
                    .collect(),
                recycle: recycle_tx.clone(),
                poll: d.config.workers.poll,
                stats: stats.clone(),
                events: events_tx.clone(),
            };
            d.workers.push(Worker::spawn(cfg, tx)?);
            d.stats.push(stats);
        }

        let mode = match d.config.parent.xdp_mode {
            XdpMode::Auto => AttachMode::Auto,
            XdpMode::Native => AttachMode::Native,
            XdpMode::Skb => AttachMode::Skb,
        };
        // The kernel fast path, in front of the workers.
        if d.config.dataplane.fast_path == FastPathMode::On {
            match d.enable_fast_path(&umems, mode, bind) {
                Ok(()) => log::info!(
                    "fast path on: known unicast of veth endpoints moves in the kernel (tc on {parent} and the endpoints); the workers carry the rest"
                ),
                Err(e) => log::warn!(
                    "fast path unavailable, so every frame goes through the workers: {e:#}"
                ),
            }
        } else {
            log::info!(
                "fast path off ([dataplane] fast_path): every frame goes through the workers"
            );
        }
        d.plumbing = Plumbing {
            umems,
            parent_fds,
            mode,
            bind: Some(bind),
            bound,
        };
        if !d.needs_xdp() {
            log::info!("no XDP program on {parent}: the fast path serves every endpoint");
        }
        // Endpoints (and the XDP program first, where the workers need it).
        let all: Vec<usize> = (0..n_endpoints).collect();
        d.claim_unicast_leftovers();
        d.bring_up(&all)?;
        d.drop_leftovers();
        let promisc_after = netlink::promiscuity(&parent)?.unwrap_or(0);
        // Promiscuous now, whoever made it so (an earlier entry on a device
        // without a filter, tcpdump): that is how the MACs get through.
        let mode = if promisc_after > 0 {
            log::info!("{parent} has no unicast filter: the kernel made it promiscuous for the endpoint MACs");
            MacFilter::Promiscuous
        } else {
            MacFilter::Unicast
        };
        d.mac_filter.store(mode as u8, Ordering::Relaxed);

        // Group frames from the wire: the fast path's tc program copies them
        // to the workers; without it (or for a passthru network, which wants
        // the parent promiscuous) a packet socket on the parent does.
        let passthru = d.config.networks.iter().any(|n| n.mode == Mode::Passthru);
        if d.fast.lock().expect("fast path lock").is_none() || passthru {
            let listener_stats = Arc::new(WorkerStats::new("group".into()));
            d.stats.push(listener_stats.clone());
            let ifindex = netlink::link_index(&parent)?
                .with_context(|| format!("parent.interface: {parent} vanished"))?;
            // Passthru receives frames for any MAC, as the kernel's passthru does.
            let gl = GroupListener::open(ifindex, Duration::from_millis(200), passthru)
                .context("opening the group listener")?;
            let path = GroupPath {
                listener: gl,
                fdb: d.fdb.clone(),
                generation: d.fdb_generation.clone(),
                out: flood_txs,
                express: express_txs,
                wakes: d.workers.iter().map(|w| w.wake.clone()).collect(),
                recycle: recycle_rx,
                stats: listener_stats,
                stop: d.stop.clone(),
            };
            d.threads.push(
                std::thread::Builder::new()
                    .name("mvdp-group".into())
                    .spawn(move || group_listener(path, 65536))?,
            );
        }

        // Metrics.
        if let Some(listener) = metrics {
            let mut exporter = Exporter::install(d.stats.clone(), d.fdb.clone())?;
            let xdp = d.xdp.clone();
            exporter.add_hook(Box::new(move || publish_xdp_counters(&xdp)));
            let fast = d.fast.clone();
            exporter.add_source(fast.clone());
            exporter.add_hook(Box::new(move || publish_fast_path_state(&fast)));
            let filter = d.mac_filter.clone();
            exporter.add_hook(Box::new(move || {
                let mode = filter.load(Ordering::Relaxed);
                for m in [MacFilter::Unicast, MacFilter::Promiscuous] {
                    metrics::gauge!("mvdp_parent_mac_filter", "mode" => m.as_str())
                        .set(f64::from(u8::from(mode == m as u8)));
                }
            }));
            let exporter = Arc::new(exporter);
            d.threads.push(crate::metrics::serve(
                listener,
                exporter.clone(),
                d.stop.clone(),
            )?);
            d.exporter = Some(exporter);
        }
        Ok(d)
    }

    /// Creates endpoint `i` of the config (its interface, its sockets on
    /// every worker) and records it. Steering frames to it is
    /// [`Daemon::bring_up`]'s next step.
    fn add_endpoint(&mut self, i: usize) -> Result<()> {
        let umems = self.plumbing.umems.clone();
        let queues = umems.len() as u32;
        let mode = self.plumbing.mode;
        let bind = self.plumbing.bind.expect("set at start");
        let ep = self.config.endpoints[i].clone();
        let net = self.config.network(&ep.network).expect("validated").clone();
        let id = EndpointId(i as u16);
        let host = host_ifname(i, &ep.name);
        let netns_path = ep.netns.path();
        let fast = self.fast_eligible(&ep);
        let link = netlink::create_endpoint(&EndpointLinkSpec {
            kind: match ep.kind {
                EndpointKind::Veth => LinkKind::Veth,
                EndpointKind::Tap => LinkKind::Tap,
            },
            host_ifname: &host,
            netns_path: &netns_path,
            ifname: &ep.ifname,
            mac: ep.mac,
            addr: ep.ip,
            // The shim holds the host's address alone (/32) and reaches the
            // containers through routes of its own, so it never competes with
            // the parent's address on the same subnet.
            prefix_len: if is_shim(&ep) {
                32
            } else {
                net.subnet.prefix_len()
            },
            gateway: if is_shim(&ep) {
                None
            } else {
                Some(net.gateway)
            },
            queues,
            // The fast path keeps the container's skbs whole: its checksum
            // offload and TSO can stay on.
            tx_offload: fast,
        })
        .with_context(|| format!("endpoint {}: creating its interface", ep.name))?;
        let adopted = link.adopted;
        let mut state = Endpoint {
            id,
            name: ep.name.clone(),
            kind: ep.kind,
            host_ifname: host.clone(),
            netns_path,
            port_prog: None,
            tap: link.tap.map(TapPort::new),
            fast: self.fast_entry(&ep, id, fast.then_some(link.host_ifindex)),
        };
        if self.endpoints.len() <= i {
            self.endpoints.resize_with(i + 1, || None);
        }
        match ep.kind {
            EndpointKind::Veth => {
                // Recorded before anything else can fail, so teardown deletes the pair.
                self.endpoints[i] = Some(state);
                // The workers transmit to the container through one socket per
                // worker. Its egress comes to them through these sockets (the
                // XDP port program steers it there) unless the fast path takes
                // it (its tc program on the host end, after `steer_to_endpoint`).
                let mut prog = if fast {
                    None
                } else {
                    Some(
                        XdpPort::attach(&host, mode)
                            .with_context(|| format!("endpoint {}", ep.name))?,
                    )
                };
                let mut socks = Vec::new();
                for (w, umem) in umems.iter().enumerate() {
                    let s = XskSocket::bind(
                        umem,
                        &host,
                        w as u32,
                        bind,
                        RingSizes { rx: RING, tx: RING },
                    )?;
                    if let Some(prog) = prog.as_mut() {
                        prog.set_socket(w as u32, s.fd())?;
                    }
                    socks.push(s);
                }
                for (w, socket) in socks.into_iter().enumerate() {
                    let io = EndpointIo::Xsk {
                        socket,
                        receives: !fast,
                    };
                    self.workers[w].commands.send(Command::AddPort(id, io)).ok();
                    self.workers[w].wake.wake();
                }
                if let Some(st) = self.endpoints[i].as_mut() {
                    st.port_prog = prog;
                }
            }
            EndpointKind::Tap => {
                let tap = state.tap.clone().expect("TAP fd");
                let reader = i % self.workers.len();
                for (w, worker) in self.workers.iter().enumerate() {
                    worker
                        .commands
                        .send(Command::AddPort(
                            id,
                            EndpointIo::Tap {
                                port: tap.clone(),
                                read: w == reader,
                            },
                        ))
                        .ok();
                    worker.wake.wake();
                }
                state.port_prog = None;
                self.endpoints[i] = Some(state);
            }
        }
        log::info!(
            "endpoint {} ({:?}) {}: {} {} in {} as {}",
            ep.name,
            ep.kind,
            if adopted {
                "taken over from an earlier mvdp"
            } else {
                "up"
            },
            ep.mac,
            ep.ip,
            ep.netns,
            ep.ifname
        );
        Ok(())
    }

    /// Loads the fast path: the punt device (a socket per worker) and the
    /// tc programs, the parent's attached. On failure nothing stays behind.
    fn enable_fast_path(
        &mut self,
        umems: &[xsk_rs::Umem],
        mode: AttachMode,
        bind: Bind,
    ) -> Result<()> {
        let parent = self.config.parent.interface.clone();
        let parent_ifindex = netlink::link_index(&parent)?
            .with_context(|| format!("parent.interface: {parent} vanished"))?;
        let (punt, sockets) =
            PuntDevice::create(umems, bind, mode, RingSizes { rx: RING, tx: RING })
                .context("creating the punt device")?;
        // A passthru network keeps the packet socket, for its promiscuity.
        let wire_groups = !self
            .config
            .networks
            .iter()
            .any(|n| n.mode == Mode::Passthru);
        let fast = FastPath::attach(&parent, parent_ifindex, punt.ifindex, wire_groups)?;
        for (w, socket) in sockets.into_iter().enumerate() {
            self.workers[w].commands.send(Command::SetPunt(socket)).ok();
            self.workers[w].wake.wake();
        }
        *self.fast.lock().expect("fast path lock") = Some(fast);
        self.punt = Some(punt);
        Ok(())
    }

    /// The file where the MACs mvdp put into the parent's unicast filter
    /// are recorded, so that the next start after a kill can tell its own
    /// entries from someone else's.
    fn unicast_record(&self) -> PathBuf {
        let mut name = self.config.control.socket.clone().into_os_string();
        name.push(".unicast");
        PathBuf::from(name)
    }

    fn record_unicast(&self) {
        let text: String = self
            .unicast_addresses
            .iter()
            .map(|m| format!("{m}\n"))
            .collect();
        if let Err(e) = std::fs::write(self.unicast_record(), text) {
            log::warn!(
                "cannot record the parent's unicast filter entries in {}: {e}",
                self.unicast_record().display()
            );
        }
    }

    /// Takes back the parent's unicast filter entries an earlier mvdp
    /// recorded and left (it was killed): they are ours to keep or remove.
    fn claim_unicast_leftovers(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.unicast_record()) else {
            return;
        };
        let parent = &self.config.parent.interface;
        let present = netlink::unicast_addresses(parent).unwrap_or_default();
        for mac in text.lines().filter_map(|l| l.trim().parse().ok()) {
            if present.contains(&mac) && !self.unicast_addresses.contains(&mac) {
                self.unicast_addresses.push(mac);
            }
        }
    }

    /// After start-up: deletes what an earlier mvdp left that nothing
    /// wants any more: endpoint interfaces and unicast filter entries.
    fn drop_leftovers(&mut self) {
        let keep: Vec<String> = self
            .endpoints
            .iter()
            .flatten()
            .map(|e| e.host_ifname.clone())
            .collect();
        match netlink::delete_stale_endpoint_links(&keep) {
            Ok(gone) if !gone.is_empty() => log::info!(
                "deleted {gone:?}, left by an earlier mvdp for endpoints no longer wanted"
            ),
            Ok(_) => {}
            Err(e) => log::warn!("deleting what an earlier mvdp left: {e}"),
        }
        let wanted: Vec<crate::wire::MacAddr> =
            self.fdb().endpoints().map(|(_, e)| e.mac).collect();
        let parent = self.config.parent.interface.clone();
        self.unicast_addresses.retain(|mac| {
            if wanted.contains(mac) {
                return true;
            }
            if let Err(e) = netlink::del_unicast_address(&parent, *mac) {
                log::warn!("{e}");
            }
            false
        });
        self.record_unicast();
    }

    /// Whether the fast path carries an endpoint's unicast: a container's
    /// veth on a bridge, vepa or private network, while the fast path is on.
    /// TAP endpoints, the host shim (its peer shares mvdp's namespace, which
    /// `bpf_redirect_peer` cannot enter) and passthru and source networks
    /// stay with the workers.
    fn fast_eligible(&self, ep: &EndpointConfig) -> bool {
        let mode = self.config.network(&ep.network).map(|n| n.mode);
        self.fast.lock().expect("fast path lock").is_some()
            && ep.kind == EndpointKind::Veth
            && !is_shim(ep)
            && matches!(mode, Some(Mode::Bridge | Mode::Vepa | Mode::Private))
    }

    /// Whether the workers need frames from the wire through the parent's
    /// XDP program: some endpoint is theirs alone, or some network's
    /// reflected group frames go back to their sender only (private,
    /// passthru, source: the XDP program keeps those from the host).
    fn needs_xdp(&self) -> bool {
        self.fast.lock().expect("fast path lock").is_none()
            || self.config.endpoints.iter().any(|e| !self.fast_eligible(e))
            || self
                .config
                .networks
                .iter()
                .any(|n| matches!(n.mode, Mode::Private | Mode::Passthru | Mode::Source))
    }

    /// The fast path's entry for an endpoint (`port`: its veth host end's
    /// ifindex when the fast path delivers to it), or `None` when the fast
    /// path is off.
    fn fast_entry(
        &self,
        ep: &EndpointConfig,
        id: EndpointId,
        port: Option<u32>,
    ) -> Option<FastEndpoint> {
        self.fast.lock().expect("fast path lock").as_ref()?;
        let network = self
            .config
            .networks
            .iter()
            .position(|n| n.name == ep.network)?;
        let net = &self.config.networks[network];
        Some(FastEndpoint {
            id,
            mac: ep.mac,
            vlan: net.vlan.unwrap_or(0),
            network: network as u16,
            mode: net.mode,
            port,
            punt_egress: ep.rate_limit.is_some(),
        })
    }

    /// Steers frames to newly created endpoints (config indices): the XDP
    /// program where the workers now need it, the FDB, the parent's unicast
    /// filter, the XDP and fast-path maps, the host shim's routes. Start-up
    /// and a reload that adds endpoints both come here.
    fn bring_up(&mut self, indices: &[usize]) -> Result<()> {
        self.ensure_xdp()?;
        for &i in indices {
            if let Err(e) = self.add_endpoint(i) {
                // Whatever it created so far goes (the others stay).
                self.remove_endpoint(EndpointId(i as u16));
                return Err(e);
            }
        }
        let fdb = Arc::new(self.current_fdb()?);
        self.publish(fdb.clone());
        // Container MACs are not the parent's own: put them in its unicast
        // filter, which the kernel turns into promiscuous mode for a driver
        // without one. An address already in the list is someone else's:
        // used, never removed.
        let recorded = self.unicast_addresses.len();
        let steered = self.steer(indices, &fdb);
        // One write for the batch, whether or not every endpoint made it.
        if self.unicast_addresses.len() != recorded {
            self.record_unicast();
        }
        steered
    }

    /// [`Daemon::bring_up`]'s per-endpoint steps after the FDB is published.
    fn steer(&mut self, indices: &[usize], fdb: &Fdb) -> Result<()> {
        let parent = self.config.parent.interface.clone();
        let preexisting = netlink::unicast_addresses(&parent)?;
        for &i in indices {
            let id = EndpointId(i as u16);
            let Some(ep) = fdb.endpoint(id) else { continue };
            if !preexisting.contains(&ep.mac) {
                netlink::add_unicast_address(&parent, ep.mac)?;
                self.unicast_addresses.push(ep.mac);
            }
            self.xdp_steer(fdb, id)?;
            self.fast_steer(id)?;
            self.shim_routes(i, true)?;
        }
        Ok(())
    }

    /// Attaches the parent's XDP program if the workers need frames from
    /// the wire and it is not there yet, with every endpoint in its map. It
    /// passes everything until endpoint MACs are added.
    fn ensure_xdp(&mut self) -> Result<()> {
        if !self.needs_xdp() || self.xdp.lock().expect("xdp lock").is_some() {
            return Ok(());
        }
        let mut xdp = XdpProgram::attach(&self.config.parent.interface, self.plumbing.mode)?;
        for &(q, fd) in &self.plumbing.parent_fds {
            xdp.set_socket(q, fd)?;
        }
        *self.xdp.lock().expect("xdp lock") = Some(xdp);
        let fdb = self.fdb();
        for (id, _) in fdb.endpoints() {
            self.xdp_steer(&fdb, id)?;
        }
        Ok(())
    }

    /// Puts endpoint `id` into the XDP program's map, if one is attached:
    /// to AF_XDP, or on to the fast path.
    fn xdp_steer(&self, fdb: &Fdb, id: EndpointId) -> Result<()> {
        let Some(ep) = fdb.endpoint(id) else {
            return Ok(());
        };
        let mut guard = self.xdp.lock().expect("xdp lock");
        let Some(xdp) = guard.as_mut() else {
            return Ok(());
        };
        let net = fdb.network(ep.network);
        let fast_port = self
            .endpoints
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
            .is_some_and(|s| s.fast.is_some_and(|f| f.port.is_some()));
        // Group frames these endpoints send, when the wire reflects them, go
        // back to the sender alone (the kernel's "forward to original
        // port"), never to the host.
        let owned = matches!(net.mode, Mode::Private | Mode::Passthru | Mode::Source);
        let mut value = u32::from(id.0);
        if owned {
            value |= crate::io::xdp::EP_HAIRPIN_OWNED;
        }
        if fast_port {
            value |= crate::io::xdp::EP_FAST;
        }
        xdp.add_endpoint(ep.mac, net.vlan.unwrap_or(0), value)?;
        // A passthru network takes over every unicast frame on its VLAN;
        // group frames reach both the host and the endpoint, as with the kernel.
        if net.mode == Mode::Passthru {
            xdp.set_passthru(Some(net.vlan.unwrap_or(0)))?;
            log::info!(
                "network {}: passthru, its endpoint takes over {}'s traffic",
                net.name,
                self.config.parent.interface
            );
        }
        Ok(())
    }

    /// Puts endpoint `id` into the fast path's maps, and for a fast
    /// endpoint attaches the port program that takes its egress.
    fn fast_steer(&mut self, id: EndpointId) -> Result<()> {
        let Some(state) = self
            .endpoints
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
        else {
            return Ok(());
        };
        let mut guard = self.fast.lock().expect("fast path lock");
        if let (Some(entry), Some(fast)) = (state.fast, guard.as_mut()) {
            fast.set_endpoint(&entry)?;
            fast.attach_port(&entry, &state.host_ifname)?;
        }
        Ok(())
    }

    /// The host shim's /32 routes for endpoint `i` (added, or deleted when
    /// `add` is false): a shim reaches every other endpoint of its network,
    /// and every endpoint is reached from its network's shim.
    fn shim_routes(&self, i: usize, add: bool) -> Result<()> {
        let ep = &self.config.endpoints[i];
        let live = |j: usize| self.endpoints.get(j).is_some_and(Option::is_some);
        let pairs: Vec<(&EndpointConfig, &EndpointConfig)> = self
            .config
            .endpoints
            .iter()
            .enumerate()
            .filter(|&(j, e)| {
                j != i && live(j) && e.network == ep.network && is_shim(e) != is_shim(ep)
            })
            .map(|(_, e)| if is_shim(ep) { (ep, e) } else { (e, ep) })
            .collect();
        for (shim, to) in pairs {
            let result = if add {
                netlink::add_link_route(&shim.ifname, to.ip, 32)
            } else {
                netlink::del_link_route(&shim.ifname, to.ip, 32)
            };
            result.with_context(|| {
                format!("network {}: host shim route to {}", ep.network, to.name)
            })?;
        }
        Ok(())
    }

    /// The FDB of the endpoints in place now, as the config describes them.
    fn current_fdb(&self) -> Result<Fdb, crate::switch::FdbError> {
        let slots: Vec<Option<EndpointEntry>> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| e.as_ref().map(|_| entry_of(&self.config, i)))
            .collect();
        Fdb::new(networks_of(&self.config), slots)
    }

    fn publish(&self, fdb: Arc<Fdb>) {
        *self.fdb.write().expect("fdb lock") = fdb.clone();
        self.fdb_generation.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.commands.send(Command::Fdb(fdb.clone())).ok();
            w.wake.wake();
        }
    }

    /// Every running endpoint, with its counters over both tiers (host
    /// shims included). `origin` is left "config" for the caller to refine.
    pub fn endpoint_infos(&self) -> Vec<crate::control::api::EndpointInfo> {
        use crate::metrics::CounterSource;
        let mut out = Vec::new();
        for (i, slot) in self.endpoints.iter().enumerate() {
            let Some(state) = slot else { continue };
            let ep = &self.config.endpoints[i];
            let mut sums = crate::metrics::endpoint_totals(&self.stats, state.id);
            sums.add(&self.fast.endpoint(state.id));
            out.push(crate::control::api::EndpointInfo {
                name: ep.name.clone(),
                network: ep.network.clone(),
                kind: match ep.kind {
                    EndpointKind::Veth => "veth",
                    EndpointKind::Tap => "tap",
                }
                .into(),
                netns: ep.netns.to_string(),
                ifname: ep.ifname.clone(),
                host_ifname: state.host_ifname.clone(),
                ip: ep.ip.to_string(),
                mac: ep.mac.to_string(),
                origin: "config".into(),
                path: if state.fast.is_some_and(|f| f.port.is_some()) {
                    "fast"
                } else {
                    "workers"
                }
                .into(),
                rx_packets: sums.rx_packets,
                rx_bytes: sums.rx_bytes,
                tx_packets: sums.tx_packets,
                tx_bytes: sums.tx_bytes,
                drops: sums.dropped,
            });
        }
        out
    }

    /// The daemon's state for `mvdp status`; the caller fills in what only
    /// it knows (uptime, config file).
    pub fn status(&self) -> crate::control::api::Status {
        let xdp = match self.xdp.lock().expect("xdp lock").as_ref() {
            None => "none",
            Some(p) => match p.attached_mode() {
                crate::io::xdp::AttachedMode::Native => "native",
                crate::io::xdp::AttachedMode::Skb => "skb",
            },
        };
        // Each lock taken and released on its own line: a guard living to
        // the end of the struct expression below would deadlock the totals.
        let fast_path = self.fast.lock().expect("fast path lock").is_some();
        let drops = {
            use crate::metrics::CounterSource;
            let mut t = crate::metrics::totals(&self.stats);
            t.add(&self.fast.totals());
            DropReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), t.drops[*r as usize]))
                .collect()
        };
        crate::control::api::Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_seconds: 0,
            parent: self.config.parent.interface.clone(),
            xdp: xdp.into(),
            bind: self.plumbing.bound.into(),
            fast_path,
            workers: self
                .workers
                .iter()
                .zip(&self.stats)
                .map(|(w, s)| crate::control::api::WorkerInfo {
                    queue: s.queue.parse().unwrap_or(0),
                    alive: !w.thread.is_finished(),
                })
                .collect(),
            endpoints: self.endpoints.iter().flatten().count(),
            config_file: String::new(),
            config_changed: false,
            drops,
        }
    }

    /// The RX queues whose worker thread has ended while the daemon runs (a panic).
    pub fn dead_workers(&self) -> Vec<String> {
        self.workers
            .iter()
            .zip(&self.stats)
            .filter(|(w, _)| w.thread.is_finished())
            .map(|(_, s)| s.queue.clone())
            .collect()
    }

    /// The counters of every worker (and of the group listener).
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// The FDB in force.
    pub fn fdb(&self) -> Arc<Fdb> {
        self.fdb.read().expect("fdb lock").clone()
    }

    /// Removes endpoints whose container namespace or interface has vanished,
    /// leaving the others running. Returns the names removed.
    pub fn reap_vanished(&mut self) -> Vec<String> {
        let mut gone: Vec<EndpointId> = self
            .events
            .try_iter()
            .map(|e| match e {
                Event::PortDead(id) => id,
            })
            .collect();
        for slot in &self.endpoints {
            let Some(ep) = slot else { continue };
            let netns_gone = !ep.netns_path.exists();
            let link_gone = ep.kind == EndpointKind::Veth
                && matches!(netlink::link_index(&ep.host_ifname), Ok(None));
            if (netns_gone || link_gone) && !gone.contains(&ep.id) {
                gone.push(ep.id);
            }
        }
        let mut names = Vec::new();
        for id in gone {
            if let Some(name) = self.remove_endpoint(id) {
                log::warn!("endpoint {name}: its container or interface vanished; removed it, the others go on");
                names.push(name);
            }
        }
        names
    }

    /// Removes one endpoint: out of the XDP map and FDB, out of the workers, interface deleted.
    pub fn remove_endpoint(&mut self, id: EndpointId) -> Option<String> {
        self.endpoints.get(usize::from(id.0))?.as_ref()?;
        if let Err(e) = self.shim_routes(usize::from(id.0), false) {
            log::warn!("{e:#}");
        }
        let ep = self.endpoints.get_mut(usize::from(id.0))?.take()?;
        let entry = entry_of(&self.config, usize::from(id.0));
        let was_passthru = self
            .config
            .network(&self.config.endpoints[usize::from(id.0)].network)
            .is_some_and(|n| n.mode == crate::config::Mode::Passthru);
        if let Some(xdp) = self.xdp.lock().expect("xdp lock").as_mut() {
            // The passthru endpoint is gone: the parent's traffic is the host's again.
            if was_passthru {
                if let Err(e) = xdp.set_passthru(None) {
                    log::warn!("endpoint {}: {e}", ep.name);
                }
            }
            if let Err(e) = xdp.remove_endpoint(
                entry.mac,
                vid_of(
                    &self.config,
                    &self.config.endpoints[usize::from(id.0)].network,
                ),
            ) {
                log::warn!("endpoint {}: {e}", ep.name);
            }
        }
        if let (Some(fe), Some(fast)) =
            (ep.fast, self.fast.lock().expect("fast path lock").as_mut())
        {
            if let Err(e) = fast.remove_endpoint(&fe) {
                log::warn!("endpoint {}: {e}", ep.name);
            }
        }
        if let Some(pos) = self.unicast_addresses.iter().position(|m| *m == entry.mac) {
            self.unicast_addresses.swap_remove(pos);
            if let Err(e) = netlink::del_unicast_address(&self.config.parent.interface, entry.mac) {
                log::warn!("endpoint {}: {e}", ep.name);
            }
            self.record_unicast();
        }
        match self.current_fdb() {
            Ok(fdb) => self.publish(Arc::new(fdb)),
            Err(e) => log::error!("rebuilding the FDB without {}: {e}", ep.name),
        }
        for w in &self.workers {
            w.commands.send(Command::RemovePort(id)).ok();
            w.wake.wake();
        }
        drop(ep.port_prog);
        drop(ep.tap);
        if ep.kind == EndpointKind::Veth {
            if let Err(e) = netlink::delete_link(&ep.host_ifname) {
                log::warn!("endpoint {}: {e}", ep.name);
            }
        }
        Some(ep.name)
    }

    /// Applies a re-read config to the running data plane: endpoints that
    /// left the file are removed, new ones created, changed ones re-created
    /// (address, MAC, network, namespace, kind or interface name), and
    /// `allowed_sources` and `rate_limit` change in place. Networks and the
    /// rest keep their running values until a restart (logged by key).
    /// Returns the names of the endpoints touched.
    pub fn reload(&mut self, new: &Config) -> Result<Vec<String>> {
        for key in self.restart_only_changes(new) {
            log::warn!("reload: {key} changed; it takes effect at a restart");
        }
        let mut changed = Vec::new();
        let mut remove = Vec::new();
        for (i, ep) in self.config.endpoints.iter_mut().enumerate() {
            if is_shim(ep) || self.endpoints.get(i).is_none_or(Option::is_none) {
                continue;
            }
            let Some(n) = new.endpoint(&ep.name) else {
                remove.push(i);
                continue;
            };
            if n.ip != ep.ip
                || n.mac != ep.mac
                || n.network != ep.network
                || n.netns != ep.netns
                || n.kind != ep.kind
                || n.ifname != ep.ifname
            {
                remove.push(i);
                continue;
            }
            if n.allowed_sources != ep.allowed_sources || n.rate_limit != ep.rate_limit {
                ep.allowed_sources = n.allowed_sources.clone();
                ep.rate_limit = n.rate_limit;
                changed.push(ep.name.clone());
                // A rate limit is the workers' to enforce: the fast path hands
                // them all the endpoint sends while it has one.
                let state = self.endpoints.get_mut(i).and_then(Option::as_mut);
                if let Some(fe) = state.and_then(|s| s.fast.as_mut()) {
                    fe.punt_egress = n.rate_limit.is_some();
                    if let Some(fast) = self.fast.lock().expect("fast path lock").as_mut() {
                        fast.set_endpoint(fe)?;
                    }
                }
            }
        }
        for i in remove {
            if let Some(name) = self.remove_endpoint(EndpointId(i as u16)) {
                log::info!("reload: endpoint {name} removed");
                changed.push(name);
            }
        }
        // New endpoints (and the re-created ones) get ids after the last.
        let mut added = Vec::new();
        for n in &new.endpoints {
            let running = self.config.endpoints.iter().enumerate().any(|(i, e)| {
                e.name == n.name && self.endpoints.get(i).is_some_and(Option::is_some)
            });
            if running {
                continue;
            }
            if self.config.network(&n.network) != new.network(&n.network) {
                log::error!(
                    "reload: endpoint {}: its network {} is new or changed, which takes a restart; not added",
                    n.name,
                    n.network
                );
                continue;
            }
            if self.config.endpoints.len() >= crate::metrics::MAX_ENDPOINTS {
                bail!(
                    "endpoint {}: this build serves at most {} endpoints",
                    n.name,
                    crate::metrics::MAX_ENDPOINTS
                );
            }
            added.push(self.config.endpoints.len());
            self.config.endpoints.push(n.clone());
        }
        if !added.is_empty() {
            // Whatever fails leaves the endpoints created so far in place,
            // with the FDB republished, and says which one failed.
            let result = self.bring_up(&added);
            for &i in &added {
                if self.endpoints.get(i).is_some_and(Option::is_some) {
                    log::info!("reload: endpoint {} added", self.config.endpoints[i].name);
                    changed.push(self.config.endpoints[i].name.clone());
                }
            }
            if let Err(e) = result {
                let fdb = self.current_fdb()?;
                self.publish(Arc::new(fdb));
                return Err(e);
            }
        } else if !changed.is_empty() {
            self.publish(Arc::new(self.current_fdb()?));
        }
        Ok(changed)
    }

    /// The config keys that differ in `new` but only change at a restart.
    fn restart_only_changes(&self, new: &Config) -> Vec<String> {
        let old = &self.config;
        let mut keys = Vec::new();
        for (name, differs) in [
            ("parent", old.parent != new.parent),
            ("dataplane", old.dataplane != new.dataplane),
            ("workers", old.workers != new.workers),
            ("metrics", old.metrics != new.metrics),
            ("control", old.control != new.control),
        ] {
            if differs {
                keys.push(format!("[{name}]"));
            }
        }
        for n in &new.networks {
            if old.network(&n.name).is_some_and(|o| o != n) {
                keys.push(format!("network {}", n.name));
            }
        }
        keys
    }

    /// Stops the workers, detaches every XDP program and deletes every interface mvdp created.
    pub fn shutdown(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut errors = Vec::new();
        // The parent first: from here on every frame goes to the host stack.
        let xdp = self.xdp.lock().map(|mut x| x.take()).unwrap_or(None);
        if let Some(xdp) = xdp {
            if let Err(e) = xdp.detach() {
                errors.push(format!("{e}"));
            }
        }
        let mut fast = self.fast.lock().map(|mut f| f.take()).unwrap_or(None);
        if let Some(fast) = fast.as_mut() {
            if let Err(e) = fast.detach_wire() {
                errors.push(format!("{e}"));
            }
        }
        // Then the veth host ends, in one request where possible, before the
        // workers stop: the kernel detaches their programs and unbinds their
        // sockets as it deletes them, under one lock, where detaching each
        // program from a live device or closing each bound socket would wait
        // for an RCU grace period of its own (256 endpoints: 7 s instead of 3).
        // With `keep_endpoints_on_exit` they stay, for the next start to take over.
        let keep = self.config.control.keep_endpoints_on_exit;
        let endpoints: Vec<Endpoint> = self.endpoints.drain(..).flatten().collect();
        let veths: Vec<String> = endpoints
            .iter()
            .filter(|ep| ep.kind == EndpointKind::Veth && !keep)
            .map(|ep| ep.host_ifname.clone())
            .collect();
        match netlink::delete_endpoint_links(&veths) {
            Ok(failed) => errors.extend(failed.into_iter().map(|(_, e)| e.to_string())),
            Err(e) => errors.push(e.to_string()),
        }
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.workers {
            w.commands.send(Command::Stop).ok();
            w.wake.wake();
        }
        for w in self.workers.drain(..) {
            if w.thread.join().is_err() {
                errors.push("a worker panicked".into());
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Deletes the punt device.
        self.punt = None;
        if keep {
            self.unicast_addresses.clear();
        }
        for mac in self.unicast_addresses.drain(..) {
            if let Err(e) = netlink::del_unicast_address(&self.config.parent.interface, mac) {
                errors.push(format!("{e}"));
            }
        }
        if errors.is_empty() && !keep {
            let _ = std::fs::remove_file(self.unicast_record());
        }
        // Closing a TAP fd deletes its device; the programs on the deleted
        // host ends are detached already.
        drop(endpoints);
        drop(fast);
        if errors.is_empty() && keep {
            log::info!("shut down: programs detached, workers stopped; endpoint interfaces kept for the next start (keep_endpoints_on_exit)");
            Ok(())
        } else if errors.is_empty() {
            log::info!("shut down cleanly: XDP detached, workers stopped, interfaces deleted");
            Ok(())
        } else {
            bail!("shutdown: {}", errors.join("; "))
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            log::error!("{e:#}");
        }
    }
}

/// Publishes the parent XDP program's per-CPU counters, summed (zeros while
/// no program is attached: no frame went through one).
fn publish_xdp_counters(xdp: &Mutex<Option<XdpProgram>>) {
    let Ok(guard) = xdp.lock() else { return };
    let prog = guard.as_ref();
    let c = prog.and_then(|p| p.counters().ok()).unwrap_or_default();
    for (action, n) in [
        ("redirect", c.redirect),
        ("pass_host", c.pass_host),
        ("pass_group", c.pass_group),
        ("no_socket", c.no_socket),
        ("short", c.short),
        ("pass_fast", c.pass_fast),
    ] {
        metrics::counter!("mvdp_xdp_frames_total", "action" => action).absolute(n);
    }
    metrics::counter!("mvdp_xdp_rx_frames_total").absolute(c.rx);
    metrics::gauge!("mvdp_xdp_attached").set(f64::from(u8::from(prog.is_some())));
    metrics::gauge!("mvdp_xdp_native").set(f64::from(u8::from(
        prog.is_some_and(|p| p.attached_mode() == crate::io::xdp::AttachedMode::Native),
    )));
}

/// Publishes whether the fast path is on, how many endpoints it serves, the
/// frames it decided itself (from the wire, from containers), those it
/// handed to the workers and those from the wire it left to the host.
fn publish_fast_path_state(fast: &Mutex<Option<FastPath>>) {
    let Ok(guard) = fast.lock() else { return };
    let fp = guard.as_ref();
    metrics::gauge!("mvdp_fast_path_active").set(f64::from(u8::from(fp.is_some())));
    metrics::gauge!("mvdp_fast_path_endpoints").set(fp.map_or(0, FastPath::ports) as f64);
    let c = fp.and_then(|fp| fp.counters().ok());
    for (action, n) in [
        ("from_wire", c.map_or(0, |c| c.rx_wire)),
        ("from_endpoint", c.map_or(0, |c| c.rx_endpoint)),
        ("punted", c.map_or(0, |c| c.punted)),
        ("group_copied", c.map_or(0, |c| c.group_copied)),
        ("passed", c.map_or(0, |c| c.passed)),
    ] {
        metrics::counter!("mvdp_fast_path_frames_total", "action" => action).absolute(n);
    }
}

/// What the group listener thread works with.
struct GroupPath {
    listener: GroupListener,
    fdb: Arc<RwLock<Arc<Fdb>>>,
    generation: Arc<AtomicU64>,
    /// One bounded queue per network, by `NetworkId`; network k is worker
    /// (k mod workers)'s.
    out: Vec<Sender<GroupFrame>>,
    /// Each worker's queue for frames with exactly one receiver.
    express: Vec<Sender<GroupFrame>>,
    /// Each worker's wake-up.
    wakes: Vec<Arc<crate::dataplane::EventFd>>,
    /// Buffers the workers are done with.
    recycle: Receiver<Vec<u8>>,
    stats: Arc<WorkerStats>,
    stop: Arc<AtomicBool>,
}

/// Copies broadcast/multicast frames from the parent to the workers,
/// classified once here: through the bounded queue of the network that owns
/// the frame's VLAN, or the express queue for a single receiver. A frame
/// whose queue is full is dropped whole, counted as `flood_queue_full`. It
/// takes what the socket holds, a batch at most, then wakes each worker that
/// got frames once.
fn group_listener(p: GroupPath, cap: usize) {
    let mut buf = vec![0u8; cap];
    let mut seen = p.generation.load(Ordering::Acquire);
    let mut snapshot = p.fdb.read().expect("fdb lock").clone();
    let mut woken = vec![false; p.wakes.len()];
    let workers = p.wakes.len();
    while !p.stop.load(Ordering::Relaxed) {
        let now = p.generation.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            snapshot = p.fdb.read().expect("fdb lock").clone();
        }
        // The first frame is waited for (up to the socket's timeout); the
        // rest of the batch is what is queued already.
        let mut wait = true;
        for _ in 0..LISTENER_BATCH {
            let frame = match p.listener.recv(&mut buf, wait) {
                Ok(Some(range)) => &buf[range],
                Ok(None) => break,
                Err(e) => {
                    log::warn!("group listener: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            };
            wait = false;
            p.stats.received(Source::WireGroup, 1);
            let verdict = classify_ingress(&snapshot, frame);
            let (queue, worker) = match verdict {
                Verdict::Flood(flood) => {
                    let mut receivers = 0;
                    flood_targets(&snapshot, &flood, |_| receivers += 1);
                    let net = usize::from(flood.network.0);
                    let worker = net % workers;
                    if receivers == 1 {
                        (&p.express[worker], worker)
                    } else {
                        (&p.out[net], worker)
                    }
                }
                Verdict::Endpoint(id) | Verdict::EndpointUntag(id) => {
                    let net = snapshot
                        .endpoint(id)
                        .map_or(0, |e| usize::from(e.network.0));
                    (&p.express[net % workers], net % workers)
                }
                Verdict::Drop(r) => {
                    // Nobody may receive it (a VLAN no network owns, a bridge
                    // endpoint's own frame coming back): counted here, not queued.
                    p.stats.dropped(r);
                    continue;
                }
                Verdict::Wire { .. } => {
                    p.stats.dropped(DropReason::NoEndpoint);
                    continue;
                }
            };
            let mut copy = p.recycle.try_recv().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(frame);
            match queue.try_send(GroupFrame { verdict, buf: copy }) {
                Ok(()) => woken[worker] = true,
                Err(TrySendError::Full(_)) => p.stats.dropped(DropReason::FloodQueueFull),
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        // After the last frame of the batch is queued: a worker that drains
        // its queue before this still wakes once more and finds the rest.
        for (w, woke) in woken.iter_mut().enumerate() {
            if std::mem::take(woke) {
                p.wakes[w].wake();
            }
        }
    }
}
