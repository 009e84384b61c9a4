//! The snooping thread: the one writer of the multicast group table.
//!
//! Workers and the group listener send what they snoop (joins and leaves
//! from container egress, queries from the wire) over a bounded channel;
//! this thread wakes on each event, applies it, and publishes a new
//! [`GroupTable`] snapshot to the workers (a command each) and to the group
//! listener and the exporter (a shared slot), so a join reaches the flood
//! path within milliseconds. Once a second it also ages memberships out and
//! forgets the endpoints the FDB no longer holds.
//!
//! It also queries, when the control thread asks for a network whose
//! containers may be members mvdp has not heard join: endpoints taken over
//! from an earlier mvdp (a restart), or a network that starts snooping.
//! The control thread asks once it has published the FDB that holds the
//! new endpoints (a report from an endpoint the FDB does not hold yet is
//! discarded). This thread sends an IGMPv3 and an MLDv2 general query into
//! that network's containers (never onto the wire) once the request is
//! [`QUERY_DELAY`] old, one query for a burst of requests (endpoints taken
//! over one by one), so that they report now, rather than at the LAN
//! querier's next round, or never where there is none.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::dataplane::{Command, EventFd, GroupFrame};
use crate::metrics::{Source, WorkerStats};
use crate::switch::{
    DropReason, EndpointId, Fdb, Flood, FloodRule, GroupTable, Memberships, Mode, NetworkId,
    SnoopEvent, Verdict,
};
use crate::wire::mcast::{igmp_general_query, mld_general_query};

/// Bound of the channel of snoop events (overflow is counted by the sender).
pub(super) const SNOOP_QUEUE_LEN: usize = 4096;
/// How often memberships are aged and pruned without events.
const TICK: Duration = Duration::from_secs(1);
/// Longest wait for an event, so that a stop is seen soon.
const WAIT: Duration = Duration::from_millis(200);
/// How long after the control thread's first request a network is
/// queried (the requests of a burst meanwhile make no other query).
const QUERY_DELAY: Duration = Duration::from_millis(300);

/// What the snooping thread works with.
pub(super) struct SnoopPath {
    pub events: Receiver<SnoopEvent>,
    pub fdb: Arc<RwLock<Arc<Fdb>>>,
    pub generation: Arc<AtomicU64>,
    /// Each worker's command channel and wake-up.
    pub workers: Vec<(Sender<Command>, Arc<EventFd>)>,
    /// The published table, for the group listener and the exporter.
    pub groups: Arc<RwLock<Arc<GroupTable>>>,
    /// Bumped with every publication, so the group listener refreshes.
    pub groups_generation: Arc<AtomicU64>,
    /// Each worker's express queue: mvdp's queries go to the containers
    /// of network k through worker (k mod n)'s, as group frames do.
    pub express: Vec<Sender<GroupFrame>>,
    /// The queries' counters (received as group frames, and any drop).
    pub stats: Arc<WorkerStats>,
    /// Networks to query, from the control thread.
    pub query_requests: Receiver<NetworkId>,
    pub stop: Arc<AtomicBool>,
}

/// Runs until `stop` (or until every sender is gone).
pub(super) fn snooper(p: SnoopPath) {
    let mut table = Memberships::new(None);
    let mut seen = u64::MAX;
    let mut fdb = p.fdb.read().expect("fdb lock").clone();
    let mut last_tick = Instant::now();
    let mut pending: Vec<(NetworkId, Instant)> = Vec::new();
    while !p.stop.load(Ordering::Relaxed) {
        let first = match p.events.recv_timeout(WAIT) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        let mut changed = false;
        let generation = p.generation.load(Ordering::Acquire);
        if generation != seen {
            seen = generation;
            fdb = p.fdb.read().expect("fdb lock").clone();
            changed |= table.prune(&fdb);
        }
        for net in p.query_requests.try_iter() {
            if !pending.iter().any(|&(n, _)| n == net) {
                pending.push((net, now));
            }
        }
        pending.retain(|&(net, asked)| {
            if now.duration_since(asked) < QUERY_DELAY {
                return true;
            }
            let entry = fdb.networks().get(usize::from(net.0));
            if let Some(n) = entry.filter(|n| !n.retired && n.snoop && n.mode != Mode::Passthru) {
                send_queries(&p, net);
                log::info!(
                    "network {}: queried its containers for their groups",
                    n.name
                );
            }
            false
        });
        for e in first.into_iter().chain(p.events.try_iter()) {
            changed |= table.apply(&fdb, e, now);
        }
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            changed |= table.expire(now);
        }
        if changed {
            // The workers' first, so that whoever sees the shared slot
            // (the control socket's `endpoint list`) sees a table the
            // workers have queued already.
            let snapshot = Arc::new(table.snapshot());
            for (commands, wake) in &p.workers {
                commands.send(Command::Groups(snapshot.clone())).ok();
                wake.wake();
            }
            *p.groups.write().expect("groups lock") = snapshot;
            p.groups_generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// Queues an IGMPv3 and an MLDv2 general query for every endpoint of
/// `network`, as group frames the workers copy (counted as frames from
/// the wire's groups; a full queue drops them as `flood_queue_full`).
fn send_queries(p: &SnoopPath, network: NetworkId) {
    if p.express.is_empty() {
        return;
    }
    let w = usize::from(network.0) % p.express.len();
    let verdict = Verdict::Flood(Flood {
        network,
        // Every endpoint: no endpoint has this id.
        rule: FloodRule::AllBut(EndpointId(u16::MAX)),
        untag: false,
        wire: false,
        group: None,
    });
    for buf in [igmp_general_query(), mld_general_query()] {
        p.stats.received(Source::WireGroup, 1);
        if p.express[w].try_send(GroupFrame { verdict, buf }).is_err() {
            p.stats.dropped(DropReason::FloodQueueFull);
        }
    }
    if let Some((_, wake)) = p.workers.get(w) {
        wake.wake();
    }
}
