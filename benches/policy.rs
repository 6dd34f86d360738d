//! The policy engine's cost: decode → decide → encode of the commands the proxy rewrites most,
//! each next to the wire floor (decode → encode of the same frame) so the ratio can be read off.
//!
//! ```text
//! cargo bench --bench policy
//! ```
//! Goals (issue #3): (a) ≤ 2 µs median; every case ≤ 2× its floor.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use tenantgate_policy::decide;
use tenantgate_wire::{Limits, Message};

/// The allocator `tenantgate serve` runs with (src/main.rs), so allocations cost what they cost
/// in the proxy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/commands.rs"]
mod commands;

fn policy(c: &mut Criterion) {
    let (config, principal) = commands::setup();
    let ctx = commands::context(&config, &principal);
    let limits = Limits::default();
    let mut out = BytesMut::with_capacity(64 * 1024);

    for (name, frame) in commands::cases() {
        let mut group = c.benchmark_group(format!("policy/{name}"));
        group.bench_function("floor_decode_encode", |b| {
            b.iter(|| {
                out.clear();
                Message::decode(black_box(frame.clone()), &limits)
                    .expect("decodes")
                    .encode(&mut out)
                    .expect("encodes");
            })
        });
        group.bench_function("decide_only", |b| {
            let msg = Message::decode(frame.clone(), &limits).expect("decodes");
            let op = msg.as_op_msg().expect("op_msg").clone();
            b.iter(|| black_box(decide(black_box(&op), &ctx)))
        });
        group.bench_function("rewrite_decode_decide_encode", |b| {
            b.iter(|| {
                out.clear();
                commands::rewrite(black_box(&frame), &ctx, &limits, &mut out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, policy);
criterion_main!(benches);
