//! Multicast snooping's group table: which endpoints of a network joined
//! which group (by the group's MAC), learned from their IGMP and MLD
//! messages.
//!
//! [`Memberships`] is the writable table the snooping thread alone owns
//! (with aging); [`GroupTable`] is the immutable snapshot it publishes and
//! the workers and the group listener flood by. Time is passed in, never read.

use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::fdb::{EndpointId, Fdb, NetworkId};
use crate::wire::MacAddr;

/// How long a membership lasts without a report (RFC 3376's Group
/// Membership Interval: robustness 2 × query interval 125 s + 10 s).
pub const MEMBERSHIP_INTERVAL: Duration = Duration::from_secs(260);

/// What a worker saw an endpoint (or the wire) say about groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnoopEvent {
    /// The endpoint reported it listens to the group (a join or a refresh).
    Join(EndpointId, MacAddr),
    /// The endpoint left the group.
    Leave(EndpointId, MacAddr),
    /// A membership query came from the wire on the network: a querier is active.
    Query(NetworkId),
}

/// Packs (network, group MAC) into one word.
#[inline]
fn key(network: NetworkId, group: MacAddr) -> u64 {
    group.to_u64() | (u64::from(network.0) << 48)
}

fn unkey(k: u64) -> (NetworkId, MacAddr) {
    let b = k.to_be_bytes();
    (
        NetworkId(u16::from_be_bytes([b[0], b[1]])),
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]),
    )
}

/// A published snapshot: (network, group) → the endpoints that joined, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTable {
    members: HashMap<u64, Vec<EndpointId>>,
}

impl GroupTable {
    /// The endpoints of `network` that joined `group` (empty: none). One lookup.
    #[inline]
    pub fn members(&self, network: NetworkId, group: MacAddr) -> &[EndpointId] {
        self.members
            .get(&key(network, group))
            .map_or(&[], Vec::as_slice)
    }

    /// Groups with at least one member, per network id.
    pub fn groups_per_network(&self) -> HashMap<NetworkId, usize> {
        let mut out = HashMap::new();
        for &k in self.members.keys() {
            *out.entry(unkey(k).0).or_default() += 1;
        }
        out
    }

    /// The groups endpoint `id` is a member of.
    pub fn groups_of(&self, id: EndpointId) -> Vec<MacAddr> {
        let mut out: Vec<MacAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.contains(&id))
            .map(|(&k, _)| unkey(k).1)
            .collect();
        out.sort();
        out
    }
}

/// One endpoint's membership of a group.
#[derive(Debug, Clone, Copy)]
struct Member {
    id: EndpointId,
    /// The endpoint's MAC when it joined: an id reused by another endpoint
    /// does not inherit the membership.
    mac: MacAddr,
    /// When it lapses unless refreshed.
    expires: Instant,
}

/// The writable group table, with aging.
///
/// A membership lapses [`MEMBERSHIP_INTERVAL`] after the last report, but
/// only while a querier is active on the network (a query seen from the
/// wire within that interval): hosts report again only when queried, so on
/// a LAN without a querier a lapse would cut off a member that is still
/// listening. There, memberships last until the endpoint leaves the group
/// (hosts send a leave when their last socket leaves) or is removed.
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    groups: HashMap<u64, Vec<Member>>,
    last_query: HashMap<NetworkId, Instant>,
    interval: Option<Duration>,
}

impl Memberships {
    /// An empty table aging with `interval` (default [`MEMBERSHIP_INTERVAL`]).
    pub fn new(interval: Option<Duration>) -> Memberships {
        Memberships {
            interval,
            ..Memberships::default()
        }
    }

    fn interval(&self) -> Duration {
        self.interval.unwrap_or(MEMBERSHIP_INTERVAL)
    }

    /// Whether a query was seen on `network` within the interval.
    fn querier_active(&self, network: NetworkId, now: Instant) -> bool {
        self.last_query
            .get(&network)
            .is_some_and(|&t| now.saturating_duration_since(t) < self.interval())
    }

    /// Applies one event against the FDB it was seen under. Events for an
    /// endpoint the FDB does not hold, or of a network that does not snoop,
    /// change nothing. True when the membership set changed.
    pub fn apply(&mut self, fdb: &Fdb, event: SnoopEvent, now: Instant) -> bool {
        let (id, group, join) = match event {
            SnoopEvent::Query(net) => {
                // A querier appearing: every member answers within its
                // response time, so none lapses before it could.
                if !self.querier_active(net, now) {
                    let expires = now + self.interval();
                    for (_, list) in self.groups.iter_mut().filter(|(&k, _)| unkey(k).0 == net) {
                        list.iter_mut().for_each(|m| m.expires = expires);
                    }
                }
                self.last_query.insert(net, now);
                return false;
            }
            SnoopEvent::Join(id, g) => (id, g, true),
            SnoopEvent::Leave(id, g) => (id, g, false),
        };
        let Some(ep) = fdb.endpoint(id) else {
            return false;
        };
        if !fdb.network(ep.network).snoop {
            return false;
        }
        let k = key(ep.network, group);
        let expires = now + self.interval();
        let list = self.groups.entry(k).or_default();
        let at = list.iter().position(|m| m.id == id);
        let changed = match (at, join) {
            (Some(i), true) => {
                let fresh = list[i].mac != ep.mac;
                list[i] = Member {
                    id,
                    mac: ep.mac,
                    expires,
                };
                fresh
            }
            (None, true) => {
                list.push(Member {
                    id,
                    mac: ep.mac,
                    expires,
                });
                list.sort_by_key(|m| m.id);
                true
            }
            (Some(i), false) => {
                list.remove(i);
                true
            }
            (None, false) => false,
        };
        if list.is_empty() {
            self.groups.remove(&k);
        }
        changed
    }

    /// Drops memberships whose endpoint the FDB no longer holds (removed,
    /// or its id now another endpoint's), moved network, or whose network
    /// no longer snoops. True when anything changed.
    pub fn prune(&mut self, fdb: &Fdb) -> bool {
        let before = self.len();
        self.groups.retain(|&k, list| {
            let net = unkey(k).0;
            list.retain(|m| {
                fdb.endpoint(m.id)
                    .is_some_and(|e| e.mac == m.mac && e.network == net && fdb.network(net).snoop)
            });
            !list.is_empty()
        });
        self.len() != before
    }

    /// Drops memberships past their time on networks with an active
    /// querier. True when anything changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.len();
        let active: Vec<NetworkId> = self
            .last_query
            .keys()
            .copied()
            .filter(|&n| self.querier_active(n, now))
            .collect();
        self.groups.retain(|&k, list| {
            if active.contains(&unkey(k).0) {
                list.retain(|m| m.expires > now);
            }
            !list.is_empty()
        });
        self.len() != before
    }

    /// (endpoint, group) memberships held.
    pub fn len(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// True when no endpoint is a member of anything.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The snapshot to publish.
    pub fn snapshot(&self) -> GroupTable {
        GroupTable {
            members: self
                .groups
                .iter()
                .map(|(&k, l)| (k, l.iter().map(|m| m.id).collect()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::fdb::{EndpointEntry, Mode, NetworkEntry};

    const G: MacAddr = MacAddr([0x01, 0, 0x5e, 1, 2, 3]);
    const A: EndpointId = EndpointId(0);
    const B: EndpointId = EndpointId(1);
    const N: NetworkId = NetworkId(0);

    fn fdb(snoop: bool) -> Fdb {
        let mut n = NetworkEntry::new("n", None, Mode::Bridge);
        n.snoop = snoop;
        let eps = (0..2u8)
            .map(|i| {
                Some(EndpointEntry::new(
                    format!("e{i}"),
                    MacAddr([2, 0, 0, 0, 0, i]),
                    N,
                ))
            })
            .collect();
        Fdb::new(vec![n], eps).unwrap()
    }

    #[test]
    fn join_leave_and_snapshot() {
        let fdb = fdb(true);
        let t = Instant::now();
        let mut m = Memberships::new(None);
        assert!(m.apply(&fdb, SnoopEvent::Join(B, G), t));
        assert!(m.apply(&fdb, SnoopEvent::Join(A, G), t));
        assert!(!m.apply(&fdb, SnoopEvent::Join(A, G), t), "a refresh");
        let s = m.snapshot();
        assert_eq!(s.members(N, G), &[A, B]);
        assert_eq!(s.members(NetworkId(1), G), &[] as &[EndpointId]);
        assert_eq!(s.groups_per_network().get(&N), Some(&1));
        assert_eq!(s.groups_of(A), vec![G]);
        assert!(m.apply(&fdb, SnoopEvent::Leave(A, G), t));
        assert!(!m.apply(&fdb, SnoopEvent::Leave(A, G), t));
        assert_eq!(m.snapshot().members(N, G), &[B]);
        assert!(m.apply(&fdb, SnoopEvent::Leave(B, G), t));
        assert!(m.is_empty());
        // Unknown endpoints and flood networks learn nothing.
        assert!(!m.apply(&fdb, SnoopEvent::Join(EndpointId(7), G), t));
        assert!(!m.apply(&self::fdb(false), SnoopEvent::Join(A, G), t));
    }

    #[test]
    fn memberships_age_only_under_a_querier() {
        let fdb = fdb(true);
        let t = Instant::now();
        let i = Duration::from_secs(10);
        let mut m = Memberships::new(Some(i));
        m.apply(&fdb, SnoopEvent::Join(A, G), t);
        m.apply(&fdb, SnoopEvent::Join(B, G), t);
        // No querier: kept past its time.
        assert!(!m.expire(t + 2 * i));
        assert_eq!(m.len(), 2);
        // A querier appears: the members get their time to answer.
        m.apply(&fdb, SnoopEvent::Query(N), t + 2 * i);
        assert!(!m.expire(t + 2 * i));
        // A answers, B does not: B lapses, A is refreshed by the next round.
        m.apply(&fdb, SnoopEvent::Join(A, G), t + 2 * i);
        m.apply(&fdb, SnoopEvent::Query(N), t + 2 * i + i / 2);
        assert!(!m.expire(t + 2 * i + i / 2));
        m.apply(&fdb, SnoopEvent::Join(A, G), t + 2 * i + i / 2);
        assert!(m.expire(t + 3 * i));
        assert_eq!(m.snapshot().members(N, G), &[A]);
        // The querier gone: A stays.
        assert!(!m.expire(t + 10 * i));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_removed_or_replaced_endpoint_leaves_its_groups() {
        let t = Instant::now();
        let mut m = Memberships::new(None);
        m.apply(&fdb(true), SnoopEvent::Join(A, G), t);
        m.apply(&fdb(true), SnoopEvent::Join(B, G), t);
        assert!(!m.prune(&fdb(true)));
        // A's id now belongs to another MAC; B is gone.
        let n = {
            let mut n = NetworkEntry::new("n", None, Mode::Bridge);
            n.snoop = true;
            n
        };
        let other = EndpointEntry::new("x", MacAddr([2, 0, 0, 0, 0, 9]), N);
        let after = Fdb::new(vec![n], vec![Some(other), None]).unwrap();
        assert!(m.prune(&after));
        assert!(m.is_empty());
        // A network switched to flood forgets its groups.
        m.apply(&fdb(true), SnoopEvent::Join(A, G), t);
        assert!(m.prune(&fdb(false)));
    }
}
