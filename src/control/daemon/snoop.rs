//! The snooping thread: the one writer of the multicast group table.
//!
//! Workers and the group listener send what they snoop (joins and leaves
//! from container egress, queries from the wire) over a bounded channel;
//! this thread wakes on each event, applies it, and publishes a new
//! [`GroupTable`] snapshot to the workers (a command each) and to the group
//! listener and the exporter (a shared slot), so a join reaches the flood
//! path within milliseconds. Once a second it also ages memberships out and
//! forgets the endpoints the FDB no longer holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::dataplane::{Command, EventFd};
use crate::switch::{Fdb, GroupTable, Memberships, SnoopEvent};

/// Bound of the channel of snoop events (overflow is counted by the sender).
pub(super) const SNOOP_QUEUE_LEN: usize = 4096;
/// How often memberships are aged and pruned without events.
const TICK: Duration = Duration::from_secs(1);
/// Longest wait for an event, so that a stop is seen soon.
const WAIT: Duration = Duration::from_millis(200);

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
    pub stop: Arc<AtomicBool>,
}

/// Runs until `stop` (or until every sender is gone).
pub(super) fn snooper(p: SnoopPath) {
    let mut table = Memberships::new(None);
    let mut seen = u64::MAX;
    let mut fdb = p.fdb.read().expect("fdb lock").clone();
    let mut last_tick = Instant::now();
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
        for e in first.into_iter().chain(p.events.try_iter()) {
            changed |= table.apply(&fdb, e, now);
        }
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            changed |= table.expire(now);
        }
        if changed {
            let snapshot = Arc::new(table.snapshot());
            *p.groups.write().expect("groups lock") = snapshot.clone();
            p.groups_generation.fetch_add(1, Ordering::Release);
            for (commands, wake) in &p.workers {
                commands.send(Command::Groups(snapshot.clone())).ok();
                wake.wake();
            }
        }
    }
}
