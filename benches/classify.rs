//! Parse + classify over batches of 64 frames from an in-memory port, for FDB sizes 4, 256, 4096.
//!
//! Reports frames/s on one core (criterion's "elements" throughput).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use mvdp::io::memory::MemoryPort;
use mvdp::switch::{
    classify_ingress, EndpointEntry, EndpointId, Fdb, Mode, NetworkEntry, NetworkId, Verdict,
};
use mvdp::wire::MacAddr;

const BATCH: usize = 64;

fn endpoint_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0x42, 10, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

fn fdb(n: usize) -> Fdb {
    let nets = vec![NetworkEntry::new("lan", None, Mode::Bridge)];
    let eps = (0..n)
        .map(|i| {
            Some(EndpointEntry::new(
                format!("c{i}"),
                endpoint_mac(i),
                NetworkId(0),
            ))
        })
        .collect();
    Fdb::new(nets, eps).expect("fdb")
}

/// 4096 64-byte frames to endpoint MACs in a scrambled order, 1 in 16 to an unknown MAC.
fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..4096)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let dst = if i % 16 == 15 {
                MacAddr([0x02, 0x99, 0, 0, 0, i as u8])
            } else {
                endpoint_mac(x as usize % n)
            };
            let mut f = Vec::with_capacity(64);
            f.extend_from_slice(&dst.0);
            f.extend_from_slice(&[0x02, 0x42, 10, 77, 0, 1]);
            f.extend_from_slice(&[0x08, 0x00]);
            f.resize(60, 0);
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_classify_batch64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in [4usize, 256, 4096] {
        let fdb = fdb(n);
        let mut port = MemoryPort::new(frames(n));
        let mut per_endpoint = vec![0u32; n];
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let mut dropped = 0u32;
                for frame in port.rx_batch(BATCH) {
                    match classify_ingress(&fdb, black_box(frame)) {
                        Verdict::Endpoint(EndpointId(id)) => per_endpoint[usize::from(id)] += 1,
                        _ => dropped += 1,
                    }
                }
                black_box(dropped)
            })
        });
        black_box(&per_endpoint);
    }
    group.finish();
}

// No HTML plots: the crate's plotters build renders text with ab_glyph,
// which needs a registered font that criterion does not register.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
