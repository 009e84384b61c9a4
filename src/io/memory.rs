//! An in-memory port: frames come from and go to vectors. For tests and benches.

/// A port that replays a fixed set of frames in batches and records what is sent to it.
#[derive(Debug, Default)]
pub struct MemoryPort {
    frames: Vec<Vec<u8>>,
    next: usize,
    /// Frames transmitted to this port, in order.
    pub sent: Vec<Vec<u8>>,
}

impl MemoryPort {
    /// A port whose receive side cycles through `frames`.
    pub fn new(frames: Vec<Vec<u8>>) -> MemoryPort {
        MemoryPort {
            frames,
            next: 0,
            sent: Vec::new(),
        }
    }

    /// The next batch of up to `max` received frames, wrapping around at the end.
    pub fn rx_batch(&mut self, max: usize) -> &[Vec<u8>] {
        if self.frames.is_empty() {
            return &[];
        }
        if self.next >= self.frames.len() {
            self.next = 0;
        }
        let start = self.next;
        let end = (start + max).min(self.frames.len());
        self.next = end;
        &self.frames[start..end]
    }

    /// Records a transmitted frame.
    pub fn tx(&mut self, frame: &[u8]) {
        self.sent.push(frame.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_wrap_around() {
        let mut p = MemoryPort::new((0..5u8).map(|i| vec![i]).collect());
        assert_eq!(p.rx_batch(3).len(), 3);
        assert_eq!(p.rx_batch(3), &[vec![3], vec![4]]);
        assert_eq!(p.rx_batch(3)[0], vec![0]);
        p.tx(&[9]);
        assert_eq!(p.sent, vec![vec![9]]);
    }
}
