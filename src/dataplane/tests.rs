//! The worker loop over in-memory ports: every path a frame takes, with
//! both laws (every UMEM frame in one place, every frame accounted)
//! checked after every step.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::mem::{MemSizes, MemWorker, SocketCtl, TapCtl};
use super::GroupFrame;
use crate::config::RateLimit;
use crate::switch::{
    classify_ingress, DropReason, EndpointEntry, EndpointId, Fdb, Mode, NetworkEntry, NetworkId,
};
use crate::wire::MacAddr;

const WIRE_HOST: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const BROADCAST: MacAddr = MacAddr([0xff; 6]);
const E0: EndpointId = EndpointId(0);
const E1: EndpointId = EndpointId(1);
const E2: EndpointId = EndpointId(2);

fn mac(id: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 10, 0, 0, id])
}

/// An untagged IPv4-ish frame with `seq` in its payload.
fn frame(dst: MacAddr, src: MacAddr, seq: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(64, 0xab);
    f
}

fn tagged(dst: MacAddr, src: MacAddr, vid: u16, seq: u16) -> Vec<u8> {
    let mut f = frame(dst, src, seq);
    f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
    f
}

/// One network of `mode` (on `vlan`) with endpoints e0..e<n>.
fn fdb(mode: Mode, vlan: Option<u16>, n: u8, limit: Option<RateLimit>) -> Arc<Fdb> {
    let endpoints = (0..n)
        .map(|i| {
            let mut e = EndpointEntry::new(format!("e{i}"), mac(i), NetworkId(0));
            e.rate_limit = limit;
            Some(e)
        })
        .collect();
    Arc::new(Fdb::new(vec![NetworkEntry::new("lan", vlan, mode)], endpoints).unwrap())
}

/// Steps until the worker finds nothing to do even after a wake-up (which
/// reads every TAP), checking both laws after every step.
fn settle(w: &mut MemWorker) {
    let mut idle = 0;
    for _ in 0..64 {
        let work = w.step();
        w.check().unwrap_or_else(|e| panic!("after a step: {e}"));
        idle = if work == 0 { idle + 1 } else { 0 };
        if idle == 2 {
            return;
        }
    }
    panic!("the worker never went idle");
}

/// Steps, then transmits everything on `ctl`'s TX ring.
fn sent(w: &mut MemWorker, ctl: &SocketCtl) -> Vec<Vec<u8>> {
    settle(w);
    let out = ctl.transmit(usize::MAX);
    settle(w);
    out
}

/// Steps, then transmits everything the worker sent to the wire.
fn to_wire(w: &mut MemWorker) -> Vec<Vec<u8>> {
    let wire = w.wire();
    sent(w, &wire)
}

fn drops(w: &MemWorker, r: DropReason) -> u64 {
    w.stats().drops[r as usize].load(Relaxed)
}

fn worker(fdb: Arc<Fdb>) -> MemWorker {
    let mut w = MemWorker::new(fdb, MemSizes::default());
    settle(&mut w);
    w
}

#[test]
fn wire_unicast_reaches_its_endpoint_and_no_other() {
    let mut w = worker(fdb(Mode::Bridge, None, 3, None));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, 1)));
    assert!(w.wire().deliver(&frame(mac(1), WIRE_HOST, 2)));
    assert!(w.wire().deliver(&frame(mac(9), WIRE_HOST, 3)));
    assert_eq!(sent(&mut w, &e0), vec![frame(mac(0), WIRE_HOST, 1)]);
    assert_eq!(e1.take_received(), vec![frame(mac(1), WIRE_HOST, 2)]);
    assert!(
        w.wire().transmit(usize::MAX).is_empty(),
        "reflected to the wire"
    );
    assert_eq!(drops(&w, DropReason::NoEndpoint), 1);
    // e2 is in the FDB but has no port on this worker.
    assert!(w.wire().deliver(&frame(mac(2), WIRE_HOST, 4)));
    settle(&mut w);
    assert_eq!(drops(&w, DropReason::EndpointGone), 1);
    assert_eq!(w.totals().delivered, 2);
}

#[test]
fn a_vlan_network_pops_the_tag_on_the_way_in_and_pushes_it_on_the_way_out() {
    let mut w = worker(fdb(Mode::Bridge, Some(50), 2, None));
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    assert!(w.wire().deliver(&tagged(mac(0), WIRE_HOST, 50, 7)));
    // Another VLAN's frame for the same MAC is not this network's.
    assert!(w.wire().deliver(&tagged(mac(0), WIRE_HOST, 51, 8)));
    assert_eq!(sent(&mut w, &e0), vec![frame(mac(0), WIRE_HOST, 7)]);
    assert!(e0.deliver(&frame(WIRE_HOST, mac(0), 9)));
    assert_eq!(to_wire(&mut w), vec![tagged(WIRE_HOST, mac(0), 50, 9)]);
    // A container's own tag inside the network's: double tagging.
    assert!(e0.deliver(&tagged(WIRE_HOST, mac(0), 60, 10)));
    assert!(to_wire(&mut w).is_empty());
    assert_eq!(drops(&w, DropReason::VlanHop), 1);
}

#[test]
fn a_spoofed_source_never_leaves() {
    let mut w = worker(fdb(Mode::Bridge, None, 2, None));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    assert!(e0.deliver(&frame(WIRE_HOST, mac(1), 1)));
    e1.send(&frame(WIRE_HOST, mac(0), 2));
    assert!(to_wire(&mut w).is_empty());
    assert_eq!(drops(&w, DropReason::SpoofedSource), 2);
    assert_eq!(w.stats().endpoints[0].dropped.load(Relaxed), 1);
    assert_eq!(w.stats().endpoints[1].dropped.load(Relaxed), 1);
}

#[test]
fn bridge_switches_locally_and_floods_a_broadcast_to_the_others_and_the_wire() {
    let mut w = worker(fdb(Mode::Bridge, None, 3, None));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_veth(E1, true);
    let e2 = w.add_tap(E2, 64);
    settle(&mut w);
    assert!(e0.deliver(&frame(mac(1), mac(0), 1)));
    assert_eq!(sent(&mut w, &e1), vec![frame(mac(1), mac(0), 1)]);
    assert!(w.wire().transmit(usize::MAX).is_empty());
    let bcast = frame(BROADCAST, mac(0), 2);
    assert!(e0.deliver(&bcast));
    settle(&mut w);
    assert_eq!(e1.transmit(9), vec![bcast.clone()]);
    assert_eq!(e2.take_received(), vec![bcast.clone()]);
    assert_eq!(w.wire().transmit(9), vec![bcast.clone()]);
    assert!(e0.transmit(9).is_empty(), "a flood went back to its sender");
    settle(&mut w);
    // Two frames entered, two were delivered (a flood counts once).
    assert_eq!(w.totals().delivered, 2);
}

#[test]
fn private_mode_keeps_endpoints_apart() {
    let mut w = worker(fdb(Mode::Private, None, 2, None));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_veth(E1, true);
    settle(&mut w);
    assert!(e0.deliver(&frame(mac(1), mac(0), 1)));
    settle(&mut w);
    assert!(e1.transmit(9).is_empty());
    // In private mode a frame for a sibling goes to the wire, which may
    // not send it back (that is the kernel's private mode too).
    assert_eq!(w.wire().transmit(9), vec![frame(mac(1), mac(0), 1)]);
}

#[test]
fn a_group_frame_from_the_listener_is_copied_to_every_member() {
    let fdb = fdb(Mode::Bridge, None, 3, None);
    let mut w = worker(fdb.clone());
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_veth(E1, false);
    let e2 = w.add_tap(E2, 64);
    settle(&mut w);
    let bcast = frame(BROADCAST, WIRE_HOST, 3);
    let verdict = classify_ingress(&fdb, &bcast);
    assert!(w.flood(GroupFrame {
        verdict,
        buf: bcast.clone()
    }));
    settle(&mut w);
    assert_eq!(e0.transmit(9), vec![bcast.clone()]);
    assert_eq!(e1.transmit(9), vec![bcast.clone()]);
    assert_eq!(e2.take_received(), vec![bcast]);
    settle(&mut w);
    assert_eq!(w.totals().delivered, 1);
}

#[test]
fn a_full_tx_ring_drops_and_counts_for_the_destination() {
    let sizes = MemSizes::default();
    let mut w = worker(fdb(Mode::Bridge, None, 1, None));
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    // Never transmitted: e0's TX ring (64) fills, then the rest is dropped.
    let mut offered = 0;
    for round in 0..4 {
        for i in 0..48 {
            offered += u64::from(w.wire().deliver(&frame(mac(0), WIRE_HOST, round * 48 + i)));
        }
        settle(&mut w);
    }
    assert_eq!(e0.tx_len(), sizes.ring);
    let t = w.totals();
    assert_eq!(t.received_all(), offered);
    assert_eq!(drops(&w, DropReason::TxFull), offered - sizes.ring as u64);
    assert_eq!(
        w.stats().endpoints[0].dropped.load(Relaxed),
        offered - sizes.ring as u64
    );
    // Once transmitted, the frames come back and the wire gets through again.
    assert_eq!(e0.transmit(usize::MAX).len(), sizes.ring);
    settle(&mut w);
    assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, 999)));
    assert_eq!(sent(&mut w, &e0), vec![frame(mac(0), WIRE_HOST, 999)]);
}

#[test]
fn a_full_tap_queue_drops_as_tx_full_and_a_vanished_tap_as_endpoint_gone() {
    let mut w = worker(fdb(Mode::Bridge, None, 1, None));
    let e0 = w.add_tap(E0, 2);
    settle(&mut w);
    for i in 0..3 {
        assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, i)));
    }
    settle(&mut w);
    assert_eq!(e0.take_received().len(), 2);
    assert_eq!(drops(&w, DropReason::TxFull), 1);
    e0.vanish();
    assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, 4)));
    settle(&mut w);
    assert_eq!(drops(&w, DropReason::EndpointGone), 1);
}

#[test]
fn a_tap_frame_longer_than_a_umem_frame_is_too_long_not_cut_short() {
    let mut w = worker(fdb(Mode::Bridge, None, 1, None));
    let e0 = w.add_tap(E0, 8);
    settle(&mut w);
    let mut big = frame(WIRE_HOST, mac(0), 1);
    big.resize(MemSizes::default().frame_size + 100, 0x5a);
    e0.send(&big);
    e0.send(&frame(WIRE_HOST, mac(0), 2));
    assert_eq!(to_wire(&mut w), vec![frame(WIRE_HOST, mac(0), 2)]);
    assert_eq!(drops(&w, DropReason::TooLong), 1);
}

/// One network of `mode` whose endpoints e0..e<n> have an MTU of `mtu`.
fn fdb_mtu(mode: Mode, vlan: Option<u16>, n: u8, mtu: usize) -> Arc<Fdb> {
    let mut net = NetworkEntry::new("lan", vlan, mode);
    net.max_frame = mtu + crate::wire::ETH_HEADER_LEN;
    net.allow_inner_tags = vlan.is_some();
    let endpoints = (0..n)
        .map(|i| Some(EndpointEntry::new(format!("e{i}"), mac(i), NetworkId(0))))
        .collect();
    Arc::new(Fdb::new(vec![net], endpoints).unwrap())
}

/// `f` grown with filler to `len` bytes.
fn sized(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    f.resize(len, 0x5a);
    f
}

#[test]
fn a_frame_above_the_endpoints_mtu_is_too_long_for_it_never_cut_short() {
    let mut w = worker(fdb_mtu(Mode::Bridge, None, 3, 1000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    // MTU 1000: a 1014-byte frame fits, 1015 does not; to a veth and a TAP.
    let fits = sized(frame(mac(0), WIRE_HOST, 1), 1014);
    let over = sized(frame(mac(0), WIRE_HOST, 2), 1015);
    assert!(w.wire().deliver(&fits));
    assert!(w.wire().deliver(&over));
    assert!(w.wire().deliver(&sized(frame(mac(1), WIRE_HOST, 3), 1500)));
    assert_eq!(sent(&mut w, &e0), vec![fits]);
    assert!(e1.take_received().is_empty());
    assert_eq!(drops(&w, DropReason::TooLong), 2);
    assert_eq!(w.stats().endpoints[0].dropped.load(Relaxed), 1);
    assert_eq!(w.stats().endpoints[1].dropped.load(Relaxed), 1);
    // Container to container (bridge): the same limit.
    e1.send(&sized(frame(mac(0), mac(1), 4), 1400));
    settle(&mut w);
    assert!(e0.transmit(usize::MAX).is_empty());
    assert_eq!(drops(&w, DropReason::TooLong), 3);
}

#[test]
fn on_a_vlan_network_the_mtu_counts_the_frame_without_the_networks_tag() {
    let mut w = worker(fdb_mtu(Mode::Bridge, Some(50), 2, 1000));
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    // 1018 bytes on the wire with the tag: 1014 in the container, fits.
    let fits = sized(tagged(mac(0), WIRE_HOST, 50, 1), 1018);
    assert!(w.wire().deliver(&fits));
    assert!(w
        .wire()
        .deliver(&sized(tagged(mac(0), WIRE_HOST, 50, 2), 1019)));
    // A frame with an inner 802.1Q tag of its own may be 4 bytes longer.
    let mut inner = tagged(mac(0), WIRE_HOST, 7, 3);
    inner.splice(12..12, [0x81, 0x00, 0, 50]);
    let inner = sized(inner, 1022);
    assert!(w.wire().deliver(&inner));
    assert!(w.wire().deliver(&sized(inner.clone(), 1023)));
    let got = sent(&mut w, &e0);
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [1014, 1018]);
    assert_eq!(drops(&w, DropReason::TooLong), 2);
}

#[test]
fn a_flood_copy_above_an_endpoints_mtu_is_lost_as_too_long() {
    let mut w = worker(fdb_mtu(Mode::Bridge, None, 2, 1000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    // A broadcast from e1 longer than the MTU: no copy for e0, and none back to e1.
    e1.send(&sized(frame(BROADCAST, mac(1), 1), 1200));
    settle(&mut w);
    assert!(e0.transmit(usize::MAX).is_empty());
    assert_eq!(w.stats().endpoints[0].dropped.load(Relaxed), 1);
    // One that fits reaches e0 (and the wire).
    let small = sized(frame(BROADCAST, mac(1), 2), 1014);
    e1.send(&small);
    settle(&mut w);
    assert_eq!(e0.transmit(usize::MAX), vec![small]);
}

#[test]
fn umem_exhaustion_is_counted_and_the_worker_recovers() {
    let sizes = MemSizes {
        frames: 80,
        ..MemSizes::default()
    };
    let fdb = fdb(Mode::Bridge, None, 2, None);
    let mut w = MemWorker::new(fdb.clone(), sizes);
    let e0 = w.add_veth(E0, false);
    let e1 = w.add_tap(E1, 1000);
    settle(&mut w);
    // The parent keeps 64 posted: 16 are free. Fill e0's TX ring with wire
    // frames and leave it untransmitted: no frame comes back.
    for i in 0..16 {
        assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, i)));
    }
    settle(&mut w);
    assert_eq!(e0.tx_len(), 16);
    // A broadcast now finds no frame for its copies, and the TAP's frames
    // wait in the device (not lost: nothing took them).
    let bcast = frame(BROADCAST, WIRE_HOST, 100);
    assert!(w.flood(GroupFrame {
        verdict: classify_ingress(&fdb, &bcast),
        buf: bcast,
    }));
    e1.send(&frame(WIRE_HOST, mac(1), 101));
    settle(&mut w);
    assert!(w.stats().umem_exhausted.load(Relaxed) > 0);
    // No copy could be made: the frame is dropped for want of UMEM.
    assert_eq!(drops(&w, DropReason::UmemExhausted), 1);
    assert_eq!(drops(&w, DropReason::NoEndpoint), 0);
    assert!(w.wire().transmit(9).is_empty());
    // Frames come back: the TAP's frame goes out.
    assert_eq!(e0.transmit(usize::MAX).len(), 16);
    settle(&mut w);
    assert_eq!(w.wire().transmit(9), vec![frame(WIRE_HOST, mac(1), 101)]);
}

#[test]
fn a_removed_endpoint_gives_every_frame_back() {
    let mut w = worker(fdb(Mode::Bridge, None, 2, None));
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    assert!(e0.fill_len() > 0);
    for i in 0..5 {
        assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, i)));
    }
    settle(&mut w);
    assert_eq!(e0.tx_len(), 5);
    w.remove(E0);
    settle(&mut w);
    assert!(
        !e0.deliver(&frame(WIRE_HOST, mac(0), 9)),
        "a closed socket took a frame"
    );
    // Its id taken again by a new socket: the ledger starts afresh.
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, 10)));
    assert_eq!(sent(&mut w, &e0), vec![frame(mac(0), WIRE_HOST, 10)]);
}

#[test]
fn a_rate_limit_passes_the_burst_allowance_and_drops_the_rest() {
    let limit = RateLimit {
        pps: 100,
        bytes_per_sec: 0,
    };
    let mut w = worker(fdb(Mode::Bridge, None, 1, Some(limit)));
    let e0 = w.add_tap(E0, 8);
    settle(&mut w);
    for i in 0..500 {
        e0.send(&frame(WIRE_HOST, mac(0), i));
    }
    let mut out = 0;
    for _ in 0..100 {
        w.step();
        w.check().unwrap();
        out += w.wire().transmit(usize::MAX).len();
    }
    settle(&mut w);
    out += w.wire().transmit(usize::MAX).len();
    // The allowance is 64 frames (at least one batch); the test runs in
    // well under the 10 ms another frame would take to earn.
    assert!(
        (64..=66).contains(&out),
        "{out} frames passed a 100 pps limit"
    );
    assert_eq!(drops(&w, DropReason::RateLimited), 500 - out as u64);
}

#[test]
fn punted_frames_are_their_senders_egress() {
    let mut w = worker(fdb(Mode::Bridge, None, 2, None));
    let _e0 = w.add_veth(E0, false);
    let e1 = w.add_veth(E1, false);
    let punt = w.set_punt();
    settle(&mut w);
    // The fast path's punt tag: 802.1ad, VID = the sender's id.
    let mut f = frame(mac(1), mac(0), 1);
    f.splice(12..12, [0x88, 0xa8, 0x00, 0x00]);
    assert!(punt.deliver(&f));
    assert_eq!(sent(&mut w, &e1), vec![frame(mac(1), mac(0), 1)]);
    // Claiming to be e1 with e0's MAC: spoofed.
    let mut f = frame(WIRE_HOST, mac(0), 2);
    f.splice(12..12, [0x88, 0xa8, 0x00, 0x01]);
    assert!(punt.deliver(&f));
    assert!(to_wire(&mut w).is_empty());
    assert_eq!(drops(&w, DropReason::SpoofedSource), 1);
    // Nothing else sends there: untagged frames are malformed.
    assert!(punt.deliver(&frame(WIRE_HOST, mac(0), 3)));
    settle(&mut w);
    assert_eq!(drops(&w, DropReason::Malformed), 1);
}

#[test]
fn the_check_catches_a_lost_frame() {
    let mut w = worker(fdb(Mode::Bridge, None, 1, None));
    let e0: TapCtl = w.add_tap(E0, 8);
    settle(&mut w);
    e0.send(&frame(WIRE_HOST, mac(0), 1));
    settle(&mut w);
    // A frame the kernel took and never returned (a completion ring cleared
    // behind the worker's back) shows as lost.
    let out = w.wire().transmit(1);
    assert_eq!(out.len(), 1);
    w.wire().forget_completions();
    let err = w.check().unwrap_err();
    assert!(err.contains("lost") || err.contains("holds"), "{err}");
}

#[test]
fn a_rate_limit_holds_for_the_endpoint_across_workers() {
    // Two workers (two queues of one veth) read the same endpoint's frames:
    // together they pass one allowance, not one each.
    let limit = RateLimit {
        pps: 100,
        bytes_per_sec: 0,
    };
    let fdb = fdb(Mode::Bridge, None, 1, Some(limit));
    let limits = Arc::new(super::limit::Limiters::new(4));
    let mut workers: Vec<MemWorker> = (0..2)
        .map(|_| MemWorker::sharing(fdb.clone(), MemSizes::default(), limits.clone()))
        .collect();
    let taps: Vec<TapCtl> = workers.iter_mut().map(|w| w.add_tap(E0, 8)).collect();
    for (w, tap) in workers.iter_mut().zip(&taps) {
        settle(w);
        for i in 0..200 {
            tap.send(&frame(WIRE_HOST, mac(0), i));
        }
    }
    let mut out = 0;
    for _ in 0..40 {
        for w in &mut workers {
            w.step();
            w.check().unwrap();
            out += w.wire().transmit(usize::MAX).len();
        }
    }
    assert!(
        (64..=66).contains(&out),
        "{out} frames passed a 100 pps limit"
    );
    let dropped: u64 = workers
        .iter()
        .map(|w| drops(w, DropReason::RateLimited))
        .sum();
    assert_eq!(dropped, 400 - out as u64);
}

#[test]
fn a_tap_burst_leaves_the_wire_its_buffers() {
    // 96 frames: the parent keeps 64 posted, 32 are free.
    let sizes = MemSizes {
        frames: 96,
        ..MemSizes::default()
    };
    let mut w = MemWorker::new(fdb(Mode::Bridge, None, 2, None), sizes);
    let e0 = w.add_veth(E0, false);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    assert_eq!(w.wire().fill_len(), 64);
    // The container behind the TAP bursts to the wire while 32 of the
    // wire's frames for e0 arrive; e0 does not transmit yet, so none of
    // those comes back soon.
    for i in 0..100 {
        e1.send(&frame(WIRE_HOST, mac(1), i));
    }
    for i in 0..32 {
        assert!(w.wire().deliver(&frame(mac(0), WIRE_HOST, i)));
    }
    settle(&mut w);
    // The 32 free frames went to the wire's fill ring, not to the TAP.
    assert_eq!(
        w.wire().fill_len(),
        64,
        "the burst starved the wire's fill ring"
    );
    assert_eq!(e0.tx_len(), 32);
    assert!(w.wire().transmit(usize::MAX).is_empty());
    assert!(w.stats().umem_exhausted.load(Relaxed) > 0);
    // Once e0's frames come back, the TAP's frames flow.
    assert_eq!(e0.transmit(usize::MAX).len(), 32);
    settle(&mut w);
    assert_eq!(w.wire().transmit(usize::MAX).len(), 32);
    // The low-water gauge saw the worker with no frame to spare.
    assert_eq!(w.stats().umem_free_min.load(Relaxed), 0);
}

/// An IPv4 frame from `src` to 239.1.2.3: an IGMPv2 message of type
/// `igmp`, or UDP.
fn to_group(src: MacAddr, igmp: Option<u8>) -> Vec<u8> {
    let mut f = frame(GROUP, src, 0);
    f[14] = 0x45;
    f[14 + 9] = if igmp.is_some() { 2 } else { 17 };
    f[30..34].copy_from_slice(&[239, 1, 2, 3]);
    if let Some(kind) = igmp {
        f[34] = kind;
        f[38..42].copy_from_slice(&[239, 1, 2, 3]);
    }
    f
}

/// One snooping bridge network with endpoints e0..e<n>.
fn snooping_fdb(n: u8) -> Arc<Fdb> {
    let mut net = NetworkEntry::new("lan", None, Mode::Bridge);
    net.snoop = true;
    let eps = (0..n)
        .map(|i| Some(EndpointEntry::new(format!("e{i}"), mac(i), NetworkId(0))))
        .collect();
    Arc::new(Fdb::new(vec![net], eps).unwrap())
}

/// 239.1.2.3's MAC.
const GROUP: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);

#[test]
fn snooped_reports_become_events_and_group_frames_reach_members_only() {
    use crate::switch::{GroupTable, Memberships, SnoopEvent};
    let fdb = snooping_fdb(3);
    let mut w = worker(fdb.clone());
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_veth(E1, true);
    let e2 = w.add_tap(E2, 64);
    settle(&mut w);
    // e0 joins: the report is an event, and goes to the wire only.
    assert!(e0.deliver(&to_group(mac(0), Some(0x16))));
    let out = to_wire(&mut w);
    assert_eq!(out, vec![to_group(mac(0), Some(0x16))]);
    assert_eq!(w.snooped(), vec![SnoopEvent::Join(E0, GROUP)]);
    assert!(e1.transmit(9).is_empty());
    assert!(e2.take_received().is_empty());
    // The snooping thread's table, published.
    let mut table = Memberships::new(None);
    table.apply(&fdb, SnoopEvent::Join(E0, GROUP), std::time::Instant::now());
    w.set_groups(Arc::new(table.snapshot()));
    settle(&mut w);
    let data = to_group(WIRE_HOST, None);
    let verdict = classify_ingress(&fdb, &data);
    assert!(w.flood(GroupFrame {
        verdict,
        buf: data.clone()
    }));
    settle(&mut w);
    assert_eq!(e0.transmit(9), vec![data.clone()]);
    assert!(e1.transmit(9).is_empty());
    assert!(e2.take_received().is_empty());
    // e1 sends to the group: e0 gets a copy, the wire the frame.
    let from_e1 = to_group(mac(1), None);
    assert!(e1.deliver(&from_e1));
    assert_eq!(to_wire(&mut w), vec![from_e1.clone()]);
    assert_eq!(e0.transmit(9), vec![from_e1]);
    // No member: nobody, counted.
    w.set_groups(Arc::new(GroupTable::default()));
    settle(&mut w);
    assert!(w.flood(GroupFrame { verdict, buf: data }));
    settle(&mut w);
    assert!(e0.transmit(9).is_empty());
    assert_eq!(
        w.totals().drops[DropReason::NoGroupMember as usize],
        1,
        "a group frame delivered nowhere is a drop"
    );
    // The leave.
    assert!(e0.deliver(&to_group(mac(0), Some(0x17))));
    to_wire(&mut w);
    assert_eq!(w.snooped(), vec![SnoopEvent::Leave(E0, GROUP)]);
    // A report that does not pass (a spoofed source) says nothing.
    assert!(e1.deliver(&to_group(mac(0), Some(0x16))));
    assert!(to_wire(&mut w).is_empty());
    assert_eq!(w.snooped(), vec![]);
}

#[test]
fn group_frames_the_fast_path_copies_reach_members_and_queries_are_noted() {
    use crate::switch::{Memberships, SnoopEvent};
    let fdb = snooping_fdb(2);
    let mut w = worker(fdb.clone());
    let e0 = w.add_veth(E0, false);
    let e1 = w.add_veth(E1, false);
    let punt = w.set_punt();
    let mut table = Memberships::new(None);
    table.apply(&fdb, SnoopEvent::Join(E1, GROUP), std::time::Instant::now());
    w.set_groups(Arc::new(table.snapshot()));
    settle(&mut w);
    // The fast path's copy of a wire group frame: 802.1ad with the wire mark.
    let punted = |f: &[u8]| {
        let mut f = f.to_vec();
        f.splice(12..12, [0x88, 0xa8, 0x10, 0x00]);
        f
    };
    let data = to_group(WIRE_HOST, None);
    assert!(punt.deliver(&punted(&data)));
    assert_eq!(sent(&mut w, &e1), vec![data]);
    assert!(e0.transmit(9).is_empty());
    // A general query to 224.0.0.1: everyone, and noted for the network.
    let mut query = to_group(WIRE_HOST, Some(0x11));
    query[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    query[30..34].copy_from_slice(&[224, 0, 0, 1]);
    query[38..42].copy_from_slice(&[0; 4]);
    assert!(punt.deliver(&punted(&query)));
    settle(&mut w);
    assert_eq!(e0.transmit(9), vec![query.clone()]);
    assert_eq!(e1.transmit(9), vec![query]);
    assert_eq!(w.snooped(), vec![SnoopEvent::Query(NetworkId(0))]);
}

/// The longest frame a jumbo worker carries here: MTU 9216, an Ethernet
/// header, a VLAN tag and the punt tag.
const JUMBO: usize = 9216 + 22;

/// A worker whose sockets take multi-buffer frames (2048-byte UMEM frames:
/// a 9014-byte frame is a chain of five).
fn jumbo_worker(fdb: Arc<Fdb>) -> MemWorker {
    let sizes = MemSizes {
        jumbo: Some(JUMBO),
        ..MemSizes::default()
    };
    let mut w = MemWorker::new(fdb, sizes);
    settle(&mut w);
    w
}

#[test]
fn jumbo_frames_cross_the_worker_as_chains_in_every_direction() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 3, 9000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    let e2 = w.add_veth(E2, true);
    settle(&mut w);
    let j = |dst, src, seq| sized(frame(dst, src, seq), 9014);
    // The wire to a veth (a chain out) and to a TAP (one write).
    assert!(w.wire().deliver(&j(mac(0), WIRE_HOST, 1)));
    assert!(w.wire().deliver(&j(mac(1), WIRE_HOST, 2)));
    assert_eq!(sent(&mut w, &e0), vec![j(mac(0), WIRE_HOST, 1)]);
    assert_eq!(e1.take_received(), vec![j(mac(1), WIRE_HOST, 2)]);
    // A TAP and a veth to the wire, and a veth to a veth.
    e1.send(&j(WIRE_HOST, mac(1), 3));
    assert!(e0.deliver(&j(WIRE_HOST, mac(0), 4)));
    assert_eq!(
        to_wire(&mut w),
        vec![j(WIRE_HOST, mac(0), 4), j(WIRE_HOST, mac(1), 3)]
    );
    assert!(e0.deliver(&j(mac(2), mac(0), 5)));
    assert_eq!(sent(&mut w, &e2), vec![j(mac(2), mac(0), 5)]);
    // Small frames around a jumbo one keep their order.
    let small = |seq| frame(mac(0), WIRE_HOST, seq);
    assert!(w.wire().deliver(&small(6)));
    assert!(w.wire().deliver(&j(mac(0), WIRE_HOST, 7)));
    assert!(w.wire().deliver(&small(8)));
    assert_eq!(
        sent(&mut w, &e0),
        vec![small(6), j(mac(0), WIRE_HOST, 7), small(8)]
    );
    // One byte above the MTU: too long, for its endpoint.
    assert!(w.wire().deliver(&sized(frame(mac(0), WIRE_HOST, 9), 9015)));
    e1.send(&sized(frame(mac(0), mac(1), 10), 9015));
    settle(&mut w);
    assert!(e0.transmit(usize::MAX).is_empty());
    assert_eq!(drops(&w, DropReason::TooLong), 2);
    assert_eq!(w.stats().endpoints[0].dropped.load(Relaxed), 2);
    // A chain counts as one frame everywhere.
    let t = w.totals();
    assert_eq!(t.received_all(), 10);
    assert_eq!(t.delivered, 8);
    assert_eq!(w.stats().endpoints[0].tx_packets.load(Relaxed), 4);
    assert_eq!(w.stats().endpoints[0].rx_packets.load(Relaxed), 2);
    assert_eq!(w.stats().endpoints[1].rx_packets.load(Relaxed), 2);
    assert_eq!(w.stats().wire_tx_packets.load(Relaxed), 2);
}

#[test]
fn a_jumbo_frame_longer_than_the_worker_carries_is_too_long() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 2, 65000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    assert!(w
        .wire()
        .deliver(&sized(frame(mac(0), WIRE_HOST, 1), JUMBO + 1)));
    e1.send(&sized(frame(mac(0), mac(1), 2), JUMBO + 1));
    settle(&mut w);
    assert!(e0.transmit(usize::MAX).is_empty());
    assert_eq!(drops(&w, DropReason::TooLong), 2);
    // The longest it carries passes.
    assert!(w.wire().deliver(&sized(frame(mac(0), WIRE_HOST, 3), JUMBO)));
    assert_eq!(sent(&mut w, &e0).len(), 1);
}

#[test]
fn on_a_vlan_network_a_jumbo_frame_loses_and_gains_its_tag() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, Some(50), 2, 9000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    let jt = |dst, src, seq| sized(tagged(dst, src, 50, seq), 9018);
    let untag = |mut f: Vec<u8>| {
        f.drain(12..16);
        f
    };
    assert!(w.wire().deliver(&jt(mac(0), WIRE_HOST, 1)));
    assert!(w.wire().deliver(&jt(mac(1), WIRE_HOST, 2)));
    assert_eq!(sent(&mut w, &e0), vec![untag(jt(mac(0), WIRE_HOST, 1))]);
    assert_eq!(e1.take_received(), vec![untag(jt(mac(1), WIRE_HOST, 2))]);
    assert!(e0.deliver(&untag(jt(WIRE_HOST, mac(0), 3))));
    e1.send(&untag(jt(WIRE_HOST, mac(1), 4)));
    assert_eq!(
        to_wire(&mut w),
        vec![jt(WIRE_HOST, mac(0), 3), jt(WIRE_HOST, mac(1), 4)]
    );
    // A frame that fills one UMEM frame needs a second with the tag.
    let full = sized(frame(WIRE_HOST, mac(0), 5), MemSizes::default().frame_size);
    assert!(e0.deliver(&full));
    let mut want = full.clone();
    want.splice(12..12, [0x81, 0x00, 0x00, 50]);
    assert_eq!(to_wire(&mut w), vec![want]);
    assert_eq!(w.totals().delivered, 5);
}

#[test]
fn a_jumbo_broadcast_is_copied_as_chains_to_every_other_endpoint_and_the_wire() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 3, 9000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    let e2 = w.add_tap(E2, 64);
    settle(&mut w);
    let b = sized(frame(BROADCAST, mac(1), 1), 9014);
    e1.send(&b);
    settle(&mut w);
    assert_eq!(e0.transmit(usize::MAX), vec![b.clone()]);
    assert_eq!(e2.take_received(), vec![b.clone()]);
    assert!(e1.take_received().is_empty(), "back to its sender");
    assert!(to_wire(&mut w) == vec![b.clone()]);
    // From the wire, through the group listener.
    let fdb = fdb_mtu(Mode::Bridge, None, 3, 9000);
    let from_wire = sized(frame(BROADCAST, WIRE_HOST, 2), 9014);
    assert!(w.flood(GroupFrame {
        verdict: classify_ingress(&fdb, &from_wire),
        buf: from_wire.clone(),
    }));
    settle(&mut w);
    assert!(e0.transmit(usize::MAX) == vec![from_wire.clone()]);
    assert!(e1.take_received() == vec![from_wire.clone()]);
    assert!(e2.take_received() == vec![from_wire]);
    assert_eq!(w.totals().delivered, 2);
}

#[test]
fn frames_that_carried_a_chain_come_back_unmarked() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 2, 9000));
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    for seq in 0..3 {
        assert!(w
            .wire()
            .deliver(&sized(frame(mac(0), WIRE_HOST, seq), 9014)));
    }
    assert_eq!(sent(&mut w, &e0).len(), 3);
    // The chunks, reaped with XDP_PKT_CONTD still on them, are the next
    // free frames: a TAP's frames read into them are each one frame.
    let small: Vec<Vec<u8>> = (10..20).map(|seq| frame(mac(0), mac(1), seq)).collect();
    for f in &small {
        e1.send(f);
    }
    assert!(sent(&mut w, &e0) == small);
}

#[test]
fn a_full_tx_ring_takes_whole_chains_and_drops_whole_frames() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 1, 9000));
    let e0 = w.add_veth(E0, true);
    settle(&mut w);
    // e0's TX ring (64) holds twelve chains of five; never transmitted.
    let mut offered = 0;
    for i in 0..15 {
        for _ in 0..16 {
            if w.wire().deliver(&sized(frame(mac(0), WIRE_HOST, i), 9014)) {
                offered += 1;
                break;
            }
            settle(&mut w);
        }
    }
    settle(&mut w);
    assert_eq!(offered, 15);
    assert_eq!(e0.tx_len(), 60);
    assert_eq!(drops(&w, DropReason::TxFull), 3);
    let out = e0.transmit(usize::MAX);
    assert_eq!(out.len(), 12);
    assert!(out.iter().all(|f| f.len() == 9014));
    settle(&mut w);
}

#[test]
fn punted_jumbo_frames_are_their_senders_egress() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 2, 9000));
    let _e0 = w.add_veth(E0, false);
    let e1 = w.add_veth(E1, false);
    let punt = w.set_punt();
    settle(&mut w);
    let f = sized(frame(mac(1), mac(0), 1), 9014);
    let mut p = f.clone();
    p.splice(12..12, [0x88, 0xa8, 0x00, 0x00]);
    assert!(punt.deliver(&p));
    assert_eq!(sent(&mut w, &e1), vec![f]);
    // A removed endpoint's chains on its rings come back whole.
    assert!(punt.deliver(&p));
    settle(&mut w);
    assert_eq!(e1.tx_len(), 5);
    w.remove(E1);
    settle(&mut w);
    assert_eq!(w.totals().delivered, 2);
}

#[test]
fn a_tap_sending_jumbo_frames_is_read_a_batch_at_a_time_in_order() {
    // TX rings that hold two batches of chains (a ring's frames come back
    // only when reaped, after the next flush).
    let sizes = MemSizes {
        jumbo: Some(JUMBO),
        ring: 256,
        ..MemSizes::default()
    };
    let mut w = MemWorker::new(fdb_mtu(Mode::Bridge, None, 2, 9000), sizes);
    let e0 = w.add_veth(E0, true);
    let e1 = w.add_tap(E1, 64);
    settle(&mut w);
    // Jumbo frames with small ones between them, more than a batch (16).
    let sent_frames: Vec<Vec<u8>> = (0..24)
        .map(|seq| {
            let len = if seq % 3 == 2 { 64 } else { 9014 };
            sized(frame(mac(0), mac(1), seq), len)
        })
        .collect();
    for f in &sent_frames {
        e1.send(f);
    }
    // One pass reads a whole batch, jumbo frames included.
    w.step();
    w.check().unwrap();
    assert_eq!(w.totals().received_all(), 16);
    let mut got = e0.transmit(usize::MAX);
    settle(&mut w);
    got.extend(e0.transmit(usize::MAX));
    assert!(
        got == sent_frames,
        "{:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn a_new_punt_device_starts_with_no_half_chain() {
    let mut w = jumbo_worker(fdb_mtu(Mode::Bridge, None, 2, 9000));
    let _e0 = w.add_veth(E0, false);
    let e1 = w.add_veth(E1, false);
    let old = w.set_punt();
    settle(&mut w);
    // The old device hands over 13 frames and a chain of 5 chunks: a
    // batch (16) ends inside the chain, and the device goes.
    let tagged = |f: &[u8]| {
        let mut p = f.to_vec();
        p.splice(12..12, [0x88, 0xa8, 0x00, 0x00]);
        p
    };
    let before: Vec<Vec<u8>> = (0..13).map(|seq| frame(mac(1), mac(0), seq)).collect();
    for f in &before {
        assert!(old.deliver(&tagged(f)));
    }
    assert!(old.deliver(&tagged(&sized(frame(mac(1), mac(0), 13), 9014))));
    w.step();
    w.check().unwrap();
    let new = w.set_punt();
    settle(&mut w);
    // The new device's first frame is a frame of its own.
    let small = frame(mac(1), mac(0), 14);
    assert!(new.deliver(&tagged(&small)));
    let mut want = before;
    want.push(small);
    assert!(sent(&mut w, &e1) == want);
}
