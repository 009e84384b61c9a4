//! The group listener: broadcast and multicast frames from the parent, when
//! the fast path does not copy them to the workers (it is off, or a
//! passthru network wants the parent promiscuous), classified once and
//! queued per network.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::LISTENER_BATCH;
use crate::dataplane::send_snoop;
use crate::dataplane::GroupFrame;
use crate::io::packet::{FrameFault, GroupListener};
use crate::metrics::{Source, WorkerStats};
use crate::switch::{
    classify_ingress, flood_targets, snoop_query, DropReason, Fdb, GroupTable, SnoopEvent, Verdict,
};

/// What the group listener thread works with.
pub(super) struct GroupPath {
    pub listener: GroupListener,
    pub fdb: Arc<RwLock<Arc<Fdb>>>,
    pub generation: Arc<AtomicU64>,
    /// The multicast group table, and its generation.
    pub groups: Arc<RwLock<Arc<GroupTable>>>,
    pub groups_generation: Arc<AtomicU64>,
    /// Queries from the wire, for the snooping thread.
    pub snoops: Sender<SnoopEvent>,
    /// One bounded queue per network, by `NetworkId`; network k is worker
    /// (k mod workers)'s. The control thread adds a network's queue before
    /// it publishes an FDB with the network; the listener takes a fresh
    /// copy with each new FDB.
    pub out: Arc<Mutex<Vec<Sender<GroupFrame>>>>,
    /// Each worker's queue for frames with exactly one receiver.
    pub express: Vec<Sender<GroupFrame>>,
    /// Each worker's wake-up.
    pub wakes: Vec<Arc<crate::dataplane::EventFd>>,
    /// Buffers the workers are done with.
    pub recycle: Receiver<Vec<u8>>,
    pub stats: Arc<WorkerStats>,
    pub stop: Arc<AtomicBool>,
}

/// Copies broadcast/multicast frames from the parent to the workers,
/// classified once here: through the bounded queue of the network that owns
/// the frame's VLAN, or the express queue for a single receiver. A frame
/// whose queue is full is dropped whole, counted as `flood_queue_full`. It
/// takes what the socket holds, a batch at most, then wakes each worker that
/// got frames once.
pub(super) fn group_listener(p: GroupPath, cap: usize) {
    let mut buf = vec![0u8; cap];
    let mut seen = p.generation.load(Ordering::Acquire);
    let mut snapshot = p.fdb.read().expect("fdb lock").clone();
    let mut groups_seen = p.groups_generation.load(Ordering::Acquire);
    let mut groups = p.groups.read().expect("groups lock").clone();
    let mut out = p.out.lock().expect("flood queues lock").clone();
    let mut woken = vec![false; p.wakes.len()];
    let workers = p.wakes.len();
    while !p.stop.load(Ordering::Relaxed) {
        // The first frame is waited for (up to the socket's timeout); the
        // rest of the batch is what is queued already.
        let mut wait = true;
        for _ in 0..LISTENER_BATCH {
            let frame = match p.listener.recv(&mut buf, wait) {
                Ok(Some(Ok(range))) => &buf[range],
                Ok(Some(Err(fault))) => {
                    wait = false;
                    p.stats.received(Source::WireGroup, 1);
                    p.stats.dropped(match fault {
                        FrameFault::Short => DropReason::Malformed,
                        FrameFault::TooLong => DropReason::TooLong,
                    });
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("group listener: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            };
            wait = false;
            // Checked per frame: the first frame of a batch was waited for,
            // and a snapshot from before the wait would miss a join made
            // meanwhile (two atomic loads; the locks only on a change).
            let now = p.generation.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                snapshot = p.fdb.read().expect("fdb lock").clone();
                out = p.out.lock().expect("flood queues lock").clone();
            }
            let now = p.groups_generation.load(Ordering::Acquire);
            if now != groups_seen {
                groups_seen = now;
                groups = p.groups.read().expect("groups lock").clone();
            }
            p.stats.received(Source::WireGroup, 1);
            if let Some(net) = snoop_query(&snapshot, frame) {
                send_snoop(&p.snoops, &p.stats, SnoopEvent::Query(net));
            }
            let verdict = classify_ingress(&snapshot, frame);
            let (queue, worker) = match verdict {
                Verdict::Flood(flood) => {
                    let mut receivers = 0;
                    flood_targets(&snapshot, &groups, &flood, |_| receivers += 1);
                    let net = usize::from(flood.network.0);
                    let worker = net % workers;
                    if receivers == 0 && flood.group.is_some() {
                        p.stats.dropped(DropReason::NoGroupMember);
                        continue;
                    }
                    if receivers == 1 {
                        (&p.express[worker], worker)
                    } else {
                        match out.get(net) {
                            Some(queue) => (queue, worker),
                            // Queues are added before the FDB that names their network.
                            None => {
                                p.stats.dropped(DropReason::Internal);
                                continue;
                            }
                        }
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
                // Not produced for wire ingress.
                Verdict::Wire { .. } => {
                    p.stats.dropped(DropReason::Internal);
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
