//! `SeqStream`: numbered UDP datagrams to several receivers at a steady
//! rate, each receiver recording which numbers arrived and when. For faults
//! under load: who lost what across an event, and when traffic came back.
//!
//! Unlike [`super::UdpStream`], the sender never panics on a send error (a
//! link that is down or gone is what these tests are about): the datagram
//! counts as sent and lost.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::rig::{Container, Rig, WIRE_IF};

/// Receive buffer forced on each receiver (`SO_RCVBUFFORCE`, root): a test
/// thread descheduled for a while on a busy machine must not lose datagrams
/// that mvdp delivered.
const RCVBUF: libc::c_int = 8 << 20;
/// How often the sender wakes to send what is due.
const TICK: Duration = Duration::from_millis(1);
/// A receiver stops once the sender stopped and nothing came for this long.
const QUIET: Duration = Duration::from_millis(500);

/// Where a stream goes: a name for messages, the namespace the receiving
/// socket lives in, and the address it binds.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// E.g. the container's name.
    pub name: &'a str,
    /// The receiver's namespace.
    pub ns: &'a Netns,
    /// The receiver's address (in `ns`).
    pub ip: Ipv4Addr,
}

impl<'a> Target<'a> {
    /// A container as a target.
    pub fn container(c: &'a Container) -> Target<'a> {
        Target {
            name: &c.name,
            ns: &c.ns,
            ip: c.ip,
        }
    }
}

/// Datagrams of one receiver, as they arrived.
#[derive(Debug)]
pub struct Received {
    /// The target's name.
    pub name: String,
    /// Datagrams sent to it (a failed send counts).
    pub sent: u32,
    /// Sequence number and arrival time of every datagram received.
    pub arrivals: Vec<(u32, Instant)>,
}

impl Received {
    /// Distinct sequence numbers received.
    pub fn distinct(&self) -> u32 {
        let mut seen = vec![false; self.sent as usize];
        let mut n = 0;
        for &(seq, _) in &self.arrivals {
            if let Some(s) = seen.get_mut(seq as usize) {
                if !*s {
                    *s = true;
                    n += 1;
                }
            }
        }
        n
    }

    /// Datagrams sent and never received.
    pub fn lost(&self) -> u32 {
        self.sent - self.distinct()
    }

    /// Datagrams received more than once.
    pub fn duplicates(&self) -> usize {
        self.arrivals.len() - self.distinct() as usize
    }

    /// Whether every datagram came after the ones numbered before it.
    pub fn in_order(&self) -> bool {
        self.arrivals.windows(2).all(|w| w[0].0 < w[1].0)
    }

    /// The first arrival strictly after `t`.
    pub fn first_after(&self, t: Instant) -> Option<Instant> {
        self.arrivals.iter().map(|a| a.1).find(|&a| a > t)
    }

    /// The longest time without an arrival between two arrivals.
    pub fn longest_gap(&self) -> Duration {
        self.arrivals
            .windows(2)
            .map(|w| w[1].1.duration_since(w[0].1))
            .max()
            .unwrap_or_default()
    }

    /// The missing sequence numbers as ranges, for messages (at most `max`).
    pub fn missing_ranges(&self, max: usize) -> Vec<(u32, u32)> {
        let mut seen = vec![false; self.sent as usize];
        for &(seq, _) in &self.arrivals {
            if let Some(s) = seen.get_mut(seq as usize) {
                *s = true;
            }
        }
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (i, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
            let i = i as u32;
            if let Some(r) = out.last_mut().filter(|r| r.1 + 1 == i) {
                r.1 = i;
            } else if out.len() >= max {
                break;
            } else {
                out.push((i, i));
            }
        }
        out
    }

    /// One line for the test's output: sent, lost, duplicates, order.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} sent, {} lost, {} duplicated, {}",
            self.name,
            self.sent,
            self.lost(),
            self.duplicates(),
            if self.in_order() {
                "in order"
            } else {
                "OUT OF ORDER"
            }
        )
    }
}

/// A receiver thread, by target name: it returns its arrivals.
type Receiver = (String, JoinHandle<Vec<(u32, Instant)>>);

/// A running stream: one sender thread, one receiver thread per target.
pub struct SeqStream {
    stop: Arc<AtomicBool>,
    sender: Option<JoinHandle<Vec<u32>>>,
    receivers: Vec<Receiver>,
    counts: Vec<Arc<AtomicU32>>,
    send_errors: Arc<AtomicU64>,
}

impl SeqStream {
    /// Starts sending `rate` datagrams/s to each target from a socket in
    /// `from`. Every receiver is bound before this returns.
    pub fn start(from: &Netns, targets: &[Target<'_>], rate: u64) -> SeqStream {
        assert!(rate > 0 && !targets.is_empty());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let token = (nanos ^ u64::from(std::process::id()).rotate_left(40)) | 1;
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        let mut counts = Vec::new();
        let mut dsts = Vec::new();
        for t in targets {
            let sock =
                t.ns.in_ns(|| UdpSocket::bind((t.ip, 0)))
                    .unwrap_or_else(|e| panic!("bind {} in {}: {e}", t.ip, t.ns.name()));
            force_rcvbuf(&sock);
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("UDP timeout");
            dsts.push((t.ip, sock.local_addr().expect("local address").port()));
            let count = Arc::new(AtomicU32::new(0));
            counts.push(count.clone());
            let stop = stop.clone();
            let handle = std::thread::spawn(move || receive(sock, token, &stop, &count));
            receivers.push((t.name.to_string(), handle));
        }
        let tx = from
            .in_ns(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .unwrap_or_else(|e| panic!("bind a sender in {}: {e}", from.name()));
        let send_errors = Arc::new(AtomicU64::new(0));
        let sender = {
            let stop = stop.clone();
            let errors = send_errors.clone();
            std::thread::spawn(move || send(tx, &dsts, token, rate, &stop, &errors))
        };
        SeqStream {
            stop,
            sender: Some(sender),
            receivers,
            counts,
            send_errors,
        }
    }

    /// Datagrams each receiver got so far (duplicates included), in target order.
    pub fn counts(&self) -> Vec<u32> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits up to `timeout` until every receiver got `more` datagrams
    /// beyond what it had when called; whether they did.
    pub fn wait_more(&self, more: u32, timeout: Duration) -> bool {
        let base = self.counts();
        super::wait_until(timeout, || {
            self.counts()
                .iter()
                .zip(&base)
                .all(|(now, before)| *now >= before + more)
        })
    }

    /// Sends that failed so far (counted as sent and lost).
    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// Stops sending and returns what each receiver got, once it has been
    /// quiet for [`QUIET`].
    pub fn finish(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        self.receivers
            .drain(..)
            .zip(sent)
            .map(|((name, h), sent)| Received {
                name,
                sent,
                arrivals: h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            })
            .collect()
    }
}

impl Drop for SeqStream {
    fn drop(&mut self) {
        // Threads see the flag and end by themselves (bounded by QUIET).
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn send(
    tx: UdpSocket,
    dsts: &[(Ipv4Addr, u16)],
    token: u64,
    rate: u64,
    stop: &AtomicBool,
    errors: &AtomicU64,
) -> Vec<u32> {
    let start = Instant::now();
    let mut next: u32 = 0;
    let mut payload = [0u8; 12];
    payload[..8].copy_from_slice(&token.to_be_bytes());
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_nanos() * u128::from(rate) / 1_000_000_000) as u32;
        while next < due {
            payload[8..].copy_from_slice(&next.to_be_bytes());
            for dst in dsts {
                if tx.send_to(&payload, *dst).is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            next += 1;
        }
        std::thread::sleep(TICK);
    }
    vec![next; dsts.len()]
}

fn receive(
    sock: UdpSocket,
    token: u64,
    stop: &AtomicBool,
    count: &AtomicU32,
) -> Vec<(u32, Instant)> {
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 64];
    let mut quiet_since: Option<Instant> = None;
    loop {
        match sock.recv(&mut buf) {
            Ok(12) if buf[..8] == token.to_be_bytes() => {
                let seq = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
                arrivals.push((seq, Instant::now()));
                count.fetch_add(1, Ordering::Relaxed);
                quiet_since = None;
            }
            Ok(_) => {}
            Err(_) => {
                if stop.load(Ordering::Relaxed) {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= QUIET {
                        return arrivals;
                    }
                }
            }
        }
    }
}

/// `SO_RCVBUFFORCE` (root may exceed `rmem_max`); falls back silently.
fn force_rcvbuf(sock: &UdpSocket) {
    let size = RCVBUF;
    // SAFETY: `size` is a live c_int whose size is passed; a failure only
    // leaves the default buffer.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Permanent neighbour entries on the wire host for every container, so a
/// stream from the wire needs no ARP across a fault (a link flap would
/// otherwise send it into neighbour probing).
pub fn pin_wire_neighbours(rig: &Rig) {
    for c in &rig.containers {
        let mac = super::fmt_mac(&c.mac());
        rig.wire.ip(&[
            "neigh",
            "replace",
            &c.ip.to_string(),
            "lladdr",
            &mac,
            "dev",
            WIRE_IF,
            "nud",
            "permanent",
        ]);
    }
}
