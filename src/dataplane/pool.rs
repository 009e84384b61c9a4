//! A worker's UMEM frames and who holds each one.
//!
//! Every frame is in exactly one place: on the free list (user space holds
//! it, [`USER`]), or handed to the kernel on a socket's fill or TX ring
//! (the ledger names the socket), or held by user space outside the free
//! list while it is classified, staged or queued (also [`USER`]). The pool
//! keeps the ledger as frames move, takes back every frame a closed socket
//! held, and can check the whole ledger ([`FramePool::check`]).
//!
//! The rings it posts to and takes from are traits, so the pool's
//! bookkeeping runs against in-memory rings in tests.

use xsk_rs::FrameDesc;

pub(super) use super::port::{CompletionRing, Desc, FillRing};

/// Ledger tag of frames held by user space (free, staged, queued, being classified).
pub(super) const USER: u32 = u32::MAX;

/// Frames in flight on one AF_XDP socket, tracked so ring operations never
/// overrun.
#[derive(Debug, Default)]
pub(super) struct Inflight {
    /// Frames posted to the fill ring and not yet seen on the RX ring.
    pub fill: usize,
    /// Frames posted to the TX ring and not yet seen on the completion ring.
    pub tx: usize,
}

/// The worker's UMEM frames: the free list, and a ledger of which socket
/// holds each frame handed to the kernel, so that the frames posted to a
/// socket that goes away (a removed endpoint) can be taken back.
pub(super) struct FramePool<D: Desc = FrameDesc> {
    pub free: Vec<D>,
    /// Holder of each frame, indexed by `addr / frame_size`: an endpoint id, PARENT or USER.
    owner: Vec<u32>,
    /// A descriptor for every frame, indexed the same way.
    all: Vec<D>,
    frame_size: usize,
}

impl<D: Desc> FramePool<D> {
    /// A pool holding every frame of `frames`, all free.
    pub fn new(frames: Vec<D>, frame_size: usize) -> FramePool<D> {
        FramePool {
            owner: vec![USER; frames.len()],
            all: frames.clone(),
            free: frames,
            frame_size,
        }
    }

    /// Who holds frame `idx` by the ledger: [`USER`] or a socket's tag.
    pub fn holder(&self, idx: usize) -> u32 {
        self.owner[idx]
    }

    /// Bytes between the starts of two frames.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    #[inline]
    pub fn pop(&mut self) -> Option<D> {
        self.free.pop()
    }

    /// Returns a frame to the free list, clearing any mark it carried.
    #[inline]
    pub fn push(&mut self, mut d: D) {
        d.clear_options();
        self.free.push(d);
    }

    #[inline]
    fn mark(&mut self, descs: &[D], tag: u32) {
        for d in descs {
            self.owner[d.addr() / self.frame_size] = tag;
        }
    }

    /// Frames just taken off an RX ring: user space holds them now.
    #[inline]
    pub fn received(&mut self, descs: &[D]) {
        self.mark(descs, USER);
    }

    /// Frames just handed to the TX ring of the socket tagged `tag`.
    #[inline]
    pub fn sent(&mut self, descs: &[D], tag: u32) {
        self.mark(descs, tag);
    }

    /// Takes transmitted frames back from a completion ring.
    pub fn reap(
        &mut self,
        ring: &mut impl CompletionRing<D>,
        inflight: &mut Inflight,
        batch: usize,
    ) -> usize {
        if inflight.tx == 0 || self.all.is_empty() {
            return 0;
        }
        let start = self.free.len();
        let want = inflight.tx.min(batch * 4);
        self.free.resize(start + want, self.all[0]);
        // SAFETY: the slice is writable scratch space for descriptors; the
        // frames returned are ours again once the kernel hands them back.
        let n = unsafe { ring.consume(&mut self.free[start..]) };
        assert!(n <= want, "a completion ring returned more than asked");
        self.free.truncate(start + n);
        for d in &mut self.free[start..start + n] {
            self.owner[d.addr() / self.frame_size] = USER;
            // Free frames carry no option: a completed chunk of a chain
            // comes back still marked XDP_PKT_CONTD.
            d.clear_options();
        }
        inflight.tx -= n;
        n
    }

    /// Posts free frames to a fill ring until `target` are posted. The
    /// frames the ring takes leave the free list, and only those: a ring
    /// that takes part of what is offered keeps the rest free.
    pub fn refill(
        &mut self,
        ring: &mut impl FillRing<D>,
        inflight: &mut Inflight,
        target: usize,
        tag: u32,
    ) {
        let want = target.saturating_sub(inflight.fill).min(self.free.len());
        if want == 0 {
            return;
        }
        let start = self.free.len() - want;
        // SAFETY: these frames are on the free list (held by user space)
        // and on no other ring.
        let n = unsafe { ring.produce(&self.free[start..]) };
        assert!(n <= want, "a fill ring took more than it was offered");
        for i in start..start + n {
            let idx = self.free[i].addr() / self.frame_size;
            self.owner[idx] = tag;
        }
        // The ring took a prefix of the offer: that prefix leaves the list.
        self.free.drain(start..start + n);
        inflight.fill += n;
        if n > 0 {
            ring.wake_if_needed();
        }
    }

    /// Takes back every frame held by the (closed) socket tagged `tag`.
    pub fn reclaim(&mut self, tag: u32) -> usize {
        let mut n = 0;
        for (idx, owner) in self.owner.iter_mut().enumerate() {
            if *owner == tag {
                *owner = USER;
                self.free.push(self.all[idx]);
                n += 1;
            }
        }
        n
    }

    /// Checks the ledger: no frame is on the free list twice or while a
    /// socket holds it, and the frames each socket holds add up to what
    /// `held` says (tag, frames). `outside` is how many frames user space
    /// holds off the free list (being classified, staged, queued). Returns
    /// what is wrong, if anything.
    #[cfg(test)]
    pub fn check(&self, held: &[(u32, usize)], outside: usize) -> Result<(), String> {
        let mut on_free = vec![false; self.all.len()];
        for d in &self.free {
            let idx = d.addr() / self.frame_size;
            if std::mem::replace(&mut on_free[idx], true) {
                return Err(format!("frame {idx} is on the free list twice"));
            }
            if self.owner[idx] != USER {
                return Err(format!(
                    "frame {idx} is free and held by socket {}",
                    self.owner[idx]
                ));
            }
        }
        for &(tag, n) in held {
            let count = self.owner.iter().filter(|&&o| o == tag).count();
            if count != n {
                return Err(format!(
                    "socket {tag} holds {count} frames by the ledger, {n} by its rings"
                ));
            }
        }
        let in_user = self.owner.iter().filter(|&&o| o == USER).count();
        if in_user != self.free.len() + outside {
            return Err(format!(
                "{in_user} frames are user space's by the ledger, {} free + {outside} in hand",
                self.free.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor for tests: just an address.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    struct Frame(usize);

    impl Desc for Frame {
        fn addr(&self) -> usize {
            self.0
        }
        fn len(&self) -> usize {
            0
        }
        fn options(&self) -> u32 {
            0
        }
        fn set_options(&mut self, _: u32) {}
    }

    const SIZE: usize = 2048;

    fn pool(frames: usize) -> FramePool<Frame> {
        FramePool::new((0..frames).map(|i| Frame(i * SIZE)).collect(), SIZE)
    }

    /// A fill ring with room for `room` entries; what the kernel would
    /// receive into, in order.
    struct Ring {
        room: usize,
        posted: Vec<Frame>,
    }

    impl FillRing<Frame> for Ring {
        unsafe fn produce(&mut self, frames: &[Frame]) -> usize {
            let n = frames.len().min(self.room);
            self.room -= n;
            self.posted.extend_from_slice(&frames[..n]);
            n
        }
        fn wake_if_needed(&mut self) {}
    }

    impl CompletionRing<Frame> for Ring {
        unsafe fn consume(&mut self, out: &mut [Frame]) -> usize {
            let n = out.len().min(self.posted.len());
            for (o, f) in out.iter_mut().zip(self.posted.drain(..n)) {
                *o = f;
            }
            n
        }
    }

    #[test]
    fn a_fill_ring_that_takes_part_of_the_offer_leaves_the_rest_free() {
        let mut p = pool(16);
        let mut ring = Ring {
            room: 5,
            posted: Vec::new(),
        };
        let mut inflight = Inflight::default();
        p.refill(&mut ring, &mut inflight, 8, 7);
        assert_eq!(inflight.fill, 5);
        assert_eq!(ring.posted.len(), 5);
        assert_eq!(p.free.len(), 11);
        for f in &ring.posted {
            assert!(!p.free.contains(f), "{f:?} is both posted and free");
        }
        p.check(&[(7, 5)], 0).unwrap();
        // Room again: the ring gets the rest of its target, nothing twice.
        ring.room = 8;
        p.refill(&mut ring, &mut inflight, 8, 7);
        assert_eq!(inflight.fill, 8);
        p.check(&[(7, 8)], 0).unwrap();
        let mut all = ring.posted.clone();
        all.sort_by_key(|f| f.0);
        all.dedup();
        assert_eq!(all.len(), 8, "a frame was posted twice");
    }

    #[test]
    fn a_ring_that_takes_nothing_changes_nothing() {
        let mut p = pool(4);
        let mut ring = Ring {
            room: 0,
            posted: Vec::new(),
        };
        let mut inflight = Inflight::default();
        p.refill(&mut ring, &mut inflight, 4, 1);
        assert_eq!((inflight.fill, p.free.len()), (0, 4));
        p.check(&[(1, 0)], 0).unwrap();
    }

    #[test]
    fn frames_go_round_and_a_closed_socket_gives_them_all_back() {
        let mut p = pool(8);
        let mut fill = Ring {
            room: 8,
            posted: Vec::new(),
        };
        let mut inflight = Inflight::default();
        p.refill(&mut fill, &mut inflight, 6, 3);
        // Two arrive on RX (user space holds them), one goes out on TX.
        let rx: Vec<Frame> = fill.posted.drain(..2).collect();
        inflight.fill -= 2;
        p.received(&rx);
        p.check(&[(3, 4)], 2).unwrap();
        p.sent(&rx[..1], 3);
        inflight.tx += 1;
        p.push(rx[1]);
        p.check(&[(3, 5)], 0).unwrap();
        let mut cq = Ring {
            room: 0,
            posted: rx[..1].to_vec(),
        };
        assert_eq!(p.reap(&mut cq, &mut inflight, 64), 1);
        p.check(&[(3, 4)], 0).unwrap();
        // The socket closes with four frames posted: all come back.
        assert_eq!(p.reclaim(3), 4);
        p.check(&[(3, 0)], 0).unwrap();
        assert_eq!(p.free.len(), 8);
    }

    #[test]
    fn the_check_finds_a_frame_both_free_and_posted() {
        let mut p = pool(4);
        let mut ring = Ring {
            room: 4,
            posted: Vec::new(),
        };
        let mut inflight = Inflight::default();
        p.refill(&mut ring, &mut inflight, 2, 9);
        // What the old truncate did on a partial produce: a posted frame back on the list.
        p.free.push(ring.posted[0]);
        assert!(p
            .check(&[(9, 2)], 0)
            .unwrap_err()
            .contains("held by socket 9"));
    }
}
