//! The punt device: where the kernel fast path hands the workers the frames
//! it does not decide itself.
//!
//! A veth pair in mvdp's namespace. The fast path's tc programs redirect a
//! frame into `mvdp-punt` under an 802.1ad tag naming its sender; the frame
//! crosses to `mvdp-punt-w`, whose XDP port program puts it on the AF_XDP
//! socket of the queue it arrived on, one per worker. `mvdp-punt` has its
//! offloads off, so the kernel finishes checksums, segments GSO super-frames
//! and writes VLAN tags into the frame before it crosses: the workers get
//! frames as a wire would carry them.

use xsk_rs::Umem;

use super::daemon::DaemonError;
use super::ethtool;
use super::netlink;
use crate::io::xdp::{AttachMode, XdpPort};
use crate::io::xsk::{Bind, RingSizes, XskSocket};

/// The end the tc programs redirect into.
pub const PUNT_TX: &str = "mvdp-punt";
/// The end the workers read.
pub const PUNT_RX: &str = "mvdp-punt-w";

/// The punt device; dropping it detaches its program and deletes the pair.
#[derive(Debug)]
pub struct PuntDevice {
    /// The ifindex of [`PUNT_TX`], for the fast path's config.
    pub ifindex: u32,
    prog: Option<XdpPort>,
}

impl PuntDevice {
    /// Creates the pair with one queue per worker, and binds one socket per
    /// worker UMEM (worker `w` reads queue `w`), returned in worker order.
    /// `mtu`: the largest frame a worker takes (every network's MTU fits).
    pub fn create(
        umems: &[Umem],
        bind: Bind,
        mode: AttachMode,
        rings: RingSizes,
        mtu: u32,
    ) -> Result<(PuntDevice, Vec<XskSocket>), DaemonError> {
        let (ifindex, _) = netlink::create_local_veth(PUNT_TX, PUNT_RX, umems.len() as u32)?;
        // From here on, Drop deletes the pair.
        let mut dev = PuntDevice {
            ifindex,
            prog: None,
        };
        // A veth drops what exceeds its peer's MTU: jumbo frames must pass.
        for end in [PUNT_TX, PUNT_RX] {
            netlink::set_link_mtu(end, mtu)?;
        }
        // No offloads on the way in: checksums finished, super-frames cut,
        // tags (the punt tag included) written into the frame.
        ethtool::set_tx_checksum(PUNT_TX, false)
            .and_then(|()| {
                ethtool::set_features(
                    PUNT_TX,
                    &[
                        ("tx-vlan-hw-insert", false),
                        ("tx-vlan-stag-hw-insert", false),
                    ],
                )
            })
            .map_err(DaemonError::io(format!(
                "turning the offloads of {PUNT_TX} off"
            )))?;
        let mut prog = XdpPort::attach(PUNT_RX, mode)?;
        let mut sockets = Vec::with_capacity(umems.len());
        for (w, umem) in umems.iter().enumerate() {
            let s = XskSocket::bind(umem, PUNT_RX, w as u32, bind, rings)?;
            prog.set_socket(w as u32, s.fd())?;
            sockets.push(s);
        }
        dev.prog = Some(prog);
        Ok((dev, sockets))
    }
}

impl Drop for PuntDevice {
    fn drop(&mut self) {
        if let Some(prog) = self.prog.take() {
            if let Err(e) = prog.detach() {
                log::warn!("{e}");
            }
        }
        if let Err(e) = netlink::delete_link(PUNT_TX) {
            log::warn!("deleting {PUNT_TX}: {e}");
        }
    }
}
