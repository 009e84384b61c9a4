//! Counters and the Prometheus exporter.
//!
//! Workers count into their own [`WorkerStats`] (single writer, relaxed
//! load+store, no lock prefix, no label lookup); the exporter sums the workers
//! at scrape time and renders through `metrics-exporter-prometheus`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::switch::{DropReason, EndpointId, Fdb};

/// Adds `n` to a counter that only the calling thread writes.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A socket's kernel ring statistics, published by the thread that owns
/// the socket for the exporter to read.
#[derive(Debug, Default)]
pub struct XskCounters([AtomicU64; 6]);

impl XskCounters {
    /// Publishes a fresh reading.
    pub fn store(&self, s: &crate::io::xsk::XskStats) {
        let values = [
            s.rx_dropped,
            s.rx_invalid_descs,
            s.tx_invalid_descs,
            s.rx_ring_full,
            s.rx_fill_ring_empty_descs,
            s.tx_ring_empty_descs,
        ];
        for (c, v) in self.0.iter().zip(values) {
            c.store(v, Relaxed);
        }
    }

    /// The last reading published.
    pub fn load(&self) -> crate::io::xsk::XskStats {
        let [a, b, c, d, e, f] = [0, 1, 2, 3, 4, 5].map(|i| self.0[i].load(Relaxed));
        crate::io::xsk::XskStats {
            rx_dropped: a,
            rx_invalid_descs: b,
            tx_invalid_descs: c,
            rx_ring_full: d,
            rx_fill_ring_empty_descs: e,
            tx_ring_empty_descs: f,
        }
    }
}

/// Per-endpoint counters, as seen from mvdp's side of the endpoint port.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct EndpointCounters {
    /// Frames received from the container (its egress).
    pub rx_packets: AtomicU64,
    /// Bytes received from the container.
    pub rx_bytes: AtomicU64,
    /// Frames delivered to the container.
    pub tx_packets: AtomicU64,
    /// Bytes delivered to the container.
    pub tx_bytes: AtomicU64,
    /// Frames of this endpoint that were dropped: ones the container sent
    /// (spoofed source, VLAN hop, over its rate limit, ...) and ones
    /// addressed to it that could not be delivered (its ring full, no free
    /// UMEM frame, ...). Each is also counted under its [`DropReason`], or as
    /// a lost flood copy: this attributes a drop, it is not one more.
    pub dropped: AtomicU64,
}

// One cache line per endpoint, so workers never share one.
const _: () = assert!(std::mem::size_of::<EndpointCounters>() == 64);

impl EndpointCounters {
    fn reset(&self) {
        for c in [
            &self.rx_packets,
            &self.rx_bytes,
            &self.tx_packets,
            &self.tx_bytes,
            &self.dropped,
        ] {
            c.store(0, Relaxed);
        }
    }
}

/// Where a frame entered mvdp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    /// The parent's AF_XDP socket.
    Wire = 0,
    /// The parent's group listener (broadcast/multicast from the wire).
    WireGroup = 1,
    /// A container.
    Endpoint = 2,
}

const SOURCES: [(Source, &str); 3] = [
    (Source::Wire, "wire"),
    (Source::WireGroup, "wire_group"),
    (Source::Endpoint, "endpoint"),
];

/// Upper bounds of the batch-size histogram buckets.
pub const BATCH_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, usize::MAX];

/// One worker's counters. Only that worker writes them.
#[derive(Debug)]
pub struct WorkerStats {
    /// Label of the worker: its RX queue, "group" for the group listener,
    /// "querier" for the snooping thread's queries.
    pub queue: String,
    /// Per-endpoint counters, indexed by `EndpointId`.
    pub endpoints: Box<[EndpointCounters]>,
    /// Frames that entered, by [`Source`].
    pub received: [AtomicU64; 3],
    /// Frames delivered to at least one destination.
    pub delivered: AtomicU64,
    /// Frames dropped, by [`DropReason`] (indexed by its discriminant).
    pub drops: [AtomicU64; DropReason::ALL.len()],
    /// Copies of group frames that could not be made or sent (not frames: see `drops`).
    pub flood_copy_drops: AtomicU64,
    /// Frames sent out of the parent.
    pub wire_tx_packets: AtomicU64,
    /// Histogram of non-empty RX batch sizes (buckets: [`BATCH_BUCKETS`]).
    pub batches: [AtomicU64; BATCH_BUCKETS.len()],
    /// Times the worker slept in poll().
    pub sleeps: AtomicU64,
    /// UMEM frames on the worker's free list, as of its last idle moment.
    pub umem_free: AtomicU64,
    /// Times the worker found no free UMEM frame when it needed one.
    pub umem_exhausted: AtomicU64,
    /// Whether the worker serves its parent socket (false before it runs
    /// and after it ends): the socket figures below are current only then.
    pub has_socket: AtomicBool,
    /// The parent socket's kernel ring statistics, as the worker last read
    /// them (it reads them itself: the socket is the worker's alone, and
    /// no other thread ever holds its fd).
    pub xsk: XskCounters,
    /// The same for the fast path's punt socket on this worker.
    pub xsk_punt: XskCounters,
    /// The same summed over the worker's endpoint sockets, removed ones
    /// included (so the sums never go back).
    pub xsk_endpoints: XskCounters,
    /// Fewest free UMEM frames the worker has seen since the metrics
    /// thread last took the figure (u64::MAX: not seen since).
    pub umem_free_min: AtomicU64,
    /// Whether the worker's thread runs (false once it has ended, by a panic or a stop).
    pub alive: std::sync::atomic::AtomicBool,
    /// Membership messages seen on snooping networks, by [`SNOOP_KINDS`].
    pub snoops: [AtomicU64; 3],
    /// Snoop events lost because the snooping thread's channel was full.
    pub snoop_dropped: AtomicU64,
}

/// Label values of [`WorkerStats::snoops`], in index order.
pub const SNOOP_KINDS: [&str; 3] = ["join", "leave", "query"];

impl WorkerStats {
    /// Zeroed counters for the worker labelled `queue`.
    pub fn new(queue: String) -> WorkerStats {
        WorkerStats {
            queue,
            endpoints: (0..crate::switch::ENDPOINT_SLOTS)
                .map(|_| EndpointCounters::default())
                .collect(),
            received: Default::default(),
            delivered: AtomicU64::new(0),
            drops: Default::default(),
            flood_copy_drops: AtomicU64::new(0),
            wire_tx_packets: AtomicU64::new(0),
            batches: Default::default(),
            sleeps: AtomicU64::new(0),
            umem_free: AtomicU64::new(0),
            umem_exhausted: AtomicU64::new(0),
            has_socket: AtomicBool::new(false),
            xsk: XskCounters::default(),
            xsk_punt: XskCounters::default(),
            xsk_endpoints: XskCounters::default(),
            umem_free_min: AtomicU64::new(u64::MAX),
            alive: std::sync::atomic::AtomicBool::new(false),
            snoops: Default::default(),
            snoop_dropped: AtomicU64::new(0),
        }
    }

    /// Counts a membership message seen.
    #[inline]
    pub fn snooped(&self, event: crate::switch::SnoopEvent) {
        use crate::switch::SnoopEvent;
        let i = match event {
            SnoopEvent::Join(..) => 0,
            SnoopEvent::Leave(..) => 1,
            SnoopEvent::Query(_) => 2,
        };
        bump(&self.snoops[i], 1);
    }

    /// Counts a frame that entered.
    #[inline(always)]
    pub fn received(&self, src: Source, n: u64) {
        bump(&self.received[src as usize], n);
    }

    /// Counts a dropped frame.
    #[inline(always)]
    pub fn dropped(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    /// Counts a dropped frame that belonged to endpoint `id`: sent by it, or
    /// addressed to it.
    #[inline(always)]
    pub fn dropped_for(&self, reason: DropReason, id: EndpointId) {
        self.dropped(reason);
        self.endpoint_dropped(id);
    }

    /// Counts a copy of a group frame for endpoint `to` that could not be
    /// made or sent: a lost copy overall, a lost frame for `to`.
    #[inline(always)]
    pub fn flood_copy_dropped(&self, to: EndpointId) {
        bump(&self.flood_copy_drops, 1);
        self.endpoint_dropped(to);
    }

    #[inline(always)]
    fn endpoint_dropped(&self, id: EndpointId) {
        if let Some(c) = self.endpoints.get(usize::from(id.0)) {
            bump(&c.dropped, 1);
        }
    }

    /// Counts a moment when the worker had no free UMEM frame.
    #[inline(always)]
    pub fn umem_exhausted(&self) {
        bump(&self.umem_exhausted, 1);
    }

    /// Counts one RX batch of `n` frames (n > 0).
    #[inline(always)]
    pub fn batch(&self, n: usize) {
        let i = BATCH_BUCKETS
            .iter()
            .position(|&b| n <= b)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        bump(&self.batches[i], 1);
    }

    /// Forgets an endpoint slot's counters before the slot is reused.
    pub fn reset_endpoint(&self, id: EndpointId) {
        if let Some(c) = self.endpoints.get(usize::from(id.0)) {
            c.reset();
        }
    }
}

/// Totals over all workers, for tests, the demo and the exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames that entered, by source (wire, wire_group, endpoint).
    pub received: [u64; 3],
    /// Frames delivered.
    pub delivered: u64,
    /// Drops by reason.
    pub drops: [u64; DropReason::ALL.len()],
    /// Group-frame copies lost.
    pub flood_copy_drops: u64,
    /// Frames sent out of the parent.
    pub wire_tx_packets: u64,
}

impl Totals {
    /// Adds another tier's totals to these.
    pub fn add(&mut self, other: &Totals) {
        for (a, b) in self.received.iter_mut().zip(other.received) {
            *a += b;
        }
        self.delivered += other.delivered;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
        self.flood_copy_drops += other.flood_copy_drops;
        self.wire_tx_packets += other.wire_tx_packets;
    }

    /// Frames received from every source.
    pub fn received_all(&self) -> u64 {
        self.received.iter().sum()
    }

    /// Frames dropped for every reason.
    pub fn dropped_all(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Sums the counters of all workers.
pub fn totals(workers: &[Arc<WorkerStats>]) -> Totals {
    let mut t = Totals::default();
    for w in workers {
        for (i, c) in w.received.iter().enumerate() {
            t.received[i] += c.load(Relaxed);
        }
        t.delivered += w.delivered.load(Relaxed);
        for (i, c) in w.drops.iter().enumerate() {
            t.drops[i] += c.load(Relaxed);
        }
        t.flood_copy_drops += w.flood_copy_drops.load(Relaxed);
        t.wire_tx_packets += w.wire_tx_packets.load(Relaxed);
    }
    t
}

/// One endpoint's counters summed over workers or tiers (meanings as in
/// [`EndpointCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointTotals {
    /// Frames received from the container.
    pub rx_packets: u64,
    /// Bytes received from the container.
    pub rx_bytes: u64,
    /// Frames delivered to the container.
    pub tx_packets: u64,
    /// Bytes delivered to the container.
    pub tx_bytes: u64,
    /// Frames it sent, or that were addressed to it, that were dropped.
    pub dropped: u64,
}

impl EndpointTotals {
    /// Adds another tier's counters of the same endpoint to these.
    pub fn add(&mut self, other: &EndpointTotals) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.dropped += other.dropped;
    }
}

/// One endpoint's counters summed over all workers.
pub fn endpoint_totals(workers: &[Arc<WorkerStats>], id: EndpointId) -> EndpointTotals {
    let mut out = EndpointTotals::default();
    for w in workers {
        let c = &w.endpoints[usize::from(id.0)];
        out.rx_packets += c.rx_packets.load(Relaxed);
        out.rx_bytes += c.rx_bytes.load(Relaxed);
        out.tx_packets += c.tx_packets.load(Relaxed);
        out.tx_bytes += c.tx_bytes.load(Relaxed);
        out.dropped += c.dropped.load(Relaxed);
    }
    out
}

/// Something that adds its own figures at scrape time (XDP program counters, ...).
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// Families rendered by their owner as Prometheus text, appended at every
/// scrape: for series that must leave with the thing they describe, gauges
/// included (the recorder keeps a gauge until the process ends).
pub type TextSource = Box<dyn Fn() -> String + Send + Sync>;

/// Frames counted outside the workers (the kernel fast path), under the same
/// meanings, added to the workers' counters at scrape time so that every
/// series covers both tiers.
pub trait CounterSource: Send + Sync {
    /// This tier's totals.
    fn totals(&self) -> Totals;
    /// One endpoint's counters.
    fn endpoint(&self, id: EndpointId) -> EndpointTotals;
}

/// The state the exporter reads at scrape time.
pub struct Exporter {
    handle: PrometheusHandle,
    /// Every worker's counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The FDB in force (names and labels of endpoints), replaced by the control thread.
    pub fdb: Arc<std::sync::RwLock<Arc<Fdb>>>,
    hooks: Vec<ScrapeHook>,
    sources: Vec<Arc<dyn CounterSource>>,
    texts: Vec<TextSource>,
}

/// How long after its last write a counter leaves `/metrics`: render writes
/// every live one, so only a removed endpoint's series go.
const REMOVED_SERIES_TIMEOUT: Duration = Duration::from_secs(1);

impl Exporter {
    /// Installs the global Prometheus recorder. Call once per process.
    pub fn install(
        workers: Vec<Arc<WorkerStats>>,
        fdb: Arc<std::sync::RwLock<Arc<Fdb>>>,
    ) -> anyhow::Result<Exporter> {
        // Every live counter is written at each scrape (`render`), so one
        // that was not is a removed endpoint's: it leaves the output rather
        // than being exported, frozen, for the life of the process.
        let handle = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::COUNTER, Some(REMOVED_SERIES_TIMEOUT))
            .install_recorder()?;
        describe();
        metrics::gauge!(
            "mvdp_build_info",
            "version" => env!("CARGO_PKG_VERSION"),
            "kernel" => kernel_release()
        )
        .set(1.0);
        metrics::gauge!("mvdp_start_time_seconds").set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        Ok(Exporter {
            handle,
            workers,
            fdb,
            hooks: Vec::new(),
            sources: Vec::new(),
            texts: Vec::new(),
        })
    }

    /// Adds a tier whose counters are summed with the workers'.
    pub fn add_source(&mut self, source: Arc<dyn CounterSource>) {
        self.sources.push(source);
    }

    /// Frame totals over the workers and every added tier.
    pub fn totals(&self) -> Totals {
        let mut t = totals(&self.workers);
        for s in &self.sources {
            t.add(&s.totals());
        }
        t
    }

    /// Adds families rendered as text at every scrape, after the recorder's.
    pub fn add_text(&mut self, source: TextSource) {
        self.texts.push(source);
    }

    /// Adds a hook run at every scrape before rendering.
    pub fn add_hook(&mut self, hook: ScrapeHook) {
        self.hooks.push(hook);
    }

    /// Publishes the current counters and renders the Prometheus text.
    pub fn render(&self) -> String {
        let fdb = self.fdb.read().expect("fdb lock").clone();
        for (id, ep) in fdb.endpoints() {
            let net = fdb.network(ep.network).name.clone();
            let mut sums = endpoint_totals(&self.workers, id);
            for s in &self.sources {
                sums.add(&s.endpoint(id));
            }
            let labels = [("endpoint", ep.name.clone()), ("network", net)];
            metrics::counter!("mvdp_endpoint_rx_packets_total", &labels).absolute(sums.rx_packets);
            metrics::counter!("mvdp_endpoint_rx_bytes_total", &labels).absolute(sums.rx_bytes);
            metrics::counter!("mvdp_endpoint_tx_packets_total", &labels).absolute(sums.tx_packets);
            metrics::counter!("mvdp_endpoint_tx_bytes_total", &labels).absolute(sums.tx_bytes);
            metrics::counter!("mvdp_endpoint_dropped_frames_total", &labels).absolute(sums.dropped);
        }
        metrics::gauge!("mvdp_fdb_entries").set(fdb.len() as f64);
        let t = self.totals();
        for (src, name) in SOURCES {
            metrics::counter!("mvdp_frames_received_total", "source" => name)
                .absolute(t.received[src as usize]);
        }
        metrics::counter!("mvdp_frames_delivered_total").absolute(t.delivered);
        for r in DropReason::ALL {
            metrics::counter!("mvdp_drops_total", "reason" => r.as_str())
                .absolute(t.drops[r as usize]);
        }
        metrics::counter!("mvdp_flood_copy_drops_total").absolute(t.flood_copy_drops);
        metrics::counter!("mvdp_wire_tx_packets_total").absolute(t.wire_tx_packets);
        for (i, kind) in SNOOP_KINDS.iter().enumerate() {
            let n = self.workers.iter().map(|w| w.snoops[i].load(Relaxed)).sum();
            metrics::counter!("mvdp_multicast_reports_total", "kind" => *kind).absolute(n);
        }
        let lost = self
            .workers
            .iter()
            .map(|w| w.snoop_dropped.load(Relaxed))
            .sum();
        metrics::counter!("mvdp_multicast_events_dropped_total").absolute(lost);
        for w in &self.workers {
            let queue = w.queue.clone();
            for (i, b) in BATCH_BUCKETS.iter().enumerate() {
                let le = if *b == usize::MAX {
                    "+Inf".to_string()
                } else {
                    b.to_string()
                };
                metrics::counter!("mvdp_worker_rx_batches_total", "queue" => queue.clone(), "size" => le)
                    .absolute(w.batches[i].load(Relaxed));
            }
            metrics::counter!("mvdp_worker_sleeps_total", "queue" => queue.clone())
                .absolute(w.sleeps.load(Relaxed));
            if w.queue != "group" && w.queue != "querier" {
                metrics::gauge!("mvdp_worker_up", "queue" => queue.clone())
                    .set(f64::from(u8::from(w.alive.load(Relaxed))));
            }
            if w.has_socket.load(Relaxed) {
                let free = w.umem_free.load(Relaxed);
                metrics::gauge!("mvdp_umem_free_frames", "queue" => queue.clone()).set(free as f64);
                // The worker only lowers it; taking it starts the next interval.
                let least = match w.umem_free_min.swap(u64::MAX, Relaxed) {
                    u64::MAX => free,
                    v => v,
                };
                metrics::gauge!("mvdp_umem_free_frames_min", "queue" => queue.clone())
                    .set(least as f64);
                metrics::counter!("mvdp_umem_exhausted_total", "queue" => queue.clone())
                    .absolute(w.umem_exhausted.load(Relaxed));
                for (socket, counters) in [
                    ("parent", &w.xsk),
                    ("punt", &w.xsk_punt),
                    ("endpoints", &w.xsk_endpoints),
                ] {
                    let s = counters.load();
                    let l = || [("queue", queue.clone()), ("socket", socket.to_string())];
                    metrics::counter!("mvdp_xsk_rx_dropped_total", &l()).absolute(s.rx_dropped);
                    metrics::counter!("mvdp_xsk_rx_ring_full_total", &l()).absolute(s.rx_ring_full);
                    metrics::counter!("mvdp_xsk_rx_invalid_descs_total", &l())
                        .absolute(s.rx_invalid_descs);
                    metrics::counter!("mvdp_xsk_tx_invalid_descs_total", &l())
                        .absolute(s.tx_invalid_descs);
                    metrics::counter!("mvdp_xsk_fill_ring_empty_total", &l())
                        .absolute(s.rx_fill_ring_empty_descs);
                    metrics::counter!("mvdp_xsk_tx_ring_empty_total", &l())
                        .absolute(s.tx_ring_empty_descs);
                }
            }
        }
        for hook in &self.hooks {
            hook();
        }
        let mut text = self.handle.render();
        for source in &self.texts {
            text.push_str(&source());
        }
        text
    }
}

/// The running kernel's release (`uname -r`).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// HELP text (and units, where the name has none of its own) for every
/// family mvdp exports; `promtool check metrics` wants one on each.
fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    for (name, help) in [
        ("mvdp_frames_received_total", "Frames that entered mvdp (both tiers), by source: wire (the parent's AF_XDP socket or the fast path), group (broadcast and multicast from the wire), endpoint (what containers sent)."),
        ("mvdp_frames_delivered_total", "Frames delivered to at least one destination (both tiers)."),
        ("mvdp_drops_total", "Frames dropped, by reason; received = delivered + the sum of these."),
        ("mvdp_flood_copy_drops_total", "Copies of group frames that could not be made or sent (copies, not frames)."),
        ("mvdp_wire_tx_packets_total", "Frames sent out of the parent interface."),
        ("mvdp_multicast_reports_total", "IGMP/MLD messages snooped on networks with multicast = \"snoop\", by kind: join (a report: joined or still joined), leave, query (from the wire). Per group record for IGMPv3/MLDv2."),
        ("mvdp_multicast_events_dropped_total", "Snooped membership changes lost because the snooping thread's queue was full (the next report repairs them)."),
        ("mvdp_endpoint_rx_packets_total", "Frames received from an endpoint's container."),
        ("mvdp_endpoint_tx_packets_total", "Frames delivered to an endpoint's container."),
        ("mvdp_endpoint_dropped_frames_total", "Frames of an endpoint that were dropped (both tiers): ones its container sent (spoofed source, VLAN hop, over its rate limit, ...) and ones addressed to it that could not be delivered (its ring full, no free buffer, ...). Each is also in mvdp_drops_total, or in mvdp_flood_copy_drops_total for a copy of a group frame."),
        ("mvdp_worker_rx_batches_total", "Non-empty RX batches of a worker, by size bucket (size: at most that many frames; not cumulative)."),
        ("mvdp_worker_sleeps_total", "Times a worker slept in poll(2)."),
        ("mvdp_umem_exhausted_total", "Times a worker needed a UMEM frame and had none free."),
        ("mvdp_xsk_rx_dropped_total", "Frames the kernel dropped at one of a worker's AF_XDP sockets (socket: parent, punt, or endpoints summed), before mvdp saw them: RX ring full or no fill-ring buffer (the worker did not keep up)."),
        ("mvdp_xsk_rx_ring_full_total", "Times an AF_XDP socket's RX ring was full (socket: parent, punt, endpoints)."),
        ("mvdp_xsk_rx_invalid_descs_total", "Invalid descriptors on an AF_XDP socket's RX side (socket: parent, punt, endpoints)."),
        ("mvdp_xsk_tx_invalid_descs_total", "Invalid descriptors on an AF_XDP socket's TX ring (socket: parent, punt, endpoints)."),
        ("mvdp_xsk_fill_ring_empty_total", "Times the kernel found an AF_XDP socket's fill ring empty (frames waited for buffers; socket: parent, punt, endpoints)."),
        ("mvdp_xsk_tx_ring_empty_total", "Times the kernel found an AF_XDP socket's TX ring empty (socket: parent, punt, endpoints)."),
        ("mvdp_xdp_rx_frames_total", "Frames the parent's XDP program saw."),
        ("mvdp_xdp_frames_total", "Frames of the parent's XDP program, by action."),
        ("mvdp_fast_path_frames_total", "Frames of the kernel fast path, by action."),
    ] {
        describe_counter!(name, help);
    }
    for (name, help) in [
        (
            "mvdp_endpoint_rx_bytes_total",
            "Bytes received from an endpoint's container.",
        ),
        (
            "mvdp_endpoint_tx_bytes_total",
            "Bytes delivered to an endpoint's container.",
        ),
    ] {
        describe_counter!(name, Unit::Bytes, help);
    }
    for (name, help) in [
        (
            "mvdp_build_info",
            "mvdp's version and the kernel it runs on; always 1.",
        ),
        (
            "mvdp_start_time_seconds",
            "When the daemon started, in seconds since the Unix epoch.",
        ),
        ("mvdp_fdb_entries", "Endpoints in the forwarding table."),
        (
            "mvdp_multicast_groups",
            "Groups (by group MAC) with at least one member on a snooping network.",
        ),
        (
            "mvdp_umem_free_frames",
            "UMEM frames on a worker's free list, as of its last idle moment.",
        ),
        (
            "mvdp_umem_free_frames_min",
            "Fewest UMEM frames a worker had free since the previous scrape (the UMEM's size less this is the most frames in flight).",
        ),
        ("mvdp_worker_up", "1 while the worker of an RX queue runs."),
        (
            "mvdp_xdp_attached",
            "1 while mvdp's XDP program is attached to the parent.",
        ),
        (
            "mvdp_xdp_native",
            "1 while that program runs in native (driver) mode.",
        ),
        (
            "mvdp_fast_path_active",
            "1 while the kernel fast path is on.",
        ),
        (
            "mvdp_fast_path_endpoints",
            "Endpoints whose unicast the fast path carries.",
        ),
        (
            "mvdp_parent_mac_filter",
            "How the parent accepts endpoint MACs: 1 on the mode in use.",
        ),
    ] {
        describe_gauge!(name, help);
    }
}

/// Serves `GET /metrics` on `listener` until `stop` is set. Minimal HTTP/1.0, one request per connection.
pub fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("mvdp-metrics".into()).spawn(move || {
        while !stop.load(Relaxed) {
            let (mut conn, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(e) => {
                    log::warn!("metrics: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let mut reader = BufReader::new(&conn);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the request headers.
            let mut h = String::new();
            while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" || path == "/" {
                ("200 OK", exporter.render())
            } else {
                ("404 Not Found", "only /metrics is served\n".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drop attributed to an endpoint is one drop under its reason (or one
    /// lost flood copy) and one for that endpoint alone, whichever worker
    /// counted it; a reused slot starts from zero.
    #[test]
    fn endpoint_drops_attribute_without_adding() {
        let (a, b) = (
            Arc::new(WorkerStats::new("0".into())),
            Arc::new(WorkerStats::new("1".into())),
        );
        let (e1, e2) = (EndpointId(1), EndpointId(2));
        a.dropped_for(DropReason::SpoofedSource, e1);
        b.dropped_for(DropReason::TxFull, e1);
        b.flood_copy_dropped(e2);
        a.dropped(DropReason::NoEndpoint);
        let workers = [a.clone(), b.clone()];

        let t = totals(&workers);
        assert_eq!(t.dropped_all(), 3);
        assert_eq!(t.drops[DropReason::SpoofedSource as usize], 1);
        assert_eq!(t.drops[DropReason::TxFull as usize], 1);
        assert_eq!(t.flood_copy_drops, 1);
        assert_eq!(endpoint_totals(&workers, e1).dropped, 2);
        assert_eq!(
            endpoint_totals(&workers, e2),
            EndpointTotals {
                dropped: 1,
                ..EndpointTotals::default()
            }
        );
        assert_eq!(endpoint_totals(&workers, EndpointId(0)).dropped, 0);

        // The fast path's figures add to the workers'.
        let mut sum = endpoint_totals(&workers, e1);
        sum.add(&EndpointTotals {
            rx_packets: 4,
            rx_bytes: 400,
            tx_packets: 0,
            tx_bytes: 0,
            dropped: 3,
        });
        assert_eq!((sum.rx_packets, sum.rx_bytes, sum.dropped), (4, 400, 5));

        for w in &workers {
            w.reset_endpoint(e1);
        }
        assert_eq!(endpoint_totals(&workers, e1), EndpointTotals::default());
        assert_eq!(endpoint_totals(&workers, e2).dropped, 1);
    }
}
