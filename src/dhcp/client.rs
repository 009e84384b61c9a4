//! One endpoint's DHCP client: RFC 2131's state machine, with timers on an
//! injected clock. Pure: messages and instants in, [`Action`]s out; the
//! caller (the DHCP thread) sends the frames and configures the interface.
//!
//! ```text
//!  Init ─DISCOVER─► Selecting ─OFFER/REQUEST─► Requesting ─ACK─► Bound
//!    ▲                                  │NAK, 4 tries             │ T1: unicast REQUEST
//!    └──────────────────────────────────┘                         ▼
//!    ▲                                   Rebinding ◄─T2─────── Renewing
//!    └──expiry (address removed), NAK────────┘   ACK ─► Bound ◄──┘ ACK
//!    ▲
//!    └─NAK (address removed), 4 tries── Rebooting ─ACK─► Bound
//! ```
//!
//! Rebooting is RFC 2131's INIT-REBOOT: a client that knows the address it
//! held (an endpoint a restarted daemon took over, its address still on
//! the container's interface) asks for that address again before
//! anything else, so the container keeps it where the server agrees.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::message::{Addressing, Message, MessageType, Options};
use crate::config::Ipv4Net;
use crate::wire::MacAddr;

/// First retransmission interval; it doubles per try up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between two DISCOVERs (RFC 2131 suggests 64 s).
const MAX_BACKOFF: Duration = Duration::from_secs(64);
/// REQUESTs sent for one offer before starting over.
const REQUEST_TRIES: u32 = 4;
/// Shortest wait between retransmissions while renewing or rebinding
/// (RFC 2131 says 60 s; short test leases need less).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(2);
/// Wait before selecting again after a lease the client refused.
const REFUSED_BACKOFF: Duration = Duration::from_secs(10);
/// Parameters asked for: mask, router, DNS, lease time, server id, T1, T2.
const PARAMS: [u8; 7] = [1, 3, 6, 51, 54, 58, 59];

/// Where the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No lease; about to send a DISCOVER (or waiting after a refusal).
    Init,
    /// DISCOVER sent; waiting for an offer.
    Selecting,
    /// REQUEST sent for an offer; waiting for the ACK.
    Requesting,
    /// Holding a lease.
    Bound,
    /// Past T1: renewing with the server that gave the lease (unicast).
    Renewing,
    /// Past T2: asking any server (broadcast).
    Rebinding,
    /// Asking again for the address it held before (INIT-REBOOT, broadcast).
    Rebooting,
}

impl State {
    /// Every state, for one-hot metrics.
    pub const ALL: [State; 7] = [
        State::Init,
        State::Selecting,
        State::Requesting,
        State::Bound,
        State::Renewing,
        State::Rebinding,
        State::Rebooting,
    ];

    /// Lower-case name, for `endpoint list` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Selecting => "selecting",
            State::Requesting => "requesting",
            State::Bound => "bound",
            State::Renewing => "renewing",
            State::Rebinding => "rebinding",
            State::Rebooting => "rebooting",
        }
    }

    /// Whether the client holds a lease in this state.
    pub fn holds_lease(self) -> bool {
        matches!(self, State::Bound | State::Renewing | State::Rebinding)
    }
}

/// An address the server granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub address: Ipv4Addr,
    /// Its prefix length: from the subnet mask option, else the network's.
    pub prefix_len: u8,
    /// The default gateway (option 3), if the server gave one.
    pub router: Option<Ipv4Addr>,
    /// The server that granted it (option 54).
    pub server: Ipv4Addr,
    /// The MAC the server's frames came from: where renewals go.
    pub server_mac: MacAddr,
    /// When it was granted (the REQUEST's time would be RFC's; the ACK's is close).
    pub acquired: Instant,
    /// Its length.
    pub duration: Duration,
    /// When to renew, from `acquired`.
    pub t1: Duration,
    /// When to rebind, from `acquired`.
    pub t2: Duration,
}

impl Lease {
    /// When the lease ends.
    pub fn expires(&self) -> Instant {
        self.acquired + self.duration
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message, framed with this addressing.
    Send(Message, Addressing),
    /// Put the lease's address (and route) on the interface; sent again at
    /// each renewal, so it must be idempotent.
    Configure(Lease),
    /// Take the lease's address off the interface: it expired, the server
    /// refused it, or another replaced it.
    Deconfigure(Lease),
}

/// Message counts, by [`MessageType`] code order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent, by type.
    pub sent: [u64; 8],
    /// Messages received for this client (its xid and MAC), by type.
    pub received: [u64; 8],
    /// Leases extended by a renewal or rebinding.
    pub renewals: u64,
    /// Leases lost: expired or refused by a NAK.
    pub lost: u64,
}

/// One endpoint's DHCP client.
#[derive(Debug)]
pub struct Client {
    mac: MacAddr,
    hostname: String,
    /// The network's subnet: leases outside it are refused, and its prefix
    /// is used when the server sends no mask.
    subnet: Ipv4Net,
    state: State,
    xid: u32,
    rng: u32,
    lease: Option<Lease>,
    /// The offer being requested: (address, server, server's MAC).
    offer: Option<(Ipv4Addr, Ipv4Addr, MacAddr)>,
    /// When the next timer fires.
    next: Instant,
    tries: u32,
    /// When this exchange began (for `secs`).
    began: Instant,
    counts: Counts,
    /// The address it held before it started (INIT-REBOOT), as a lease of
    /// unknown terms, until a server confirms or refuses it.
    previous: Option<Lease>,
}

impl Client {
    /// A client for `mac` on `subnet` that sends its first DISCOVER at `now`;
    /// `hostname` goes in option 12, `seed` starts the xid sequence.
    pub fn new(mac: MacAddr, hostname: &str, subnet: Ipv4Net, seed: u32, now: Instant) -> Client {
        Client {
            mac,
            hostname: hostname.to_string(),
            subnet,
            state: State::Init,
            xid: 0,
            rng: seed | 1,
            lease: None,
            offer: None,
            next: now,
            tries: 0,
            began: now,
            counts: Counts::default(),
            previous: None,
        }
    }

    /// A client that held `address/prefix_len` before it started (it is
    /// still on the interface) and asks for it again at `now` (INIT-REBOOT,
    /// RFC 2131 3.2): an ACK keeps it, a NAK takes it off; with no answer
    /// after four tries, it starts over with a DISCOVER that names it.
    pub fn rebooting(
        mac: MacAddr,
        hostname: &str,
        subnet: Ipv4Net,
        seed: u32,
        now: Instant,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Client {
        let mut c = Client::new(mac, hostname, subnet, seed, now);
        c.state = State::Rebooting;
        c.new_exchange(now);
        c.previous = Some(Lease {
            address,
            prefix_len,
            router: None,
            server: Ipv4Addr::UNSPECIFIED,
            server_mac: MacAddr::BROADCAST,
            acquired: now,
            duration: Duration::ZERO,
            t1: Duration::ZERO,
            t2: Duration::ZERO,
        });
        c
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The lease it holds, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().filter(|_| self.state.holds_lease())
    }

    /// Its message counts.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// When [`Client::poll`] next has work.
    pub fn next_wakeup(&self) -> Instant {
        self.next
    }

    /// The client identifier (option 61): type 1 (Ethernet), then the MAC.
    pub fn client_id(&self) -> Vec<u8> {
        let mut id = vec![1];
        id.extend_from_slice(&self.mac.0);
        id
    }

    /// xorshift32: xids and jitter; no need for more.
    fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// The wait before try `tries` (0-based): 2, 4, 8 … 64 s, plus up to
    /// half a second of jitter so that endpoints started together spread out.
    fn backoff(&mut self, tries: u32) -> Duration {
        let base = FIRST_BACKOFF
            .saturating_mul(1 << tries.min(6))
            .min(MAX_BACKOFF);
        base + Duration::from_millis(u64::from(self.random() % 500))
    }

    fn message(&mut self, kind: MessageType, now: Instant) -> Message {
        let mut m = Message::request(kind, self.xid, self.mac);
        m.secs = now
            .saturating_duration_since(self.began)
            .as_secs()
            .min(65535) as u16;
        m.options = Options {
            client_id: self.client_id(),
            hostname: Some(self.hostname.clone()),
            params: PARAMS.to_vec(),
            max_size: Some(1500),
            ..Options::default()
        };
        self.counts.sent[kind as usize] += 1;
        m
    }

    fn broadcast(&self, src_ip: Ipv4Addr) -> Addressing {
        Addressing {
            src_mac: self.mac,
            dst_mac: MacAddr::BROADCAST,
            src_ip,
            dst_ip: Ipv4Addr::BROADCAST,
        }
    }

    fn new_exchange(&mut self, now: Instant) {
        self.xid = self.random();
        self.began = now;
        self.tries = 0;
    }

    fn discover(&mut self, now: Instant) -> Action {
        let mut m = self.message(MessageType::Discover, now);
        m.broadcast = true;
        if let Some(l) = self.lease.or(self.previous) {
            m.options.requested_ip = Some(l.address);
        }
        Action::Send(m, self.broadcast(Ipv4Addr::UNSPECIFIED))
    }

    /// INIT-REBOOT's REQUEST: the address held before, no server named,
    /// broadcast from 0.0.0.0 (RFC 2131 4.3.2).
    fn reboot_request(&mut self, now: Instant) -> Option<Action> {
        let previous = self.previous?;
        let mut m = self.message(MessageType::Request, now);
        m.broadcast = true;
        m.options.requested_ip = Some(previous.address);
        Some(Action::Send(m, self.broadcast(Ipv4Addr::UNSPECIFIED)))
    }

    fn select_request(&mut self, now: Instant) -> Option<Action> {
        let (address, server, _) = self.offer?;
        let mut m = self.message(MessageType::Request, now);
        m.broadcast = true;
        m.options.requested_ip = Some(address);
        m.options.server_id = Some(server);
        Some(Action::Send(m, self.broadcast(Ipv4Addr::UNSPECIFIED)))
    }

    /// A REQUEST for the lease held: unicast to its server (renewing) or
    /// broadcast (rebinding), from the leased address.
    fn extend_request(&mut self, now: Instant) -> Option<Action> {
        let lease = self.lease?;
        let mut m = self.message(MessageType::Request, now);
        m.ciaddr = lease.address;
        let to = if self.state == State::Renewing {
            Addressing {
                src_mac: self.mac,
                dst_mac: lease.server_mac,
                src_ip: lease.address,
                dst_ip: lease.server,
            }
        } else {
            self.broadcast(lease.address)
        };
        Some(Action::Send(m, to))
    }

    /// The retry interval while renewing or rebinding: half the time left
    /// until `until`, at least [`MIN_RENEW_RETRY`], never past `until`.
    fn half_way(now: Instant, until: Instant) -> Instant {
        let left = until.saturating_duration_since(now);
        (now + (left / 2).max(MIN_RENEW_RETRY)).min(until)
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        if now < self.next {
            return Vec::new();
        }
        let mut out = Vec::new();
        match self.state {
            State::Init => {
                self.new_exchange(now);
                self.state = State::Selecting;
                out.push(self.discover(now));
                self.next = now + self.backoff(0);
            }
            State::Selecting => {
                self.tries += 1;
                out.push(self.discover(now));
                self.next = now + self.backoff(self.tries);
            }
            State::Requesting => {
                self.tries += 1;
                if self.tries >= REQUEST_TRIES {
                    self.offer = None;
                    self.state = State::Init;
                    self.next = now;
                    return self.poll(now);
                }
                out.extend(self.select_request(now));
                self.next = now + self.backoff(self.tries);
            }
            State::Rebooting => {
                if self.tries >= REQUEST_TRIES {
                    // No server answered: the address stays in use while
                    // a DISCOVER asks for it (RFC 2131 3.2 lets it).
                    self.state = State::Init;
                    self.next = now;
                    return self.poll(now);
                }
                out.extend(self.reboot_request(now));
                self.next = now + self.backoff(self.tries);
                self.tries += 1;
            }
            State::Bound | State::Renewing | State::Rebinding => {
                let Some(lease) = self.lease else {
                    self.state = State::Init;
                    self.next = now;
                    return self.poll(now);
                };
                let (t2, end) = (lease.acquired + lease.t2, lease.expires());
                if now >= end {
                    self.lease = None;
                    self.counts.lost += 1;
                    self.state = State::Init;
                    self.next = now;
                    out.push(Action::Deconfigure(lease));
                    out.extend(self.poll(now));
                    return out;
                }
                if self.state == State::Bound {
                    self.new_exchange(now);
                    self.state = State::Renewing;
                }
                if self.state == State::Renewing && now >= t2 {
                    self.new_exchange(now);
                    self.state = State::Rebinding;
                }
                out.extend(self.extend_request(now));
                self.next = if self.state == State::Renewing {
                    Self::half_way(now, t2)
                } else {
                    Self::half_way(now, end)
                };
            }
        }
        out
    }

    /// Takes a message from the wire, its frame's source MAC `from`;
    /// messages for another exchange or client are ignored.
    pub fn receive(&mut self, msg: &Message, from: MacAddr, now: Instant) -> Vec<Action> {
        if !msg.reply || msg.xid != self.xid || msg.chaddr != self.mac {
            return Vec::new();
        }
        self.counts.received[msg.kind as usize] += 1;
        let mut out = Vec::new();
        match (self.state, msg.kind) {
            (State::Selecting, MessageType::Offer) => {
                let Some(server) = msg.options.server_id else {
                    return out;
                };
                if msg.yiaddr.is_unspecified() {
                    return out;
                }
                self.offer = Some((msg.yiaddr, server, from));
                self.state = State::Requesting;
                self.tries = 0;
                out.extend(self.select_request(now));
                self.next = now + self.backoff(0);
            }
            (
                State::Requesting | State::Renewing | State::Rebinding | State::Rebooting,
                MessageType::Ack,
            ) => {
                let renewal = matches!(self.state, State::Renewing | State::Rebinding);
                // The address held before, once a lease settles it.
                let old = self.lease.take().or(self.previous.take());
                match self.lease_from(msg, from, now) {
                    Some(lease) => {
                        if let Some(old) = old.filter(|o| o.address != lease.address) {
                            out.push(Action::Deconfigure(old));
                        }
                        if renewal {
                            self.counts.renewals += 1;
                        }
                        self.lease = Some(lease);
                        self.state = State::Bound;
                        self.next = lease.acquired + lease.t1;
                        out.push(Action::Configure(lease));
                    }
                    None => {
                        log::warn!(
                            "DHCP client {}: refused an ACK for {} from {:?} (outside {}, or no lease time); selecting again in {} s",
                            self.mac,
                            msg.yiaddr,
                            msg.options.server_id,
                            self.subnet,
                            REFUSED_BACKOFF.as_secs()
                        );
                        out.extend(old.map(Action::Deconfigure));
                        self.state = State::Init;
                        self.next = now + REFUSED_BACKOFF;
                    }
                }
            }
            (
                State::Requesting | State::Renewing | State::Rebinding | State::Rebooting,
                MessageType::Nak,
            ) => {
                // A NAK to INIT-REBOOT refuses the address held before.
                let refused_previous = match self.state {
                    State::Rebooting => self.previous.take(),
                    _ => None,
                };
                if let Some(old) = self.lease.take().or(refused_previous) {
                    self.counts.lost += 1;
                    out.push(Action::Deconfigure(old));
                }
                self.offer = None;
                self.state = State::Init;
                self.next = now;
            }
            _ => {}
        }
        out
    }

    /// The lease an ACK grants, if it is one to take: an address inside
    /// the network's subnet and a lease time.
    fn lease_from(&self, msg: &Message, from: MacAddr, now: Instant) -> Option<Lease> {
        let o = &msg.options;
        let secs = o.lease_secs?;
        let server = o.server_id.or(self.offer.map(|(_, s, _)| s))?;
        if msg.yiaddr.is_unspecified() || !self.subnet.contains(msg.yiaddr) {
            return None;
        }
        let duration = Duration::from_secs(u64::from(secs));
        let t2 = o
            .t2_secs
            .map_or(duration * 7 / 8, |s| Duration::from_secs(u64::from(s)))
            .min(duration);
        let t1 = o
            .t1_secs
            .map_or(duration / 2, |s| Duration::from_secs(u64::from(s)))
            .min(t2);
        let prefix_len = o
            .subnet_mask
            .map(u32::from)
            .filter(|m| m.leading_ones() + m.trailing_zeros() == 32)
            // A /0, /31 or /32 leaves no room for a gateway on the link.
            .filter(|m| (1..=30).contains(&m.leading_ones()))
            .map_or(self.subnet.prefix_len(), |m| m.leading_ones() as u8);
        Some(Lease {
            address: msg.yiaddr,
            prefix_len,
            router: o.router,
            server,
            server_mac: from,
            acquired: now,
            duration,
            t1,
            t2,
        })
    }

    /// Gives the lease back (DHCPRELEASE, unicast to its server) and goes
    /// back to Init, idle until polled. `None` if it holds no lease.
    pub fn release(&mut self, now: Instant) -> Option<Action> {
        let lease = self.lease()?.to_owned();
        self.new_exchange(now);
        let mut m = self.message(MessageType::Release, now);
        m.ciaddr = lease.address;
        m.options.server_id = Some(lease.server);
        m.options.params.clear();
        self.lease = None;
        self.state = State::Init;
        // Idle: a released client sends nothing more unless polled much later.
        self.next = now + Duration::from_secs(365 * 24 * 3600);
        Some(Action::Send(
            m,
            Addressing {
                src_mac: self.mac,
                dst_mac: lease.server_mac,
                src_ip: lease.address,
                dst_ip: lease.server,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([6, 1, 2, 3, 4, 5]);
    const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 50);

    fn client(now: Instant) -> Client {
        Client::new(MAC, "web", "10.77.0.0/24".parse().unwrap(), 42, now)
    }

    fn sent(actions: &[Action]) -> Vec<(MessageType, Addressing, Message)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(m, to) => Some((m.kind, *to, m.clone())),
                _ => None,
            })
            .collect()
    }

    fn reply(to: &Message, kind: MessageType, yiaddr: Ipv4Addr) -> Message {
        let mut m = Message::request(kind, to.xid, to.chaddr);
        m.reply = true;
        m.yiaddr = yiaddr;
        m.options.server_id = Some(SERVER);
        m.options.lease_secs = Some(120);
        m.options.t1_secs = Some(10);
        m.options.t2_secs = Some(20);
        m.options.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        m.options.router = Some(SERVER);
        m
    }

    fn rebooting(now: Instant, held: Ipv4Addr) -> Client {
        let subnet = "10.77.0.0/24".parse().unwrap();
        Client::rebooting(MAC, "web", subnet, 42, now, held, 24)
    }

    #[test]
    fn init_reboot_asks_for_the_address_held_and_keeps_it_on_an_ack() {
        let t0 = Instant::now();
        let mut c = rebooting(t0, ADDR);
        assert_eq!(c.state(), State::Rebooting);
        let out = sent(&c.poll(t0));
        let (kind, to, request) = out[0].clone();
        assert_eq!(kind, MessageType::Request);
        assert_eq!(to.dst_mac, MacAddr::BROADCAST);
        assert_eq!(to.src_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(request.options.requested_ip, Some(ADDR));
        assert_eq!(
            request.options.server_id, None,
            "INIT-REBOOT names no server"
        );
        assert_eq!(request.ciaddr, Ipv4Addr::UNSPECIFIED);
        let acts = c.receive(&reply(&request, MessageType::Ack, ADDR), SERVER_MAC, t0);
        // The same address: configured (idempotent), nothing taken off.
        assert!(matches!(acts[..], [Action::Configure(l)] if l.address == ADDR));
        assert_eq!(c.state(), State::Bound);
        assert_eq!(c.counts().renewals, 0);
        // An ACK for another address takes the old one off first.
        let mut c = rebooting(t0, ADDR);
        let request = sent(&c.poll(t0))[0].2.clone();
        let other = Ipv4Addr::new(10, 77, 0, 60);
        let acts = c.receive(&reply(&request, MessageType::Ack, other), SERVER_MAC, t0);
        assert!(matches!(
            acts[..],
            [Action::Deconfigure(old), Action::Configure(new)]
                if old.address == ADDR && new.address == other
        ));
    }

    #[test]
    fn init_reboot_gives_the_address_up_on_a_nak_and_asks_by_discover_when_unanswered() {
        let t0 = Instant::now();
        let mut c = rebooting(t0, ADDR);
        let request = sent(&c.poll(t0))[0].2.clone();
        let acts = c.receive(&reply(&request, MessageType::Nak, ADDR), SERVER_MAC, t0);
        assert!(
            matches!(acts[..], [Action::Deconfigure(l)] if l.address == ADDR && l.prefix_len == 24)
        );
        assert_eq!(c.state(), State::Init);
        assert_eq!(c.counts().lost, 1);
        // Unanswered: four REQUESTs, then a DISCOVER asking for the address,
        // which stays on the interface meanwhile.
        let mut c = rebooting(t0, ADDR);
        let mut now = t0;
        let mut requests = 0;
        loop {
            let acts = c.poll(now);
            assert!(!acts.iter().any(|a| matches!(a, Action::Deconfigure(_))));
            let out = sent(&acts);
            if let Some((kind, _, m)) = out.first() {
                if *kind == MessageType::Discover {
                    assert_eq!(m.options.requested_ip, Some(ADDR));
                    break;
                }
                requests += 1;
            }
            now = c.next_wakeup();
        }
        assert_eq!(requests, REQUEST_TRIES);
        assert_eq!(c.state(), State::Selecting);
    }

    /// Runs DISCOVER/OFFER/REQUEST/ACK and returns the ACK's actions.
    fn bind(c: &mut Client, now: Instant) -> Vec<Action> {
        let out = sent(&c.poll(now));
        assert_eq!(out.len(), 1);
        let (kind, to, discover) = out[0].clone();
        assert_eq!(kind, MessageType::Discover);
        assert!(discover.broadcast);
        assert_eq!(to.dst_mac, MacAddr::BROADCAST);
        assert_eq!(discover.options.client_id, vec![1, 6, 1, 2, 3, 4, 5]);
        assert_eq!(c.state(), State::Selecting);
        let out = sent(&c.receive(&reply(&discover, MessageType::Offer, ADDR), SERVER_MAC, now));
        let (kind, _, request) = out[0].clone();
        assert_eq!(kind, MessageType::Request);
        assert_eq!(request.xid, discover.xid);
        assert_eq!(request.options.requested_ip, Some(ADDR));
        assert_eq!(request.options.server_id, Some(SERVER));
        assert_eq!(c.state(), State::Requesting);
        c.receive(&reply(&request, MessageType::Ack, ADDR), SERVER_MAC, now)
    }

    #[test]
    fn binds_renews_and_releases() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let acts = bind(&mut c, t0);
        let Action::Configure(lease) = acts[0] else {
            panic!("{acts:?}")
        };
        assert_eq!((lease.address, lease.prefix_len), (ADDR, 24));
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(c.state(), State::Bound);
        assert_eq!(c.next_wakeup(), t0 + Duration::from_secs(10));
        // Nothing before T1.
        assert!(c.poll(t0 + Duration::from_secs(9)).is_empty());
        // T1: a unicast REQUEST to the server, from the leased address.
        let t1 = t0 + Duration::from_secs(10);
        let out = sent(&c.poll(t1));
        let (kind, to, renew) = out[0].clone();
        assert_eq!(kind, MessageType::Request);
        assert_eq!(
            (to.dst_ip, to.dst_mac, to.src_ip),
            (SERVER, SERVER_MAC, ADDR)
        );
        assert_eq!(renew.ciaddr, ADDR);
        assert_eq!(renew.options.requested_ip, None);
        assert_eq!(c.state(), State::Renewing);
        let acts = c.receive(&reply(&renew, MessageType::Ack, ADDR), SERVER_MAC, t1);
        assert!(matches!(acts[..], [Action::Configure(l)] if l.acquired == t1));
        assert_eq!(c.state(), State::Bound);
        assert_eq!(c.counts().renewals, 1);
        // Release: unicast, ciaddr and server id, and no lease left.
        let out = sent(&c.release(t1).into_iter().collect::<Vec<_>>());
        let (kind, to, rel) = out[0].clone();
        assert_eq!(kind, MessageType::Release);
        assert_eq!((to.dst_ip, rel.ciaddr), (SERVER, ADDR));
        assert_eq!(rel.options.server_id, Some(SERVER));
        assert!(c.lease().is_none());
        assert!(c.release(t1).is_none());
    }

    #[test]
    fn rebinds_after_t2_and_loses_the_lease_at_expiry() {
        let t0 = Instant::now();
        let mut c = client(t0);
        bind(&mut c, t0);
        let mut now = t0 + Duration::from_secs(10);
        // No server answers: renew retries until T2, then broadcast.
        let mut kinds = Vec::new();
        let mut deconfigured = None;
        while now < t0 + Duration::from_secs(125) {
            for a in c.poll(now) {
                match a {
                    Action::Send(_, to) => kinds.push((c.state(), to.dst_mac)),
                    Action::Deconfigure(l) => deconfigured = Some((now, l)),
                    Action::Configure(_) => panic!("configured without an ACK"),
                }
            }
            now = c.next_wakeup().max(now + Duration::from_millis(1));
        }
        assert_eq!(kinds[0], (State::Renewing, SERVER_MAC));
        assert!(kinds.contains(&(State::Rebinding, MacAddr::BROADCAST)));
        let (at, lease) = deconfigured.expect("expired");
        assert_eq!(at, t0 + Duration::from_secs(120));
        assert_eq!(lease.address, ADDR);
        assert_eq!(c.counts().lost, 1);
        // After expiry it starts over with a DISCOVER.
        assert!(matches!(c.state(), State::Selecting));
    }

    #[test]
    fn retransmits_with_backoff_and_ignores_strangers() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let first = sent(&c.poll(t0))[0].2.clone();
        let mut times = vec![t0];
        for _ in 0..4 {
            let at = c.next_wakeup();
            assert_eq!(sent(&c.poll(at))[0].0, MessageType::Discover);
            times.push(at);
        }
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, vec![2, 4, 8, 16]);
        assert_eq!(c.counts().sent[MessageType::Discover as usize], 5);
        // An offer for another xid, or another MAC, changes nothing.
        let mut other = reply(&first, MessageType::Offer, ADDR);
        other.xid ^= 1;
        assert!(c.receive(&other, SERVER_MAC, t0).is_empty());
        let mut other = reply(&first, MessageType::Offer, ADDR);
        other.chaddr = SERVER_MAC;
        assert!(c.receive(&other, SERVER_MAC, t0).is_empty());
        assert_eq!(c.state(), State::Selecting);
    }

    #[test]
    fn nak_and_foreign_leases_start_over() {
        let t0 = Instant::now();
        let mut c = client(t0);
        bind(&mut c, t0);
        let t1 = t0 + Duration::from_secs(10);
        let renew = sent(&c.poll(t1))[0].2.clone();
        let acts = c.receive(&reply(&renew, MessageType::Nak, ADDR), SERVER_MAC, t1);
        assert!(matches!(acts[..], [Action::Deconfigure(l)] if l.address == ADDR));
        assert_eq!(c.state(), State::Init);
        assert_eq!(sent(&c.poll(t1))[0].0, MessageType::Discover);
        // An ACK for an address outside the subnet is refused.
        let mut c = client(t0);
        let discover = sent(&c.poll(t0))[0].2.clone();
        let far = Ipv4Addr::new(192, 168, 9, 9);
        let request = sent(&c.receive(&reply(&discover, MessageType::Offer, far), SERVER_MAC, t0))
            [0]
        .2
        .clone();
        assert!(c
            .receive(&reply(&request, MessageType::Ack, far), SERVER_MAC, t0)
            .is_empty());
        assert_eq!(c.state(), State::Init);
        assert_eq!(c.next_wakeup(), t0 + REFUSED_BACKOFF);
    }

    #[test]
    fn lease_defaults_follow_rfc2131() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let discover = sent(&c.poll(t0))[0].2.clone();
        let request = sent(&c.receive(&reply(&discover, MessageType::Offer, ADDR), SERVER_MAC, t0))
            [0]
        .2
        .clone();
        let mut ack = reply(&request, MessageType::Ack, ADDR);
        ack.options.t1_secs = None;
        ack.options.t2_secs = None;
        ack.options.subnet_mask = None;
        let acts = c.receive(&ack, SERVER_MAC, t0);
        let Action::Configure(l) = acts[0] else {
            panic!("{acts:?}")
        };
        assert_eq!(l.t1, Duration::from_secs(60));
        assert_eq!(l.t2, Duration::from_secs(105));
        assert_eq!(l.prefix_len, 24, "the network's prefix without option 1");
    }

    #[test]
    fn a_mask_without_room_for_a_gateway_is_not_taken() {
        for mask in [[255, 255, 255, 255], [255, 255, 255, 254], [0, 0, 0, 0]] {
            let t0 = Instant::now();
            let mut c = client(t0);
            let discover = sent(&c.poll(t0))[0].2.clone();
            let offer = reply(&discover, MessageType::Offer, ADDR);
            let request = sent(&c.receive(&offer, SERVER_MAC, t0))[0].2.clone();
            let mut ack = reply(&request, MessageType::Ack, ADDR);
            ack.options.subnet_mask = Some(Ipv4Addr::from(mask));
            let acts = c.receive(&ack, SERVER_MAC, t0);
            let Action::Configure(l) = acts[0] else {
                panic!("{acts:?}")
            };
            assert_eq!(l.prefix_len, 24, "mask {mask:?}: the network's prefix");
        }
    }
}
