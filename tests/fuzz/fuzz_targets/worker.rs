//! The whole worker loop over in-memory ports: the input is a program of
//! operations (frames from the wire, from containers, from the fast path's
//! punt device and the group listener; transmissions; endpoints removed,
//! re-added and vanishing; FDB swaps), and after every step the frame
//! conservation check runs: every UMEM frame in exactly one place, agreeing
//! with the worker's ledger, and every frame that entered delivered,
//! dropped for a reason or still queued. Frames the worker sends to the
//! wire must come from an endpoint, under its network's tag.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use mvdp::config::RateLimit;
use mvdp::dataplane::mem::{MemSizes, MemWorker, SocketCtl, TapCtl};
use mvdp::dataplane::GroupFrame;
use mvdp::switch::{
    classify_ingress, EndpointEntry, EndpointId, Fdb, Mode, NetworkEntry, NetworkId, Verdict,
};
use mvdp::wire::{FrameHeader, MacAddr};

const fn mac(id: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 0x0a, 0, 0, id])
}

/// Addresses the structured frames are made of: the endpoints', a wire
/// neighbour (the source network's allowed one), broadcast, a multicast group.
const WIRE_HOST: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const ADDRS: [MacAddr; 11] = [
    mac(0),
    mac(1),
    mac(2),
    mac(3),
    mac(4),
    mac(5),
    mac(6),
    mac(7),
    WIRE_HOST,
    MacAddr([0xff; 6]),
    MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]),
];

/// Endpoint `i` of [`ENDPOINTS`] and how the worker reaches it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A veth whose container's frames arrive on its socket.
    Veth,
    /// A veth on the fast path: its socket only transmits.
    VethTxOnly,
    Tap,
}

/// e0..e7: network lan (bridge, untagged, mac+ip), v50 (vepa), v60
/// (private), v70 (source), v80 (passthru).
const ENDPOINTS: [(u16, Kind); 8] = [
    (0, Kind::Veth),
    (0, Kind::Tap),
    (0, Kind::VethTxOnly),
    (1, Kind::Tap),
    (1, Kind::Veth),
    (2, Kind::Veth),
    (3, Kind::Tap),
    (4, Kind::Veth),
];
const VLANS: [Option<u16>; 5] = [None, Some(50), Some(60), Some(70), Some(80)];

fn fdb(limited: bool) -> Arc<Fdb> {
    let modes = [
        Mode::Bridge,
        Mode::Vepa,
        Mode::Private,
        Mode::Source,
        Mode::Passthru,
    ];
    let networks = (0..5)
        .map(|i| {
            let mut n = NetworkEntry::new(format!("n{i}"), VLANS[i], modes[i]);
            n.anti_spoof_ip = i == 0;
            n.allow_inner_tags = i == 1;
            // The bridge network snoops: its members-only floods and the
            // snooping parser run too (no group has a member here).
            n.snoop = i == 0;
            n.flood_queue_len = 8;
            // Small MTUs, so that fuzzed frames cross them (too_long).
            n.max_frame = if i < 2 { 100 + 14 } else { usize::MAX };
            n
        })
        .collect();
    let endpoints = ENDPOINTS
        .iter()
        .enumerate()
        .map(|(i, &(net, _))| {
            let mut e = EndpointEntry::new(format!("e{i}"), mac(i as u8), NetworkId(net));
            e.ip = Some(std::net::Ipv4Addr::new(10, 0, 0, i as u8));
            if net == 3 {
                e.allowed_sources = vec![WIRE_HOST];
            }
            if limited && i % 2 == 1 {
                e.rate_limit = Some(RateLimit {
                    pps: 50,
                    bytes_per_sec: 8000,
                });
            }
            Some(e)
        })
        .collect();
    Arc::new(Fdb::new(networks, endpoints).expect("a valid FDB"))
}

static FDBS: LazyLock<[Arc<Fdb>; 2]> = LazyLock::new(|| [fdb(false), fdb(true)]);

enum Port {
    Xsk(SocketCtl),
    Tap(TapCtl),
    Gone,
}

/// Reads the program.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A frame: raw bytes, or one built from the address table.
    fn frame(&mut self) -> Option<Vec<u8>> {
        let shape = self.byte()?;
        if shape & 0x80 != 0 {
            let len = usize::from(self.byte()?) * 12;
            let take = len.min(self.0.len());
            let (f, rest) = self.0.split_at(take);
            self.0 = rest;
            return Some(f.to_vec());
        }
        let dst = ADDRS[usize::from(self.byte()?) % ADDRS.len()];
        let src = ADDRS[usize::from(self.byte()?) % ADDRS.len()];
        let mut f = Vec::with_capacity(1600);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        // Tags: none, one of the networks' VLANs, or a stacked pair.
        match shape % 4 {
            1 | 2 => {
                let vid = VLANS[usize::from(shape >> 2) % 5].unwrap_or(99);
                f.extend_from_slice(&[0x81, 0x00]);
                f.extend_from_slice(&vid.to_be_bytes());
            }
            3 => f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x32, 0x81, 0x00, 0x00, 0x05]),
            _ => {}
        }
        let ethertype: u16 = if shape & 0x40 != 0 { 0x0806 } else { 0x0800 };
        f.extend_from_slice(&ethertype.to_be_bytes());
        let body = usize::from(self.byte()?) * 6;
        f.extend(std::iter::repeat_n(shape, body.max(46)));
        Some(f)
    }
}

/// Frames the worker sent to the wire: each from one of the endpoints,
/// under its network's tag (its own tag inside only where allowed).
fn check_wire(fdb: &Fdb, frames: &[Vec<u8>]) {
    for f in frames {
        let h = FrameHeader::parse(f).expect("an unparsable frame on the wire");
        let (_, e) = fdb
            .endpoints()
            .find(|(_, e)| e.mac == h.src)
            .expect("a frame on the wire from no endpoint");
        let vlan = fdb.network(e.network).vlan;
        assert_eq!(h.vlan, vlan, "a frame on the wire under another tag");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // The first byte's low bit: sockets bound for multi-buffer frames, on
    // 256-byte UMEM frames, so that most fuzzed frames are chains (the
    // jumbo lane); or, as a parent without jumbo frames has it, one
    // 2048-byte frame per frame.
    let Some(first) = input.byte() else { return };
    let (frame_size, jumbo) = if first & 1 == 1 {
        (256, Some(2048))
    } else {
        (2048, None)
    };
    let sizes = MemSizes {
        // Few frames: the check after every step is linear in them, and
        // exhaustion is a path worth taking.
        frames: 96,
        frame_size,
        ring: 32,
        batch: 8,
        parent_fill: 16,
        port_fill_budget: 32,
        flood_queue: 8,
        jumbo,
    };
    let mut fdb = FDBS[0].clone();
    let mut w = MemWorker::new(fdb.clone(), sizes);
    let mut ports: Vec<Port> = (0..ENDPOINTS.len()).map(|i| add(&mut w, i)).collect();
    let punt = w.set_punt();
    while let Some(op) = input.byte() {
        let k = usize::from(op >> 4) % ENDPOINTS.len();
        match op % 12 {
            0 | 1 => {
                let Some(f) = input.frame() else { break };
                w.wire().deliver(&f);
            }
            2 | 3 => {
                let Some(f) = input.frame() else { break };
                match &ports[k] {
                    Port::Xsk(s) => {
                        s.deliver(&f);
                    }
                    Port::Tap(t) => t.send(&f),
                    Port::Gone => {}
                }
            }
            4 => {
                // From the fast path: under a punt tag naming a sender, or a wire copy.
                let Some(tci) = input.byte() else { break };
                let Some(mut f) = input.frame() else { break };
                if f.len() >= 12 {
                    let tci = if tci & 0x80 != 0 {
                        0x1000
                    } else {
                        u16::from(tci & 0x0f)
                    };
                    f.splice(12..12, [0x88, 0xa8, (tci >> 8) as u8, tci as u8]);
                }
                punt.deliver(&f);
            }
            5 => {
                let Some(n) = input.byte() else { break };
                check_wire(&fdb, &w.wire().transmit(usize::from(n)));
            }
            6 => match &ports[k] {
                Port::Xsk(s) => {
                    s.transmit(usize::from(op));
                }
                Port::Tap(t) => {
                    t.take_received();
                }
                Port::Gone => {}
            },
            7 => {
                // What the group listener queues: floods and single receivers.
                let Some(f) = input.frame() else { break };
                let verdict = classify_ingress(&fdb, &f);
                if matches!(
                    verdict,
                    Verdict::Flood(_) | Verdict::Endpoint(_) | Verdict::EndpointUntag(_)
                ) {
                    w.flood(GroupFrame { verdict, buf: f });
                }
            }
            8 => {
                w.remove(EndpointId(k as u16));
                ports[k] = Port::Gone;
            }
            9 => ports[k] = add(&mut w, k),
            10 => {
                if let Port::Tap(t) = &ports[k] {
                    t.vanish();
                }
            }
            _ => {
                fdb = FDBS[usize::from(op >> 7)].clone();
                w.set_fdb(fdb.clone());
            }
        }
        w.step();
        if let Err(e) = w.check() {
            panic!("after op {op}: {e}");
        }
    }
    // Drain: everything transmitted, every queue emptied, the laws still hold
    // and nothing is left waiting.
    let mut idle = 0;
    for _ in 0..64 {
        let mut moved = w.wire().transmit(usize::MAX);
        check_wire(&fdb, &moved);
        for p in &ports {
            match p {
                Port::Xsk(s) => moved.extend(s.transmit(usize::MAX)),
                Port::Tap(t) => moved.extend(t.take_received()),
                Port::Gone => {}
            }
        }
        let work = w.step();
        if let Err(e) = w.check() {
            panic!("while draining: {e}");
        }
        idle = if work == 0 && moved.is_empty() {
            idle + 1
        } else {
            0
        };
        if idle == 2 {
            break;
        }
    }
    assert_eq!(w.pending(), 0, "group frames left queued after draining");
});

fn add(w: &mut MemWorker, i: usize) -> Port {
    let id = EndpointId(i as u16);
    match ENDPOINTS[i].1 {
        Kind::Veth => Port::Xsk(w.add_veth(id, true)),
        Kind::VethTxOnly => Port::Xsk(w.add_veth(id, false)),
        Kind::Tap => Port::Tap(w.add_tap(id, 16)),
    }
}
