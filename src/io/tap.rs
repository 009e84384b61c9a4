//! TAP endpoints: one `read()`/`write()` per frame on a non-blocking fd.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A TAP device's fd, shared by the workers that write to it.
#[derive(Debug, Clone)]
pub struct TapPort {
    fd: Arc<OwnedFd>,
}

impl TapPort {
    /// Wraps a non-blocking TAP fd opened with IFF_TAP | IFF_NO_PI.
    pub fn new(fd: OwnedFd) -> TapPort {
        TapPort { fd: Arc::new(fd) }
    }

    /// The fd, for poll().
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads one frame the container sent into `buf`, with `overflow` behind
    /// it: tun copies what fits and says only how much it copied, so a
    /// frame longer than `buf` shows as a length beyond `buf.len()` (up to
    /// the two buffers together) instead of passing for a whole frame.
    /// `Ok(None)` when none is waiting.
    #[inline]
    pub fn read(&self, buf: &mut [u8], overflow: &mut [u8]) -> io::Result<Option<usize>> {
        let iov = [
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
            libc::iovec {
                iov_base: overflow.as_mut_ptr().cast(),
                iov_len: overflow.len(),
            },
        ];
        // SAFETY: both iovecs describe live, writable slices of their stated lengths.
        let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(err)
        }
    }

    /// Hands one frame to the container. `Ok(false)` when the device queue is full.
    #[inline]
    pub fn write(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is a valid readable slice for its whole length.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n >= 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(false)
        } else {
            Err(err)
        }
    }
}
