//! Rate limits: one token bucket per endpoint, shared by every worker.
//!
//! An endpoint's frames can reach several workers: a veth spreads its
//! flows over its queues, one worker per queue, and the fast path punts a
//! limited endpoint's egress to whichever worker reads the punt device.
//! Each endpoint's bucket therefore lives here, once, behind its own lock;
//! a worker takes the lock once per batch of that endpoint's frames (and
//! only for endpoints that have a limit), so the limit holds for the
//! endpoint as a whole, not per queue.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::switch::{EndpointId, RateLimit};

/// A token bucket over frames and bytes, refilled from one clock read per batch.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    frames: f64,
    bytes: f64,
    last: Instant,
}

impl TokenBucket {
    /// Burst allowance: a tenth of a second's worth, and at least one batch / one big frame.
    const BURST_SECS: f64 = 0.1;
    /// The least burst in frames (a batch's worth).
    pub const MIN_BURST_FRAMES: f64 = 64.0;
    /// The least burst in bytes (a TAP frame can be 64 KiB).
    pub const MIN_BURST_BYTES: f64 = 65_536.0;

    /// A full bucket for `limit`, as of `now`.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let mut b = TokenBucket {
            limit,
            frames: 0.0,
            bytes: 0.0,
            last: now,
        };
        b.frames = b.frame_cap();
        b.bytes = b.byte_cap();
        b
    }

    /// The limit it enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn frame_cap(&self) -> f64 {
        (self.limit.pps as f64 * Self::BURST_SECS).max(Self::MIN_BURST_FRAMES)
    }

    fn byte_cap(&self) -> f64 {
        (self.limit.bytes_per_sec as f64 * Self::BURST_SECS).max(Self::MIN_BURST_BYTES)
    }

    /// Adds what the time since the last refill earned, up to the burst allowance.
    pub fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        // Clocks of two workers' batches may arrive out of order: never go back.
        if now > self.last {
            self.last = now;
        }
        self.frames = (self.frames + self.limit.pps as f64 * dt).min(self.frame_cap());
        self.bytes = (self.bytes + self.limit.bytes_per_sec as f64 * dt).min(self.byte_cap());
    }

    /// Takes one frame of `len` bytes if both limits allow it.
    #[inline]
    pub fn take(&mut self, len: u64) -> bool {
        let frame_ok = self.limit.pps == 0 || self.frames >= 1.0;
        let byte_ok = self.limit.bytes_per_sec == 0 || self.bytes >= len as f64;
        if !(frame_ok && byte_ok) {
            return false;
        }
        self.frames -= 1.0;
        self.bytes -= len as f64;
        true
    }
}

/// Every endpoint's bucket (none where it has no limit), one lock each.
#[derive(Debug)]
pub struct Limiters(Box<[Mutex<Option<TokenBucket>>]>);

impl Limiters {
    /// Room for endpoint ids `0..slots`.
    pub fn new(slots: usize) -> Limiters {
        Limiters((0..slots).map(|_| Mutex::new(None)).collect())
    }

    /// Makes endpoint `id` held to `limit` (none: no limit). A bucket whose
    /// limit is the same is kept as it is, so every worker may say so.
    pub fn set(&self, id: EndpointId, limit: Option<RateLimit>) {
        let Some(mut slot) = self.lock(id) else {
            return;
        };
        match (limit, slot.as_ref()) {
            (Some(l), Some(b)) if b.limit() == l => {}
            (Some(l), _) => *slot = Some(TokenBucket::new(l, Instant::now())),
            (None, _) => *slot = None,
        }
    }

    /// Endpoint `id`'s bucket, locked (none for an id out of range).
    pub fn lock(&self, id: EndpointId) -> Option<MutexGuard<'_, Option<TokenBucket>>> {
        let slot = self.0.get(usize::from(id.0))?;
        // A worker that panicked holding it left a bucket that is still a bucket.
        Some(slot.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(pps: u64, bytes_per_sec: u64) -> RateLimit {
        RateLimit { pps, bytes_per_sec }
    }

    fn drain(b: &mut TokenBucket, len: u64) -> usize {
        (0..100_000).take_while(|_| b.take(len)).count()
    }

    #[test]
    fn a_full_bucket_holds_a_tenth_of_a_second_or_a_batch() {
        let t0 = Instant::now();
        assert_eq!(drain(&mut TokenBucket::new(limit(10_000, 0), t0), 64), 1000);
        assert_eq!(drain(&mut TokenBucket::new(limit(100, 0), t0), 64), 64);
        // Bytes: 1 MB/s allows 100 kB at once: 97 frames of 1 kB... and a half.
        assert_eq!(
            drain(&mut TokenBucket::new(limit(0, 1_000_000), t0), 1024),
            97
        );
    }

    #[test]
    fn time_earns_tokens_up_to_the_allowance_and_no_more() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(1000, 0), t0);
        assert_eq!(drain(&mut b, 64), 100);
        b.refill(t0 + Duration::from_millis(10));
        assert_eq!(drain(&mut b, 64), 10);
        b.refill(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut b, 64), 100, "more than the burst allowance");
        // A clock read from before the last refill earns nothing.
        b.refill(t0);
        assert_eq!(drain(&mut b, 64), 0);
    }

    #[test]
    fn both_limits_must_allow_a_frame() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit(1000, 1_000_000), t0);
        // 100 frames allowed by count, 100 kB by bytes: 1500-byte frames hit bytes first.
        assert_eq!(drain(&mut b, 1500), 66);
        // 1000 bytes are left: sixteen 60-byte frames, though the count allows 34.
        assert_eq!(drain(&mut b, 60), 16);
    }

    #[test]
    fn the_bucket_is_the_endpoints_not_each_workers() {
        let limiters = Limiters::new(4);
        let id = EndpointId(2);
        // Two workers both apply the FDB's limit: one bucket, kept.
        limiters.set(id, Some(limit(100, 0)));
        let taken_by_one = drain(limiters.lock(id).unwrap().as_mut().unwrap(), 64);
        limiters.set(id, Some(limit(100, 0)));
        let taken_by_other = drain(limiters.lock(id).unwrap().as_mut().unwrap(), 64);
        assert_eq!((taken_by_one, taken_by_other), (64, 0));
        // A new limit is a new bucket; no limit, none.
        limiters.set(id, Some(limit(1000, 0)));
        assert_eq!(drain(limiters.lock(id).unwrap().as_mut().unwrap(), 64), 100);
        limiters.set(id, None);
        assert!(limiters.lock(id).unwrap().is_none());
        assert!(limiters.lock(EndpointId(9)).is_none());
    }
}
